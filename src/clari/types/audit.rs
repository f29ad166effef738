//! Audit events (`GET /audit/events` and the audit export).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{lenient_string, lenient_string_required};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SessionType {
    Web,
    Ios,
    Android,
}

/// Filters of `GET /audit/events` (and the body of `POST /export/audit/events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonating_actor_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// RFC 3339 date-time or `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(default, alias = "activities")]
    pub items: Vec<AuditEvent>,
    #[serde(default)]
    pub actors: Vec<AuditActor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(default, rename = "correlationID", alias = "correlationId")]
    pub correlation_id: Option<String>,
    #[serde(deserialize_with = "lenient_string_required")]
    pub actor_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub impersonating_actor_id: Option<String>,
    pub actor_type: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub session_type: Option<String>,
    pub event: String,
    #[serde(default)]
    pub event_parameters: Value,
    pub event_timestamp: EventTimestamp,
}

/// RFC 3339 string (spec) or a Java `Instant` object `{epochSecond, nano}` (seen downstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EventTimestamp(
    /// Unix time in milliseconds.
    pub i64,
);

impl EventTimestamp {
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl<'de> Deserialize<'de> for EventTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Millis(i64),
            Instant {
                #[serde(rename = "epochSecond")]
                epoch_second: i64,
                #[serde(default)]
                nano: i64,
            },
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => {
                let t =
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                            serde::de::Error::custom(format!("eventTimestamp '{s}': {e}"))
                        })?;
                Ok(Self((t.unix_timestamp_nanos() / 1_000_000) as i64))
            }
            Raw::Millis(ms) => Ok(Self(ms)),
            Raw::Instant { epoch_second, nano } => Ok(Self(epoch_second * 1000 + nano / 1_000_000)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditActor {
    #[serde(default)]
    pub actor_type: Option<String>,
    #[serde(deserialize_with = "lenient_string_required")]
    pub actor_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

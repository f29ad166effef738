//! Activity exports (`POST /export/activity`) and their results.

use serde::{Deserialize, Serialize};

use super::{ExportFormat, lenient_millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityType {
    Meeting,
    EmailSent,
    EmailReceived,
    AttachmentSent,
    AttachmentReceived,
}

impl ActivityType {
    pub const ALL: [ActivityType; 5] = [
        ActivityType::Meeting,
        ActivityType::EmailSent,
        ActivityType::EmailReceived,
        ActivityType::AttachmentSent,
        ActivityType::AttachmentReceived,
    ];
}

/// Body of `POST /export/activity`. Only the date and zone of the bounds are used by Clari.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityExportRequest {
    pub activity_types: Vec<ActivityType>,
    pub start_date: String,
    pub end_date: String,
    pub export_format: ExportFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ActivityResults {
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// The size of this content as compact JSON, set when it is read from Clari's answer (0 when
    /// built otherwise): what the export weighs in the cache.
    #[serde(skip)]
    pub content_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub activity_id: String,
    pub activity_type: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// Epoch milliseconds (the API sometimes sends it as a string).
    #[serde(deserialize_with = "lenient_millis")]
    pub date: i64,
    #[serde(default)]
    pub activity_owner_id: Option<String>,
    #[serde(default)]
    pub activity_organiser_id: Option<String>,
    #[serde(default)]
    pub accounts: Vec<ActivityAccount>,
    #[serde(default)]
    pub opportunities: Vec<ActivityOpportunity>,
    #[serde(default)]
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityAccount {
    pub account_id: String,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub account_owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityOpportunity {
    pub opportunity_id: String,
    #[serde(default)]
    pub opportunity_name: Option<String>,
    #[serde(default)]
    pub opportunity_owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub sfdc_user_id: Option<String>,
    #[serde(default)]
    pub is_internal: Option<bool>,
}

//! Forecast export results: the grid of values, users, fields, periods and weeks.

use serde::{Deserialize, Serialize};

use super::{lenient_string, lenient_string_required};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ForecastResults {
    #[serde(default)]
    pub entries: Vec<ForecastEntry>,
    #[serde(default)]
    pub users: Vec<ForecastUser>,
    #[serde(default)]
    pub fields: Vec<ForecastField>,
    #[serde(default)]
    pub time_periods: Vec<TimePeriodInfo>,
    #[serde(default)]
    pub time_frames: Vec<TimeFrame>,
    /// The size of this content as compact JSON, set when it is read from Clari's answer (0 when
    /// built otherwise): what the export weighs in the cache.
    #[serde(skip)]
    pub content_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Currency {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub symbol: Option<String>,
}

/// One value of the forecast grid. Which value keys are present depends on `typesToExport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastEntry {
    #[serde(deserialize_with = "lenient_string_required")]
    pub user_id: String,
    pub field_id: String,
    #[serde(default)]
    pub time_period_id: Option<String>,
    #[serde(default)]
    pub time_frame_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_total_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_closed_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_updated: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_on: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastUser {
    #[serde(deserialize_with = "lenient_string_required")]
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub crm_id: Option<String>,
    #[serde(default)]
    pub hierarchy_id: Option<String>,
    #[serde(default)]
    pub hierarchy_name: Option<String>,
    #[serde(default)]
    pub parent_hierarchy_id: Option<String>,
    #[serde(default)]
    pub parent_hierarchy_name: Option<String>,
    #[serde(default)]
    pub scope_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastField {
    pub field_id: String,
    #[serde(default)]
    pub field_name: Option<String>,
    #[serde(default)]
    pub field_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimePeriodInfo {
    pub time_period_id: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub year: Option<i64>,
    #[serde(default, rename = "type")]
    pub period_type: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub crm_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeFrame {
    pub time_frame_id: String,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
}

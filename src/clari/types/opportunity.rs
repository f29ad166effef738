//! Opportunities (`GET /opportunity`) with CRM scores and field history.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opportunity {
    pub id: String,
    #[serde(default)]
    pub crm_score: Option<CrmScore>,
    #[serde(default)]
    pub fields: Vec<OpportunityField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmScore {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpportunityField {
    pub id: String,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub trend: Option<String>,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub original_value: Value,
    #[serde(default)]
    pub trend_history: Vec<TrendPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    #[serde(default)]
    pub old_value: Value,
    #[serde(default)]
    pub new_value: Value,
    /// Epoch milliseconds.
    pub date: i64,
}

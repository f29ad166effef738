//! `list_time_periods`: the quarter and its weeks, from the shared forecast export.

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

use super::forecast::{forecast_id, period_arg};
use super::render::{Export, Summary, plural};
use super::{Tool, ToolError, wait};
use crate::exports::pipeline;
use crate::exports::{Forecast, week_index};
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

pub struct ListTimePeriods;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimePeriodsArgs {
    pub forecast_id: Option<String>,
    pub time_period: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PeriodRow {
    pub time_period: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WeekRow {
    pub time_frame_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TimePeriodsData {
    pub time_periods: Vec<PeriodRow>,
    /// The quarter's weeks with data, in order.
    pub weeks: Vec<WeekRow>,
}

impl Summary for TimePeriodsData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{}: {} week{} with data. Pass time_period (YYYY_QN) to the forecast tools for another quarter.",
            self.time_periods
                .first()
                .map(|p| p.label.clone().unwrap_or_else(|| p.time_period.clone()))
                .unwrap_or_else(|| "The quarter".into()),
            self.weeks.len(),
            plural(self.weeks.len(), "", "s")
        )
    }
}

impl Tool for ListTimePeriods {
    const NAME: &'static str = "list_time_periods";
    const TITLE: &'static str = "Time periods";
    const DESCRIPTION: &'static str =
        "The fiscal quarter of a forecast (default: the current one) and its weekly time frames.";
    const SCOPE: Scope = Scope::ForecastsRead;
    type Args = TimePeriodsArgs;
    type Output = Export<TimePeriodsData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: TimePeriodsArgs,
    ) -> Result<Self::Output, ToolError> {
        let forecast_id = forecast_id(&a.forecast_id);
        let period = period_arg(a.time_period.as_deref())?;
        let got = pipeline::forecast(
            state,
            &ctx.org_id,
            &forecast_id,
            period,
            wait(a.wait_seconds),
        )
        .await?;
        Export::from_kept(got, |f: &Forecast| {
            let mut weeks: Vec<WeekRow> = f
                .results
                .time_frames
                .iter()
                .map(|w| WeekRow {
                    time_frame_id: w.time_frame_id.clone(),
                    start: w.start_date.clone(),
                    end: w.end_date.clone(),
                })
                .collect();
            weeks.sort_by_key(|w| week_index(&w.time_frame_id));
            Ok(TimePeriodsData {
                time_periods: f
                    .results
                    .time_periods
                    .iter()
                    .map(|p| PeriodRow {
                        time_period: p.time_period_id.clone(),
                        label: p.label.clone(),
                        start: p.start_date.clone(),
                        end: p.end_date.clone(),
                    })
                    .collect(),
                weeks,
            })
        })
    }
}

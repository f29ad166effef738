//! How an answer reaches the agent: `structuredContent` is the serialized output struct, and the
//! text content carries all of it too (a short first line for people, then the same object as
//! compact JSON), because some hosts give the model only the text and others only the structure.
//! Numbers stay exact: whole amounts serialize as integers, fractions as at most cents.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::schemars::{self, JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::ToolError;
use crate::clari::ExportState;
use crate::exports::Keeps;

/// The first line of an answer's text: what this is, how many, what to call next.
pub trait Summary {
    fn summary(&self, tool: &str) -> String;
}

/// A successful answer: the summary line, then the object, in the text; the object again as
/// structured content.
pub fn answer<T: Serialize + Summary>(tool: &str, out: &T) -> CallToolResult {
    let value = serde_json::to_value(out).expect("tool output serializes");
    // Straight from the struct, so the text keeps the fields in their declared order; written
    // after the summary into one buffer, not formatted into a second.
    let mut text = out.summary(tool).into_bytes();
    text.push(b'\n');
    serde_json::to_writer(&mut text, out).expect("tool output serializes");
    let text = String::from_utf8(text).expect("JSON is UTF-8");
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    r.structured_content = Some(value);
    r
}

/// The size of an answer's text content (which carries the whole answer).
pub fn answer_bytes(result: &CallToolResult) -> u64 {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.len() as u64))
        .sum()
}

/// A failed call: one sentence of what happened, one of what to do; no structured content.
pub fn failure(e: &ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{} {}",
        e.message, e.hint
    ))])
}

/// An amount of money as Clari sent it, serialized exactly: whole amounts as integers, anything
/// else rounded to cents (no binary-float noise such as 0.30000000000000004).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Amount(pub f64);

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        exact_number(self.0).serialize(s)
    }
}

impl JsonSchema for Amount {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Amount".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "number"})
    }
}

/// `v` as an integer when whole, else rounded to two decimals.
pub fn exact_number(v: f64) -> Value {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        let cents = (v * 100.0).round() / 100.0;
        serde_json::Number::from_f64(cents)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A free-form value from Clari with its numbers made exact.
pub fn exact(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => exact_number(n.as_f64().unwrap_or_default()),
        Value::Array(items) => Value::Array(items.into_iter().map(exact).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, exact(v))).collect()),
        other => other,
    }
}

/// `a / b` to three decimals (0.925 = 92.5 %).
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 1000.0).round() / 1000.0),
        _ => None,
    }
}

/// `$1,234,567` (USD) or `1,234,567` (other currencies), whole units.
pub fn money(v: Option<Amount>, currency: &str) -> String {
    match v {
        None => "n/a".into(),
        Some(Amount(v)) => {
            let whole = v.round() as i64;
            let digits = whole.unsigned_abs().to_string();
            let mut s = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    s.push(',');
                }
                s.push(c);
            }
            format!(
                "{}{}{s}",
                if whole < 0 { "-" } else { "" },
                if currency == "USD" { "$" } else { "" }
            )
        }
    }
}

pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// " Next page: call again with cursor \"25\"." when there is one.
pub fn next_page(next: &Option<String>) -> String {
    next.as_ref()
        .map(|c| format!(" Next page: call again with the same arguments and cursor \"{c}\"."))
        .unwrap_or_default()
}

/// The answer of an export-backed tool: the data when Clari's export is ready, otherwise where
/// the export stands. Every state validates against the tool's one output schema.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Export<T> {
    /// The data.
    Ready(T),
    /// Clari is preparing the export; it keeps running. Call again with the same arguments.
    Running {
        /// Clari's export job id (absent while the job is being created).
        #[serde(skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        /// When calling again is likely to find the data ready.
        retry_after_seconds: u32,
    },
    /// Waiting for one of Clari's concurrent export slots; it starts by itself when one frees.
    Queued {
        /// 1 = the next export to start.
        position: u32,
        /// The running export whose end frees the next slot, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        waiting_for_job_id: Option<String>,
        retry_after_seconds: u32,
    },
    /// The answer for these arguments is kept with the export ([`Export::from_kept`]): the
    /// tool's handler answers that, and this value is never rendered.
    #[serde(skip)]
    #[schemars(skip)]
    Kept,
}

impl<T> Export<T> {
    /// `Ready(f(value))` when the export is ready, else the state it is in.
    pub fn from_state<U>(
        got: ExportState<Arc<U>>,
        f: impl FnOnce(&U) -> Result<T, ToolError>,
    ) -> Result<Self, ToolError> {
        match got {
            ExportState::Ready(v) => Ok(Self::Ready(f(&v)?)),
            other => Ok(Self::not_ready(&other).expect("not ready")),
        }
    }

    /// [`Export::from_state`] for a tool whose answer is a function of its arguments and this
    /// export alone (not the clock, not a setting, not the caller): when an answer for the same
    /// tool and arguments is kept with the export, `Kept` (the handler answers what was kept)
    /// without running `f`; otherwise the answer the handler renders is kept with it.
    pub fn from_kept<U: Keeps + 'static>(
        got: ExportState<Arc<U>>,
        f: impl FnOnce(&U) -> Result<T, ToolError>,
    ) -> Result<Self, ToolError> {
        if let ExportState::Ready(v) = &got
            && found_kept(v)
        {
            return Ok(Self::Kept);
        }
        Self::from_state(got, f)
    }

    /// The answer for an export that is not ready yet; `None` when it is.
    pub fn not_ready<U>(got: &ExportState<U>) -> Option<Self> {
        match got {
            ExportState::Ready(_) => None,
            ExportState::Running { job_id } => Some(Self::Running {
                job_id: job_id.as_ref().map(ToString::to_string),
                retry_after_seconds: 10,
            }),
            ExportState::Queued {
                position,
                waiting_for,
            } => Some(Self::Queued {
                position: *position,
                waiting_for_job_id: waiting_for.as_ref().map(ToString::to_string),
                retry_after_seconds: (10 + 10 * position).min(60),
            }),
        }
    }
}

impl<T: Summary> Summary for Export<T> {
    fn summary(&self, tool: &str) -> String {
        match self {
            Self::Ready(t) => t.summary(tool),
            Self::Kept => String::new(),
            Self::Running {
                job_id,
                retry_after_seconds,
            } => format!(
                "Clari is still preparing this export{}. It keeps running: call {tool} again with the same arguments in about {retry_after_seconds} s.",
                job_id
                    .as_ref()
                    .map(|j| format!(" (job {j})"))
                    .unwrap_or_default()
            ),
            Self::Queued {
                position,
                waiting_for_job_id,
                retry_after_seconds,
            } => format!(
                "This export is queued behind Clari's concurrent export limit (position {position}{}); it starts by itself when a slot frees. Call {tool} again with the same arguments in about {retry_after_seconds} s.",
                waiting_for_job_id
                    .as_ref()
                    .map(|j| format!(", waiting for job {j}"))
                    .unwrap_or_default()
            ),
        }
    }
}

// --- answers kept with their export ----------------------------------------------------------

tokio::task_local! {
    /// The call a tool handler is answering: its key among the answers kept with an export, and
    /// what [`Export::from_kept`] found there.
    static KEEPING: RefCell<Keeping>;
}

/// What a call found of the answers kept with the export it read.
#[derive(Default)]
pub struct Keeping {
    key: String,
    /// The answer kept for this call's tool and arguments.
    pub found: Option<CallToolResult>,
    /// The export read, when nothing was kept for this call: its answer is to be kept with it.
    source: Option<Arc<dyn Keeps>>,
}

impl Keeping {
    /// Runs a tool's work for `tool` with arguments of this digest (the audit trail's keyed
    /// digest); what it found kept.
    pub async fn run<R>(tool: &str, digest: &str, work: impl Future<Output = R>) -> (R, Self) {
        let keeping = Keeping {
            key: kept_key(tool, digest),
            ..Keeping::default()
        };
        KEEPING
            .scope(RefCell::new(keeping), async {
                let r = work.await;
                (r, KEEPING.with(|k| std::mem::take(&mut *k.borrow_mut())))
            })
            .await
    }

    /// Keeps a successful answer with the export it was rendered from, when the tool read one
    /// through [`Export::from_kept`]. It weighs its text twice: the structured content holds
    /// the same data.
    pub fn keep(self, answer: &CallToolResult) {
        let Some(source) = self.source else {
            return;
        };
        let text = usize::try_from(answer_bytes(answer)).unwrap_or(usize::MAX);
        source
            .kept()
            .put(&self.key, Arc::new(answer.clone()), text.saturating_mul(2));
    }
}

/// The key of a tool's answer for arguments of this digest among those kept with an export: a
/// fixed size, whatever the arguments.
pub fn kept_key(tool: &str, digest: &str) -> String {
    format!("{tool}\n{digest}")
}

/// Whether an answer for the current call is kept with `export` (then it is taken into the
/// call's [`Keeping`]); when not, the export is noted so the answer rendered is kept with it.
/// Outside a tool handler, nothing is kept.
fn found_kept<U: Keeps + 'static>(export: &Arc<U>) -> bool {
    KEEPING
        .try_with(|k| {
            let mut k = k.borrow_mut();
            let kept = export.kept().get(&k.key);
            match kept
                .as_ref()
                .and_then(|v| v.downcast_ref::<CallToolResult>())
            {
                Some(answer) => {
                    k.found = Some(answer.clone());
                    true
                }
                None => {
                    k.source = Some(Arc::clone(export) as Arc<dyn Keeps>);
                    false
                }
            }
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_stay_exact() {
        assert_eq!(
            serde_json::to_string(&Amount(1_250_000.0)).unwrap(),
            "1250000"
        );
        assert_eq!(serde_json::to_string(&Amount(0.1 + 0.2)).unwrap(), "0.3");
        assert_eq!(serde_json::to_string(&Amount(-42.5)).unwrap(), "-42.5");
        assert_eq!(
            exact(serde_json::json!({"a": [3.0, 2.25]})),
            serde_json::json!({"a": [3, 2.25]})
        );
    }

    #[test]
    fn money_is_grouped() {
        assert_eq!(money(Some(Amount(1234567.0)), "USD"), "$1,234,567");
        assert_eq!(money(Some(Amount(-900.0)), "EUR"), "-900");
        assert_eq!(money(None, "USD"), "n/a");
    }
}

//! Activity tools: opportunities and accounts with activity in a window, both read from the
//! shared activity export.

use std::collections::BTreeMap;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

use super::render::{Export, Summary, next_page, plural};
use super::window::{Span, Window, org_zone};
use super::{Tool, ToolError, cursor, limit, page, wait};
use crate::clock::rfc3339;
use crate::exports::ActivityWindow;
use crate::exports::pipeline;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowArgs {
    /// First day of the window, YYYY-MM-DD, a whole day in the organisation's time zone
    /// (default: 30 days before today).
    pub since: Option<String>,
    /// Last day of the window, YYYY-MM-DD, inclusive (default: today).
    pub until: Option<String>,
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous answer.
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AccountRef {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OpportunityRef {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One page of what the activity export holds over the window `a` asks for, as
/// `list_opportunities` and `list_accounts` both answer: `rows` draws the rows from the export,
/// most recent activity first, and `data` makes the answer from the window, the page, the number
/// of rows in all and the next page's cursor.
async fn window_page<T: Clone, D>(
    state: &AppState,
    ctx: &AuthContext,
    a: WindowArgs,
    rows: fn(&ActivityWindow) -> Vec<T>,
    data: fn(&Span, Vec<T>, usize, Option<String>) -> D,
) -> Result<Export<D>, ToolError> {
    let tz = org_zone(state, &ctx.org_id).await?;
    let span = Span::resolve(a.since.as_deref(), a.until.as_deref(), state.now(), 30, tz)?;
    let limit = limit(a.limit)?;
    let got = pipeline::activities(state, &ctx.org_id, span.bounds(), wait(a.wait_seconds)).await?;
    Export::from_state(got, |acts| {
        let rows = rows(acts);
        let offset = cursor(a.cursor.as_deref(), rows.len())?;
        let (items, next) = page(&rows, offset, limit);
        Ok(data(&span, items, rows.len(), next))
    })
}

// --- list_opportunities -----------------------------------------------------------------------

pub struct ListOpportunities;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ActiveOpportunity {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Salesforce id of the opportunity's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_crm_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    #[schemars(extend("format" = "date-time"))]
    pub last_activity: String,
    pub activity_count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OpportunitiesData {
    #[serde(flatten)]
    pub span: Window,
    /// Most recent activity first.
    pub opportunities: Vec<ActiveOpportunity>,
    /// Opportunities with activity in the window in all.
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for OpportunitiesData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} opportunit{} with activity {}; showing {} (most recent first). search_deals filters them by stage, amount, owner or close date.{}",
            self.total,
            plural(self.total, "y", "ies"),
            self.span.text,
            self.opportunities.len(),
            next_page(&self.next_cursor)
        )
    }
}

fn opportunities(acts: &ActivityWindow) -> Vec<ActiveOpportunity> {
    let mut by_id: BTreeMap<&str, (ActiveOpportunity, i64)> = BTreeMap::new();
    for act in acts.iter() {
        for o in &act.opportunities {
            let e = by_id.entry(o.opportunity_id.as_str()).or_insert_with(|| {
                (
                    ActiveOpportunity {
                        opportunity_id: o.opportunity_id.clone(),
                        name: o.opportunity_name.clone(),
                        owner_crm_id: o.opportunity_owner_id.clone(),
                        account: act.accounts.first().map(|a| AccountRef {
                            account_id: a.account_id.clone(),
                            name: a.account_name.clone(),
                        }),
                        last_activity: String::new(),
                        activity_count: 0,
                    },
                    0,
                )
            });
            e.1 = e.1.max(act.date);
            e.0.activity_count += 1;
        }
    }
    let mut rows: Vec<(i64, ActiveOpportunity)> = by_id
        .into_values()
        .map(|(mut o, last)| {
            o.last_activity = rfc3339(last / 1000);
            (last, o)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, o)| o).collect()
}

impl Tool for ListOpportunities {
    const NAME: &'static str = "list_opportunities";
    const TITLE: &'static str = "Opportunities";
    const DESCRIPTION: &'static str = "Opportunities with activity (meetings, e-mails, attachments) in a date window, with owner and account.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = WindowArgs;
    type Output = Export<OpportunitiesData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: WindowArgs,
    ) -> Result<Self::Output, ToolError> {
        window_page(state, ctx, a, opportunities, |span, items, total, next| {
            OpportunitiesData {
                span: span.window(),
                opportunities: items,
                total,
                next_cursor: next,
            }
        })
        .await
    }
}

// --- list_accounts ----------------------------------------------------------------------------

pub struct ListAccounts;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ActiveAccount {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_crm_id: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub last_activity: String,
    pub activity_count: usize,
    pub opportunities: Vec<OpportunityRef>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountsData {
    #[serde(flatten)]
    pub span: Window,
    /// Most recent activity first.
    pub accounts: Vec<ActiveAccount>,
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for AccountsData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} account{} with activity {}; showing {} (most recent first).{}",
            self.total,
            plural(self.total, "", "s"),
            self.span.text,
            self.accounts.len(),
            next_page(&self.next_cursor)
        )
    }
}

fn accounts(acts: &ActivityWindow) -> Vec<ActiveAccount> {
    struct Acc<'a> {
        name: Option<&'a String>,
        owner: Option<&'a String>,
        opps: BTreeMap<&'a str, Option<&'a String>>,
        last: i64,
        count: usize,
    }
    let mut by_id: BTreeMap<&str, Acc> = BTreeMap::new();
    for act in acts.iter() {
        for acc in &act.accounts {
            let e = by_id.entry(acc.account_id.as_str()).or_insert_with(|| Acc {
                name: acc.account_name.as_ref(),
                owner: acc.account_owner_id.as_ref(),
                opps: BTreeMap::new(),
                last: 0,
                count: 0,
            });
            e.last = e.last.max(act.date);
            e.count += 1;
            for o in &act.opportunities {
                e.opps
                    .insert(o.opportunity_id.as_str(), o.opportunity_name.as_ref());
            }
        }
    }
    let mut rows: Vec<(i64, ActiveAccount)> = by_id
        .into_iter()
        .map(|(id, a)| {
            (
                a.last,
                ActiveAccount {
                    account_id: id.to_owned(),
                    name: a.name.cloned(),
                    owner_crm_id: a.owner.cloned(),
                    last_activity: rfc3339(a.last / 1000),
                    activity_count: a.count,
                    opportunities: a
                        .opps
                        .into_iter()
                        .map(|(id, name)| OpportunityRef {
                            opportunity_id: id.to_owned(),
                            name: name.cloned(),
                        })
                        .collect(),
                },
            )
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, a)| a).collect()
}

impl Tool for ListAccounts {
    const NAME: &'static str = "list_accounts";
    const TITLE: &'static str = "Accounts";
    const DESCRIPTION: &'static str =
        "Accounts with activity in a date window, with owners and their opportunities.";
    const SCOPE: Scope = Scope::AccountsRead;
    type Args = WindowArgs;
    type Output = Export<AccountsData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: WindowArgs,
    ) -> Result<Self::Output, ToolError> {
        window_page(state, ctx, a, accounts, |span, items, total, next| {
            AccountsData {
                span: span.window(),
                accounts: items,
                total,
                next_cursor: next,
            }
        })
        .await
    }
}

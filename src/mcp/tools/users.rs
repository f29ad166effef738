//! `list_users`: the forecast hierarchy, from the shared forecast export.

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

use super::forecast::{broken, forecast_id};
use super::render::{Export, Summary, next_page, plural};
use super::{Tool, ToolError, cursor, limit, page, wait};
use crate::clari::types::ForecastUser;
use crate::exports::Forecast;
use crate::exports::pipeline;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

pub struct ListUsers;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsersArgs {
    pub forecast_id: Option<String>,
    /// Only this manager and everyone below (user id, e-mail or name).
    pub manager: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserRow {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_user_id: Option<String>,
    pub direct_reports: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UsersData {
    pub users: Vec<UserRow>,
    /// Users in the hierarchy (or under the manager) in all.
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for UsersData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} user{} in the hierarchy; showing {}.{}",
            self.total,
            plural(self.total, "", "s"),
            self.users.len(),
            next_page(&self.next_cursor)
        )
    }
}

impl Tool for ListUsers {
    const NAME: &'static str = "list_users";
    const TITLE: &'static str = "Forecast hierarchy";
    const DESCRIPTION: &'static str = "The forecast hierarchy: users, roles, managers, e-mails and CRM ids, optionally under one manager.";
    const SCOPE: Scope = Scope::UsersRead;
    type Args = UsersArgs;
    type Output = Export<UsersData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: UsersArgs,
    ) -> Result<Self::Output, ToolError> {
        let forecast_id = forecast_id(&a.forecast_id);
        let limit = limit(a.limit)?;
        let got = pipeline::forecast(state, &ctx.org_id, &forecast_id, None, wait(a.wait_seconds))
            .await?;
        Export::from_kept(got, |f: &Forecast| {
            let users: Vec<&ForecastUser> = match &a.manager {
                Some(m) => {
                    let top = f.find_user(m).ok_or_else(|| {
                        ToolError::arg("manager", format!("no user matches '{m}'"))
                    })?;
                    f.subtree(&top.user_id).map_err(broken)?
                }
                None => {
                    let mut seen = std::collections::HashSet::new();
                    f.results
                        .users
                        .iter()
                        .filter(|u| seen.insert(u.user_id.as_str()))
                        .collect()
                }
            };
            let offset = cursor(a.cursor.as_deref(), users.len())?;
            let (shown, next) = page(&users, offset, limit);
            Ok(UsersData {
                users: shown
                    .into_iter()
                    .map(|u| {
                        let manager = f.manager_of(u);
                        UserRow {
                            user_id: u.user_id.clone(),
                            name: u.name.clone(),
                            email: u.email.clone(),
                            role: u.hierarchy_name.clone(),
                            manager: manager.and_then(|m| m.name.clone()),
                            manager_user_id: manager.map(|m| m.user_id.clone()),
                            direct_reports: f.direct_reports(&u.user_id).len(),
                            crm_id: u.crm_id.clone(),
                            scope_id: u.scope_id.clone(),
                        }
                    })
                    .collect(),
                total: users.len(),
                next_cursor: next,
            })
        })
    }
}

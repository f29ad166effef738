//! Views a host can show beside three tools' answers: the MCP Apps extension
//! (`io.modelcontextprotocol/ui`, specification 2026-01-26).
//!
//! Each view is one self-contained HTML document (inline style and script, no network) served as
//! a `ui://` resource of type `text/html;profile=mcp-app`, and linked from its tool's
//! `_meta.ui.resourceUri`. The host renders it in a sandboxed frame and hands it the tool's
//! result over `postMessage`; the tool's text and structured answers stay complete for hosts
//! without apps.

use std::sync::LazyLock;

use rmcp::model::{MetaObject, Resource, ResourceContents};
use serde_json::{Value, json};

use crate::scope::{Scope, ScopeSet};

/// The MIME type of an app view (MCP Apps, "UI Resource Format").
pub const MIME: &str = "text/html;profile=mcp-app";

pub struct View {
    pub uri: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The tool whose answers it shows.
    pub tool: &'static str,
    pub scope: Scope,
    /// The view as written: its style, then its script, with the shared parts still to splice
    /// in (see [`View::html`]).
    source: &'static str,
}

/// The document every view is, titled with the view's name: the view's style goes in its head,
/// its script in the body it draws in.
const DOCUMENT: &str = include_str!("apps/document.html");

/// What every view shares, each under the line in a view that it takes the place of: the look
/// (theme variables, page, status box) in the style, the host bridge, drawing of each state and
/// start-up in the script.
const INCLUDES: [(&str, &str); 2] = [
    ("/* @include view.css */\n", include_str!("apps/view.css")),
    ("// @include bridge.js\n", include_str!("apps/bridge.js")),
];

/// Each view with the shared parts spliced in, once, in the order of [`VIEWS`].
static ASSEMBLED: LazyLock<Vec<String>> = LazyLock::new(|| {
    VIEWS
        .iter()
        .map(|v| {
            let script = v.source.find("<script>").expect("a view has a script");
            let (style, script) = v.source.split_at(script);
            let document = DOCUMENT
                .replacen("{name}", v.name, 1)
                .replacen("<!-- @include the view's style -->\n", style, 1)
                .replacen("<!-- @include the view's script -->\n", script, 1);
            INCLUDES.iter().fold(document, |html, (line, text)| {
                assert_eq!(html.matches(line).count(), 1, "{} {line}", v.uri);
                html.replacen(line, text, 1)
            })
        })
        .collect()
});

impl View {
    /// The whole document a host loads: one self-contained page.
    pub fn html(&self) -> &'static str {
        let i = VIEWS
            .iter()
            .position(|v| v.uri == self.uri)
            .expect("a view of VIEWS");
        &ASSEMBLED[i]
    }
}

pub static VIEWS: [View; 3] = [
    View {
        uri: "ui://clari-mcp/forecast-by-manager.html",
        name: "Forecast by manager",
        description: "Commit, Best Case and Closed Won against quota for each direct report, from get_forecast",
        tool: "get_forecast",
        scope: Scope::ForecastsRead,
        source: include_str!("apps/forecast.html"),
    },
    View {
        uri: "ui://clari-mcp/pipeline-changes.html",
        name: "Pipeline changes",
        description: "Stage, amount, close-date and owner changes per day over the window, from get_pipeline_changes",
        tool: "get_pipeline_changes",
        scope: Scope::OpportunitiesRead,
        source: include_str!("apps/pipeline.html"),
    },
    View {
        uri: "ui://clari-mcp/deal-risk.html",
        name: "Deal risk",
        description: "Deals riskiest first with Clari's score, from get_deal_risk",
        tool: "get_deal_risk",
        scope: Scope::OpportunitiesRead,
        source: include_str!("apps/risk.html"),
    },
];

/// A tool's `_meta` linking its view: `ui.resourceUri`, and the flat `ui/resourceUri` key that
/// hosts built before the extension was stable read (MCP Apps, "Tool Metadata"). Every tool
/// list carries it: this server keeps no session in which a client's `initialize` capabilities
/// could be remembered, and hosts without apps ignore `_meta`.
pub fn tool_meta(tool: &str) -> Option<MetaObject> {
    let view = VIEWS.iter().find(|v| v.tool == tool)?;
    let Value::Object(m) = json!({
        "ui": {"resourceUri": view.uri},
        "ui/resourceUri": view.uri,
    }) else {
        unreachable!("an object literal")
    };
    Some(MetaObject(m))
}

/// The view's `_meta.ui`: the strictest content security policy (no connections, no outside
/// resources, frames or base URIs: every list empty) and a border (MCP Apps, "UI Resource
/// Format", `McpUiResourceMeta`).
fn resource_meta() -> MetaObject {
    let Value::Object(m) = json!({
        "ui": {
            "csp": {
                "connectDomains": [],
                "resourceDomains": [],
                "frameDomains": [],
                "baseUriDomains": [],
            },
            "prefersBorder": true,
        }
    }) else {
        unreachable!("an object literal")
    };
    MetaObject(m)
}

/// The views a caller with these scopes may read, for `resources/list`.
pub fn list(scopes: &ScopeSet) -> Vec<Resource> {
    VIEWS
        .iter()
        .filter(|v| scopes.allows(v.scope))
        .map(|v| {
            Resource::new(v.uri, v.name)
                .with_description(v.description)
                .with_mime_type(MIME)
                .with_meta(resource_meta())
        })
        .collect()
}

/// `resources/read` of a view; `None` when `uri` is none of them. A view holds no data (it
/// shows what its host passes it), so reading it needs only its tool's scope.
pub fn read(uri: &str, scopes: &ScopeSet) -> Option<Result<ResourceContents, Scope>> {
    let v = VIEWS.iter().find(|v| v.uri == uri)?;
    if !scopes.allows(v.scope) {
        return Some(Err(v.scope));
    }
    Some(Ok(ResourceContents::text(v.html(), v.uri)
        .with_mime_type(MIME)
        .with_meta(resource_meta())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_self_contained() {
        for v in &VIEWS {
            let html = v.html();
            assert!(html.contains("function start()") && !html.contains("@include"));
            assert!(
                html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"),
                "{}",
                v.uri
            );
            for needle in [
                " src=\"http",
                " href=\"http",
                "@import",
                "fetch(",
                "XMLHttpRequest",
                "innerHTML",
            ] {
                assert!(!html.contains(needle), "{} contains {needle}", v.uri);
            }
            assert!(
                crate::mcp::tools::required_scope(v.tool) == Some(v.scope),
                "{}",
                v.tool
            );
        }
    }
}

//! The book's reference pages that come from the code: every setting, every command with its
//! options, every tool with its scope. Each page holds a generated part between markers; this
//! test regenerates it and fails when the page differs, so the book cannot drift from the code.
//! `CLARI_MCP_WRITE_DOCS=1 cargo test --test api docs::` rewrites the pages instead.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

const BEGIN: &str = "<!-- generated from the code: do not edit by hand -->";
const END: &str = "<!-- end of generated part -->";

fn page(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src/reference")
        .join(name)
}

/// Compares (or, with `CLARI_MCP_WRITE_DOCS`, rewrites) the generated part of a page.
fn check(name: &str, generated: &str) {
    let path = page(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (head, rest) = text
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{name} has no begin marker"));
    let (_, tail) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{name} has no end marker"));
    let fresh = format!("{head}{BEGIN}\n{generated}{END}{tail}");
    if std::env::var_os("CLARI_MCP_WRITE_DOCS").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    assert!(
        fresh == text,
        "docs/src/reference/{name} is out of date with the code: run `CLARI_MCP_WRITE_DOCS=1 cargo test --test api docs::` and commit it"
    );
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[test]
fn the_settings_page_lists_every_setting_the_server_reads() {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for s in clari_mcp::config::SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            s.variable(),
            cell(s.default),
            cell(s.meaning)
        ));
    }
    check("settings.md", &out);
}

#[test]
fn the_command_line_page_shows_every_command_as_its_help_does() {
    let mut out = String::new();
    let mut cli = clari_mcp::cli::Cli::command();
    cli.build();
    fn walk(cmd: &clap::Command, path: &str, out: &mut String) {
        if cmd.is_hide_set() {
            return;
        }
        // Environment values (`[env: X=value]`) would make the page depend on the machine.
        let mut c = cmd
            .clone()
            .term_width(100)
            .mut_args(|a| a.hide_env_values(true));
        let help = c.render_long_help().to_string();
        out.push_str(&format!(
            "## `{path}`\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    walk(&cli, "clari-mcp", &mut out);
    check("cli.md", &out);
}

#[test]
fn the_tools_page_lists_every_tool_with_its_scope() {
    let mut out = String::from("| tool | scope | what it answers |\n|---|---|---|\n");
    let mut tools = clari_mcp::mcp::tools::all_tools();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &tools {
        let scope = clari_mcp::mcp::tools::required_scope(&t.name).expect("a scope");
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            t.name,
            scope.as_str(),
            cell(t.description.as_deref().unwrap_or_default())
        ));
    }
    out.push('\n');
    for t in &tools {
        let args = t
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| {
                p.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "- `{}`{}: {}\n",
            t.name,
            t.title
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default(),
            if args.is_empty() {
                "no arguments".to_owned()
            } else {
                args
            }
        ));
    }
    check("tools.md", &out);
}

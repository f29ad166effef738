//! `clari-mcp stdio` as a local agent starts it: JSON-RPC lines on its standard input and output,
//! the Clari key from the environment, its state in a data directory, nothing on stdout but
//! protocol messages.

use std::process::Stdio;

use clari_mcp::clari::sandbox::{self, Knobs, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct Local {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

fn command(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clari-mcp"));
    c.args(["stdio", "--data-dir", dir.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

impl Local {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = command(dir, env).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            next_id: 0,
        }
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Sends a request and returns its answer; every line before it must be a protocol message.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = self
                .stdout
                .next_line()
                .await
                .unwrap()
                .expect("stdout ended before the answer");
            let m: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carried a line that is not JSON ({e}): {line}"));
            assert_eq!(m["jsonrpc"], "2.0", "{m}");
            if m["id"] == id {
                return m;
            }
            assert!(
                m.get("method").is_some(),
                "only notifications come between: {m}"
            );
        }
    }

    async fn initialize(&mut self) -> Value {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "stdio-test", "version": "1"}}),
            )
            .await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        r
    }

    /// Closes stdin, as a host does when it quits, and returns the exit status and stderr.
    async fn close(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin);
        // Nothing may follow on stdout either.
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            let m: Value = serde_json::from_str(&line).expect("only protocol messages");
            assert_eq!(m["jsonrpc"], "2.0");
        }
        let out = self.child.wait_with_output().await.unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test]
async fn a_local_agent_gets_every_tool_over_stdio_and_its_state_is_kept() {
    clari_mcp::init_crypto();
    let sandbox = sandbox::start(SandboxConfig {
        knobs: Knobs {
            job_latency_ms: 60,
            ..Knobs::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = sandbox.orgs()[0].api_key.clone();
    let env = [
        ("CLARI_API_KEY", key.as_str()),
        ("CLARI_MCP_CLARI_BASE_URL", sandbox.base_url.as_str()),
        ("CLARI_MCP_EXPORT_POLL_MS", "40"),
    ];
    let data = &sandbox.dataset().orgs[0];

    let mut local = Local::start(dir.path(), &env);
    let init = local.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "clari-mcp", "{init}");
    let tools = local.request("tools/list", json!({})).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 14);
    let f = local
        .request(
            "tools/call",
            json!({"name": "get_forecast", "arguments": {"wait_seconds": 30}}),
        )
        .await;
    let s = &f["result"]["structuredContent"];
    assert_eq!(s["status"], "ready", "{f}");
    let cur = data.periods.len() - 1;
    let week = data.periods[cur].weeks_elapsed - 1;
    let top = data.users.iter().position(|u| u.parent.is_none()).unwrap();
    assert_eq!(
        s["total"]["commit"],
        data.forecasts[0].grids[cur].values[top][0][week]
    );
    let views = local.request("resources/list", json!({})).await;
    assert!(
        views["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"] == "ui://clari-mcp/deal-risk.html"),
        "{views}"
    );
    let bad = local
        .request(
            "tools/call",
            json!({"name": "get_forecast", "arguments": {"time_period": "Q5"}}),
        )
        .await;
    assert_eq!(bad["result"]["isError"], true);
    let (status, stderr) = local.close().await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("serving MCP over stdio"),
        "logs go to stderr: {stderr}"
    );
    assert!(!stderr.contains(&key), "the Clari key is never logged");

    // The second run reuses the database, the vault key and its API key; the export cache
    // answers without a new export.
    let key_file = dir.path().join("stdio-api-key");
    let first_key = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let jobs = sandbox.jobs_created();
    let mut again = Local::start(dir.path(), &env);
    again.initialize().await;
    let f = again
        .request(
            "tools/call",
            json!({"name": "get_forecast", "arguments": {"wait_seconds": 30}}),
        )
        .await;
    assert_eq!(f["result"]["structuredContent"]["status"], "ready");
    assert_eq!(
        sandbox.jobs_created(),
        jobs,
        "served from the stored export"
    );
    let (status, _) = again.close().await;
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), first_key);

    // The kill switch reaches a local server too: once its organisation is disabled, it will
    // not start, and says how to serve again.
    let db = format!("sqlite://{}/local.db", dir.path().display());
    let disable = std::process::Command::new(env!("CARGO_BIN_EXE_clari-mcp"))
        .args(["org", "disable", "--org", "Local"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLARI_MCP_DATABASE_URL", &db)
        .env("CLARI_MCP_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(disable.status.success(), "{disable:?}");
    let out = command(dir.path(), &env).output().await.unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is disabled (the kill switch)"), "{err}");
}

#[tokio::test]
async fn without_a_clari_key_stdio_says_so_on_stderr_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &[]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Clari API key: set CLARI_API_KEY"), "{err}");
    let empty = dir.path().join("empty-key");
    std::fs::write(&empty, "  \n").unwrap();
    let out = command(dir.path(), &[])
        .args(["--clari-key-file", empty.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the Clari API key is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

use crate::helpers::{Backend, TestDb, spawn_app};

#[tokio::test]
async fn health_and_readiness_answer_over_http() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db).await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// The paths the server routes, read from the source (`.route("…"` and `.nest_service("…"`),
/// leaving out the Clari sandbox, which is a separate server.
fn routed_paths() -> std::collections::BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("sandbox") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut paths = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for marker in [".route(", ".route_service(", ".nest_service("] {
            for (i, _) in text.match_indices(marker) {
                let rest = text[i + marker.len()..].trim_start();
                if let Some(lit) = rest.strip_prefix('"') {
                    paths.insert(lit.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    paths
}

/// The paths openapi.yaml documents (the keys under `paths:`).
fn documented_paths() -> std::collections::BTreeSet<String> {
    let spec = include_str!("../../openapi.yaml");
    let paths = spec.split("\npaths:\n").nth(1).expect("a paths section");
    paths
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .map(|l| l.trim_end_matches(':').trim_matches('\'').to_owned())
        .collect()
}

#[test]
fn openapi_documents_exactly_the_routes_the_server_serves() {
    let routed = routed_paths();
    assert!(routed.len() >= 19, "routes found in the source: {routed:?}");
    let documented = documented_paths();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "openapi.yaml does not document {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "openapi.yaml documents paths nothing serves: {unrouted:?}"
    );
}

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

#[test]
fn openapi_documents_every_route() {
    let spec = include_str!("../../openapi.yaml");
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/jwks.json",
        "/register",
        "/register/{client_id}",
        "/authorize",
        "/authorize/consent",
        "/login",
        "/logout",
        "/account",
        "/account/grants/{id}/revoke",
        "/token",
        "/revoke",
        "/introspect",
        "/healthz",
        "/readyz",
        "/mcp",
    ] {
        assert!(
            spec.contains(&format!("\n  {path}:\n")),
            "openapi.yaml does not document {path}"
        );
    }
}

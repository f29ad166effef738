//! tower-sessions over our database: session ids are stored only as SHA-256 digests, records as JSON.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::crypto::sha256_hex;
use crate::state::AppState;
use crate::store::SessionRow;

/// Sessions nobody has signed in to that one address may hold; making one more forgets the
/// least recently used. Anyone can make us create them, so their number is bounded.
pub const ANONYMOUS_SESSIONS_PER_ADDRESS: i64 = 100;
/// The largest session record stored (the backstop under the per-field bounds).
pub const MAX_SESSION_BYTES: usize = 64 * 1024;

tokio::task_local! {
    /// The address bucket of the request being served, for the sessions it creates.
    static SESSION_OWNER: String;
}

/// Middleware outside the session layer: the request's client address (behind trusted proxies,
/// the one they name) becomes the owner of any session it creates.
pub async fn owned_by_client(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(axum::extract::ConnectInfo(peer)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .copied()
    else {
        return next.run(req).await;
    };
    let ip = crate::http::client_ip(state.config.trusted_proxies, req.headers(), peer);
    SESSION_OWNER
        .scope(crate::net::address_bucket(ip), next.run(req))
        .await
}

fn owner() -> Option<String> {
    SESSION_OWNER.try_with(Clone::clone).ok()
}

/// The record as stored, refused when larger than [`MAX_SESSION_BYTES`].
fn encode(record: &Record) -> session_store::Result<(String, bool)> {
    let data =
        serde_json::to_string(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    if data.len() > MAX_SESSION_BYTES {
        return Err(session_store::Error::Encode(format!(
            "a session record of {} bytes is over the {MAX_SESSION_BYTES}-byte bound",
            data.len()
        )));
    }
    Ok((data, !record.data.contains_key(super::USER_KEY)))
}

#[derive(Clone)]
pub struct DbSessionStore {
    state: AppState,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessionStore")
    }
}

fn key(id: &Id) -> String {
    sha256_hex(&id.to_string())
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    /// A new session: a fresh id until one is free, so two sessions never share an id.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let owner = owner();
        loop {
            let (data, anonymous) = encode(record)?;
            let row = SessionRow {
                id: &key(&record.id),
                data: &data,
                expires_at: record.expiry_date.unix_timestamp(),
                owner: owner.as_deref(),
                anonymous,
            };
            let created = self
                .state
                .store
                .create_session(row, ANONYMOUS_SESSIONS_PER_ADDRESS)
                .await
                .map_err(backend)?;
            if created {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (data, anonymous) = encode(record)?;
        let owner = owner();
        self.state
            .store
            .save_session(SessionRow {
                id: &key(&record.id),
                data: &data,
                expires_at: record.expiry_date.unix_timestamp(),
                owner: owner.as_deref(),
                anonymous,
            })
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(data) = self
            .state
            .store
            .load_session(&key(id), self.state.now())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        serde_json::from_str(&data)
            .map(Some)
            .map_err(|e| session_store::Error::Decode(e.to_string()))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.state
            .store
            .delete_session(&key(id))
            .await
            .map_err(backend)
    }
}

/// The session layer: `__Host-` prefix and `Secure` on https; HttpOnly; SameSite=Lax; 12 h idle.
pub fn layer(state: &AppState) -> SessionManagerLayer<DbSessionStore> {
    let https = state.config.is_https();
    let name = if https {
        "__Host-clari_mcp_session"
    } else {
        "clari_mcp_session"
    };
    SessionManagerLayer::new(DbSessionStore {
        state: state.clone(),
    })
    .with_name(name)
    .with_secure(https)
    .with_http_only(true)
    .with_same_site(SameSite::Lax)
    .with_path("/")
    .with_expiry(Expiry::OnInactivity(super::SIGNED_IN_SESSION_IDLE))
}

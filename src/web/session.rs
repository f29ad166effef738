//! tower-sessions over our database: session ids are stored only as SHA-256 digests, records as JSON.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::crypto::sha256_hex;
use crate::state::AppState;

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
        loop {
            let data = serde_json::to_string(record)
                .map_err(|e| session_store::Error::Encode(e.to_string()))?;
            let created = self
                .state
                .store
                .create_session(&key(&record.id), &data, record.expiry_date.unix_timestamp())
                .await
                .map_err(backend)?;
            if created {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(record)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        self.state
            .store
            .save_session(&key(&record.id), &data, record.expiry_date.unix_timestamp())
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

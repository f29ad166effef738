use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::changes::Changes;

/// The embedded default: one SQLite file in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// Marks and notices changes of what is cached (the file beside the database).
    pub(super) changes: Arc<Changes>,
}

impl SqliteStore {
    /// `db.system.name` of its spans (OpenTelemetry database conventions).
    pub const DB_SYSTEM: &'static str = "sqlite";

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let file = opts.get_filename();
        let changes = if file.as_os_str() == ":memory:" {
            Changes::alone()
        } else {
            let io = |e| StoreError::Database(sqlx::Error::Io(e));
            private_files(file).map_err(io)?;
            Changes::beside(file).map_err(io)?
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        Ok(Self {
            pool,
            changes: Arc::new(changes),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("migrations/sqlite")
    }
}

/// The database holds password hashes, e-mail addresses and the audit trail: its directory is
/// created 0700 and the file 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the database file's mode); files left looser by an older version are tightened.
fn private_files(file: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::create_private_dir(dir)?;
    }
    if !file.exists() {
        crate::files::write_private_file(file, b"")?;
    }
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

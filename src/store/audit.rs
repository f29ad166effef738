//! The audit trail's storage: hash-chained events per organisation, the chain heads, signed
//! checkpoints and the audit keys. What a hash is, and what a signature covers, is the `audit`
//! service's business: the store appends under the head's row lock and hands it the previous hash.

use std::fmt::Write as _;

use async_trait::async_trait;

use super::{PgStore, Resealer, SqliteStore, StoreError, reseal_all};
use crate::clock::UnixTime;

/// An event before it has a place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// The chain: an organisation id, or `-` for the instance's own events.
    pub chain: String,
    pub at: UnixTime,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    /// Canonical JSON (an object with sorted keys).
    pub details: String,
}

/// A stored event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    #[sqlx(rename = "organization_id")]
    pub chain: String,
    pub seq: i64,
    pub at: UnixTime,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AuditCheckpoint {
    #[sqlx(rename = "organization_id")]
    pub chain: String,
    pub seq: i64,
    pub head_hash: String,
    pub at: UnixTime,
    pub key_id: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditKeyRecord {
    pub kid: String,
    /// `ed25519` (checkpoint signatures) or `hmac` (argument digests).
    pub kind: String,
    pub public_key: Option<String>,
    pub private_ciphertext: String,
    pub private_key_id: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

/// Computes an event's hash from the previous hash, its sequence number and the event.
pub type Chainer<'a> = &'a (dyn Fn(&str, i64, &NewAuditEvent) -> String + Send + Sync);

/// Filters of an audit listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<UnixTime>,
    pub until: Option<UnixTime>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events to their chains in one transaction, chains in a fixed order (so writers on
    /// several replicas never deadlock), each chain under its head's row lock. Returns each
    /// touched chain with its new head `(chain, seq, hash)`.
    async fn append_audit(
        &self,
        events: &[NewAuditEvent],
        chain: Chainer<'_>,
        now: UnixTime,
    ) -> Result<Vec<(String, i64, String)>, StoreError>;
    /// Events of one chain with `seq > after`, oldest first, at most `limit`.
    async fn audit_events(
        &self,
        chain: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Events of one chain, newest first, filtered; `before_seq` pages backwards.
    async fn find_audit_events(
        &self,
        chain: &str,
        filter: &AuditFilter,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Every chain that has a head.
    async fn audit_chains(&self) -> Result<Vec<String>, StoreError>;
    async fn audit_head(&self, chain: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// The event of `chain` at `seq`.
    async fn audit_event(&self, chain: &str, seq: i64) -> Result<Option<AuditRecord>, StoreError>;
    /// The newest event at or before `at` (where a retention cut falls).
    async fn audit_last_before(
        &self,
        chain: &str,
        at: UnixTime,
    ) -> Result<Option<AuditRecord>, StoreError>;
    /// Deletes the events of `chain` with `seq <= through`.
    async fn delete_audit_through(&self, chain: &str, through: i64) -> Result<u64, StoreError>;

    async fn insert_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<(), StoreError>;
    async fn audit_checkpoints(&self, chain: &str) -> Result<Vec<AuditCheckpoint>, StoreError>;
    async fn last_audit_checkpoint(
        &self,
        chain: &str,
    ) -> Result<Option<AuditCheckpoint>, StoreError>;

    async fn insert_audit_key(&self, key: &AuditKeyRecord) -> Result<(), StoreError>;
    async fn audit_keys(&self) -> Result<Vec<AuditKeyRecord>, StoreError>;
    /// Re-encrypts the private halves that `reseal` rewrites, in one transaction.
    async fn reseal_audit_keys(&self, reseal: Resealer<'_>) -> Result<usize, StoreError>;
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Creates the heads of chains that have none yet (`VALUES` rows of `(chain, GENESIS, now)`).
const ENSURE_HEADS: &str =
    "INSERT INTO audit_heads (organization_id, seq, hash, updated_at) VALUES ";
const ENSURE_HEADS_END: &str = " ON CONFLICT (organization_id) DO NOTHING";

/// Reads the heads of a batch's chains; on PostgreSQL it also takes their row locks (held until
/// commit), in the byte order of the chains' names, so writers on several replicas extend each chain
/// one after another and never deadlock. SQLite has one writer at a time: the batch's first
/// statement took the database's write lock.
const READ_HEADS: &str =
    "SELECT organization_id, seq, hash FROM audit_heads WHERE organization_id IN (";
const READ_HEADS_END_PG: &str = ") ORDER BY organization_id COLLATE \"C\" FOR UPDATE";
const READ_HEADS_END_SQLITE: &str = ") ORDER BY organization_id";

/// Moves the heads of a batch's chains (`VALUES` rows of `(chain, seq, hash)`, after `now`).
const MOVE_HEADS: &str = "UPDATE audit_heads SET seq = v.column2, hash = v.column3, updated_at = ";
const MOVE_HEADS_END: &str = ") AS v WHERE audit_heads.organization_id = v.column1";

/// `n` rows of `columns` placeholders each, numbered from `*next` on PostgreSQL (anonymous on
/// SQLite, see [`insert_sql`]): `($3, $4), ($5, $6)`.
fn rows_sql(n: usize, columns: usize, numbered: bool, next: &mut usize) -> String {
    let mut sql = String::new();
    for r in 0..n {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            if numbered {
                // Written in place: a batch's statements hold thousands of placeholders.
                let _ = write!(sql, "${next}");
                *next += 1;
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

const INSERT: &str = "\
INSERT INTO audit_events (organization_id, seq, at, actor_kind, actor_id, actor_name, action,
    target, outcome, request_id, client_ip, details, prev_hash, hash)
VALUES ";

/// Columns per event row, and the most rows one INSERT carries.
const INSERT_COLUMNS: usize = 14;
const INSERT_CHUNK: usize = 64;

/// The INSERT for `rows` events: `($1, …, $14), ($15, …, $28), …`, or with anonymous `?`
/// parameters (bound in the same order) when `numbered` is false. SQLite wants those: its
/// driver asks the name of every parameter, and finding a numbered one's name is a scan of all
/// of them, which made a batch's insert quadratic in its size (a tenth of a warm call's CPU).
fn insert_sql(rows: usize, numbered: bool) -> String {
    format!(
        "{INSERT}{}",
        rows_sql(rows, INSERT_COLUMNS, numbered, &mut 1)
    )
}

const AFTER: &str = "\
SELECT organization_id, seq, at, actor_kind, actor_id, actor_name, action, target, outcome,
    request_id, client_ip, details, prev_hash, hash
FROM audit_events WHERE organization_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// Optional filters are written `($n IS NULL OR column = $n)`, so one statement serves them all.
const FIND: &str = "\
SELECT organization_id, seq, at, actor_kind, actor_id, actor_name, action, target, outcome,
    request_id, client_ip, details, prev_hash, hash
FROM audit_events
WHERE organization_id = $1
  AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at <= $3)
  AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR actor_id = $5)
  AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR seq < $7)
ORDER BY seq DESC LIMIT $8";

const ONE: &str = "\
SELECT organization_id, seq, at, actor_kind, actor_id, actor_name, action, target, outcome,
    request_id, client_ip, details, prev_hash, hash
FROM audit_events WHERE organization_id = $1 AND seq = $2";

const LAST_BEFORE: &str = "\
SELECT organization_id, seq, at, actor_kind, actor_id, actor_name, action, target, outcome,
    request_id, client_ip, details, prev_hash, hash
FROM audit_events WHERE organization_id = $1 AND at <= $2 ORDER BY seq DESC LIMIT 1";

const CHAINS: &str = "SELECT organization_id FROM audit_heads ORDER BY organization_id";

const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE organization_id = $1";

const DELETE_THROUGH: &str = "DELETE FROM audit_events WHERE organization_id = $1 AND seq <= $2";

const INSERT_CHECKPOINT: &str = "\
INSERT INTO audit_checkpoints (organization_id, seq, head_hash, at, key_id, signature)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (organization_id, seq) DO NOTHING";

const CHECKPOINTS: &str = "\
SELECT organization_id, seq, head_hash, at, key_id, signature
FROM audit_checkpoints WHERE organization_id = $1 ORDER BY seq";

const LAST_CHECKPOINT: &str = "\
SELECT organization_id, seq, head_hash, at, key_id, signature
FROM audit_checkpoints WHERE organization_id = $1 ORDER BY seq DESC LIMIT 1";

const INSERT_KEY: &str = "\
INSERT INTO audit_keys
    (kid, kind, public_key, private_ciphertext, private_key_id, created_at, retired_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)";

const RESEAL_KEY: &str = "\
UPDATE audit_keys SET private_ciphertext = $1, private_key_id = $2 WHERE kid = $3";

const KEYS: &str = "\
SELECT kid, kind, public_key, private_ciphertext, private_key_id, created_at, retired_at
FROM audit_keys ORDER BY created_at DESC, kid";

macro_rules! audit_store {
    ($store:ty) => {
        #[async_trait]
        impl AuditStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.append_audit", otel.kind = "client", db.operation.name = "append_audit", db.system.name = Self::DB_SYSTEM))]
            async fn append_audit(
                &self,
                events: &[NewAuditEvent],
                chain: Chainer<'_>,
                now: UnixTime,
            ) -> Result<Vec<(String, i64, String)>, StoreError> {
                let numbered = Self::DB_SYSTEM != SqliteStore::DB_SYSTEM;
                let mut chains: Vec<&str> = events.iter().map(|e| e.chain.as_str()).collect();
                chains.sort_unstable();
                chains.dedup();
                let mut tx = self.pool.begin().await?;
                // The heads' bookkeeping is one statement per kind for the whole batch, not three
                // per chain: with many organisations a batch holds events of many chains, and
                // each statement is a round trip. All missing heads are created before any is
                // locked, and the locks are taken in the chains' byte order (`COLLATE "C"`),
                // so two replicas' batches never wait on each other in a circle. The writer's
                // batches (at most 1,024 events) keep the parameters far below both backends'
                // limits.
                let sql = format!(
                    "{ENSURE_HEADS}{}{ENSURE_HEADS_END}",
                    rows_sql(chains.len(), 4, numbered, &mut 1)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for name in &chains {
                    q = q.bind(*name).bind(0_i64).bind(GENESIS).bind(now);
                }
                q.execute(&mut *tx).await?;
                // `rows_sql` puts each placeholder in parentheses: `($1), ($2)` is a valid IN
                // list on both backends.
                let list = rows_sql(chains.len(), 1, numbered, &mut 1);
                let end = if numbered { READ_HEADS_END_PG } else { READ_HEADS_END_SQLITE };
                let sql = format!("{READ_HEADS}{list}{end}");
                let mut q = sqlx::query_as::<_, (String, i64, String)>(sqlx::AssertSqlSafe(sql));
                for name in &chains {
                    q = q.bind(*name);
                }
                let mut heads: Vec<(String, i64, String)> = q.fetch_all(&mut *tx).await?;
                if heads.len() != chains.len() {
                    return Err(StoreError::Database(sqlx::Error::RowNotFound));
                }
                // One multi-row insert per chunk (one round trip for many events), each chunk's
                // hashes (each links to the one before) computed just before it is sent: the
                // hashing of a full batch is then spread between the inserts' waits instead of
                // holding the server's thread for all of it at once.
                let at: std::collections::HashMap<String, usize> = heads
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _, _))| (name.clone(), i))
                    .collect();
                let mut rows = Vec::with_capacity(INSERT_CHUNK);
                for chunk in events.chunks(INSERT_CHUNK) {
                    rows.clear();
                    for e in chunk {
                        let (_, seq, prev) = &mut heads[at[&e.chain]];
                        *seq += 1;
                        let hash = chain(prev, *seq, e);
                        rows.push((e.chain.as_str(), *seq, e, std::mem::replace(prev, hash.clone()), hash));
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(rows.len(), numbered)));
                    for (name, seq, e, prev_hash, hash) in &rows {
                        q = q
                            .bind(*name)
                            .bind(*seq)
                            .bind(e.at)
                            .bind(&e.actor_kind)
                            .bind(&e.actor_id)
                            .bind(&e.actor_name)
                            .bind(&e.action)
                            .bind(&e.target)
                            .bind(&e.outcome)
                            .bind(&e.request_id)
                            .bind(&e.client_ip)
                            .bind(&e.details)
                            .bind(prev_hash)
                            .bind(hash);
                    }
                    q.execute(&mut *tx).await?;
                }
                let (now_at, mut next) = if numbered { ("$1", 2) } else { ("?", 1) };
                let sql = format!(
                    "{MOVE_HEADS}{now_at} FROM (VALUES {}{MOVE_HEADS_END}",
                    rows_sql(heads.len(), 3, numbered, &mut next)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for (name, seq, hash) in &heads {
                    q = q.bind(name.as_str()).bind(*seq).bind(hash.as_str());
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(heads)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_events", otel.kind = "client", db.operation.name = "audit_events", db.system.name = Self::DB_SYSTEM))]
            async fn audit_events(
                &self,
                chain: &str,
                after: i64,
                limit: i64,
            ) -> Result<Vec<AuditRecord>, StoreError> {
                Ok(sqlx::query_as(AFTER)
                    .bind(chain)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_audit_events", otel.kind = "client", db.operation.name = "find_audit_events", db.system.name = Self::DB_SYSTEM))]
            async fn find_audit_events(
                &self,
                chain: &str,
                filter: &AuditFilter,
                before_seq: Option<i64>,
                limit: i64,
            ) -> Result<Vec<AuditRecord>, StoreError> {
                Ok(sqlx::query_as(FIND)
                    .bind(chain)
                    .bind(filter.since)
                    .bind(filter.until)
                    .bind(&filter.action)
                    .bind(&filter.actor_id)
                    .bind(&filter.outcome)
                    .bind(before_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_chains", otel.kind = "client", db.operation.name = "audit_chains", db.system.name = Self::DB_SYSTEM))]
            async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(CHAINS).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(c,)| c).collect())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_head", otel.kind = "client", db.operation.name = "audit_head", db.system.name = Self::DB_SYSTEM))]
            async fn audit_head(&self, chain: &str) -> Result<Option<(i64, String)>, StoreError> {
                Ok(sqlx::query_as(HEAD)
                    .bind(chain)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_event", otel.kind = "client", db.operation.name = "audit_event", db.system.name = Self::DB_SYSTEM))]
            async fn audit_event(
                &self,
                chain: &str,
                seq: i64,
            ) -> Result<Option<AuditRecord>, StoreError> {
                Ok(sqlx::query_as(ONE)
                    .bind(chain)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_last_before", otel.kind = "client", db.operation.name = "audit_last_before", db.system.name = Self::DB_SYSTEM))]
            async fn audit_last_before(
                &self,
                chain: &str,
                at: UnixTime,
            ) -> Result<Option<AuditRecord>, StoreError> {
                Ok(sqlx::query_as(LAST_BEFORE)
                    .bind(chain)
                    .bind(at)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_audit_through", otel.kind = "client", db.operation.name = "delete_audit_through", db.system.name = Self::DB_SYSTEM))]
            async fn delete_audit_through(
                &self,
                chain: &str,
                through: i64,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(DELETE_THROUGH)
                    .bind(chain)
                    .bind(through)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_audit_checkpoint", otel.kind = "client", db.operation.name = "insert_audit_checkpoint", db.system.name = Self::DB_SYSTEM))]
            async fn insert_audit_checkpoint(
                &self,
                cp: &AuditCheckpoint,
            ) -> Result<(), StoreError> {
                sqlx::query(INSERT_CHECKPOINT)
                    .bind(&cp.chain)
                    .bind(cp.seq)
                    .bind(&cp.head_hash)
                    .bind(cp.at)
                    .bind(&cp.key_id)
                    .bind(&cp.signature)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_checkpoints", otel.kind = "client", db.operation.name = "audit_checkpoints", db.system.name = Self::DB_SYSTEM))]
            async fn audit_checkpoints(
                &self,
                chain: &str,
            ) -> Result<Vec<AuditCheckpoint>, StoreError> {
                Ok(sqlx::query_as(CHECKPOINTS)
                    .bind(chain)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.last_audit_checkpoint", otel.kind = "client", db.operation.name = "last_audit_checkpoint", db.system.name = Self::DB_SYSTEM))]
            async fn last_audit_checkpoint(
                &self,
                chain: &str,
            ) -> Result<Option<AuditCheckpoint>, StoreError> {
                Ok(sqlx::query_as(LAST_CHECKPOINT)
                    .bind(chain)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_audit_key", otel.kind = "client", db.operation.name = "insert_audit_key", db.system.name = Self::DB_SYSTEM))]
            async fn insert_audit_key(&self, k: &AuditKeyRecord) -> Result<(), StoreError> {
                sqlx::query(INSERT_KEY)
                    .bind(&k.kid)
                    .bind(&k.kind)
                    .bind(&k.public_key)
                    .bind(&k.private_ciphertext)
                    .bind(&k.private_key_id)
                    .bind(k.created_at)
                    .bind(k.retired_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.audit_keys", otel.kind = "client", db.operation.name = "audit_keys", db.system.name = Self::DB_SYSTEM))]
            async fn audit_keys(&self) -> Result<Vec<AuditKeyRecord>, StoreError> {
                Ok(sqlx::query_as(KEYS).fetch_all(&self.pool).await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.reseal_audit_keys", otel.kind = "client", db.operation.name = "reseal_audit_keys", db.system.name = Self::DB_SYSTEM))]
            async fn reseal_audit_keys(&self, reseal: Resealer<'_>) -> Result<usize, StoreError> {
                Ok(reseal_all!(
                    self.pool, reseal,
                    KEYS => AuditKeyRecord,
                    |k| (&k.private_ciphertext, &k.private_key_id),
                    RESEAL_KEY, [&k.kid],
                ))
            }
        }
    };
}

audit_store!(SqliteStore);
audit_store!(PgStore);

//! MCP tasks: a tool call answered with a task handle, its arguments, where it stands and, once
//! finished, its result. Kept in the database so any replica can report on a task or cancel it.

use async_trait::async_trait;

use super::{OrgId, PgStore, SqliteStore, StoreError, TaskId};
use crate::clock::UnixTime;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Working,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Statuses as stored: the column's CHECK constraint admits only these four.
impl TryFrom<String> for TaskStatus {
    type Error = StoreError;

    fn try_from(text: String) -> Result<Self, StoreError> {
        match text.as_str() {
            "working" => Ok(Self::Working),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(StoreError::NotFound("task status")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: TaskId,
    pub organization_id: OrgId,
    /// Who may see the task: the person and the client or API key they called through.
    pub owner: String,
    pub tool: String,
    /// The call's arguments (JSON object).
    pub arguments: String,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    /// The Clari export job the task waits for, when known.
    pub job_id: Option<String>,
    /// The `CallToolResult` (JSON) once completed.
    pub result: Option<String>,
    /// The JSON-RPC error (JSON) once failed.
    pub error: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores a new task unless its owner already has `max_working` working ones; `false` then.
    async fn create_task(&self, task: &TaskRecord, max_working: i64) -> Result<bool, StoreError>;
    /// The owner's task, unless it expired.
    async fn task(
        &self,
        org: &OrgId,
        owner: &str,
        id: &TaskId,
        now: UnixTime,
    ) -> Result<Option<TaskRecord>, StoreError>;
    /// Ends a working task; `false` when it had already ended (another replica was first).
    async fn finish_task(
        &self,
        org: &OrgId,
        id: &TaskId,
        status: TaskStatus,
        result: Option<&str>,
        error: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Records the export job a working task waits for.
    async fn note_task_job(
        &self,
        org: &OrgId,
        id: &TaskId,
        job_id: &str,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// How many other working tasks of the organisation wait for this export job.
    async fn tasks_sharing_job(
        &self,
        org: &OrgId,
        job_id: &str,
        except: &TaskId,
    ) -> Result<i64, StoreError>;
    /// Deletes tasks whose time to live has passed.
    async fn purge_tasks(&self, now: UnixTime) -> Result<u64, StoreError>;
}

/// Inserted only while the owner is under its limit of working tasks.
const INSERT: &str = "\
INSERT INTO mcp_tasks (id, organization_id, owner, tool, arguments, status, job_id, result,
    error, created_at, updated_at, expires_at)
SELECT $1, $2, $3, $4, $5, 'working', $6, NULL, NULL, $7, $7, $8
WHERE (SELECT COUNT(*) FROM mcp_tasks
       WHERE owner = $3 AND status = 'working' AND expires_at > $7) < $9";

const ONE: &str = "\
SELECT id, organization_id, owner, tool, arguments, status, job_id, result, error,
    created_at, updated_at, expires_at
FROM mcp_tasks WHERE id = $1 AND organization_id = $2 AND owner = $3 AND expires_at > $4";

const FINISH: &str = "\
UPDATE mcp_tasks SET status = $1, result = $2, error = $3, updated_at = $4
WHERE id = $5 AND organization_id = $6 AND status = 'working'";

const NOTE_JOB: &str = "\
UPDATE mcp_tasks SET job_id = $1, updated_at = $2
WHERE id = $3 AND organization_id = $4 AND status = 'working'";

const SHARING: &str = "\
SELECT COUNT(*) FROM mcp_tasks
WHERE organization_id = $1 AND job_id = $2 AND id <> $3 AND status = 'working'";

const PURGE: &str = "DELETE FROM mcp_tasks WHERE expires_at <= $1";

macro_rules! task_store {
    ($store:ty) => {
        #[async_trait]
        impl TaskStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_task", otel.kind = "client", db.operation.name = "create_task", db.system.name = Self::DB_SYSTEM))]
            async fn create_task(
                &self,
                t: &TaskRecord,
                max_working: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(INSERT)
                    .bind(t.id.as_str())
                    .bind(t.organization_id.as_str())
                    .bind(&t.owner)
                    .bind(&t.tool)
                    .bind(&t.arguments)
                    .bind(&t.job_id)
                    .bind(t.created_at)
                    .bind(t.expires_at)
                    .bind(max_working)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.task", otel.kind = "client", db.operation.name = "task", db.system.name = Self::DB_SYSTEM))]
            async fn task(
                &self,
                org: &OrgId,
                owner: &str,
                id: &TaskId,
                now: UnixTime,
            ) -> Result<Option<TaskRecord>, StoreError> {
                Ok(sqlx::query_as(ONE)
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .bind(owner)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.finish_task", otel.kind = "client", db.operation.name = "finish_task", db.system.name = Self::DB_SYSTEM))]
            async fn finish_task(
                &self,
                org: &OrgId,
                id: &TaskId,
                status: TaskStatus,
                result: Option<&str>,
                error: Option<&str>,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(FINISH)
                    .bind(status.as_str())
                    .bind(result)
                    .bind(error)
                    .bind(now)
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.note_task_job", otel.kind = "client", db.operation.name = "note_task_job", db.system.name = Self::DB_SYSTEM))]
            async fn note_task_job(
                &self,
                org: &OrgId,
                id: &TaskId,
                job_id: &str,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(NOTE_JOB)
                    .bind(job_id)
                    .bind(now)
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.tasks_sharing_job", otel.kind = "client", db.operation.name = "tasks_sharing_job", db.system.name = Self::DB_SYSTEM))]
            async fn tasks_sharing_job(
                &self,
                org: &OrgId,
                job_id: &str,
                except: &TaskId,
            ) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as(SHARING)
                    .bind(org.as_str())
                    .bind(job_id)
                    .bind(except.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_tasks", otel.kind = "client", db.operation.name = "purge_tasks", db.system.name = Self::DB_SYSTEM))]
            async fn purge_tasks(&self, now: UnixTime) -> Result<u64, StoreError> {
                let done = sqlx::query(PURGE).bind(now).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }
        }
    };
}

task_store!(SqliteStore);
task_store!(PgStore);

//! [`SqliteStore`]: opening, closing, and the [`Store`] implementation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::ConnectOptions;
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, BulkSync, Claim, ClaimedExecution, CompletedExecution,
    DeclareSync, Execution, GeneratorDue, Job, JobId, MaterializeGenerator, NewApiKey, NewProject,
    Project, ProjectId, Refusal, StaleScope, Store, StoreResult, SyncOutcome, Timestamp,
    TriggerRef, UpsertTrigger, Upserted,
};

use timetriggers_core::{
    ExecutionPage, ExecutionQuery, JobPage, JobQuery, NewSession, NewUser, ReplayJob,
    ReplayRefusal, Replayed, SessionUser, User, UserCredentials, UserId,
};

use crate::error::{closed, from_migrate, from_sqlx};
use crate::writer::Writer;
use crate::{accounts, dashboard, rate_limits};
use crate::{engine, generators, lock, options, projects, sync, triggers};
use timetriggers_core::{NewRateLimit, RateLimit, RateLimitId, UpdateRateLimit};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A [`Store`] on one SQLite file. Cheap to clone: clones share the writer and the readers.
///
/// Every write goes through one connection owned by a writer task, which commits whatever
/// calls are queued together in one transaction (each in its own savepoint); reads use a small
/// pool of read-only WAL connections. See the crate docs.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: SqlitePool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("writer", &self.inner.writer)
            .field("readers", &self.inner.readers.size())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`, runs the migrations, takes
    /// the file's advisory lock and starts the writer. Must be called inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let lock = lock::acquire(&path).await?;

        let writer_options = options::writer(&path);
        let mut conn = writer_options.connect().await.map_err(|e| {
            crate::error::config(format!(
                "cannot open the SQLite database {}: {e}",
                path.display()
            ))
        })?;
        MIGRATOR.run(&mut conn).await.map_err(from_migrate)?;

        let readers = SqlitePoolOptions::new()
            .max_connections(options::READERS)
            .min_connections(1)
            .acquire_timeout(options::ACQUIRE_TIMEOUT)
            // A local file does not drop connections: skip the ping before each read.
            .test_before_acquire(false)
            .connect_with(options::reader(&path))
            .await
            .map_err(from_sqlx)?;

        let writer = Writer::spawn(conn, writer_options, lock);
        tracing::debug!(path = %path.display(), "SQLite store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
            }),
        })
    }

    /// Opens the database named by a URL: `sqlite://PATH` or `sqlite:PATH`, the path relative
    /// (to the working directory) or absolute (`sqlite:///var/lib/tt.db`). Anything else, an
    /// in-memory database or query parameters included, is refused with a message saying so.
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        SqliteStore::open(options::path_from_url(url)?).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits what is queued, closes every connection and releases the file's lock; returns
    /// once that is done. Afterwards every call fails with `Unavailable`. Dropping the last
    /// clone also closes the store, but in the background.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.readers.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        if self.inner.writer.is_closed() {
            return Err(closed());
        }
        sqlx::query("SELECT 1")
            .execute(&self.inner.readers)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    fn is_exclusive(&self) -> bool {
        true
    }

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        self.inner
            .writer
            .write(move |conn| projects::create(conn, project).boxed())
            .await
    }

    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        projects::get(&self.inner.readers, id).await
    }

    async fn get_project_by_slug(&self, slug: &str) -> StoreResult<Option<Project>> {
        projects::get_by_slug(&self.inner.readers, slug).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.inner
            .writer
            .write(move |conn| projects::create_key(conn, key).boxed())
            .await
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>> {
        projects::find_key(&self.inner.readers, key_hash).await
    }

    async fn delete_api_key(&self, project_id: &ProjectId, id: &ApiKeyId) -> StoreResult<()> {
        let (project_id, id) = (project_id.clone(), id.clone());
        self.inner
            .writer
            .write(move |conn| {
                async move { projects::delete_key(conn, &project_id, &id).await }.boxed()
            })
            .await
    }

    async fn upsert_trigger(&self, req: UpsertTrigger) -> StoreResult<Result<Upserted, Refusal>> {
        self.inner
            .writer
            .write(move |conn| triggers::upsert(conn, req).boxed())
            .await
    }

    async fn cancel_trigger(
        &self,
        project_id: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>> {
        let (project_id, target) = (project_id.clone(), target.clone());
        self.inner
            .writer
            .write(move |conn| {
                async move { triggers::cancel(conn, &project_id, &target, now).await }.boxed()
            })
            .await
    }

    async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> StoreResult<Option<Job>> {
        triggers::get_job(&self.inner.readers, project_id, id).await
    }

    async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
    ) -> StoreResult<Option<Vec<Execution>>> {
        triggers::list_job_executions(&self.inner.readers, project_id, job_id).await
    }

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<ClaimedExecution>> {
        self.inner
            .writer
            .write(move |conn| async move { engine::claim_due(conn, &claim).await }.boxed())
            .await
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        engine::next_due_at(&self.inner.readers).await
    }

    async fn complete_executions(&self, done: &[CompletedExecution]) -> StoreResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        let done = done.to_vec();
        self.inner
            .writer
            .write(move |conn| async move { engine::complete(conn, &done).await }.boxed())
            .await
    }

    async fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        engine::list_stale(&self.inner.readers, now, scope, limit).await
    }

    async fn declare(&self, sync: DeclareSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.inner
            .writer
            .write(move |conn| async move { sync::declare(conn, &sync).await }.boxed())
            .await
    }

    async fn bulk(&self, sync: BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.inner
            .writer
            .write(move |conn| async move { sync::bulk(conn, &sync).await }.boxed())
            .await
    }

    async fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>> {
        generators::list_due(&self.inner.readers, overdue_before, limit).await
    }

    async fn materialize_generator(&self, plan: MaterializeGenerator) -> StoreResult<bool> {
        self.inner
            .writer
            .write(move |conn| async move { generators::materialize(conn, &plan).await }.boxed())
            .await
    }

    // ---- dashboard ----------------------------------------------------------------------------

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.inner
            .writer
            .write(move |conn| accounts::create_user(conn, user).boxed())
            .await
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        accounts::find_user_by_email(&self.inner.readers, email).await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.inner
            .writer
            .write(move |conn| accounts::create_session(conn, session).boxed())
            .await
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>> {
        accounts::find_session(&self.inner.readers, token_hash, now).await
    }

    async fn revoke_session(&self, token_hash: &str) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.inner
            .writer
            .write(move |conn| {
                async move { accounts::revoke_session(conn, &token_hash).await }.boxed()
            })
            .await
    }

    async fn list_user_projects(&self, user_id: &UserId) -> StoreResult<Vec<Project>> {
        accounts::list_user_projects(&self.inner.readers, user_id).await
    }

    async fn create_user_project(
        &self,
        user_id: &UserId,
        project: NewProject,
    ) -> StoreResult<Project> {
        let user_id = user_id.clone();
        self.inner
            .writer
            .write(move |conn| {
                async move { accounts::create_user_project(conn, &user_id, project).await }.boxed()
            })
            .await
    }

    async fn list_api_keys(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<ApiKey>> {
        dashboard::list_api_keys(&self.inner.readers, project_ids).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<JobPage> {
        dashboard::list_jobs(&self.inner.readers, query).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        dashboard::list_executions(&self.inner.readers, query).await
    }

    async fn replay_job(&self, replay: ReplayJob) -> StoreResult<Result<Replayed, ReplayRefusal>> {
        self.inner
            .writer
            .write(move |conn| async move { dashboard::replay_job(conn, &replay).await }.boxed())
            .await
    }

    // ---- rate limits ----

    async fn list_rate_limits(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
        rate_limits::list(&self.inner.readers, project_ids).await
    }

    async fn get_rate_limit(
        &self,
        project_ids: &[ProjectId],
        id: &RateLimitId,
    ) -> StoreResult<Option<RateLimit>> {
        rate_limits::get_rule(&self.inner.readers, project_ids, id).await
    }

    async fn create_rate_limit(&self, rule: NewRateLimit) -> StoreResult<RateLimit> {
        self.inner
            .writer
            .write(move |conn| rate_limits::create(conn, rule).boxed())
            .await
    }

    async fn update_rate_limit(&self, update: UpdateRateLimit) -> StoreResult<RateLimit> {
        self.inner
            .writer
            .write(move |conn| rate_limits::update(conn, update).boxed())
            .await
    }

    async fn delete_rate_limit(
        &self,
        project_id: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (project_id, id) = (project_id.clone(), id.clone());
        self.inner
            .writer
            .write(move |conn| {
                async move { rate_limits::delete(conn, &project_id, &id, now).await }.boxed()
            })
            .await
    }
}

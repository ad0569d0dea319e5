//! [`SqliteStore`]: opening, closing, and the [`Store`] implementation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{ConnectOptions, Connection};
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, BulkSync, Claim, ClaimedExecution, CompletedExecution,
    DeclareSync, Execution, GeneratorDue, Job, JobId, MaterializeGenerator, NewApiKey, NewProject,
    Project, ProjectId, Refusal, StaleScope, Store, StoreError, StoreResult, SyncOutcome,
    Timestamp, TriggerRef, UpsertTrigger, Upserted,
};

use timetriggers_core::{
    ExecutionPage, ExecutionQuery, JobPage, JobQuery, NewSession, NewUser, ReplayJob,
    ReplayRefusal, Replayed, SessionUser, User, UserCredentials, UserId,
};

use crate::batch::{Batcher, Created};
use crate::error::{closed, from_migrate};
use crate::readers::Readers;
use crate::sql::{fetch_one, first};
use crate::writer::Writer;
use crate::{accounts, dashboard, rate_limits};
use crate::{engine, generators, lock, options, projects, sync, triggers};
use timetriggers_core::{NewRateLimit, RateLimit, RateLimitId, UpdateRateLimit};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A [`Store`] on one SQLite file. Cheap to clone: clones share the writer and the readers.
///
/// Every write goes through one connection owned by a writer thread, which commits whatever
/// calls are queued together in one transaction (each in its own savepoint); reads go to a few
/// read-only WAL connections, each on its own thread. See the crate docs.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    /// Groups new keyless one-off jobs into one writer operation.
    batcher: Batcher,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("writer", &self.inner.writer)
            .field("readers", &self.inner.readers)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`, runs the migrations, takes
    /// the file's advisory lock and starts the writer and reader threads. Must be called inside
    /// a tokio runtime.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let lock = lock::acquire(&path).await?;

        // The migrations run through sqlx, which keeps their history in `_sqlx_migrations`;
        // everything else goes through rusqlite.
        let mut conn = options::migrations(&path).connect().await.map_err(|e| {
            crate::error::config(format!(
                "cannot open the SQLite database {}: {e}",
                path.display()
            ))
        })?;
        MIGRATOR.run(&mut conn).await.map_err(from_migrate)?;
        conn.close().await.map_err(crate::error::from_sqlx)?;

        // Opening may replay a WAL left by a killed process: off the runtime's threads.
        let opened = path.clone();
        let (writer_conn, readers) = tokio::task::spawn_blocking(move || {
            let writer = options::open_writer(&opened)?;
            let readers = Readers::open(&opened, options::READERS)?;
            Ok::<_, StoreError>((writer, readers))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("opening the SQLite database: {e}")))??;

        let writer = Writer::spawn(writer_conn, path.clone(), lock)?;
        let batcher = Batcher::spawn(writer.clone());
        tracing::debug!(path = %path.display(), "SQLite store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
                batcher,
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

    /// Runs `f` in the writer's next transaction.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// [`SqliteStore::write`] for calls that may refuse: a refusal changes nothing.
    async fn write_or_refuse<T, E, F>(&self, f: F) -> StoreResult<Result<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<Result<T, E>> + Send + 'static,
    {
        self.inner.writer.write_or_refuse(f).await
    }

    /// Runs `f` on a reader connection.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        self.inner.readers.read(f).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        if self.inner.writer.is_closed() {
            return Err(closed());
        }
        self.read(|c| fetch_one(c, "SELECT 1", [], first::<i64>).map(|_| ()))
            .await
    }

    fn is_exclusive(&self) -> bool {
        true
    }

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        self.write(move |c| projects::create(c, project)).await
    }

    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        let id = id.clone();
        self.read(move |c| projects::get(c, &id)).await
    }

    async fn get_project_by_slug(&self, slug: &str) -> StoreResult<Option<Project>> {
        let slug = slug.to_owned();
        self.read(move |c| projects::get_by_slug(c, &slug)).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.write(move |c| projects::create_key(c, key)).await
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>> {
        let key_hash = key_hash.to_owned();
        self.read(move |c| projects::find_key(c, &key_hash)).await
    }

    async fn delete_api_key(&self, project_id: &ProjectId, id: &ApiKeyId) -> StoreResult<()> {
        let (project_id, id) = (project_id.clone(), id.clone());
        self.write(move |c| projects::delete_key(c, &project_id, &id))
            .await
    }

    async fn upsert_trigger(&self, req: UpsertTrigger) -> StoreResult<Result<Upserted, Refusal>> {
        if !Batcher::eligible(&req) {
            return self
                .write_or_refuse(move |c| triggers::upsert(c, req))
                .await;
        }
        let req = Arc::new(req);
        if let Ok(Created::Yes(done)) = self.inner.batcher.create(req.clone()).await {
            return Ok(Ok(done));
        }
        // Not grouped (no such project, no quota left, the group failed, or the grouping task
        // is gone with the runtime that opened the store): the general path gives the answer.
        let req = Arc::try_unwrap(req).unwrap_or_else(|shared| (*shared).clone());
        self.write_or_refuse(move |c| triggers::upsert(c, req))
            .await
    }

    async fn cancel_trigger(
        &self,
        project_id: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>> {
        let (project_id, target) = (project_id.clone(), target.clone());
        self.write_or_refuse(move |c| triggers::cancel(c, &project_id, &target, now))
            .await
    }

    async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> StoreResult<Option<Job>> {
        let (project_id, id) = (project_id.clone(), id.clone());
        self.read(move |c| triggers::get_job(c, &project_id, &id))
            .await
    }

    async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
    ) -> StoreResult<Option<Vec<Execution>>> {
        let (project_id, job_id) = (project_id.clone(), job_id.clone());
        self.read(move |c| triggers::list_job_executions(c, &project_id, &job_id))
            .await
    }

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<ClaimedExecution>> {
        self.write(move |c| engine::claim_due(c, &claim)).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        self.read(engine::next_due_at).await
    }

    async fn complete_executions(&self, done: &[CompletedExecution]) -> StoreResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        let done = done.to_vec();
        self.write(move |c| engine::complete(c, &done)).await
    }

    async fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        self.read(move |c| engine::list_stale(c, now, scope, limit))
            .await
    }

    async fn declare(&self, sync: DeclareSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.write_or_refuse(move |c| sync::declare(c, &sync)).await
    }

    async fn bulk(&self, sync: BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.write_or_refuse(move |c| sync::bulk(c, &sync)).await
    }

    async fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>> {
        self.read(move |c| generators::list_due(c, overdue_before, limit))
            .await
    }

    async fn materialize_generator(&self, plan: MaterializeGenerator) -> StoreResult<bool> {
        self.write(move |c| generators::materialize(c, &plan)).await
    }

    // ---- dashboard ----------------------------------------------------------------------------

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.write(move |c| accounts::create_user(c, user)).await
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        let email = email.to_owned();
        self.read(move |c| accounts::find_user_by_email(c, &email))
            .await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.write(move |c| accounts::create_session(c, session))
            .await
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| accounts::find_session(c, &token_hash, now))
            .await
    }

    async fn revoke_session(&self, token_hash: &str) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.write(move |c| accounts::revoke_session(c, &token_hash))
            .await
    }

    async fn list_user_projects(&self, user_id: &UserId) -> StoreResult<Vec<Project>> {
        let user_id = user_id.clone();
        self.read(move |c| accounts::list_user_projects(c, &user_id))
            .await
    }

    async fn create_user_project(
        &self,
        user_id: &UserId,
        project: NewProject,
    ) -> StoreResult<Project> {
        let user_id = user_id.clone();
        self.write(move |c| accounts::create_user_project(c, &user_id, project))
            .await
    }

    async fn list_api_keys(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<ApiKey>> {
        let project_ids = project_ids.to_vec();
        self.read(move |c| dashboard::list_api_keys(c, &project_ids))
            .await
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<JobPage> {
        let query = query.clone();
        self.read(move |c| dashboard::list_jobs(c, &query)).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        let query = query.clone();
        self.read(move |c| dashboard::list_executions(c, &query))
            .await
    }

    async fn replay_job(&self, replay: ReplayJob) -> StoreResult<Result<Replayed, ReplayRefusal>> {
        self.write_or_refuse(move |c| dashboard::replay_job(c, &replay))
            .await
    }

    // ---- rate limits ----

    async fn list_rate_limits(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
        let project_ids = project_ids.to_vec();
        self.read(move |c| rate_limits::list(c, &project_ids)).await
    }

    async fn get_rate_limit(
        &self,
        project_ids: &[ProjectId],
        id: &RateLimitId,
    ) -> StoreResult<Option<RateLimit>> {
        let (project_ids, id) = (project_ids.to_vec(), id.clone());
        self.read(move |c| rate_limits::get_rule(c, &project_ids, &id))
            .await
    }

    async fn create_rate_limit(&self, rule: NewRateLimit) -> StoreResult<RateLimit> {
        self.write(move |c| rate_limits::create(c, rule)).await
    }

    async fn update_rate_limit(&self, update: UpdateRateLimit) -> StoreResult<RateLimit> {
        self.write(move |c| rate_limits::update(c, update)).await
    }

    async fn delete_rate_limit(
        &self,
        project_id: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (project_id, id) = (project_id.clone(), id.clone());
        self.write(move |c| rate_limits::delete(c, &project_id, &id, now))
            .await
    }
}

//! [`PgStore`]: connecting, migrating, closing, and the [`Store`] implementation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, BulkSync, Claim, ClaimedExecution, CompletedExecution,
    DeclareSync, EngineSignal, Execution, ExecutionPage, ExecutionQuery, GeneratorDue, Job, JobId,
    JobPage, JobQuery, MaterializeGenerator, NewApiKey, NewProject, NewRateLimit, NewSession,
    NewUser, Project, ProjectId, RateLimit, RateLimitId, Refusal, ReplayJob, ReplayRefusal,
    Replayed, SessionUser, StaleScope, Store, StoreResult, SyncOutcome, Timestamp, TriggerRef,
    TriggerSchedule, UpdateRateLimit, UpsertTrigger, Upserted, User, UserCredentials, UserId,
};

use crate::batch::Batcher;
use crate::error::{from_migrate, from_sqlx};
use crate::notify::{spawn_listener, ListenerHandle, Notifier};
use crate::options::{connect_options, take_store_params, PgStoreOptions};
use crate::{accounts, dashboard, engine, generators, projects, rate_limits, sync, triggers};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The advisory lock held while a schema is created and migrated, so that instances starting
/// together migrate one after the other.
const MIGRATE_LOCK_CLASS: i32 = 0x7474_6d67; // "ttmg"

/// A pooled connection idle this long is pinged before use (it may have been cut meanwhile).
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// Most connections of the engine's own pool (claims, outcomes, lease recovery, next due
/// time): one engine runs one claim and one batch of outcomes at a time, plus the odd lease
/// or next-due look.
const ENGINE_CONNECTIONS: u32 = 4;

/// The planner settings of the engine's connections (docs/decisions.md, decision 29). The
/// engine's statements each have one right plan: index seeks on primary keys and an ordered
/// scan of `executions_planned_due`, whatever the table sizes. Statistics cannot be trusted
/// to find it: a table that grew from nothing in the last seconds has none (autovacuum has
/// not run yet), and a prepared statement keeps the generic plan it made while the table was
/// small. With a burst of 20,000 due executions that gave sequential scans of `jobs` for
/// every claim of 512 (180 ms instead of 25), or a sort of every due execution to take the
/// first 512. Sequential and bitmap scans off leaves the planner those index paths only.
const ENGINE_PLANNER_SETTINGS: [(&str, &str); 2] =
    [("enable_seqscan", "off"), ("enable_bitmapscan", "off")];

/// A [`Store`] on PostgreSQL, shared by any number of server instances. Cheap to clone:
/// clones share the pool.
///
/// See the crate docs for the design; [`PgStore::spawn_listener`] for the cross-instance
/// wake-up.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// The engine's statements, on connections with [`ENGINE_PLANNER_SETTINGS`].
    engine_pool: PgPool,
    connect: PgConnectOptions,
    options: PgStoreOptions,
    notifier: Arc<Notifier>,
    batcher: Batcher,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.notifier.close();
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.options.schema)
            .field("pool_size", &self.inner.pool.size())
            .field("max_connections", &self.inner.options.max_connections)
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, with any parameter
    /// sqlx understands, e.g. `?sslmode=require`, and the store's own `max_connections=N` and
    /// `acquire_timeout=SECONDS`), creates the schema `timetriggers` if it is missing and runs
    /// the migrations in it. Must be called inside a tokio runtime.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        PgStore::connect_with(url, PgStoreOptions::default()).await
    }

    /// Like [`PgStore::connect`], in another schema: each schema is a separate store (tests use
    /// one schema each).
    pub async fn connect_with_schema(url: &str, schema: &str) -> StoreResult<PgStore> {
        PgStore::connect_with(url, PgStoreOptions::with_schema(schema)).await
    }

    /// Connects with explicit [`PgStoreOptions`].
    pub async fn connect_with(url: &str, mut options: PgStoreOptions) -> StoreResult<PgStore> {
        let url = take_store_params(url, &mut options)?;
        let connect = connect_options(&url, &options.schema)?;
        migrate(&connect, &options.schema).await?;
        let pool = pool_options(options.max_connections.max(1), &options)
            .connect_with(connect.clone())
            .await
            .map_err(from_sqlx)?;
        let engine_pool = pool_options(ENGINE_CONNECTIONS, &options)
            .connect_lazy_with(connect.clone().options(ENGINE_PLANNER_SETTINGS));
        let notifier = Notifier::new(
            options.channel(),
            options.notify_horizon,
            options.notify_min_gap,
        );
        notifier.spawn(pool.clone());
        let batcher = Batcher::spawn(pool.clone());
        tracing::debug!(schema = %options.schema, "PostgreSQL store open");
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                engine_pool,
                connect,
                options,
                notifier,
                batcher,
            }),
        })
    }

    /// The store's settings.
    pub fn options(&self) -> &PgStoreOptions {
        &self.inner.options
    }

    /// The connection pool (for diagnostics; the store owns the schema).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Listens for the wake-ups other instances send when they schedule a job due soon, and
    /// passes each to `signal` (the engine's, [`timetriggers_core::Engine::signal`]). Uses one
    /// dedicated connection, reconnects with backoff when it is lost, and wakes the engine after
    /// each reconnection. Runs until the handle is dropped or stopped.
    pub fn spawn_listener(&self, signal: Arc<EngineSignal>) -> ListenerHandle {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.inner.options.acquire_timeout)
            .connect_lazy_with(self.inner.connect.clone());
        spawn_listener(pool, self.inner.options.channel(), signal)
    }

    /// Stops the wake-up sender and closes every pooled connection; returns once that is done.
    /// Afterwards every call fails with `Unavailable`.
    pub async fn close(&self) {
        self.inner.notifier.close();
        self.inner.pool.close().await;
        self.inner.engine_pool.close().await;
    }
}

/// A pool of at most `max` connections, created as needed.
fn pool_options(max: u32, options: &PgStoreOptions) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(options.acquire_timeout)
        // A pooled connection may have been cut by a server restart while it was idle: a
        // ping before using a connection that sat idle finds out, so that the call gets a
        // fresh connection instead of an error. Connections in steady use skip the ping (a
        // round trip per statement otherwise).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < IDLE_BEFORE_PING {
                    return Ok(true);
                }
                Ok(conn.ping().await.is_ok())
            })
        })
}

/// Creates the schema if missing and runs the migrations in it, under an advisory lock so that
/// instances starting together do not race.
async fn migrate(connect: &PgConnectOptions, schema: &str) -> StoreResult<()> {
    let mut conn = PgConnection::connect_with(connect)
        .await
        .map_err(from_sqlx)?;
    let result = migrate_on(&mut conn, schema).await;
    // Closing also releases the session-level advisory lock.
    let _ = conn.close().await;
    result
}

async fn migrate_on(conn: &mut PgConnection, schema: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(MIGRATE_LOCK_CLASS)
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    // The name was checked to be a plain identifier; quoting keeps it exact.
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    MIGRATOR.run(&mut *conn).await.map_err(from_migrate)?;
    sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
        .bind(MIGRATE_LOCK_CLASS)
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    fn is_exclusive(&self) -> bool {
        false
    }

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        projects::create(&self.inner.pool, project).await
    }

    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        projects::get(&self.inner.pool, id).await
    }

    async fn get_project_by_slug(&self, slug: &str) -> StoreResult<Option<Project>> {
        projects::get_by_slug(&self.inner.pool, slug).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        projects::create_key(&self.inner.pool, key).await
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>> {
        projects::find_key(&self.inner.pool, key_hash).await
    }

    async fn delete_api_key(&self, project_id: &ProjectId, id: &ApiKeyId) -> StoreResult<()> {
        projects::delete_key(&self.inner.pool, project_id, id).await
    }

    async fn upsert_trigger(&self, req: UpsertTrigger) -> StoreResult<Result<Upserted, Refusal>> {
        let done = triggers::upsert(&self.inner.pool, &self.inner.batcher, &req).await?;
        if let Ok(upserted) = &done {
            // Committed: tell the other instances if it is due soon (see `notify`).
            let planned = !matches!(
                req.definition.schedule,
                TriggerSchedule::Once { skip: true, .. }
            );
            if planned {
                self.inner.notifier.due(upserted.scheduled_at, req.now);
            }
        }
        Ok(done)
    }

    async fn cancel_trigger(
        &self,
        project_id: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>> {
        triggers::cancel(&self.inner.pool, project_id, target, now).await
    }

    async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> StoreResult<Option<Job>> {
        triggers::get_job(&self.inner.pool, project_id, id).await
    }

    async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
    ) -> StoreResult<Option<Vec<Execution>>> {
        triggers::list_job_executions(&self.inner.pool, project_id, job_id).await
    }

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<ClaimedExecution>> {
        // With rate-limit rules the claim is a transaction that checks them; without, one
        // statement.
        match rate_limits::claim_due(&self.inner.engine_pool, &claim).await? {
            Some(claimed) => Ok(claimed),
            None => engine::claim_due(&self.inner.engine_pool, &claim).await,
        }
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        engine::next_due_at(&self.inner.engine_pool).await
    }

    async fn complete_executions(&self, done: &[CompletedExecution]) -> StoreResult<()> {
        engine::complete(&self.inner.engine_pool, done).await?;
        // Retries due soon may be taken by another instance (this one is told by its engine).
        let retries = done
            .iter()
            .filter_map(|d| d.retry.as_ref().map(|r| (r.due_at, d.completed_at)));
        if let Some((due, now)) = retries.min_by_key(|(due, _)| *due) {
            self.inner.notifier.due(due, now);
        }
        Ok(())
    }

    async fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        engine::list_stale(&self.inner.engine_pool, now, scope, limit).await
    }

    async fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>> {
        generators::list_due(&self.inner.pool, overdue_before, limit).await
    }

    async fn materialize_generator(&self, plan: MaterializeGenerator) -> StoreResult<bool> {
        generators::materialize(&self.inner.pool, &plan).await
    }

    async fn declare(&self, req: DeclareSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        let (done, due) = sync::declare(&self.inner.pool, &req).await?;
        if let Some(due) = due {
            self.inner.notifier.due(due, req.now);
        }
        Ok(done)
    }

    async fn bulk(&self, req: BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        let (done, due) = sync::bulk(&self.inner.pool, &req).await?;
        if let Some(due) = due {
            self.inner.notifier.due(due, req.now);
        }
        Ok(done)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        accounts::create_user(&self.inner.pool, user).await
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        accounts::find_user_by_email(&self.inner.pool, email).await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        accounts::create_session(&self.inner.pool, session).await
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>> {
        accounts::find_session(&self.inner.pool, token_hash, now).await
    }

    async fn revoke_session(&self, token_hash: &str) -> StoreResult<()> {
        accounts::revoke_session(&self.inner.pool, token_hash).await
    }

    async fn list_user_projects(&self, user_id: &UserId) -> StoreResult<Vec<Project>> {
        accounts::list_user_projects(&self.inner.pool, user_id).await
    }

    async fn create_user_project(
        &self,
        user_id: &UserId,
        project: NewProject,
    ) -> StoreResult<Project> {
        accounts::create_user_project(&self.inner.pool, user_id, project).await
    }

    async fn list_api_keys(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<ApiKey>> {
        dashboard::list_api_keys(&self.inner.pool, project_ids).await
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<JobPage> {
        dashboard::list_jobs(&self.inner.pool, query).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        dashboard::list_executions(&self.inner.pool, query).await
    }

    async fn replay_job(&self, replay: ReplayJob) -> StoreResult<Result<Replayed, ReplayRefusal>> {
        let done = dashboard::replay_job(&self.inner.pool, &replay).await?;
        if let Ok(replayed) = &done {
            self.inner.notifier.due(replayed.due_at, replay.now);
        }
        Ok(done)
    }

    async fn list_rate_limits(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
        rate_limits::list(&self.inner.pool, project_ids).await
    }

    async fn get_rate_limit(
        &self,
        project_ids: &[ProjectId],
        id: &RateLimitId,
    ) -> StoreResult<Option<RateLimit>> {
        rate_limits::get_rule(&self.inner.pool, project_ids, id).await
    }

    async fn create_rate_limit(&self, rule: NewRateLimit) -> StoreResult<RateLimit> {
        rate_limits::create(&self.inner.pool, rule).await
    }

    async fn update_rate_limit(&self, update: UpdateRateLimit) -> StoreResult<RateLimit> {
        rate_limits::update(&self.inner.pool, update).await
    }

    async fn delete_rate_limit(
        &self,
        project_id: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()> {
        rate_limits::delete(&self.inner.pool, project_id, id, now).await
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use timetriggers_core::testing::{at, definition, project, upsert, T0};
    use timetriggers_core::MonthQuota;

    use super::*;
    use crate::testing::scratch_store;

    /// The plan of the claim on the engine's connections, with `jobs` and `executions` as a
    /// fresh store has them: a handful of rows, never analysed. On such tables the planner
    /// likes sequential scans and sorts; the engine's settings must leave it the index paths.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_claim_plans_index_scans_on_unanalysed_tables() {
        let (store, _schema) = scratch_store("tt_plan").await;
        let p = project(&store, MonthQuota::Unlimited).await;
        for i in 0..5 {
            let def = definition("https://example.com/plan", at(1_000 + i));
            store
                .upsert_trigger(upsert(&p.id, None, None, def, T0))
                .await
                .unwrap()
                .unwrap();
        }
        let explain = |pool: PgPool| async move {
            let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {}", engine::CLAIM))
                .bind(T0.as_millis() + 10_000)
                .bind(512_i64)
                .bind("w")
                .bind(1_000_i64)
                .bind("2026-11")
                .bind(0_i16)
                .bind(T0.as_millis() + 10_000)
                .fetch_all(&pool)
                .await
                .unwrap();
            lines.join("\n")
        };
        let plan = explain(store.inner.engine_pool.clone()).await;
        for bad in ["Seq Scan on jobs", "Seq Scan on executions", "Bitmap"] {
            assert!(
                !plan.contains(bad),
                "{bad} in the engine's claim plan:\n{plan}"
            );
        }
        assert!(
            plan.contains("Index Scan using executions_planned_due"),
            "the claim reads due executions in index order:\n{plan}"
        );
        // The same statement on an ordinary connection: the settings are what makes the
        // difference (if the planner ever picks the index paths here too, this test no longer
        // shows that the settings matter, and says so).
        let unpinned = explain(store.inner.pool.clone()).await;
        assert!(
            unpinned.contains("Seq Scan") || unpinned.contains("Bitmap"),
            "expected a sequential or bitmap scan without the engine's settings:\n{unpinned}"
        );
    }
}

//! [`MemoryStore`] and its [`Store`] implementation: each method takes the lock once and hands
//! over to the [`State`] method that does the work, so each call is atomic.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, BulkSync, Claim, ClaimedExecution, CompletedExecution,
    DeclareSync, Execution, ExecutionPage, ExecutionQuery, GeneratorDue, Job, JobId, JobPage,
    JobQuery, MaterializeGenerator, NewApiKey, NewProject, NewRateLimit, NewSession, NewUser,
    Project, ProjectId, RateLimit, RateLimitId, Refusal, ReplayJob, ReplayRefusal, Replayed,
    SessionUser, StaleScope, Store, StoreResult, SyncOutcome, Timestamp, TriggerRef,
    UpdateRateLimit, UpsertTrigger, Upserted, User, UserCredentials, UserId,
};

use crate::state::State;

/// A [`Store`] kept in memory. Create one with [`MemoryStore::new`] and share it as
/// `Arc<dyn Store>`.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("jobs", &state.jobs.len())
            .field("executions", &state.executions.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Writes work on a copy (see `write`), so a panic never leaves half a change behind:
        // a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read: one consistent snapshot.
    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> StoreResult<T> {
        Ok(f(&self.lock()))
    }

    /// A write transaction: `f` changes a copy, which replaces the state only if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> StoreResult<T>) -> StoreResult<T> {
        let mut state = self.lock();
        let mut draft = state.clone();
        let out = f(&mut draft)?;
        *state = draft;
        Ok(out)
    }

    /// A write whose business refusal (404, 410, 402…) also changes nothing.
    fn write_unless_refused<T, R>(
        &self,
        f: impl FnOnce(&mut State) -> StoreResult<Result<T, R>>,
    ) -> StoreResult<Result<T, R>> {
        let mut state = self.lock();
        let mut draft = state.clone();
        let out = f(&mut draft)?;
        if out.is_ok() {
            *state = draft;
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    // `is_exclusive` keeps its default (`false`): recovery waits for leases to expire. A file
    // owned by one process (SQLite) answers `true` so that a restart recovers at once.

    // ---- projects and keys ----

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        self.write(|s| s.create_project(project))
    }

    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.read(|s| s.projects.get(id).cloned())
    }

    async fn get_project_by_slug(&self, slug: &str) -> StoreResult<Option<Project>> {
        self.read(|s| s.projects.values().find(|p| p.slug == slug).cloned())
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.write(|s| s.create_api_key(key))
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>> {
        self.read(|s| {
            s.api_keys.get(key_hash).map(|k| AuthenticatedKey {
                key_id: k.id.clone(),
                project_id: k.project_id.clone(),
            })
        })
    }

    async fn delete_api_key(&self, project_id: &ProjectId, id: &ApiKeyId) -> StoreResult<()> {
        self.write(|s| s.delete_api_key(project_id, id))
    }

    // ---- triggers ----

    async fn upsert_trigger(&self, req: UpsertTrigger) -> StoreResult<Result<Upserted, Refusal>> {
        self.write_unless_refused(|s| s.upsert_trigger(&req))
    }

    async fn cancel_trigger(
        &self,
        project_id: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>> {
        self.write_unless_refused(|s| s.cancel_trigger(project_id, target, now))
    }

    async fn declare(&self, sync: DeclareSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.write_unless_refused(|s| s.declare(&sync))
    }

    async fn bulk(&self, sync: BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        self.write_unless_refused(|s| s.bulk(&sync))
    }

    async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> StoreResult<Option<Job>> {
        self.read(|s| {
            s.jobs
                .get(id)
                .filter(|j| &j.job.project_id == project_id)
                .map(|j| s.job(j))
        })
    }

    async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
    ) -> StoreResult<Option<Vec<Execution>>> {
        self.read(|s| s.list_job_executions(project_id, job_id))
    }

    // ---- engine ----

    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<ClaimedExecution>> {
        self.write(|s| s.claim_due(&claim))
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        self.read(State::next_due_at)
    }

    async fn complete_executions(&self, done: &[CompletedExecution]) -> StoreResult<()> {
        self.write(|s| s.complete_executions(done))
    }

    async fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        self.read(|s| s.list_stale_executions(now, scope, limit))?
    }

    // ---- generators ----

    async fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>> {
        self.read(|s| s.list_generators_due(overdue_before, limit))?
    }

    async fn materialize_generator(&self, plan: MaterializeGenerator) -> StoreResult<bool> {
        self.write(|s| s.materialize_generator(&plan))
    }

    // ---- dashboard ----

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.write(|s| s.create_user(user))
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        self.read(|s| s.users.values().find(|u| u.user.email == email).cloned())
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.write(|s| s.create_session(session))
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>> {
        self.read(|s| s.find_session(token_hash, now))
    }

    async fn revoke_session(&self, token_hash: &str) -> StoreResult<()> {
        self.write(|s| s.revoke_session(token_hash))
    }

    async fn list_user_projects(&self, user_id: &UserId) -> StoreResult<Vec<Project>> {
        self.read(|s| s.list_user_projects(user_id))
    }

    async fn create_user_project(
        &self,
        user_id: &UserId,
        project: NewProject,
    ) -> StoreResult<Project> {
        self.write(|s| s.create_user_project(user_id, project))
    }

    async fn list_api_keys(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<ApiKey>> {
        self.read(|s| s.list_api_keys(project_ids))
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<JobPage> {
        self.read(|s| s.list_jobs(query))
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        self.read(|s| s.list_executions(query))
    }

    async fn replay_job(&self, replay: ReplayJob) -> StoreResult<Result<Replayed, ReplayRefusal>> {
        self.write_unless_refused(|s| s.replay_job(&replay))
    }

    // ---- rate limits ----

    async fn list_rate_limits(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
        self.read(|s| s.list_rate_limits(project_ids))
    }

    async fn get_rate_limit(
        &self,
        project_ids: &[ProjectId],
        id: &RateLimitId,
    ) -> StoreResult<Option<RateLimit>> {
        self.read(|s| {
            s.rate_limits
                .iter()
                .find(|r| &r.id == id && project_ids.contains(&r.project_id))
                .cloned()
        })
    }

    async fn create_rate_limit(&self, rule: NewRateLimit) -> StoreResult<RateLimit> {
        self.write(|s| s.create_rate_limit(rule))
    }

    async fn update_rate_limit(&self, update: UpdateRateLimit) -> StoreResult<RateLimit> {
        self.write(|s| s.update_rate_limit(update))
    }

    async fn delete_rate_limit(
        &self,
        project_id: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.write(|s| s.delete_rate_limit(project_id, id, now))
    }
}

//! The [`Store`] trait: everything the service and the engine persist, and its parameter types.
//!
//! Stores only persist. Every time-dependent method receives `now`; every decision (may this be
//! rescheduled, is this retried, when) is made by core rules, which stores call inside their
//! transactions where a decision depends on rows they read.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::declare::{BulkSync, DeclareSync, SyncOutcome};
use crate::dispatch::DispatchOutcome;
use crate::ids::{ApiKeyId, ExecutionId, JobId, ProjectId, RateLimitId, UserId};
use crate::lifecycle::Refusal;
use crate::model::{
    ApiKey, AuthenticatedKey, DeliveryOptions, Execution, ExecutionPage, HttpRequest, Job, JobKind,
    JobPage, MonthQuota, Origin, Project, RateLimit, SessionUser, TriggeredBy, User,
    UserCredentials,
};
use crate::store_dashboard::{
    ExecutionQuery, JobQuery, NewSession, NewUser, ReplayJob, ReplayRefusal, Replayed,
};
use crate::store_rate_limits::{NewRateLimit, UpdateRateLimit};
use crate::time::Timestamp;

/// A storage failure. Business refusals (404/410/402 of the trigger API) are not errors: they
/// come back as [`Refusal`] inside `Ok`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A mutation addressed a row that does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. a project slug).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached right now (pool timeout, connection lost); retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("store backend error: {source}")]
    Backend {
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            source: Box::new(source),
        }
    }

    /// A backend error described by a message (e.g. a row that fails to decode).
    pub fn corrupt(message: impl Into<String>) -> Self {
        StoreError::Backend {
            source: message.into().into(),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A new project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Its id.
    pub id: ProjectId,
    /// Unique slug.
    pub slug: String,
    /// Monthly allowance.
    pub month_quota: MonthQuota,
    /// Creation time.
    pub now: Timestamp,
}

/// A new API key (its secret already hashed by the caller).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// Its project.
    pub project_id: ProjectId,
    /// Display name.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub key_hash: String,
    /// Masked form for listings.
    pub masked: String,
    /// Creation time.
    pub now: Timestamp,
}

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerSchedule {
    /// A one-off job at this instant.
    Once {
        /// The fire time.
        at: Timestamp,
        /// `true` records the job as `skipped` instead of `registered` (a past time with
        /// `run-missed: false`).
        skip: bool,
    },
    /// A generator: a cron series with one pending occurrence job at a time.
    Cron {
        /// The expression, as given (trimmed).
        expression: String,
        /// IANA zone the expression is read in.
        timezone: String,
        /// Whether a missed occurrence fires once when the series catches up.
        run_missed: bool,
        /// The first occurrence (computed by the service from the expression).
        first_at: Timestamp,
        /// Id of the first occurrence job.
        occurrence_id: JobId,
    },
}

impl TriggerSchedule {
    /// The kind of item this schedule makes.
    pub fn kind(&self) -> JobKind {
        match self {
            TriggerSchedule::Once { .. } => JobKind::Job,
            TriggerSchedule::Cron { .. } => JobKind::Generator,
        }
    }

    /// The fire time reported to the caller.
    pub fn fire_at(&self) -> Timestamp {
        match self {
            TriggerSchedule::Once { at, .. } => *at,
            TriggerSchedule::Cron { first_at, .. } => *first_at,
        }
    }
}

/// Everything that defines a trigger; rescheduling replaces all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDefinition {
    /// What to send.
    pub request: HttpRequest,
    /// Display title.
    pub title: Option<String>,
    /// Tags, normalised (deduplicated, order kept).
    pub tags: Vec<String>,
    /// Delivery options.
    pub options: DeliveryOptions,
    /// When to fire.
    pub schedule: TriggerSchedule,
}

/// A create-or-reschedule (the table of API.md §2), applied atomically with its quota charge.
#[derive(Debug, Clone)]
pub struct UpsertTrigger {
    /// The caller's project.
    pub project_id: ProjectId,
    /// `ttr-trigger-id`, if given.
    pub trigger_id: Option<JobId>,
    /// `ttr-custom-key`, if given.
    pub custom_key: Option<String>,
    /// The new definition.
    pub definition: TriggerDefinition,
    /// Which API asks.
    pub origin: Origin,
    /// Id to use if a new job is created.
    pub new_job_id: JobId,
    /// Id of the planned execution if one is created.
    pub new_execution_id: ExecutionId,
    /// The current time.
    pub now: Timestamp,
}

/// Whether an upsert created or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum UpsertOperation {
    /// A new item.
    Schedule,
    /// An existing item updated in place.
    Reschedule,
}

impl UpsertOperation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpsertOperation::Schedule => "schedule",
            UpsertOperation::Reschedule => "reschedule",
        }
    }
}

/// The result of an accepted upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The item's id (same as before on a reschedule).
    pub id: JobId,
    /// Created or updated.
    pub operation: UpsertOperation,
    /// Job or generator.
    pub kind: JobKind,
    /// The fire time (a generator's next occurrence).
    pub scheduled_at: Timestamp,
    /// Quota left after this call; `None` when unlimited.
    pub month_quota_remaining: Option<u64>,
}

/// Which item a cancel names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerRef {
    /// By id.
    Id(JobId),
    /// By the custom key of a live item.
    CustomKey(String),
}

/// A claim of due executions by one engine.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The current time: the claimed executions start now (their lease counts from it).
    pub now: Timestamp,
    /// Executions due at or before this instant (at least `now`) may be claimed: an engine
    /// claims a few milliseconds ahead and sends each at its own `due_at`. A store may look
    /// less far ahead; executions held back by a rate-limit rule are only ever claimed once
    /// due (`now`), so that a rule's window counts real starts.
    pub due_by: Timestamp,
    /// At most this many.
    pub limit: usize,
    /// Extra time granted beyond each execution's own timeout before another engine may treat
    /// it as interrupted.
    pub lease_margin: Duration,
    /// The claiming engine (for diagnostics).
    pub worker: String,
}

/// A claimed execution with everything needed to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedExecution {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its job.
    pub job_id: JobId,
    /// The job's project.
    pub project_id: ProjectId,
    /// 1 for the first attempt.
    pub attempt_number: u32,
    /// Why it runs.
    pub triggered_by: TriggeredBy,
    /// When it was planned for.
    pub planned_at: Timestamp,
    /// When it may be sent: `planned_at`, or later when a rate limit held it back. Never after
    /// the claim's `due_by`; the engine does not send it before this instant.
    pub due_at: Timestamp,
    /// What to send.
    pub request: HttpRequest,
    /// Delivery options.
    pub options: DeliveryOptions,
    /// The generator this is an occurrence of, if any.
    pub generator_id: Option<JobId>,
}

/// A follow-up attempt to plan in the same transaction that completes an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRetry {
    /// The new execution's id.
    pub execution_id: ExecutionId,
    /// Its attempt number.
    pub attempt_number: u32,
    /// When it is due.
    pub due_at: Timestamp,
}

/// The finished delivery of a started execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedExecution {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its job.
    pub job_id: JobId,
    /// Its attempt number.
    pub attempt_number: u32,
    /// When delivery finished.
    pub completed_at: Timestamp,
    /// What happened.
    pub outcome: DispatchOutcome,
    /// The next attempt, if the job is retried; `None` completes the job.
    pub retry: Option<PlannedRetry>,
}

/// The pending occurrence of a generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOccurrence {
    /// The occurrence job.
    pub job_id: JobId,
    /// Its time.
    pub scheduled_at: Timestamp,
}

/// An active generator whose next occurrence must be planned: it has no pending occurrence
/// (the last one fired or was cancelled), or its pending occurrence is overdue (missed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorDue {
    /// The generator.
    pub id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its cron expression.
    pub expression: String,
    /// Its zone.
    pub timezone: String,
    /// Whether missed occurrences fire once.
    pub run_missed: bool,
    /// The time of the last occurrence that fired, was cancelled or was skipped; `None` if
    /// there was none since the definition last changed.
    pub last_occurrence_at: Option<Timestamp>,
    /// When the definition last changed (creation or reschedule).
    pub defined_at: Timestamp,
    /// The overdue pending occurrence, if that is why it is listed.
    pub pending: Option<PendingOccurrence>,
}

/// A new occurrence job of a generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOccurrence {
    /// The job's id.
    pub job_id: JobId,
    /// Its planned execution's id (unused for a skipped record).
    pub execution_id: ExecutionId,
    /// Its time.
    pub at: Timestamp,
}

/// The outcome of planning a generator (see [`crate::rules::generator::plan_occurrences`]),
/// applied atomically and only if the generator is still active with the expected pending
/// occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeGenerator {
    /// The generator.
    pub generator_id: JobId,
    /// The pending occurrence it must still have (`None`: it must have none).
    pub expected_pending: Option<JobId>,
    /// Record the expected (overdue) pending occurrence as `skipped`.
    pub skip_pending: bool,
    /// Missed occurrences to record as `skipped` jobs (no execution).
    pub skipped: Vec<NewOccurrence>,
    /// The new pending occurrence (`registered`, one planned execution).
    pub create: Option<NewOccurrence>,
    /// The current time.
    pub now: Timestamp,
}

/// Which `started` executions to hand back as interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleScope {
    /// Only those whose lease has run out (several engines share the store).
    ExpiredLeases,
    /// All of them (this process owns the store; anything `started` was left by a dead one).
    AllStarted,
}

/// Persistence for TimeTriggers. Object-safe, so a server can hold `Arc<dyn Store>` chosen at
/// run time. A backend proves itself by passing the conformance suite in
/// `timetriggers_core::testing` (feature `testing`; see `docs/writing-a-store.md`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    // ---- health -------------------------------------------------------------------------

    /// Succeeds once the backend is reachable.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether one process owns this store exclusively (an embedded file): the engine then
    /// treats everything left `started` at start-up as interrupted.
    fn is_exclusive(&self) -> bool {
        false
    }

    // ---- projects and keys ----------------------------------------------------------------

    /// Creates a project; [`StoreError::Conflict`] if the slug is taken.
    async fn create_project(&self, project: NewProject) -> StoreResult<Project>;

    /// A project by id.
    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;

    /// A project by slug.
    async fn get_project_by_slug(&self, slug: &str) -> StoreResult<Option<Project>>;

    /// Stores a key; [`StoreError::Conflict`] if its hash exists already.
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;

    /// The live key with this hash, if any.
    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>>;

    /// Deletes a key of the project; [`StoreError::NotFound`] if there is none.
    async fn delete_api_key(&self, project_id: &ProjectId, id: &ApiKeyId) -> StoreResult<()>;

    // ---- triggers ---------------------------------------------------------------------------

    /// Creates or reschedules a trigger following [`crate::lifecycle::plan_upsert`], charging
    /// one quota unit for the current month, all in one transaction. Order of refusals: quota,
    /// then not found, then gone.
    async fn upsert_trigger(&self, req: UpsertTrigger) -> StoreResult<Result<Upserted, Refusal>>;

    /// Cancels a pending trigger following [`crate::lifecycle::plan_cancel`]: the job becomes
    /// `cancelled`, its planned execution `cancelled`, its key released.
    async fn cancel_trigger(
        &self,
        project_id: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>>;

    /// `/declare` in one transaction: reads the project's items that the sync concerns (see
    /// [`crate::declare::plan_declare`]), applies the plan, charges one unit per item added
    /// or updated — all or nothing: [`Refusal::QuotaExceeded`] if the quota cannot cover them.
    /// Items it creates are marked as created by `/declare`, with their declared `scheduledAt`
    /// kept for later comparisons.
    async fn declare(&self, sync: DeclareSync) -> StoreResult<Result<SyncOutcome, Refusal>>;

    /// `/bulk` in one transaction: cancels first (a bare string is a live custom key if one
    /// matches, else an id; a tag selects every registered job and active generator carrying
    /// it; selectors that match nothing or only finished items are ignored), then upserts by
    /// key ([`crate::declare::plan_bulk_upserts`]), charging one unit per item added or updated.
    async fn bulk(&self, sync: BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>>;

    /// A job of the project.
    async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> StoreResult<Option<Job>>;

    /// A job's executions, newest first; `None` if the job is not in the project.
    async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        job_id: &JobId,
    ) -> StoreResult<Option<Vec<Execution>>>;

    // ---- engine -----------------------------------------------------------------------------

    /// Atomically takes up to `limit` `planned` executions due at or before `now`, earliest
    /// first (by due time, then planned time): each becomes `started` under a lease (its
    /// timeout + margin), its job `running`. Concurrent claimers never receive the same
    /// execution.
    ///
    /// Rate limits are enforced here, atomically with the claim: for an execution whose job
    /// has tags with rules in its project, [`crate::rules::rate_limit::admit`] decides from
    /// the executions started with those tags (this claim's earlier ones included). Allowed:
    /// it is taken and its start recorded for each such tag. Held back: it stays `planned`,
    /// its due time moves to the `until` of the decision, and the execution and its job get
    /// `rate_limited_at` (if unset), `rate_limited_until` and `rate_limited_tags`, kept as
    /// history once it starts. Concurrent claimers together never exceed a limit.
    async fn claim_due(&self, claim: Claim) -> StoreResult<Vec<ClaimedExecution>>;

    /// The earliest due time among `planned` executions, if any.
    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>>;

    /// Records finished deliveries in one transaction. An execution that is no longer
    /// `started` (another engine recovered it) is left untouched.
    async fn complete_executions(&self, done: &[CompletedExecution]) -> StoreResult<()>;

    /// `started` executions that are to be treated as interrupted, with what is needed to
    /// complete (and perhaps retry) them.
    async fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>>;

    // ---- generators -------------------------------------------------------------------------

    /// Active generators needing a plan: without a pending occurrence, or whose pending
    /// occurrence is still `registered` and due before `overdue_before`. At most `limit`.
    async fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>>;

    /// Applies a generator plan in one transaction: skipped records (jobs `skipped` with the
    /// generator's request, title and tags), the expected pending occurrence marked `skipped`
    /// if asked, and the new pending occurrence. Does nothing and returns `false` if the
    /// generator is no longer active or its pending occurrence is not `expected_pending`.
    async fn materialize_generator(&self, plan: MaterializeGenerator) -> StoreResult<bool>;

    // ---- dashboard ----------------------------------------------------------------------------

    /// Creates a user, their first project (`user.project`) and their membership of it, in one
    /// transaction. [`StoreError::Conflict`] if the email is taken by another user or the
    /// project slug by another project (nothing is created then).
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// The user with this (normalised) email and their password hash, if any. Emails are
    /// compared exactly: callers pass them trimmed and lower-cased.
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>>;

    /// Stores a session. [`StoreError::NotFound`] if the user does not exist,
    /// [`StoreError::Conflict`] if a session with this token hash exists. May delete sessions
    /// of the same user that expired at or before `session.now` (housekeeping).
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;

    /// The user of the session with this token hash if it is live at `now`: not revoked and
    /// `now < expires_at`. `None` otherwise.
    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>>;

    /// Revokes (deletes) the session with this token hash: [`Store::find_session`] no longer
    /// finds it. [`StoreError::NotFound`] if there is none.
    async fn revoke_session(&self, token_hash: &str) -> StoreResult<()>;

    /// The projects the user is a member of, in the order they joined them (oldest first; ties
    /// by project id), so the first is the user's default project. Empty for an unknown user.
    async fn list_user_projects(&self, user_id: &UserId) -> StoreResult<Vec<Project>>;

    /// Creates a project and makes the user its member (joined at `project.now`), in one
    /// transaction. [`StoreError::NotFound`] if the user does not exist,
    /// [`StoreError::Conflict`] if the slug is taken.
    async fn create_user_project(
        &self,
        user_id: &UserId,
        project: NewProject,
    ) -> StoreResult<Project>;

    /// The API keys of these projects (masked), newest first (`created_at` descending, ties by
    /// id descending). Empty `project_ids`: empty list.
    async fn list_api_keys(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<ApiKey>>;

    /// A page of jobs matching `query` (every filter set must hold; see [`JobQuery`]) ordered
    /// by `scheduled_at` descending, ties by id descending, skipping `offset` and returning at
    /// most `limit`; with `total`, the number matching before paging. Jobs only: generators
    /// themselves are not listed, their occurrence jobs are. Empty `project_ids`: nothing.
    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<JobPage>;

    /// A page of executions matching `query` (every filter set must hold; see
    /// [`ExecutionQuery`]) ordered by `planned_at` descending, ties by execution id descending,
    /// skipping `offset` and returning at most `limit`, each with its job's facts; with
    /// `total`, the number matching before paging. Listed executions carry no response headers
    /// or body (`None`). Empty `project_ids`: nothing.
    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage>;

    /// Runs a finished job again, in one transaction. Refusals, in this order:
    /// [`ReplayRefusal::NotFound`] (no such job in `project_ids`),
    /// [`ReplayRefusal::NotFinished`] (per [`crate::plan_replay`]),
    /// [`ReplayRefusal::CustomKeyTaken`] (the job has a custom key now held by another live job
    /// or an active generator of the project), [`ReplayRefusal::QuotaExceeded`] (nothing left
    /// for the month of `now`). Otherwise: a new `planned` execution (id `execution_id`,
    /// `attempt_number` = the job's highest attempt number + 1 (1 if it has none),
    /// `triggered_by`, `planned_at` = due = `now`, no response, no rate-limit state); the job
    /// becomes `queued` with `completed_at` and its rate-limit state cleared (every other field,
    /// `cancelled_at` and the latest outcome included, is kept until the new execution
    /// completes); one quota unit is charged to the project for the month of `now`. A
    /// generator's series is not affected by replaying one of its occurrences.
    async fn replay_job(&self, replay: ReplayJob) -> StoreResult<Result<Replayed, ReplayRefusal>>;

    // ---- rate limits ----

    /// The rate-limit rules of these projects, oldest first (`created_at`, then id). Empty
    /// `project_ids`: empty list.
    async fn list_rate_limits(&self, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>>;

    /// The rule with this id if it belongs to one of these projects.
    async fn get_rate_limit(
        &self,
        project_ids: &[ProjectId],
        id: &RateLimitId,
    ) -> StoreResult<Option<RateLimit>>;

    /// Stores a rule (`created_at` = `updated_at` = `rule.now`). [`StoreError::Conflict`] if
    /// the project already has a rule for the tag.
    async fn create_rate_limit(&self, rule: NewRateLimit) -> StoreResult<RateLimit>;

    /// Replaces a rule's tag and limits (`updated_at` = `update.now`), and makes every
    /// execution of the project that a rate limit holds back on the rule's old or new tag due
    /// again at `update.now` (it is re-checked by the next claim). [`StoreError::NotFound`] if
    /// the project has no such rule, [`StoreError::Conflict`] if another rule of the project
    /// has the new tag.
    async fn update_rate_limit(&self, update: UpdateRateLimit) -> StoreResult<RateLimit>;

    /// Deletes a rule of the project and makes the executions held back on its tag due again
    /// at `now`. [`StoreError::NotFound`] if there is none.
    async fn delete_rate_limit(
        &self,
        project_id: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()>;
}

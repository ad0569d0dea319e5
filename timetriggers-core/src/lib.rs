//! # TimeTriggers core
//!
//! The domain of the TimeTriggers HTTP scheduler: jobs, executions, projects and keys; the
//! [`Store`], [`Dispatcher`] and [`Clock`] traits; the pure scheduling rules; the delivery
//! [`Engine`]; and [`TimeTriggers`], the typed service API that the HTTP router and embedding
//! applications both call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{
//!     parse_when, Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, JobStatus,
//!     ManualClock, ScheduleRequest, ServiceConfig, Store, TimeTriggers, Timestamp, TriggerRef,
//!     When,
//! };
//! // Any `Store`: `SqliteStore`, `PgStore`, or here the in-memory one of examples/custom-store.
//! use example_custom_store::MemoryStore;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! let start = Timestamp::parse_rfc3339("2026-11-22T09:00:00Z").ok_or("bad time")?;
//! let clock = Arc::new(ManualClock::new(start)); // `SystemClock` outside tests
//! let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig::default())?);
//! let engine = Engine::new(store.clone(), dispatcher, clock.clone(), EngineConfig::default());
//! let service = TimeTriggers::new(store, clock.clone(), engine.signal(), ServiceConfig::default());
//!
//! // Schedule a POST for half an hour from now (the `ttr-scheduled-at` grammar).
//! let project = service.create_project("my-app").await?;
//! let When::At(half_past) = parse_when("now | add 30m", start)? else {
//!     return Err("not a time".into());
//! };
//! let job = service
//!     .schedule(&project.id, ScheduleRequest::new("POST", "https://example.com/hook").at(half_past))
//!     .await?;
//! assert_eq!(job.scheduled_at.to_rfc3339(), "2026-11-22T09:30:00.000Z");
//! assert_eq!(service.get_job(&project.id, &job.id).await?.status, JobStatus::Registered);
//!
//! // When a cron series would fire: weekdays at 9 in New York, asked on a Sunday.
//! let next = service.cron_next("0 9 * * 1-5", "America/New_York", start, 2)?;
//! assert_eq!(next[0].to_rfc3339(), "2026-11-23T14:00:00.000Z");
//!
//! // Cancel before it fires: at 09:30 the engine has nothing to send.
//! service.cancel(&project.id, TriggerRef::Id(job.id.clone())).await?;
//! assert_eq!(service.get_job(&project.id, &job.id).await?.status, JobStatus::Cancelled);
//! clock.set(half_past);
//! assert_eq!(engine.run_once().await?, 0);
//! # Ok(()) }
//! ```
//!
//! [`Engine::run_once`] is one synchronous round (tests, tools); a program spawns
//! [`Engine::run`], which claims what is due, sends it, records the outcomes and sleeps until
//! the next due time, until its shutdown future completes (`examples/embedded` delivers to a
//! real receiver that way).
//!
//! ## Where things are
//!
//! - **Service**: [`TimeTriggers`] (schedule, cancel, `/declare`, `/bulk`, reads, projects,
//!   keys, sign-up and sessions) and [`Dashboard`] (what a signed-in caller sees: projects,
//!   keys, job and execution listings, replay, rate-limit rules).
//! - **Pure rules**, functions of their inputs and an explicit `now`: [`lifecycle`]
//!   (create-or-reschedule and cancel tables, retries), [`declare`] (the `/declare` and
//!   `/bulk` diff), [`rules`] (the `ttr-scheduled-at` grammar, cron with DST, generator
//!   occurrences, rate-limit windows, the private-target guard), [`plan_replay`].
//! - **Traits**: [`Store`] (persistence; a backend reuses the rules above inside its
//!   transactions and proves itself with the conformance suite, module `testing` behind the
//!   `testing` feature: see `docs/writing-a-store.md` and `examples/custom-store`),
//!   [`Dispatcher`] (how a request is sent; [`HttpDispatcher`] is the real one) and [`Clock`]
//!   ([`SystemClock`], [`ManualClock`]).

#![warn(missing_docs)]

pub mod accounts;
mod dashboard;
pub mod declare;
mod dispatch;
mod engine;
mod error;
mod ids;
mod key_cache;
pub mod lifecycle;
mod model;
mod rate_limits;
mod request;
pub mod rules;
mod service;
mod store;
mod store_dashboard;
mod store_rate_limits;
mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use dashboard::{
    validate_project_slug, Caller, Credentials, Dashboard, ExecutionFilter, JobFilter,
    ListedExecutions, ListedJobs, LoggedIn, Paging, SessionToken, SignedUp, MAX_KEY_NAME_CHARS,
};
pub use declare::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, JobDeclaration, ManagedItem, SyncOperation,
    SyncOutcome, SyncResult, SyncStep,
};
pub use dispatch::{
    DispatchOutcome, DispatchRequest, Dispatcher, DispatcherBuildError, HttpDispatcher,
    HttpDispatcherConfig, ResponseSummary, RESPONSE_BODY_KEEP, RESPONSE_BODY_READ_LIMIT,
};
pub use engine::{Engine, EngineConfig, EngineSignal, INTERRUPTED};
pub use error::Error;
pub use ids::{random_secret, ApiKeyId, ExecutionId, JobId, ProjectId, RateLimitId, UserId};
pub use key_cache::API_KEY_CACHE_TTL;
pub use lifecycle::{FoundItem, ItemState, Refusal, UpsertPlan};
pub use model::{
    ApiKey, AuthenticatedKey, DeliveryOptions, Execution, ExecutionJob, ExecutionListing,
    ExecutionPage, ExecutionStatus, GeneratorLink, GeneratorStatus, HttpRequest, Job, JobKind,
    JobPage, JobStatus, LastAttempt, MonthQuota, Origin, Project, RateLimit, RateLimitState,
    SessionUser, TriggeredBy, User, UserCredentials, WindowLimits,
};
pub use rate_limits::{RateLimitPatch, MAX_RATE_LIMIT};
pub use request::{
    is_forwarded_header, normalize_tags, parse_flag, parse_tags, parse_when, ScheduleRequest, When,
};
pub use service::{
    cron_preview, hash_api_key, mask_api_key, parse_cron, CreatedApiKey, ServiceConfig,
    TimeTriggers, DEFAULT_PROJECT_SLUG,
};
pub use store::{
    Claim, ClaimedExecution, CompletedExecution, GeneratorDue, MaterializeGenerator, NewApiKey,
    NewOccurrence, NewProject, PendingOccurrence, PlannedRetry, StaleScope, Store, StoreError,
    StoreResult, TriggerDefinition, TriggerRef, TriggerSchedule, UpsertOperation, UpsertTrigger,
    Upserted,
};
pub use store_dashboard::{
    plan_replay, ExecutionQuery, HttpStatusFilter, JobQuery, NewSession, NewUser, ReplayJob,
    ReplayRefusal, Replayed,
};
pub use store_rate_limits::{NewRateLimit, UpdateRateLimit};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

//! # TimeTriggers core
//!
//! The domain of the TimeTriggers HTTP scheduler: jobs, executions, projects and keys; the
//! [`Store`], [`Dispatcher`] and [`Clock`] traits; the pure scheduling rules; the delivery
//! [`Engine`]; and [`TimeTriggers`], the typed service API that the HTTP router and embedding
//! applications both call.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn timetriggers_core::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{
//!     Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, ScheduleRequest, ServiceConfig,
//!     SystemClock, TimeTriggers, Timestamp,
//! };
//!
//! let clock = Arc::new(SystemClock);
//! let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig::default())?);
//! let engine = Engine::new(store.clone(), dispatcher, clock.clone(), EngineConfig::default());
//! let service = TimeTriggers::new(store, clock, engine.signal(), ServiceConfig::default());
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(async move { engine.run(async { let _ = stopped.await; }).await });
//!
//! let project = service.create_project("my-app").await?;
//! let in_ten_seconds = Timestamp::from_millis(service.now().as_millis() + 10_000);
//! let job = service
//!     .schedule(&project.id, ScheduleRequest::new("POST", "https://example.com/hook").at(in_ten_seconds))
//!     .await?;
//! println!("scheduled {}", job.id);
//!
//! let _ = stop.send(());
//! running.await?;
//! # Ok(()) }
//! ```

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
    DispatchOutcome, DispatchRequest, Dispatcher, HttpDispatcher, HttpDispatcherConfig,
    ResponseSummary, RESPONSE_BODY_KEEP, RESPONSE_BODY_READ_LIMIT,
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

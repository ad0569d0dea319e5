use std::time::Duration;

use bytes::Bytes;

use crate::ids::{JobId, ProjectId};
use crate::time::Timestamp;

/// The job lifecycle (API.md §5). Transitions are checked in [`crate::lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum JobStatus {
    /// Waiting for its time (or for a rate limit to open).
    Registered,
    /// Taken by an engine, or waiting between retry attempts.
    Queued,
    /// Being delivered.
    Running,
    /// Delivered (whatever the outcome); the outcome is on its execution.
    Completed,
    /// Cancelled before it was sent.
    Cancelled,
    /// Never sent: its time had passed and it was not to run missed.
    Skipped,
}

/// Whether a trigger id names a one-off job or a recurring generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum JobKind {
    /// A one-off job.
    Job,
    /// A cron series.
    Generator,
}

/// A generator's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum GeneratorStatus {
    /// Producing occurrences.
    Active,
    /// Stopped.
    Cancelled,
}

/// Which API created an item; `/declare` manages only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `/schedule` or the Rust API.
    Schedule,
    /// `/declare`.
    Declare,
    /// `/bulk`.
    Bulk,
}

/// The request a job replays: method, absolute URL, forwarded headers and raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Upper-case HTTP method.
    pub method: String,
    /// Absolute `http`/`https` URL.
    pub url: String,
    /// Header names (lower-case) and values, in request order.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Bytes,
}

/// How a job is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Total attempts allowed (1..=10).
    pub max_attempts: u32,
    /// How long the target has to answer.
    pub timeout: Duration,
}

impl DeliveryOptions {
    /// The default timeout (30 s).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            max_attempts: 1,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// The latest execution's outcome, denormalised onto the job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastAttempt {
    /// Attempt number of the latest execution (`None` before any).
    pub attempt_number: Option<u32>,
    /// Its HTTP status, if it got one.
    pub response_status: Option<u16>,
    /// Its transport error, if any.
    pub error_message: Option<String>,
}

/// Rate-limit bookkeeping on a job or execution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimitState {
    /// First time a rule held it back.
    pub limited_at: Option<Timestamp>,
    /// When it is re-checked.
    pub limited_until: Option<Timestamp>,
    /// The tags whose rules held it back.
    pub tags: Vec<String>,
}

/// A job's link to the generator that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorLink {
    /// The generator's id.
    pub id: JobId,
    /// The generator's custom key.
    pub custom_key: Option<String>,
    /// The generator's state.
    pub status: GeneratorStatus,
}

/// A one-off job (possibly an occurrence of a generator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// The project's slug (for display).
    pub project_slug: String,
    /// The caller's key, unique among the project's live items.
    pub custom_key: Option<String>,
    /// Display title.
    pub title: Option<String>,
    /// Lifecycle state.
    pub status: JobStatus,
    /// When it fires.
    pub scheduled_at: Timestamp,
    /// What it sends.
    pub request: HttpRequest,
    /// Tags, for rate limits and bulk cancel.
    pub tags: Vec<String>,
    /// Delivery options.
    pub options: DeliveryOptions,
    /// Which API created it.
    pub origin: Origin,
    /// When it was created.
    pub registered_at: Timestamp,
    /// When it was cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// When an engine took it.
    pub queued_at: Option<Timestamp>,
    /// When delivery began.
    pub started_at: Option<Timestamp>,
    /// When it completed.
    pub completed_at: Option<Timestamp>,
    /// The latest execution's outcome.
    pub last: LastAttempt,
    /// Rate-limit bookkeeping.
    pub rate_limited: RateLimitState,
    /// The generator that made it, if any.
    pub generator: Option<GeneratorLink>,
}

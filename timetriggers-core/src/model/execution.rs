use crate::ids::{ExecutionId, JobId, ProjectId};
use crate::model::RateLimitState;
use crate::time::Timestamp;

/// The execution lifecycle: `planned` → `started` → `complete`, or `planned` → `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum ExecutionStatus {
    /// Waiting for its time.
    Planned,
    /// Being delivered (under a lease).
    Started,
    /// Finished, whatever the outcome.
    Complete,
    /// Never started.
    Cancelled,
}

/// Why an execution exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum TriggeredBy {
    /// The first attempt, at the job's time.
    Scheduler,
    /// An automatic retry, or the dashboard's retry.
    Retry,
    /// A dashboard replay.
    Replay,
}

/// One attempt to deliver a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Its id.
    pub id: ExecutionId,
    /// The job it delivers.
    pub job_id: JobId,
    /// The job's project.
    pub project_id: ProjectId,
    /// 1 for the first attempt, then +1 per retry or replay.
    pub attempt_number: u32,
    /// Why it exists.
    pub triggered_by: TriggeredBy,
    /// Lifecycle state.
    pub status: ExecutionStatus,
    /// When it is (was) due.
    pub planned_at: Timestamp,
    /// When delivery began.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub completed_at: Option<Timestamp>,
    /// The target's status code, if it answered.
    pub response_status: Option<u16>,
    /// The target's response headers, if it answered.
    pub response_headers: Option<Vec<(String, String)>>,
    /// The target's body, at most 64 KiB (UTF-8, invalid bytes replaced).
    pub response_body: Option<String>,
    /// The full number of body bytes read.
    pub response_size: Option<u64>,
    /// The transport error (timeout, refused, interrupted…), if any.
    pub error_message: Option<String>,
    /// Rate-limit bookkeeping.
    pub rate_limited: RateLimitState,
}

//! Domain types: what the system stores and reports.

mod execution;
mod job;
mod project;

pub use execution::{Execution, ExecutionStatus, TriggeredBy};
pub use job::{
    DeliveryOptions, GeneratorLink, GeneratorStatus, HttpRequest, Job, JobKind, JobStatus,
    LastAttempt, Origin, RateLimitState,
};
pub use project::{ApiKey, AuthenticatedKey, MonthQuota, Project};

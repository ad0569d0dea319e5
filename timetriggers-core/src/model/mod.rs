//! Domain types: what the system stores and reports.

mod account;
mod execution;
mod job;
mod listing;
mod project;
mod rate_limit;

pub use account::{SessionUser, User, UserCredentials};
pub use execution::{Execution, ExecutionStatus, TriggeredBy};
pub use job::{
    DeliveryOptions, GeneratorLink, GeneratorStatus, HttpRequest, Job, JobKind, JobStatus,
    LastAttempt, Origin, RateLimitState,
};
pub use listing::{ExecutionJob, ExecutionListing, ExecutionPage, JobPage};
pub use project::{ApiKey, AuthenticatedKey, MonthQuota, Project};
pub use rate_limit::{RateLimit, WindowLimits};

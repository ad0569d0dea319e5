//! Parameter types of the rate-limit methods of [`crate::Store`].

use crate::ids::{ProjectId, RateLimitId};
use crate::model::WindowLimits;
use crate::time::Timestamp;

/// A new rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRateLimit {
    /// Its id.
    pub id: RateLimitId,
    /// Its project.
    pub project_id: ProjectId,
    /// The tag it limits (already validated).
    pub tag: String,
    /// The limits.
    pub limits: WindowLimits,
    /// Creation time (also its `updated_at`).
    pub now: Timestamp,
}

/// The new state of an existing rule (the service has merged the caller's changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRateLimit {
    /// The rule.
    pub id: RateLimitId,
    /// Its project (a rule of another project is [`crate::StoreError::NotFound`]).
    pub project_id: ProjectId,
    /// Its tag from now on.
    pub tag: String,
    /// Its limits from now on.
    pub limits: WindowLimits,
    /// The current time: its `updated_at`, and when held-back jobs are re-checked.
    pub now: Timestamp,
}

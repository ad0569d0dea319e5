use crate::ids::{ApiKeyId, ProjectId};
use crate::time::Timestamp;

/// A project's monthly allowance of billable operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthQuota {
    /// No limit (`"Infinity"` on the wire).
    Unlimited,
    /// At most this many units per calendar month (UTC).
    Limited(u64),
}

impl MonthQuota {
    /// What is left after `used` units, `None` when unlimited.
    pub fn remaining(self, used: u64) -> Option<u64> {
        match self {
            MonthQuota::Unlimited => None,
            MonthQuota::Limited(n) => Some(n.saturating_sub(used)),
        }
    }

    /// As stored: `None` for unlimited.
    pub fn as_option(self) -> Option<u64> {
        match self {
            MonthQuota::Unlimited => None,
            MonthQuota::Limited(n) => Some(n),
        }
    }

    /// From the stored form.
    pub fn from_option(v: Option<u64>) -> Self {
        v.map_or(MonthQuota::Unlimited, MonthQuota::Limited)
    }
}

/// A project: owns API keys, jobs, generators and rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Unique, URL-safe name (`^[a-z0-9_-]{3,40}$`).
    pub slug: String,
    /// Monthly allowance.
    pub month_quota: MonthQuota,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An API key as listed: the secret itself is never stored, only its hash and a masked prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// The project the key acts for.
    pub project_id: ProjectId,
    /// Display name.
    pub name: String,
    /// The first characters of the secret followed by `…`.
    pub masked: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The result of authenticating a request by API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    /// The key's id.
    pub key_id: ApiKeyId,
    /// The project it is scoped to.
    pub project_id: ProjectId,
}

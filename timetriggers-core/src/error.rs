//! The core [`Error`]: what a service call can fail with, independent of HTTP. The http crate
//! holds the one table from these variants to status codes.

use crate::lifecycle::Refusal;
use crate::store::StoreError;

/// Why a service call failed. Messages are meant for the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is invalid; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The project's monthly quota is used up.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such item in the caller's projects.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule (slug, email) was violated.
    #[error("{0}")]
    Conflict(String),
    /// The item is no longer in a state that allows this.
    #[error("{0}")]
    Gone(String),
    /// The store is unreachable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; the message is not for callers.
    #[error("internal error: {0}")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Error::Unavailable(format!("store unavailable: {m}")),
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict(m) => Error::Conflict(m),
            other => Error::Internal(other),
        }
    }
}

impl Error {
    /// Maps a lifecycle refusal about `what` (e.g. `trigger "abc"`) to an error.
    pub fn from_refusal(refusal: Refusal, what: &str) -> Self {
        match refusal {
            Refusal::NotFound => Error::NotFound(format!("{what} not found")),
            Refusal::Gone => Error::Gone(format!(
                "{what} is no longer registered (already queued, running, completed, cancelled or skipped)"
            )),
            Refusal::CustomKeyTaken => Error::BadRequest(format!(
                "ttr-custom-key is already held by another live item ({what})"
            )),
            Refusal::QuotaExceeded => {
                Error::QuotaExceeded("the project's monthly quota is used up".into())
            }
        }
    }
}

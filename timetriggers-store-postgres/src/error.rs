//! The one place where sqlx errors become [`StoreError`]s. Query code never matches on sqlx
//! errors: it calls `.map_err(from_sqlx)`.

use std::fmt;

use timetriggers_core::StoreError;

/// Maps a sqlx error.
///
/// - `Unavailable` (retryable: the API answers 503, the engine backs off and tries again): the
///   pool timed out or is closed, the connection failed or was lost (I/O, TLS), or the server
///   said "not now": class `08` (connection exception), `57P01` admin shutdown, `57P02` crash
///   shutdown, `57P03` cannot connect now (starting up or shutting down), `57014` statement
///   cancelled, class `53` (out of disk, memory or connections), `40001` serialization failure,
///   `40P01` deadlock, `55P03` lock not available.
/// - `Conflict`: `23505` unique violation.
/// - `Backend`: anything else (a bug, a broken schema, a bad configuration).
pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code == "23505" {
                StoreError::Conflict(db.message().to_owned())
            } else if is_transient(&code) {
                StoreError::Unavailable(format!("{} ({code})", db.message()))
            } else {
                StoreError::backend(sqlx::Error::Database(db))
            }
        }
        other => StoreError::backend(other),
    }
}

/// SQLSTATEs that mean "not now" rather than "wrong".
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01" | "55P03"
        )
}

/// The store was closed (its background task stopped).
pub(crate) fn closed() -> StoreError {
    StoreError::Unavailable("the PostgreSQL store is closed".into())
}
/// Maps a migration failure.
pub(crate) fn from_migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => from_sqlx(inner),
        other => StoreError::backend(other),
    }
}

/// A configuration mistake (bad URL, bad schema name), reported as a backend error with a
/// message that says what to fix.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A configuration error as a [`StoreError`].
pub(crate) fn config(message: impl Into<String>) -> StoreError {
    StoreError::backend(ConfigError(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_and_pool_failures_are_unavailable() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        ] {
            assert!(
                matches!(from_sqlx(e), StoreError::Unavailable(_)),
                "should be retryable"
            );
        }
        assert!(matches!(
            from_sqlx(sqlx::Error::RowNotFound),
            StoreError::Backend { .. }
        ));
    }

    #[test]
    fn sqlstates_that_mean_not_now() {
        for code in [
            "08000", "08006", "08001", "57P01", "57P02", "57P03", "53300", "53100", "40001",
            "40P01", "55P03", "57014",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "42601", "22P02", "XX000", ""] {
            assert!(!is_transient(code), "{code}");
        }
    }
}

//! The one place where sqlx errors become [`StoreError`]s. Query code never matches on sqlx
//! errors: it calls `.map_err(from_sqlx)`.

use std::fmt;

use timetriggers_core::StoreError;

/// SQLite primary result codes that mean "not now" rather than "wrong": the database is busy or
/// locked past the busy timeout, the disk is full or failing, or the file cannot be opened.
const UNAVAILABLE_CODES: [i64; 5] = [
    5,  // SQLITE_BUSY
    6,  // SQLITE_LOCKED
    10, // SQLITE_IOERR
    13, // SQLITE_FULL
    14, // SQLITE_CANTOPEN
];

/// Maps a sqlx error: pool timeout, closed pool, I/O, busy or locked → `Unavailable`; unique
/// violations → `Conflict`; anything else → `Backend`.
pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            // Extended result codes carry the primary code in their low byte.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(code) if UNAVAILABLE_CODES.contains(&code) => {
                    StoreError::Unavailable(db.message().to_owned())
                }
                _ => StoreError::backend(sqlx::Error::Database(db)),
            }
        }
        other => StoreError::backend(other),
    }
}

/// Maps a migration failure.
pub(crate) fn from_migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => from_sqlx(inner),
        other => StoreError::backend(other),
    }
}

/// A copy of `e` for another caller (a failed batch answers each of its operations).
pub(crate) fn duplicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Backend { source } => StoreError::corrupt(source.to_string()),
        other => StoreError::corrupt(other.to_string()),
    }
}

/// The writer task is gone: the store was closed (or its task stopped).
pub(crate) fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

/// A configuration mistake (bad URL, unusable path), reported as a backend error with a
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

//! The one place where SQLite errors become [`StoreError`]s. Query code never matches on
//! rusqlite errors: it goes through the helpers of [`crate::sql`], which call [`from_sqlite`].
//! sqlx errors only come from running the migrations at open ([`from_migrate`]).

use std::fmt;

use rusqlite::ffi;
use timetriggers_core::StoreError;

/// SQLite primary result codes that mean "not now" rather than "wrong": the database is busy or
/// locked past the busy timeout, the disk is full or failing, or the file cannot be opened.
const UNAVAILABLE_CODES: [i32; 5] = [
    ffi::SQLITE_BUSY,
    ffi::SQLITE_LOCKED,
    ffi::SQLITE_IOERR,
    ffi::SQLITE_FULL,
    ffi::SQLITE_CANTOPEN,
];

/// Maps a rusqlite error: unique or primary-key violations → `Conflict`; busy, locked, I/O
/// error, disk full, cannot open → `Unavailable`; anything else → `Backend`.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e {
        let message = || message.clone().unwrap_or_else(|| e.to_string());
        if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        {
            return StoreError::Conflict(message());
        }
        // Extended result codes carry the primary code in their low byte.
        if UNAVAILABLE_CODES.contains(&(failure.extended_code & 0xff)) {
            return StoreError::Unavailable(message());
        }
    }
    StoreError::backend(e)
}

/// Maps an error of the sqlx connection that runs the migrations.
pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
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

/// The writer or the readers are gone: the store was closed (or its threads stopped).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(extended_code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended_code), Some("msg".into()))
    }

    #[test]
    fn sqlite_codes_map_to_store_errors() {
        assert!(matches!(
            from_sqlite(failure(ffi::SQLITE_CONSTRAINT_UNIQUE)),
            StoreError::Conflict(m) if m == "msg"
        ));
        assert!(matches!(
            from_sqlite(failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)),
            StoreError::Conflict(_)
        ));
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_BUSY_SNAPSHOT,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_FULL,
            ffi::SQLITE_CANTOPEN,
        ] {
            assert!(
                matches!(from_sqlite(failure(code)), StoreError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            ffi::SQLITE_CONSTRAINT_NOTNULL,
            ffi::SQLITE_ERROR,
        ] {
            assert!(
                matches!(from_sqlite(failure(code)), StoreError::Backend { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            from_sqlite(rusqlite::Error::QueryReturnedNoRows),
            StoreError::Backend { .. }
        ));
    }
}

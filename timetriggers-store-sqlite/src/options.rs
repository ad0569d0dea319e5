//! Database URLs and connection settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use timetriggers_core::StoreResult;

use crate::error::config;

/// How long a statement waits for a lock held by another connection (a checkpoint, another
/// process that ignores the advisory lock) before it reports `Unavailable`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections (WAL readers never block the writer nor each other).
pub(crate) const READERS: u32 = 4;

/// How long a read waits for a free connection before it reports `Unavailable`.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The file path of a `sqlite:` URL: `sqlite://PATH` or `sqlite:PATH`, the path relative or
/// absolute (`sqlite:///abs/path` is absolute). In-memory databases and query parameters are
/// refused: the store needs one file shared by its writer and its readers.
pub(crate) fn path_from_url(url: &str) -> StoreResult<PathBuf> {
    let usage = "expected sqlite://PATH or sqlite:PATH (e.g. sqlite://timetriggers.db or \
                 sqlite:///var/lib/timetriggers/db.sqlite)";
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| config(format!("not a SQLite URL: {url:?}; {usage}")))?;
    if rest.is_empty() {
        return Err(config(format!(
            "the SQLite URL {url:?} names no file; {usage}"
        )));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(config(format!(
            "the SQLite URL {url:?} has parameters, which are not supported; {usage}"
        )));
    }
    if rest == ":memory:" || rest.starts_with("file:") {
        return Err(config(format!(
            "the SQLite URL {url:?} is not a plain file; the store needs a file on disk; {usage}"
        )));
    }
    Ok(PathBuf::from(rest))
}

fn tuned(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .statement_cache_capacity(256)
        .pragma("mmap_size", "268435456") // 256 MiB
        .pragma("temp_store", "memory")
}

/// The writer's connection: creates the file, WAL, `synchronous = NORMAL` (a commit survives a
/// killed process; only an OS crash or power loss can lose the last commits).
pub(crate) fn writer(path: &Path) -> SqliteConnectOptions {
    tuned(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-65536") // 64 MiB
        .pragma("journal_size_limit", "67108864") // keep the WAL file under 64 MiB at rest
        .optimize_on_close(true, 400)
}

/// A reader's connection: read-only, on the file the writer put in WAL mode.
pub(crate) fn reader(path: &Path) -> SqliteConnectOptions {
    tuned(path).read_only(true).pragma("cache_size", "-16384") // 16 MiB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_relative_and_absolute_files() {
        let ok = |u: &str| path_from_url(u).unwrap();
        assert_eq!(
            ok("sqlite://timetriggers.db"),
            PathBuf::from("timetriggers.db")
        );
        assert_eq!(
            ok("sqlite:timetriggers.db"),
            PathBuf::from("timetriggers.db")
        );
        assert_eq!(ok("sqlite://data/tt.db"), PathBuf::from("data/tt.db"));
        assert_eq!(
            ok("sqlite:///var/lib/tt.db"),
            PathBuf::from("/var/lib/tt.db")
        );
        assert_eq!(ok("sqlite:/var/lib/tt.db"), PathBuf::from("/var/lib/tt.db"));
    }

    #[test]
    fn other_urls_are_refused_with_a_clear_message() {
        for bad in [
            "postgres://localhost/db",
            "timetriggers.db",
            "sqlite://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://tt.db?mode=rwc",
            "sqlite:file:tt.db",
        ] {
            let err = path_from_url(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite://PATH"), "{bad}: {err}");
        }
    }
}

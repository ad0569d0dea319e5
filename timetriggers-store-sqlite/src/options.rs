//! Database URLs and connection settings: how the writer's and the readers' rusqlite
//! connections are opened, and the sqlx connection that runs the migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use timetriggers_core::StoreResult;

use crate::error::{config, from_sqlite};

/// How long a statement waits for a lock held by another connection (a checkpoint, another
/// process that ignores the advisory lock) before it reports `Unavailable`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections, one thread each (WAL readers never block the writer nor each other).
pub(crate) const READERS: usize = 4;

/// Prepared statements kept per writer connection: every statement the store runs, with room
/// to spare for the dashboard's filter combinations.
pub(crate) const WRITER_STATEMENT_CACHE: usize = 256;

/// Prepared statements kept per reader connection.
pub(crate) const READER_STATEMENT_CACHE: usize = 128;

// Memory. The target is a server RSS of at most 48 MB with 1,000,000 pending jobs, so SQLite's
// share is kept small and bounded. Memory-mapped pages count in the process's RSS (every page
// of the file a query ever touched stays resident), so mmap is off and reads go through the
// page caches below, whose size is fixed. The writer's cache holds the indexes the claim and
// the upserts walk; a reader needs less (its queries are seeks, and a page it misses comes
// from the operating system's file cache, not the disk).

/// `PRAGMA mmap_size`: no memory-mapped I/O.
pub(crate) const MMAP_SIZE: i64 = 0;

/// `PRAGMA cache_size` of the writer: negative means KiB, so 4 MiB. New jobs and executions
/// have time-ordered ids and due times, so inserts touch the right edges of the indexes and
/// claims the left edge of the due index: a small working set. Measured with W3 (a million
/// pending): 4 MiB schedules as fast as 8 MiB, with a peak RSS of 41 MB instead of 48 MB.
pub(crate) const WRITER_CACHE_SIZE: i64 = -4096;

/// `PRAGMA cache_size` of each reader: 1 MiB.
pub(crate) const READER_CACHE_SIZE: i64 = -1024;

/// `PRAGMA wal_autocheckpoint` of the writer: checkpoints run on their own thread
/// ([`crate::checkpoint`]); the writer checkpoints itself only if the WAL reaches this many
/// pages (40 MiB), which means the checkpointer is behind.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// `PRAGMA journal_size_limit`: the WAL file is truncated to 64 MiB at rest.
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// `PRAGMA analysis_limit` for the `PRAGMA optimize` the writer runs when it closes.
const ANALYSIS_LIMIT: i64 = 400;

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

/// The settings every connection shares.
fn tune(conn: &Connection, statement_cache: usize, cache_size: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(statement_cache);
    // `execute_batch` steps each PRAGMA once and ignores the row some of them answer with.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = {cache_size}; PRAGMA mmap_size = {MMAP_SIZE};"
    ))
}

/// Opens the writer's connection: creates the file, WAL, `synchronous = NORMAL` (a commit
/// survives a killed process; only an OS crash or power loss can lose the last commits).
pub(crate) fn open_writer(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = || -> rusqlite::Result<(Connection, String)> {
        let conn = Connection::open_with_flags(path, flags)?;
        tune(&conn, WRITER_STATEMENT_CACHE, WRITER_CACHE_SIZE)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}; \
             PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
        ))?;
        Ok((conn, mode))
    };
    let (conn, mode) = open().map_err(from_sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(config(format!(
            "the SQLite database {} cannot use WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    Ok(conn)
}

/// Opens the checkpointer's connection: read-write (a checkpoint writes the database file),
/// on the file the writer put in WAL mode; it runs checkpoints and nothing else.
pub(crate) fn open_checkpointer(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -256; PRAGMA mmap_size = {MMAP_SIZE};"
        ))?;
        Ok(conn)
    };
    open().map_err(from_sqlite)
}

/// Opens a reader's connection: read-only, on the file the writer put in WAL mode.
pub(crate) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(path, flags)?;
        tune(&conn, READER_STATEMENT_CACHE, READER_CACHE_SIZE)?;
        Ok(conn)
    };
    open().map_err(from_sqlite)
}

/// What the writer runs before it closes its connection: lets SQLite refresh the statistics
/// its planner uses, looking at no more than [`ANALYSIS_LIMIT`] rows per index.
pub(crate) fn optimize(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA analysis_limit = {ANALYSIS_LIMIT}; PRAGMA optimize;"
    ))
}

/// The sqlx connection that runs the migrations at open (and is closed right after), so that
/// the schema's history stays in sqlx's `_sqlx_migrations` table as before.
pub(crate) fn migrations(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
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

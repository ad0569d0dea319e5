//! WAL checkpoints off the writer's thread.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a *checkpoint* copies them
//! back into the database file (and syncs it). By default SQLite runs one inside the commit
//! that takes the WAL past 1,000 pages, on the committing connection, so the writer would
//! spend a sixth of its time copying pages while every caller waits. Here a thread of its own,
//! with its own connection, runs a `PASSIVE` checkpoint (which never waits for the writer or
//! the readers, nor makes them wait) shortly after commits, and the writer's automatic
//! checkpoint is only a safety net ([`options::WRITER_AUTOCHECKPOINT_PAGES`]) for a
//! checkpointer that falls behind.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use timetriggers_core::{StoreError, StoreResult};

use crate::options;

/// How long after a commit the checkpoint runs; commits within it share one checkpoint.
const DELAY: Duration = Duration::from_millis(100);

/// The name of the checkpointer's thread.
const THREAD_NAME: &str = "tt-sqlite-ckpt";

#[derive(Default)]
struct State {
    /// Commits happened since the last checkpoint.
    dirty: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The checkpointer thread; owned by the writer's thread, which stops it before it closes.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection on `path` and starts the thread.
    pub(crate) fn spawn(path: &Path) -> StoreResult<Checkpointer> {
        let conn = options::open_checkpointer(path)?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn({
                let shared = shared.clone();
                move || run(&conn, &shared)
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer committed: checkpoint soon.
    pub(crate) fn committed(&self) {
        let mut state = self.shared.lock();
        if !state.dirty {
            state.dirty = true;
            self.shared.wake.notify_one();
        }
    }

    /// Stops the thread (after a last checkpoint of what is pending) and waits for it.
    pub(crate) fn stop(mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite checkpointer thread panicked");
            }
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        let mut state = shared.lock();
        while !state.dirty && !state.stop {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if !state.dirty {
            break; // stopping, nothing left to copy
        }
        // Let more commits pile up behind this one (unless the store is closing).
        let (mut state, _) = shared
            .wake
            .wait_timeout_while(state, DELAY, |s| !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        state.dirty = false;
        let stop = state.stop;
        drop(state);
        checkpoint(conn);
        if stop {
            break;
        }
    }
}

/// One `PASSIVE` checkpoint: copies what it can without waiting for anyone.
fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match done {
        Ok((wal_pages, copied)) => {
            tracing::trace!(wal_pages, copied, "SQLite checkpoint");
        }
        Err(e) => {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the writer's own checkpoint remains")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn commits_reach_the_database_file_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.db");
        let writer = options::open_writer(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let checkpointer = Checkpointer::spawn(&path).unwrap();
        let before = file_len(&path);
        // 400 KiB committed: in the WAL only, below the writer's own checkpoint threshold.
        writer
            .execute_batch("INSERT INTO t VALUES (zeroblob(409600))")
            .unwrap();
        assert!(file_len(&path) < before + 409_600, "not checkpointed yet");
        checkpointer.committed();
        // Stopping runs the pending checkpoint before the thread ends.
        checkpointer.stop();
        assert!(
            file_len(&path) >= before + 409_600,
            "the pages were copied into the database file"
        );
    }

    #[test]
    fn stop_without_commits_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle.db");
        let _writer = options::open_writer(&path).unwrap();
        let checkpointer = Checkpointer::spawn(&path).unwrap();
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            checkpointer.stop();
            let _ = done.send(());
        });
        // Generous: an idle checkpointer has nothing to wait for.
        stopped
            .recv_timeout(Duration::from_secs(10))
            .expect("stop returns without a pending checkpoint");
    }
}

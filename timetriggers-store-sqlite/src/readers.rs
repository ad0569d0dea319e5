//! The readers: a few read-only connections, each owned by its own OS thread, serving one
//! shared queue of reads.
//!
//! A read is a plain function over a [`rusqlite::Connection`]; [`Readers::read`] queues it and
//! awaits its answer. An idle thread sleeps on the queue; a busy one takes the next read as
//! soon as it is done with the last, so a burst of reads costs one wake-up per thread, not one
//! per statement. In WAL mode the readers never wait for the writer nor for each other.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use timetriggers_core::{StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::error::closed;
use crate::options;

/// A queued read; it sends its own answer.
type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The queue the reader threads share.
#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    /// Signalled when a read is queued or the queue closes.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing runs while the lock is held that could panic; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next read, waiting for one; `None` once the queue is closed and empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The reader threads and their queue. Dropping it stops the threads once the queue drains.
pub(crate) struct Readers {
    queue: Arc<Queue>,
    /// One per thread; its sender is dropped when that thread has closed its connection.
    finished: Mutex<Vec<oneshot::Receiver<()>>>,
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.queue.lock();
        f.debug_struct("Readers")
            .field("queued", &state.jobs.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl Readers {
    /// Opens `count` read-only connections on `path` and starts a thread for each.
    pub(crate) fn open(path: &Path, count: usize) -> StoreResult<Readers> {
        let conns = (0..count.max(1))
            .map(|_| options::open_reader(path))
            .collect::<StoreResult<Vec<_>>>()?;
        let readers = Readers {
            queue: Arc::new(Queue::default()),
            finished: Mutex::new(Vec::with_capacity(conns.len())),
        };
        for (i, conn) in conns.into_iter().enumerate() {
            let (finished_tx, finished) = oneshot::channel::<()>();
            let queue = readers.queue.clone();
            std::thread::Builder::new()
                .name(format!("tt-sqlite-reader-{i}"))
                .spawn(move || serve(conn, &queue, finished_tx))
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start a SQLite reader thread: {e}"))
                })?;
            readers
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(finished);
        }
        Ok(readers)
    }

    /// Runs `f` on a reader connection (outside any transaction: a single statement reads one
    /// snapshot; several that must agree use [`crate::sql::snapshot`]).
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::corrupt("a read panicked")));
            let _ = reply.send(result);
        });
        {
            let mut state = self.queue.lock();
            if state.closed {
                return Err(closed());
            }
            state.jobs.push_back(job);
        }
        self.queue.ready.notify_one();
        answer.await.map_err(|_| closed())?
    }

    /// Refuses new reads, lets the threads answer what is queued and close their connections;
    /// returns once they have.
    pub(crate) async fn close(&self) {
        self.queue.close();
        let finished =
            std::mem::take(&mut *self.finished.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in finished {
            let _ = thread.await;
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// A reader thread.
fn serve(conn: Connection, queue: &Queue, finished: oneshot::Sender<()>) {
    while let Some(job) = queue.next() {
        job(&conn);
        if !conn.is_autocommit() {
            // A read left a transaction open (it failed halfway): end it, or this connection
            // would keep reading an old snapshot.
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "ending a SQLite read transaction");
            }
        }
    }
    drop(conn);
    drop(finished);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_run_concurrently_and_close_refuses_the_next_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        options::open_writer(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let readers = Arc::new(Readers::open(&path, 2).unwrap());

        // Two reads that wait for each other can only finish if two threads serve them.
        let (a_in, a_seen) = std::sync::mpsc::channel::<()>();
        let (b_in, b_seen) = std::sync::mpsc::channel::<()>();
        let read = |tell: std::sync::mpsc::Sender<()>, wait: std::sync::mpsc::Receiver<()>| {
            let readers = readers.clone();
            tokio::spawn(async move {
                readers
                    .read(move |conn| {
                        tell.send(()).unwrap();
                        wait.recv().unwrap();
                        crate::sql::fetch_one(conn, "SELECT v FROM t", [], crate::sql::first::<i64>)
                    })
                    .await
            })
        };
        let a = read(a_in, b_seen);
        let b = read(b_in, a_seen);
        assert_eq!(a.await.unwrap().unwrap(), 7i64);
        assert_eq!(b.await.unwrap().unwrap(), 7i64);

        let failed: StoreResult<i64> = readers
            .read(|_| Err(StoreError::corrupt("on purpose")))
            .await;
        assert!(failed.is_err());
        readers.close().await;
        let after: StoreResult<i64> = readers.read(|_| Ok(1)).await;
        assert!(
            matches!(after, Err(StoreError::Unavailable(_))),
            "{after:?}"
        );
    }
}

//! The single writer: one connection, owned by one OS thread, performs every write.
//!
//! Callers send boxed operations over a bounded queue. The thread sleeps until the first one
//! arrives, takes everything else already queued behind it (up to [`MAX_BATCH`]) without
//! sleeping again, and runs the lot in one `BEGIN IMMEDIATE … COMMIT`, each operation inside
//! its own `SAVEPOINT`, so that a failing operation is rolled back alone and reports its own
//! error. A batch of one needs no savepoint (SQLite copies every page a savepoint touches into
//! its sub-journal): the transaction is rolled back instead. Answers are sent only after `COMMIT` succeeds, so every `Ok` is durable; if `COMMIT`
//! fails, every operation of the batch gets the error.
//!
//! One writer means SQLite never sees two writers at once ("database is locked" cannot happen
//! inside this process), and group commit turns many concurrent API calls into one fsync-free
//! WAL append per batch (`synchronous = NORMAL`). Operations are plain functions over a
//! [`rusqlite::Connection`] and run on the thread that owns it: a statement costs a call into
//! SQLite, not a hand-over to another thread, and a whole batch costs one wake-up.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use timetriggers_core::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Checkpointer;
use crate::error::{closed, duplicate};
use crate::lock::FileLock;
use crate::options;
use crate::sql::execute;

/// Most operations committed together.
pub(crate) const MAX_BATCH: usize = 512;

/// Operations waiting for the writer; senders wait when it is full (back-pressure).
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// The name of the writer's thread (as `top -H` or a profiler shows it).
const THREAD_NAME: &str = "tt-sqlite-writer";

/// One queued operation, type-erased so that one queue carries every kind.
trait BatchOp: Send {
    /// Runs the operation; returns whether it succeeded (its result is kept for later).
    fn execute(&mut self, conn: &Connection) -> bool;
    /// The batch committed: answer with the kept result.
    fn commit(self: Box<Self>);
    /// The batch failed as a whole: answer with `err` (or the operation's own error).
    fn fail(self: Box<Self>, err: StoreError);
}

struct Op<T, F> {
    f: Option<F>,
    /// Whether a result is kept (its savepoint released) or rolled back; either way it is the
    /// answer once the batch commits.
    keep: fn(&StoreResult<T>) -> bool,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> BatchOp for Op<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn execute(&mut self, conn: &Connection) -> bool {
        let result = match self.f.take() {
            // A panic is that operation's failure: its savepoint is rolled back like any other.
            Some(f) => catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::corrupt("a write operation panicked"))),
            None => Err(StoreError::corrupt("a write operation ran twice")),
        };
        let keep = (self.keep)(&result);
        self.result = Some(result);
        keep
    }

    fn commit(self: Box<Self>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::corrupt("a write operation never ran")));
        // The caller may have gone away; its operation is committed all the same.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let result = match self.result {
            Some(Err(own)) => Err(own),
            _ => Err(err),
        };
        let _ = self.reply.send(result);
    }
}

enum Msg {
    Op(Box<dyn BatchOp>),
    Close(oneshot::Sender<()>),
}

/// The handle to the writer thread. Dropping every handle stops the thread once the queue
/// drains.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl Writer {
    /// Starts the writer thread over `conn`, the connection [`options::open_writer`] opened on
    /// `path` (it reopens `path` the same way if the connection breaks); `lock` is held until
    /// the thread ends.
    pub(crate) fn spawn(conn: Connection, path: PathBuf, lock: FileLock) -> StoreResult<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(conn, &path, rx, lock))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the writer's next transaction and answers once it is committed. `f` runs
    /// inside a savepoint of the batch's transaction and must not begin or end transactions;
    /// if it fails, what it wrote is rolled back.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f, |result| result.is_ok()).await
    }

    /// Like [`Writer::write`] for an operation that may refuse (`Ok(Err(refusal))`): a refusal
    /// is answered, and what the operation wrote before refusing is rolled back, so that a
    /// refused call changes nothing.
    pub(crate) async fn write_or_refuse<T, E, F>(&self, f: F) -> StoreResult<Result<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<Result<T, E>> + Send + 'static,
    {
        self.submit(f, |result| matches!(result, Ok(Ok(_)))).await
    }

    async fn submit<T, F>(&self, f: F, keep: fn(&StoreResult<T>) -> bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            f: Some(f),
            keep,
            result: None,
            reply,
        };
        self.tx
            .send(Msg::Op(Box::new(op)))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Whether the thread has stopped taking operations.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Asks the thread to finish what is queued, close its connection and release the file
    /// lock; returns once it has.
    pub(crate) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// The writer thread.
fn run(mut conn: Connection, path: &Path, mut rx: mpsc::Receiver<Msg>, lock: FileLock) {
    let mut ops: Vec<Box<dyn BatchOp>> = Vec::with_capacity(MAX_BATCH);
    let mut closers = Vec::new();
    let checkpointer = match Checkpointer::spawn(path) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer thread; the writer checkpoints itself");
            if let Err(e) = conn.execute_batch("PRAGMA wal_autocheckpoint = 1000") {
                tracing::warn!(error = %e, "PRAGMA wal_autocheckpoint");
            }
            None
        }
    };
    while closers.is_empty() {
        // Sleep until there is work, then take what is already queued without sleeping again.
        let Some(first) = rx.blocking_recv() else {
            break; // every handle is gone
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Op(op) => ops.push(op),
                Msg::Close(done) => {
                    closers.push(done);
                    break;
                }
            }
            if ops.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if ops.is_empty() {
            continue;
        }
        if run_batch(&conn, &mut ops) {
            if let Some(c) = &checkpointer {
                c.committed();
            }
        } else {
            recover(&mut conn, path);
        }
    }
    // Refuse whatever is still queued, then shut down.
    rx.close();
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Op(op) => op.fail(closed()),
            Msg::Close(done) => closers.push(done),
        }
    }
    if let Some(c) = checkpointer {
        c.stop();
    }
    if let Err(e) = options::optimize(&conn) {
        tracing::debug!(error = %e, "PRAGMA optimize before closing the SQLite writer");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
    drop(lock);
    for done in closers {
        let _ = done.send(());
    }
}

/// Runs one batch (and empties `ops`); returns `false` if the batch failed as a whole.
fn run_batch(conn: &Connection, ops: &mut Vec<Box<dyn BatchOp>>) -> bool {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        for op in ops.drain(..) {
            op.fail(duplicate(&e));
        }
        return false;
    }
    if ops.len() == 1 {
        return run_alone(conn, ops);
    }
    let mut failure = None;
    for op in ops.iter_mut() {
        if let Err(e) = control(conn, "SAVEPOINT op") {
            failure = Some(e);
            break;
        }
        let end = if op.execute(conn) {
            control(conn, "RELEASE op")
        } else {
            control(conn, "ROLLBACK TO op").and_then(|()| control(conn, "RELEASE op"))
        };
        if let Err(e) = end {
            // SQLite rolled the whole transaction back on its own (I/O error, disk full), so
            // the savepoint is gone and what follows would run outside it: the batch stops.
            failure = Some(e);
            break;
        }
    }
    if failure.is_none() {
        failure = control(conn, "COMMIT").err();
    }
    let Some(err) = failure else {
        for op in ops.drain(..) {
            op.commit();
        }
        return true;
    };
    tracing::warn!(error = %err, ops = ops.len(), "SQLite write batch rolled back");
    if !conn.is_autocommit() {
        if let Err(e) = control(conn, "ROLLBACK") {
            tracing::warn!(error = %e, "ROLLBACK after a failed batch");
        }
    }
    for op in ops.drain(..) {
        op.fail(duplicate(&err));
    }
    false
}

/// A batch of one operation, inside `BEGIN IMMEDIATE` already: no savepoint, since the
/// transaction holds nothing else; if the operation fails or refuses, the whole transaction
/// is rolled back and the operation answered with its own result.
fn run_alone(conn: &Connection, ops: &mut Vec<Box<dyn BatchOp>>) -> bool {
    let Some(mut op) = ops.pop() else {
        return true;
    };
    let end = if op.execute(conn) {
        control(conn, "COMMIT")
    } else {
        control(conn, "ROLLBACK")
    };
    match end {
        Ok(()) => {
            op.commit();
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "SQLite write rolled back");
            if !conn.is_autocommit() {
                if let Err(e) = control(conn, "ROLLBACK") {
                    tracing::warn!(error = %e, "ROLLBACK after a failed write");
                }
            }
            op.fail(err);
            false
        }
    }
}

/// After a failed batch: if the connection no longer reads the file, or is stuck inside a
/// transaction, open a new one.
fn recover(conn: &mut Connection, path: &Path) {
    let answers = conn
        .query_row("PRAGMA schema_version", [], |_| Ok(()))
        .is_ok();
    if answers && conn.is_autocommit() {
        return;
    }
    match options::open_writer(path) {
        Ok(fresh) => {
            tracing::warn!("reopened the SQLite writer connection");
            drop(std::mem::replace(conn, fresh));
        }
        Err(e) => tracing::error!(error = %e, "cannot reopen the SQLite writer connection"),
    }
}

/// A transaction-control statement (prepared once, like every other statement).
fn control(conn: &Connection, sql: &str) -> StoreResult<()> {
    execute(conn, sql, []).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{fetch_all, first};

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let path = dir.path().join("w.db");
        let lock = crate::lock::acquire(&path).await.unwrap();
        let conn = options::open_writer(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        Writer::spawn(conn, path, lock).unwrap()
    }

    fn insert(id: i64) -> impl FnOnce(&Connection) -> StoreResult<i64> + Send + 'static {
        move |conn| {
            execute(conn, "INSERT INTO t (id, v) VALUES (?1, 'x')", [id])?;
            Ok(id)
        }
    }

    async fn ids(w: &Writer, table: &'static str) -> Vec<i64> {
        w.write(move |conn| {
            fetch_all(
                conn,
                &format!("SELECT * FROM {table} ORDER BY 1"),
                [],
                first,
            )
        })
        .await
        .unwrap()
    }

    /// Holds the writer inside an operation until `release` fires, so that what is queued
    /// meanwhile forms the next batch.
    async fn hold(w: &Writer) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (entered_tx, entered) = oneshot::channel::<()>();
        let (release, released) = oneshot::channel::<()>();
        let w2 = w.clone();
        let held = tokio::spawn(async move {
            w2.write(move |_conn| {
                let _ = entered_tx.send(());
                // On the writer's own thread, outside the runtime: blocking is allowed.
                let _ = released.blocking_recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        entered.await.unwrap();
        (release, held)
    }

    async fn queued(w: &Writer, n: usize) {
        while w.tx.max_capacity() - w.tx.capacity() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_operation_is_rolled_back_alone_within_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;

        type BoxedOp = Box<dyn FnOnce(&Connection) -> StoreResult<i64> + Send>;
        let spawn = |f: BoxedOp| {
            let w = w.clone();
            tokio::spawn(async move { w.write(f).await })
        };
        let a = spawn(Box::new(insert(1)));
        // Writes a row, then fails (whatever order the three land in the queue): the row must
        // go with it.
        let b = spawn(Box::new(|conn: &Connection| {
            insert(2)(conn)?;
            insert(2)(conn)
        }));
        let c = spawn(Box::new(insert(3)));
        queued(&w, 3).await;
        release.send(()).unwrap();
        held.await.unwrap();

        assert_eq!(a.await.unwrap().unwrap(), 1);
        assert!(matches!(b.await.unwrap(), Err(StoreError::Conflict(_))));
        assert_eq!(c.await.unwrap().unwrap(), 3);
        assert_eq!(ids(&w, "t").await, vec![1, 3]);
        w.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_operation_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;
        let a = tokio::spawn({
            let w = w.clone();
            async move { w.write(insert(1)).await }
        });
        let b = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(|conn: &Connection| -> StoreResult<i64> {
                    insert(2)(conn)?;
                    panic!("boom")
                })
                .await
            }
        });
        queued(&w, 2).await;
        release.send(()).unwrap();
        held.await.unwrap();

        assert_eq!(a.await.unwrap().unwrap(), 1);
        let b: StoreResult<i64> = b.await.unwrap();
        assert!(matches!(b, Err(StoreError::Backend { .. })), "{b:?}");
        assert_eq!(ids(&w, "t").await, vec![1]);
        w.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_come_only_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;
        let (inserted_tx, inserted) = oneshot::channel::<()>();
        let (go_tx, go) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let w = w.clone();
            async move { w.write(insert(1)).await }
        });
        queued(&w, 1).await;
        // Queued behind `first`, in the same batch: lets the test look before the commit.
        let second = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(move |conn| {
                    let _ = inserted_tx.send(());
                    let _ = go.blocking_recv();
                    insert(2)(conn)
                })
                .await
            }
        });
        queued(&w, 2).await;
        release.send(()).unwrap();
        held.await.unwrap();
        inserted.await.unwrap();
        // `first` has run but its batch is not committed: no answer, and another connection
        // does not see its row.
        tokio::task::yield_now().await;
        assert!(!first.is_finished());
        let outside = Connection::open(&path).unwrap();
        let seen: i64 = outside
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 0);
        go_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        let seen: i64 = outside
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 2);
        w.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_operation_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;

        let ok = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|conn| execute(conn, "INSERT INTO parent (id) VALUES (1)", []))
                    .await
            })
        };
        // A deferred foreign key passes its statement and breaks the COMMIT.
        let breaks_commit = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|conn| execute(conn, "INSERT INTO child (p) VALUES (999)", []))
                    .await
            })
        };
        queued(&w, 2).await;
        release.send(()).unwrap();
        held.await.unwrap();

        assert!(ok.await.unwrap().is_err(), "not committed, so not Ok");
        assert!(breaks_commit.await.unwrap().is_err());
        assert!(ids(&w, "parent").await.is_empty());
        assert!(ids(&w, "child").await.is_empty());
        // The writer goes on.
        assert_eq!(w.write(insert(7)).await.unwrap(), 7);
        w.close().await;
    }

    /// A batch of one runs without a savepoint: what a failing or refusing operation wrote
    /// is still rolled back, its own answer still reaches the caller, and a failed commit
    /// still fails it.
    #[tokio::test]
    async fn an_operation_alone_in_its_batch_is_rolled_back_on_failure_or_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;

        let failed = w
            .write(|conn| {
                insert(1)(conn)?;
                insert(1)(conn)
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        let refused = w
            .write_or_refuse(|conn| {
                insert(2)(conn)?;
                Ok(Err::<(), _>("refused"))
            })
            .await;
        assert_eq!(refused.unwrap(), Err("refused"));
        let breaks_commit = w
            .write(|conn| execute(conn, "INSERT INTO child (p) VALUES (999)", []))
            .await;
        assert!(breaks_commit.is_err());
        assert!(ids(&w, "t").await.is_empty());
        assert!(ids(&w, "child").await.is_empty());
        // A kept one is committed.
        assert_eq!(w.write(insert(3)).await.unwrap(), 3);
        assert_eq!(ids(&w, "t").await, vec![3]);
        w.close().await;
    }

    #[tokio::test]
    async fn close_answers_after_the_queue_and_refuses_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;
        assert_eq!(w.write(insert(1)).await.unwrap(), 1);
        w.close().await;
        assert!(w.is_closed());
        assert!(matches!(
            w.write(insert(2)).await,
            Err(StoreError::Unavailable(_))
        ));
        // The lock was released with the writer.
        let again = crate::lock::acquire(&dir.path().join("w.db")).await;
        assert!(again.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_is_queued_before_close_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;
        let queued_ops: Vec<_> = (1..=5)
            .map(|id| {
                let w = w.clone();
                tokio::spawn(async move { w.write(insert(id)).await })
            })
            .collect();
        queued(&w, 5).await;
        let closing = tokio::spawn({
            let w = w.clone();
            async move { w.close().await }
        });
        queued(&w, 6).await;
        release.send(()).unwrap();
        held.await.unwrap();
        closing.await.unwrap();
        for op in queued_ops {
            op.await.unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5);
    }
}

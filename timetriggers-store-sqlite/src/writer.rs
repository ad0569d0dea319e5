//! The single writer: one connection, owned by one task, performs every write.
//!
//! Callers send boxed operations over a queue. The task takes the first queued operation plus
//! everything else already queued (up to [`MAX_BATCH`]) and runs them in one
//! `BEGIN IMMEDIATE … COMMIT`, each inside its own `SAVEPOINT`, so that a failing operation is
//! rolled back alone and reports its own error. Answers are sent only after `COMMIT` succeeds,
//! so every `Ok` is durable; if `COMMIT` fails, every operation of the batch gets the error.
//!
//! One writer means SQLite never sees two writers at once ("database is locked" cannot happen
//! inside this process), and group commit turns many concurrent API calls into one fsync-free
//! WAL append each batch (`synchronous = NORMAL`).

use std::fmt;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use timetriggers_core::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::error::{closed, duplicate, from_sqlx};
use crate::lock::FileLock;

/// Most operations committed together.
pub(crate) const MAX_BATCH: usize = 512;

/// Operations waiting for the writer; senders wait when it is full (back-pressure).
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// What an operation does with the writer's connection. It runs inside a savepoint of the
/// batch's transaction and must not begin or end transactions itself.
pub(crate) type OpFuture<'c, T> = BoxFuture<'c, StoreResult<T>>;

/// One queued operation, type-erased so that one queue carries every kind.
trait BatchOp: Send {
    /// Runs the operation; returns whether it succeeded (its result is kept for later).
    fn execute<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// The batch committed: answer with the kept result.
    fn commit(self: Box<Self>);
    /// The batch failed as a whole: answer with `err` (or the operation's own error).
    fn fail(self: Box<Self>, err: StoreError);
}

struct Op<T, F> {
    f: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> BatchOp for Op<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c, T> + Send + 'static,
{
    fn execute<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = match self.f.take() {
                Some(f) => f(conn).await,
                None => Err(StoreError::corrupt("a write operation ran twice")),
            };
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
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

/// The handle to the writer task. Dropping every handle stops the task once the queue drains.
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
    /// Starts the writer task over `conn`. `options` reopen the connection if it breaks; `lock`
    /// is held until the task ends.
    pub(crate) fn spawn(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        lock: FileLock,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(conn, options, rx, lock));
        Writer { tx }
    }

    /// Runs `f` in the writer's next transaction and answers once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            f: Some(f),
            result: None,
            reply,
        };
        self.tx
            .send(Msg::Op(Box::new(op)))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Whether the task has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Asks the task to finish what is queued, close its connection and release the file lock;
    /// returns once it has.
    pub(crate) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

async fn run(
    mut conn: SqliteConnection,
    options: SqliteConnectOptions,
    mut rx: mpsc::Receiver<Msg>,
    lock: FileLock,
) {
    let mut msgs = Vec::with_capacity(MAX_BATCH);
    let mut closers = Vec::new();
    while closers.is_empty() && rx.recv_many(&mut msgs, MAX_BATCH).await > 0 {
        let mut ops = Vec::with_capacity(msgs.len());
        for msg in msgs.drain(..) {
            match msg {
                Msg::Op(op) => ops.push(op),
                Msg::Close(done) => closers.push(done),
            }
        }
        if !ops.is_empty() && !run_batch(&mut conn, ops).await {
            recover(&mut conn, &options).await;
        }
    }
    // Refuse whatever is still queued, then shut down.
    rx.close();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Op(op) => op.fail(closed()),
            Msg::Close(done) => closers.push(done),
        }
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
    drop(lock);
    for done in closers {
        let _ = done.send(());
    }
}

// Transaction control, fused so that each boundary between two operations costs one round
// trip to the connection's worker thread instead of two or three.
const BEGIN: &str = "BEGIN IMMEDIATE; SAVEPOINT op";
const NEXT_AFTER_OK: &str = "RELEASE op; SAVEPOINT op";
const NEXT_AFTER_ERR: &str = "ROLLBACK TO op; RELEASE op; SAVEPOINT op";
const COMMIT_AFTER_OK: &str = "RELEASE op; COMMIT";
const COMMIT_AFTER_ERR: &str = "ROLLBACK TO op; RELEASE op; COMMIT";

/// Runs one batch; returns `false` if the batch failed as a whole.
async fn run_batch(conn: &mut SqliteConnection, mut ops: Vec<Box<dyn BatchOp>>) -> bool {
    if let Err(e) = exec(conn, BEGIN).await {
        // BEGIN failed, or SAVEPOINT did inside a transaction that must not be left open.
        let _ = exec(conn, "ROLLBACK").await;
        for op in ops {
            op.fail(duplicate(&e));
        }
        return false;
    }
    let last = ops.len().saturating_sub(1);
    let mut failure = None;
    for (i, op) in ops.iter_mut().enumerate() {
        let ok = op.execute(conn).await;
        let boundary = match (i == last, ok) {
            (false, true) => NEXT_AFTER_OK,
            (false, false) => NEXT_AFTER_ERR,
            (true, true) => COMMIT_AFTER_OK,
            (true, false) => COMMIT_AFTER_ERR,
        };
        if let Err(e) = exec(conn, boundary).await {
            // Either COMMIT failed, or SQLite rolled the whole transaction back on its own (I/O
            // error, disk full) and what follows would run outside it: the batch stops here.
            failure = Some(e);
            break;
        }
    }
    let Some(err) = failure else {
        for op in ops {
            op.commit();
        }
        return true;
    };
    tracing::warn!(error = %err, ops = ops.len(), "SQLite write batch rolled back");
    if let Err(e) = exec(conn, "ROLLBACK").await {
        // Expected when SQLite already rolled back on its own.
        tracing::debug!(error = %e, "ROLLBACK after a failed batch");
    }
    for op in ops {
        op.fail(duplicate(&err));
    }
    false
}

/// After a failed batch: if the connection no longer answers, open a new one.
async fn recover(conn: &mut SqliteConnection, options: &SqliteConnectOptions) {
    if conn.ping().await.is_ok() {
        return;
    }
    match options.connect().await {
        Ok(fresh) => {
            tracing::warn!("reopened the SQLite writer connection");
            let old = std::mem::replace(conn, fresh);
            let _ = old.close_hard().await;
        }
        Err(e) => tracing::error!(error = %e, "cannot reopen the SQLite writer connection"),
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> StoreResult<()> {
    conn.execute(sql).await.map(|_| ()).map_err(from_sqlx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use sqlx::Row;

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let path = dir.path().join("w.db");
        let lock = crate::lock::acquire(&path).await.unwrap();
        let options = crate::options::writer(&path);
        let mut conn = options.connect().await.unwrap();
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .await
        .unwrap();
        Writer::spawn(conn, options, lock)
    }

    fn insert(id: i64) -> impl for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c, i64> {
        move |conn| {
            async move {
                sqlx::query("INSERT INTO t (id, v) VALUES (?1, 'x')")
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                Ok(id)
            }
            .boxed()
        }
    }

    async fn ids(w: &Writer, table: &'static str) -> Vec<i64> {
        w.write(move |conn| {
            async move {
                let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY 1"))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
            }
            .boxed()
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
                async move {
                    let _ = entered_tx.send(());
                    let _ = released.await;
                    Ok(())
                }
                .boxed()
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

        type BoxedOp = Box<dyn FnOnce(&mut SqliteConnection) -> OpFuture<'_, i64> + Send>;
        let spawn = |f: BoxedOp| {
            let w = w.clone();
            tokio::spawn(async move { w.write(f).await })
        };
        let a = spawn(Box::new(insert(1)));
        // Writes a row, then fails (whatever order the three land in the queue): the row must
        // go with it.
        let b = spawn(Box::new(|conn: &mut SqliteConnection| {
            async move {
                insert(2)(conn).await?;
                insert(2)(conn).await
            }
            .boxed()
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
    async fn a_failed_commit_fails_every_operation_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir).await;
        let (release, held) = hold(&w).await;

        let ok = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|conn| {
                    async move {
                        sqlx::query("INSERT INTO parent (id) VALUES (1)")
                            .execute(&mut *conn)
                            .await
                            .map_err(from_sqlx)?;
                        Ok(())
                    }
                    .boxed()
                })
                .await
            })
        };
        // A deferred foreign key passes its statement and breaks the COMMIT.
        let breaks_commit = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(|conn| {
                    async move {
                        sqlx::query("INSERT INTO child (p) VALUES (999)")
                            .execute(&mut *conn)
                            .await
                            .map_err(from_sqlx)?;
                        Ok(())
                    }
                    .boxed()
                })
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
}

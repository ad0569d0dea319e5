//! # TimeTriggers on SQLite
//!
//! [`SqliteStore`] implements [`timetriggers_core::Store`] on one SQLite file, for a single
//! server process that owns its data.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{
//!     EngineSignal, ScheduleRequest, ServiceConfig, Store, SystemClock, TimeTriggers, Timestamp,
//! };
//! use timetriggers_store_sqlite::SqliteStore;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("timetriggers.db");
//! // Creates the file if missing, runs the migrations and takes the file's lock.
//! let store = SqliteStore::connect(&format!("sqlite://{}", path.display())).await?;
//! store.ping().await?;
//! assert!(store.is_exclusive());
//!
//! // The service (and the engine, not started here) take it as `Arc<dyn Store>`.
//! let shared: Arc<dyn Store> = Arc::new(store.clone());
//! let signal = Arc::new(EngineSignal::new()); // `engine.signal()` when an engine runs
//! let service = TimeTriggers::new(shared, Arc::new(SystemClock), signal, ServiceConfig::default());
//! let project = service.create_project("docs").await?;
//! let in_an_hour = Timestamp::from_millis(service.now().as_millis() + 3_600_000);
//! let request = ScheduleRequest::new("POST", "https://example.com/hook").at(in_an_hour);
//! let job = service.schedule(&project.id, request).await?;
//!
//! // `close` commits what is queued and releases the lock; every `Ok` was already on disk.
//! store.close().await;
//! let reopened = SqliteStore::open(&path).await?;
//! let stored = reopened.get_job(&project.id, &job.id).await?.ok_or("the job is gone")?;
//! assert_eq!(stored.scheduled_at, in_an_hour);
//! reopened.close().await;
//! # Ok(()) }
//! ```
//!
//! ## Design
//!
//! - **Threads, not a driver's workers.** The store runs its SQL through
//!   [rusqlite](https://docs.rs/rusqlite) on threads of its own: one writer thread
//!   (`tt-sqlite-writer`) that owns the only read-write connection, and four reader threads
//!   (`tt-sqlite-reader-N`), each with a read-only connection. A store call hands one boxed
//!   closure to one of them over a queue and awaits its answer; the closure runs every statement
//!   of the call as a plain function call into SQLite, each statement prepared once per
//!   connection and then taken from its statement cache. A call thus costs one hand-over however
//!   many statements it runs (an upsert runs about six).
//! - **One writer, group commit.** The writer thread sleeps until an operation is queued, then
//!   takes it plus everything queued behind it (up to 512) and runs them in one
//!   `BEGIN IMMEDIATE … COMMIT`, each in its own `SAVEPOINT`: an operation that fails is rolled
//!   back alone and gets its own error, and nobody is answered before the `COMMIT` succeeds, so
//!   every `Ok` is committed. Concurrent API calls thus share commits and one wake-up, and never
//!   meet "database is locked". If a batch fails as a whole and the connection no longer reads
//!   the file, the writer opens a new one.
//! - **Readers** share one queue; in WAL mode they never wait for the writer nor each other. A
//!   read that needs several statements to agree (a dashboard page and its total) runs them in
//!   one read transaction.
//! - **Migrations** run at open through sqlx (`sqlx::migrate!`) on a connection that is closed
//!   right after, so files created before keep their `_sqlx_migrations` history; sqlx and
//!   rusqlite link the same bundled SQLite.
//! - **Memory** stays bounded whatever the backlog: no memory-mapped I/O (mapped pages count in
//!   the process's RSS), a 4 MiB page cache for the writer and 1 MiB per reader.
//! - **Durability**: WAL with `synchronous = NORMAL`. A committed write survives the process
//!   being killed (`kill -9`); only an operating-system crash or power loss can undo the last
//!   commits.
//! - **Rules stay in core**: `upsert_trigger` and `cancel_trigger` read what
//!   [`timetriggers_core::lifecycle::plan_upsert`] and [`timetriggers_core::lifecycle::plan_cancel`]
//!   need inside the writer's transaction and apply what they decide. SQL never reads the
//!   clock: every instant is a parameter.
//! - **Claims** are two statements whatever their size (`UPDATE … RETURNING`), served by a
//!   partial index over planned executions, so a million far-future jobs do not slow them.
//!   When some project has a rate-limit rule, the claim first walks the due executions in
//!   order and checks the ruled tags of each (one index seek per tag and window, whatever the
//!   tag's history), in the same transaction.
//! - **Exclusive**: [`Store::is_exclusive`](timetriggers_core::Store::is_exclusive) is `true`.
//!   On Unix the store holds an advisory `flock` on `<database>-lock` while it runs, so a second
//!   process (or a second store in the same process) cannot open the same file; `open` waits up
//!   to two seconds for a previous owner to let go. Elsewhere no lock is taken: run one process
//!   per file.
//!
//! Timestamps are stored as INTEGER milliseconds, ids as TEXT, headers and tags as JSON text,
//! request bodies as BLOBs. The schema lives in `migrations/`, embedded at compile time.

#![warn(missing_docs)]

mod accounts;
mod batch;
mod checkpoint;
mod dashboard;
mod engine;
mod error;
mod generators;
mod lock;
mod options;
#[cfg(test)]
mod plan_test;
mod projects;
mod rate_limits;
mod readers;
mod rows;
mod sql;
mod store;
mod sync;
mod triggers;
mod writer;

pub use store::SqliteStore;

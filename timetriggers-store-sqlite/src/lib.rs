//! # TimeTriggers on SQLite
//!
//! [`SqliteStore`] implements [`timetriggers_core::Store`] on one SQLite file, for a single
//! server process that owns its data.
//!
//! ```no_run
//! # async fn demo() -> Result<(), timetriggers_core::StoreError> {
//! use std::sync::Arc;
//! use timetriggers_core::Store;
//! use timetriggers_store_sqlite::SqliteStore;
//!
//! // Creates the file if missing and runs the migrations.
//! let store = SqliteStore::connect("sqlite://timetriggers.db").await?;
//! store.ping().await?;
//! let shared: Arc<dyn Store> = Arc::new(store.clone());
//! # drop(shared);
//! // ... hand `shared` to the engine and the service ...
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! ## Design
//!
//! - **One writer, group commit.** Every write runs on one connection owned by a writer task.
//!   The task takes the first queued operation plus everything queued behind it (up to 512)
//!   and runs them in one `BEGIN IMMEDIATE … COMMIT`, each in its own `SAVEPOINT`: an operation
//!   that fails is rolled back alone and gets its own error, and nobody is answered before the
//!   `COMMIT` succeeds, so every `Ok` is committed. Concurrent API calls thus share commits and
//!   never meet "database is locked".
//! - **Readers** are a pool of four read-only connections; in WAL mode they never wait for the
//!   writer.
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
mod rows;
mod store;
mod sync;
mod triggers;
mod writer;

pub use store::SqliteStore;

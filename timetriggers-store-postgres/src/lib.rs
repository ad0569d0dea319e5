//! # TimeTriggers on PostgreSQL
//!
//! [`PgStore`] implements [`timetriggers_core::Store`] on PostgreSQL, for any number of server
//! instances sharing one database: each due execution is delivered by exactly one of them, an
//! instance that dies has its in-flight executions recovered by the others when their leases
//! expire, and a job scheduled through one instance wakes the others at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, Store, SystemClock};
//! use timetriggers_store_postgres::PgStore;
//!
//! // Creates the schema `timetriggers` if missing and runs the migrations in it.
//! let store = PgStore::connect("postgres://tt:secret@localhost:5432/tt").await?;
//! store.ping().await?;
//! let shared: Arc<dyn Store> = Arc::new(store.clone());
//! let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig::default())?);
//! let engine = Engine::new(shared, dispatcher, Arc::new(SystemClock), EngineConfig::default());
//! // Wake this engine when another instance schedules something due soon.
//! let _listener = store.spawn_listener(engine.signal());
//! // ... run the engine and hand the store to the service ...
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! ## Design
//!
//! - **Own schema.** Every table, and sqlx's `_sqlx_migrations`, lives in one schema
//!   (`timetriggers` by default, [`PgStore::connect_with_schema`] for another), created if
//!   missing; the schema is the only entry of each connection's `search_path` (a startup
//!   parameter). Instances that start together migrate one after the other under an advisory
//!   lock.
//! - **Claims** are one statement: `SELECT … FOR NO KEY UPDATE OF e, j SKIP LOCKED` picks the
//!   earliest due planned executions and locks them with their jobs, then data-modifying CTEs
//!   start them under a lease (timeout + margin), mark the jobs `running`, release fired
//!   generator occurrences and bill them. Concurrent claimers skip each other's rows, so they
//!   never receive the same execution and never wait for each other.
//! - **Leases.** [`Store::is_exclusive`](timetriggers_core::Store::is_exclusive) is `false`:
//!   an execution left `started` by a dead instance is recovered by any engine once its lease
//!   has run out. Outcomes are fenced: only executions still `started` are completed.
//! - **Batched outcomes.** `complete_executions` is one statement for the whole batch
//!   (`unnest` of arrays): outcomes, planned retries and job updates.
//! - **Upserts** are one transaction each. Rows that the decision depends on are read
//!   `FOR NO KEY UPDATE`; concurrent upserts of one custom key are serialised by
//!   `pg_advisory_xact_lock` on (project, key); a finite quota locks its project row, an
//!   unlimited one charges a random shard of its usage so that a busy project has no hot row.
//!   Lock order is generator → job → execution everywhere, and the claim never waits, so
//!   there are no deadlocks by construction.
//! - **Cross-instance wake-up** by LISTEN/NOTIFY, without serialising commits: see
//!   [`PgStore::spawn_listener`] and `docs/postgres.md`.
//! - **Outages.** Pool checkouts time out after [`PgStoreOptions::acquire_timeout`] (3 s) and
//!   connection errors, admin shutdown (`57P01`) and the like map to
//!   [`StoreError::Unavailable`](timetriggers_core::StoreError::Unavailable): the API answers
//!   503, the engine backs off and resumes when the database is back.
//!
//! Instants are BIGINT milliseconds (SQL never reads the clock: every time is a parameter),
//! ids TEXT, request headers JSONB, tags `TEXT[]`, bodies BYTEA. The schema lives in
//! `migrations/`, embedded at compile time.

#![warn(missing_docs)]

mod accounts;
mod dashboard;
mod engine;
mod error;
mod generators;
mod notify;
mod options;
mod projects;
mod rate_limits;
mod rows;
mod store;
mod sync;
mod triggers;

#[cfg(feature = "testing")]
pub mod testing;

pub use notify::ListenerHandle;
pub use options::{PgStoreOptions, DEFAULT_SCHEMA};
pub use store::PgStore;

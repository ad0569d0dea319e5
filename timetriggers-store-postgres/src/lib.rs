//! # TimeTriggers on PostgreSQL
//!
//! [`PgStore`] implements [`timetriggers_core::Store`] on PostgreSQL, for any number of server
//! instances sharing one database: each due execution is delivered by exactly one of them, an
//! instance that dies has its in-flight executions recovered by the others when their leases
//! expire, and a job scheduled through one instance wakes the others at once.
//!
//! This example needs a server, so it runs against the one named by
//! `TIMETRIGGERS_TEST_DATABASE_URL` (`./scripts/test.sh` starts one) in a schema of its own,
//! and returns at once, printing a note, when the variable is unset: `cargo test --doc` then
//! checks that it compiles and no more. (The crate's own tests fail without a server; they are
//! never skipped.)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{
//!     Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, ScheduleRequest, ServiceConfig,
//!     Store, SystemClock, TimeTriggers, Timestamp,
//! };
//! use timetriggers_store_postgres::PgStore;
//!
//! let url = match std::env::var("TIMETRIGGERS_TEST_DATABASE_URL") {
//!     Ok(url) if !url.trim().is_empty() => url,
//!     _ => {
//!         println!("TIMETRIGGERS_TEST_DATABASE_URL is unset: no PostgreSQL to run against");
//!         return Ok(());
//!     }
//! };
//! // `PgStore::connect(&url)` creates the schema `timetriggers` if missing and runs the
//! // migrations in it; this example uses a schema of its own.
//! let schema = format!("timetriggers_doc_{}", std::process::id());
//! let store = PgStore::connect_with_schema(&url, &schema).await?;
//! store.ping().await?;
//! assert!(!store.is_exclusive(), "several instances may share the database");
//!
//! let shared: Arc<dyn Store> = Arc::new(store.clone());
//! let clock = Arc::new(SystemClock);
//! let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig::default())?);
//! let engine = Engine::new(shared.clone(), dispatcher, clock.clone(), EngineConfig::default());
//! // Wake this engine when another instance schedules something due soon.
//! let listener = store.spawn_listener(engine.signal());
//! let service = TimeTriggers::new(shared, clock, engine.signal(), ServiceConfig::default());
//!
//! let project = service.create_project("docs").await?;
//! let in_an_hour = Timestamp::from_millis(service.now().as_millis() + 3_600_000);
//! let request = ScheduleRequest::new("POST", "https://example.com/hook").at(in_an_hour);
//! let job = service.schedule(&project.id, request).await?;
//! assert_eq!(store.next_due_at().await?, Some(in_an_hour));
//! assert_eq!(service.get_job(&project.id, &job.id).await?.scheduled_at, in_an_hour);
//!
//! listener.stop();
//! # sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(store.pool()).await?;
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
mod batch;
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

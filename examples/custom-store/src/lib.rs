//! A custom storage backend: [`MemoryStore`] implements [`timetriggers_core::Store`] on a
//! `Mutex` around a few maps, so that what each method must do is not hidden behind SQL. It
//! passes the whole store conformance suite (`cargo test -p example-custom-store`), and the
//! binary runs the real `TimeTriggers` service and `Engine` on it.
//!
//! Run with: cargo run -p example-custom-store
//!
//! How it is built, as a real backend would be:
//!
//! - **Transactions**: every write works on a copy of the state that replaces it only when the
//!   whole method succeeded (and was not refused), so each call is all or nothing. A database
//!   backend gets this from `BEGIN … COMMIT`.
//! - **Core decides, the store applies**: create-or-reschedule and cancel follow
//!   [`timetriggers_core::lifecycle`], `/declare` and `/bulk` follow
//!   [`timetriggers_core::declare`], claims ask [`timetriggers_core::rules::rate_limit::admit`],
//!   replays [`timetriggers_core::plan_replay`]. Retries and generator planning are decided by
//!   the engine before it calls the store.
//! - **Time is a parameter**: every method that depends on the time receives `now`.
//!
//! Where to read: `store.rs` (the trait, method by method), `triggers.rs` (create, reschedule,
//! cancel, `/declare`, `/bulk`), `generators.rs`, `engine.rs` (claims, rate limits, outcomes,
//! leases), `dashboard.rs` (accounts, listings, replay, rate-limit rules), `state.rs` (the
//! tables). The guide is `docs/writing-a-store.md`.
//!
//! Everything lives in memory: nothing survives the process, and each write copies the state
//! (fine for tests and demos, not for production).

#![warn(missing_docs)]

mod dashboard;
mod engine;
mod generators;
mod state;
mod store;
mod triggers;

pub use store::MemoryStore;

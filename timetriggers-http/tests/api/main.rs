//! The HTTP API through the router, against the real SQLite store.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cancel;
mod common;
mod dashboard;
mod generators;
mod hostile;
mod openapi;
mod routes;
mod schedule;
mod sync;

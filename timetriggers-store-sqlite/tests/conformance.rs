//! The shared store conformance suite, on a real SQLite file in a temporary directory.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use timetriggers_core::testing::TestStore;
use timetriggers_store_sqlite::SqliteStore;

async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("conformance.db"))
        .await
        .expect("open the store");
    TestStore::new(Arc::new(store), dir)
}

timetriggers_core::store_conformance_tests!(sqlite_store);

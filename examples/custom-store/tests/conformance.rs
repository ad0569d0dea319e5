//! The store conformance suite of `timetriggers-core` (feature `testing`) on the in-memory
//! store: the same checks the SQLite and PostgreSQL stores pass, one `#[tokio::test]` each.

use std::sync::Arc;

use example_custom_store::MemoryStore;
use timetriggers_core::testing::TestStore;

/// A fresh store per check. The second argument of `TestStore::new` is the guard kept alive as
/// long as the store (a temporary directory, a throwaway schema); memory needs none.
async fn memory_store() -> TestStore {
    TestStore::new(Arc::new(MemoryStore::new()), ())
}

timetriggers_core::store_conformance_tests!(memory_store);

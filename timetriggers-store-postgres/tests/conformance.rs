//! The shared store conformance suite against a real PostgreSQL, each test in a schema of its
//! own (claims see every project's rows, so tests must not share one). The server comes from
//! `TIMETRIGGERS_TEST_DATABASE_URL`; without it every test fails with a message naming
//! `./scripts/test.sh`.

use timetriggers_store_postgres::testing::isolated_store;

timetriggers_core::store_conformance_tests!(isolated_store);

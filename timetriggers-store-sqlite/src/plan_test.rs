//! Test support: `EXPLAIN QUERY PLAN` against a fresh database, so tests can show that the hot
//! queries seek their indexes.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::ConnectOptions;

use crate::SqliteStore;

/// A migrated store in a temp dir and a read-only connection to explain queries on.
pub(crate) async fn explainer() -> (tempfile::TempDir, SqliteStore, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let conn = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    (dir, store, conn)
}

/// The query plan of `sql`, one detail line per step.
pub(crate) async fn plan(conn: &mut SqliteConnection, sql: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
}

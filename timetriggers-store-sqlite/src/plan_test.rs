//! Test support: `EXPLAIN QUERY PLAN` against a fresh database, so tests can show that the hot
//! queries seek their indexes.

use rusqlite::{Connection, OpenFlags};

use crate::SqliteStore;

/// A migrated store in a temp dir and a read-only connection to explain queries on.
pub(crate) async fn explainer() -> (tempfile::TempDir, SqliteStore, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    (dir, store, conn)
}

/// The query plan of `sql`, one detail line per step. Parameters stay unbound (NULL): the
/// plan does not depend on their values.
pub(crate) fn plan(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut lines = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        lines.push(row.get::<_, String>(3).unwrap());
    }
    lines.join("\n")
}

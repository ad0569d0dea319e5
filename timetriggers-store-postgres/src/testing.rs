//! Helpers for tests against a real PostgreSQL (feature `testing`).
//!
//! Tests find the server in `TIMETRIGGERS_TEST_DATABASE_URL` (`./scripts/test.sh` starts a
//! throwaway one with `scripts/pg.sh` when it is unset). When the variable is missing they
//! **fail** with a message saying so; they are never skipped silently.
//!
//! Isolation: [`isolated_store`] gives each test its own schema (the conformance suite), and
//! [`TestDatabase`] its own database (end-to-end tests, whose servers use the default schema).
//! Both are dropped when the guard is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use timetriggers_core::testing::TestStore;
use timetriggers_core::StoreResult;

use crate::error::from_sqlx;
use crate::{PgStore, PgStoreOptions, DEFAULT_SCHEMA};

/// The variable naming the PostgreSQL server tests use.
pub const DATABASE_URL_VAR: &str = "TIMETRIGGERS_TEST_DATABASE_URL";

/// The test server's URL, or a panic that says how to get one.
pub fn database_url() -> String {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{DATABASE_URL_VAR} is not set, so this PostgreSQL test cannot run. Run the tests \
             with ./scripts/test.sh (it starts a throwaway PostgreSQL with scripts/pg.sh), or \
             start one yourself: export {DATABASE_URL_VAR}=\"$(./scripts/pg.sh start)\" \
             (stop it with ./scripts/pg.sh stop). To run only the other tests: cargo test \
             --workspace --exclude timetriggers-store-postgres -- --skip postgres"
        ),
    }
}

/// A name unique to this process and call: `<prefix>_<pid>_<random>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:012x}",
        std::process::id(),
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

/// A store in a fresh schema of the test server, dropped with the returned [`TestStore`].
pub async fn isolated_store() -> TestStore {
    let (store, guard) = scratch_store("tt_test").await;
    TestStore::new(Arc::new(store), guard)
}

/// A [`PgStore`] in a fresh schema (named `<prefix>_…`) of the test server, and the guard that
/// closes it and drops the schema when dropped: for tests that need the store itself.
pub async fn scratch_store(prefix: &str) -> (PgStore, SchemaGuard) {
    let url = database_url();
    let schema = unique_name(prefix);
    let options = PgStoreOptions::with_schema(&schema).max_connections(8);
    let store = PgStore::connect_with(&url, options)
        .await
        .unwrap_or_else(|e| panic!("cannot open a PostgreSQL store on {DATABASE_URL_VAR}: {e}"));
    let guard = SchemaGuard {
        url,
        schema,
        store: store.clone(),
    };
    (store, guard)
}

/// Drops its schema (and everything in it) when dropped.
#[derive(Debug)]
pub struct SchemaGuard {
    url: String,
    schema: String,
    store: PgStore,
}

impl SchemaGuard {
    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        let store = self.store.clone();
        run_detached(&self.url, sql, Some(store));
    }
}

/// Runs one statement on a fresh connection, on a thread of its own (a `Drop` may run inside or
/// outside a runtime, or while one shuts down). Best effort: failures are printed.
fn run_detached(url: &str, sql: String, close_first: Option<PgStore>) {
    let url = url.to_owned();
    let done = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return eprintln!("cleanup: no runtime: {e}"),
        };
        rt.block_on(async move {
            if let Some(store) = close_first {
                store.close().await;
            }
            let result = async {
                let mut conn = PgConnection::connect(&url).await?;
                sqlx::raw_sql("SET lock_timeout = '10s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                conn.close().await
            }
            .await;
            if let Err(e) = result {
                eprintln!("cleanup `{sql}` failed: {e}");
            }
        });
    });
    let _ = done.join();
}

/// A database of its own on the test server, for end-to-end tests whose server processes use
/// the default schema. Dropped (`WITH (FORCE)`) when the guard is.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database on the server of [`DATABASE_URL_VAR`].
    pub async fn create() -> TestDatabase {
        TestDatabase::create_on(&database_url()).await
    }

    /// Creates a fresh database on the server of `admin_url`.
    pub async fn create_on(admin_url: &str) -> TestDatabase {
        let name = unique_name("tt_e2e");
        let mut conn = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = conn.close().await;
        TestDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        run_detached(&self.admin_url, sql, None);
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Row counts of a store's tables, for end-to-end checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Jobs by status.
    pub jobs: BTreeMap<String, i64>,
    /// Executions by status.
    pub executions: BTreeMap<String, i64>,
    /// Executions finished as interrupted (their instance died or their lease ran out).
    pub interrupted: i64,
    /// `started` executions by the worker (engine) that claimed them; an engine's worker id
    /// starts with its process id and `-`.
    pub started_by: BTreeMap<String, i64>,
}

impl Census {
    /// Jobs in `status`.
    pub fn jobs_in(&self, status: &str) -> i64 {
        self.jobs.get(status).copied().unwrap_or(0)
    }

    /// Executions in `status`.
    pub fn executions_in(&self, status: &str) -> i64 {
        self.executions.get(status).copied().unwrap_or(0)
    }

    /// `started` executions claimed by the engine of process `pid`.
    pub fn started_by_process(&self, pid: u32) -> i64 {
        let prefix = format!("{pid}-");
        self.started_by
            .iter()
            .filter(|(worker, _)| worker.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Counts the jobs and executions of the store in `schema` (default: the default schema) of
/// the database at `url`.
pub async fn census(url: &str, schema: Option<&str>) -> StoreResult<Census> {
    let schema = schema.unwrap_or(DEFAULT_SCHEMA);
    crate::options::check_schema(schema)?;
    let mut conn = PgConnection::connect(url).await.map_err(from_sqlx)?;
    let count =
        |table: &str| format!("SELECT status, COUNT(*) FROM \"{schema}\".{table} GROUP BY status");
    let jobs: Vec<(String, i64)> = sqlx::query_as(&count("jobs"))
        .fetch_all(&mut conn)
        .await
        .map_err(from_sqlx)?;
    let executions: Vec<(String, i64)> = sqlx::query_as(&count("executions"))
        .fetch_all(&mut conn)
        .await
        .map_err(from_sqlx)?;
    let interrupted: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM \"{schema}\".executions WHERE error_message = $1"
    ))
    .bind(timetriggers_core::INTERRUPTED)
    .fetch_one(&mut conn)
    .await
    .map_err(from_sqlx)?;
    let started_by: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT COALESCE(worker, ''), COUNT(*) FROM \"{schema}\".executions \
         WHERE status = 'started' GROUP BY 1"
    ))
    .fetch_all(&mut conn)
    .await
    .map_err(from_sqlx)?;
    let _ = conn.close().await;
    Ok(Census {
        jobs: jobs.into_iter().collect(),
        executions: executions.into_iter().collect(),
        interrupted,
        started_by: started_by.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_keeping_parameters() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5433/postgres", "x"),
            "postgres://u:p@127.0.0.1:5433/x"
        );
        assert_eq!(
            with_database("postgres://h:1/db?sslmode=disable", "x"),
            "postgres://h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}

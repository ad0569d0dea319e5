//! What a wake-up NOTIFY costs writers, and what the store's scheme costs instead.
//!
//! ```text
//! export TIMETRIGGERS_TEST_DATABASE_URL="$(./scripts/pg.sh start)"
//! cargo bench -p timetriggers-store-postgres --features testing --bench notify
//! ```
//!
//! Four runs of `WRITERS` concurrent writers for `SECONDS` each. The cost of a NOTIFY inside a
//! transaction is a database-wide lock held from pre-commit until the commit's WAL flush, so it
//! shows with durable commits: run it against a server with `fsync = on` and
//! `synchronous_commit = on` (the throwaway server of `scripts/pg.sh` has both off; turn them
//! on with `ALTER SYSTEM SET fsync = on; ALTER SYSTEM SET synchronous_commit = on; SELECT
//! pg_reload_conf();`). The bench prints which it got.
//!
//! 1. `insert`: a one-row insert per transaction (the baseline);
//! 2. `insert + NOTIFY in the transaction`: what a store that notifies on every insert does;
//! 3. `PgStore upsert, due in an hour`: the real upsert, which announces nothing;
//! 4. `PgStore upsert, due now`: the real upsert, whose due time is announced after commit,
//!    coalesced (at most one NOTIFY per 5 ms per store).
//!
//! It prints commits per second and, for 4, how many NOTIFYs a listener received.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use timetriggers_core::testing::{definition, project, upsert};
use timetriggers_core::{MonthQuota, Store, Timestamp};
use timetriggers_store_postgres::testing::{database_url, unique_name};
use timetriggers_store_postgres::{PgStore, PgStoreOptions};

const WRITERS: usize = 16;
const SECONDS: u64 = 5;

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// Runs `WRITERS` copies of `op` for `SECONDS`; returns operations per second.
async fn run<F, Fut>(op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (op, stop, done) = (op.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                op(w).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = database_url();
    let schema = unique_name("tt_bench");
    let options = PgStoreOptions::with_schema(&schema).max_connections(WRITERS as u32);
    let store = PgStore::connect_with(&url, options).await.unwrap();
    let channel = format!("{schema}_due");

    let raw = PgPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect(&url)
        .await
        .unwrap();
    let setting = |name: &'static str| {
        let raw = raw.clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
                .fetch_one(&raw)
                .await
                .unwrap()
        }
    };
    let (fsync, sync_commit) = (setting("fsync").await, setting("synchronous_commit").await);
    sqlx::raw_sql(&format!(
        "CREATE TABLE \"{schema}\".bench (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)"
    ))
    .execute(&raw)
    .await
    .unwrap();
    println!(
        "{WRITERS} writers, {SECONDS} s per run, fsync = {fsync}, synchronous_commit = {sync_commit}"
    );

    let insert = format!("INSERT INTO \"{schema}\".bench (payload) VALUES ('x')");
    let pool = raw.clone();
    let sql = insert.clone();
    let plain = run(move |_| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&sql).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    })
    .await;
    println!("insert                                  {plain:>9.0} commits/s");

    let pool = raw.clone();
    let (sql, ch) = (insert.clone(), channel.clone());
    let notified = run(move |_| {
        let (pool, sql, ch) = (pool.clone(), sql.clone(), ch.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&sql).execute(&mut *tx).await.unwrap();
            sqlx::query("SELECT pg_notify($1, '0')")
                .bind(&ch)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    })
    .await;
    println!("insert + NOTIFY in the transaction      {notified:>9.0} commits/s");

    let p = project(&store, MonthQuota::Unlimited).await;
    let (s, pid) = (store.clone(), p.id.clone());
    let later = run(move |_| {
        let (s, pid) = (s.clone(), pid.clone());
        async move {
            let t = now();
            let def = definition(
                "https://example.com/",
                Timestamp::from_millis(t.as_millis() + 3_600_000),
            );
            s.upsert_trigger(upsert(&pid, None, None, def, t))
                .await
                .unwrap()
                .unwrap();
        }
    })
    .await;
    println!("PgStore upsert, due in an hour          {later:>9.0} upserts/s");

    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen(&channel).await.unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let counting = tokio::spawn(async move {
        while listener.recv().await.is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let (s, pid) = (store.clone(), p.id.clone());
    let soon = run(move |_| {
        let (s, pid) = (s.clone(), pid.clone());
        async move {
            let t = now();
            s.upsert_trigger(upsert(
                &pid,
                None,
                None,
                definition("https://example.com/", t),
                t,
            ))
            .await
            .unwrap()
            .unwrap();
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    counting.abort();
    let n = received.load(Ordering::Relaxed);
    println!(
        "PgStore upsert, due now (coalesced)     {soon:>9.0} upserts/s, {n} NOTIFYs ({:.0}/s)",
        n as f64 / SECONDS as f64
    );

    store.close().await;
    raw.close().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

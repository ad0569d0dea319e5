//! Throughput of the SQLite store on this machine: `cargo bench -p timetriggers-store-sqlite`.
//!
//! Measures concurrent upserts (group commit), claim + complete cycles, and claim latency with
//! many far-future jobs pending. Sizes: `BENCH_UPSERTS` (default 20000), `BENCH_PENDING`
//! (default 200000; try 1000000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use timetriggers_core::testing::{
    at, claim, definition, finished, ok_response, project, upsert, T0,
};
use timetriggers_core::{MonthQuota, Store};
use timetriggers_store_sqlite::SqliteStore;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{n} in {:.2?} ({:.0}/s)", d, n as f64 / d.as_secs_f64())
}

async fn upserts(store: &Arc<SqliteStore>, total: usize, tasks: usize, fire: i64) {
    let p = project(&**store, MonthQuota::Unlimited).await;
    let per_task = total / tasks;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            let pid = p.id.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let def = definition("https://example.com/", at(fire + i as i64));
                    store
                        .upsert_trigger(upsert(&pid, None, None, def, T0))
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    println!(
        "upsert, {tasks} concurrent callers: {}",
        rate(per_task * tasks, started.elapsed())
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path().join("bench.db"))
                .await
                .unwrap(),
        );
        let n = env("BENCH_UPSERTS", 20_000);

        upserts(&store, n, 1, 0).await;
        upserts(&store, n, 64, 0).await;

        // Everything so far is due at T0 + a few seconds: claim and complete it all.
        let now = at(1_000_000);
        let started = Instant::now();
        let mut total = 0;
        loop {
            let batch = store.claim_due(claim(now, 512)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            let done: Vec<_> = batch
                .iter()
                .map(|c| finished(c, ok_response(), now))
                .collect();
            store.complete_executions(&done).await.unwrap();
            total += batch.len();
        }
        println!(
            "claim + complete, batches of 512: {}",
            rate(total, started.elapsed())
        );

        // Far-future backlog: claims and next_due_at must not notice it.
        let pending = env("BENCH_PENDING", 200_000);
        upserts(&store, pending, 64, 365 * 24 * 3_600_000).await;
        let p = project(&*store, MonthQuota::Unlimited).await;
        for i in 0..512 {
            let def = definition("https://example.com/", at(2_000_000 + i));
            store
                .upsert_trigger(upsert(&p.id, None, None, def, T0))
                .await
                .unwrap()
                .unwrap();
        }
        let started = Instant::now();
        let next = store.next_due_at().await.unwrap();
        println!(
            "next_due_at with {pending} pending: {:.2?}",
            started.elapsed()
        );
        assert_eq!(next, Some(at(2_000_000)));
        let started = Instant::now();
        let batch = store.claim_due(claim(at(3_000_000), 512)).await.unwrap();
        println!(
            "claim of 512 with {pending} pending far in the future: {:.2?}",
            started.elapsed()
        );
        assert_eq!(batch.len(), 512);
        store.close().await;
    });
}

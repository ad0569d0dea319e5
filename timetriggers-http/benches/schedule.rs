//! Throughput of `POST /schedule` through the router against the real SQLite store, with
//! concurrent callers (no network: `tower::ServiceExt::oneshot`). Run with
//! `cargo bench -p timetriggers-http --bench schedule`; `TT_BENCH_REQUESTS` and
//! `TT_BENCH_CONCURRENCY` override the defaults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::Router;
use http::Request;
use timetriggers_core::{EngineSignal, ServiceConfig, SystemClock, TimeTriggers};
use timetriggers_http::{router, AppState, HttpConfig};
use timetriggers_store_sqlite::SqliteStore;
use tower::ServiceExt;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(
    app: &Router,
    label: &str,
    total: usize,
    concurrency: usize,
    make: fn(&str) -> Request<Body>,
    key: &str,
) {
    let started = Instant::now();
    let per_task = total / concurrency;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let app = app.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let res = app.clone().oneshot(make(&key)).await.unwrap();
                assert_eq!(res.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let done = per_task * concurrency;
    println!(
        "{label}: {done} requests, {concurrency} concurrent, {:.2} s, {:.0} req/s",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
}

fn schedule_request(key: &str) -> Request<Body> {
    Request::post("/schedule")
        .header("ttr-api-key", key)
        .header("ttr-url", "https://example.com/hook")
        .header("ttr-scheduled-at", "2030-01-01T00:00:00Z")
        .header("ttr-tags", "bench,load")
        .header("content-type", "application/json")
        .header("x-request-id", "abc123")
        .body(Body::from(r#"{"hello":"world"}"#))
        .unwrap()
}

fn health_request(_key: &str) -> Request<Body> {
    Request::get("/health").body(Body::empty()).unwrap()
}

fn main() {
    let total = env_or("TT_BENCH_REQUESTS", 40_000);
    let concurrency = env_or("TT_BENCH_CONCURRENCY", 64).max(1);
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
        let service = TimeTriggers::new(
            store,
            Arc::new(SystemClock),
            Arc::new(EngineSignal::new()),
            ServiceConfig::default(),
        );
        let project = service.create_project("bench").await.unwrap();
        let key = service
            .create_api_key(&project.id, "bench")
            .await
            .unwrap()
            .secret;
        let app = router(AppState::new(service, HttpConfig::default()));
        run(
            &app,
            "GET /health",
            total,
            concurrency,
            health_request,
            &key,
        )
        .await;
        run(
            &app,
            "POST /schedule",
            total,
            concurrency,
            schedule_request,
            &key,
        )
        .await;
    });
}

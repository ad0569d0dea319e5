//! End to end: a per-tag rate limit on the real server binary with a real target on
//! 127.0.0.1, on a temporary SQLite file and on PostgreSQL with two server instances sharing
//! the database (from `TIMETRIGGERS_TEST_DATABASE_URL`, as `./scripts/test.sh` provides). The
//! rule is created through `/rate-limits` with the bootstrap API key, ten immediate jobs carry
//! the tag, and the target sees them at most two per second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use timetriggers_store_postgres::testing::TestDatabase;

const TAG: &str = "e2e-limited";
const PATH: &str = "/limited";

/// How much closer than one second two arrivals that started a second apart may land at the
/// target. The server limits *starts* (the claim instant, in whole milliseconds); the target
/// stamps *arrivals*, which come after the start by the dispatch latency (connection, request
/// write, scheduling of two busy cores), a few milliseconds that vary from request to request.
/// If the earlier of two requests is delayed more than the later one, their arrivals are closer
/// than their starts. A real breach of the limit (a third start inside the second) puts two
/// arrivals milliseconds apart, far below this bound.
const JITTER_MS: i64 = 250;

async fn dashboard(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client()
        .request(method, server.url(path))
        .header("ttr-api-key", API_KEY);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_limited_to_two_per_second_is_delivered_two_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("rl.db"));
    two_per_second(&[&server]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_together_keep_a_tag_to_two_per_second() {
    let db = TestDatabase::create().await;
    let a = Server::start_on(db.url(), &[]);
    let b = Server::start_on(db.url(), &[]);
    two_per_second(&[&a, &b]).await;
}

/// Creates the rule on the first server, schedules ten tagged jobs alternately on each, and
/// checks the arrivals and the dashboard.
async fn two_per_second(servers: &[&Server]) {
    let target = Target::start().await;
    let server = servers[0];

    let rule = dashboard(
        server,
        reqwest::Method::POST,
        "/rate-limits",
        Some(json!({"tag": TAG, "maxPerSecond": 2})),
    )
    .await;
    assert_eq!(rule["maxPerSecond"], 2);
    let listed = dashboard(server, reqwest::Method::GET, "/rate-limits", None).await;
    assert_eq!(listed, json!([rule]));

    let mut ids = Vec::new();
    for i in 0..10 {
        let title = format!("limited {i}");
        let (status, body) = schedule(
            servers[i % servers.len()],
            &target.url(PATH),
            &[("ttr-tags", TAG), ("ttr-title", title.as_str())],
            Vec::new(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["triggerId"].as_str().unwrap().to_owned());
    }

    // All ten arrive (five seconds' worth at two per second).
    let arrivals = target
        .wait_for_path(PATH, 10, Duration::from_secs(30))
        .await;
    assert_eq!(arrivals.len(), 10);
    let mut times: Vec<i64> = arrivals.iter().map(|a| a.at_ms).collect();
    times.sort_unstable();
    // Never more than two in any one-second window: the 1st and 3rd of any three consecutive
    // arrivals are (about) a second apart.
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 1_000 - JITTER_MS,
            "three arrivals within {} ms: {times:?}",
            w[2] - w[0]
        );
    }

    // The delayed ones show why on the dashboard, and none started before its release.
    let page = dashboard(server, reqwest::Method::GET, "/jobs?limit=50", None).await;
    let jobs: Vec<&Value> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| ids.iter().any(|id| j["id"] == id.as_str()))
        .collect();
    assert_eq!(jobs.len(), 10);
    let delayed: Vec<&&Value> = jobs
        .iter()
        .filter(|j| j["rateLimitedTags"] != json!([]))
        .collect();
    // Ten jobs scheduled within well under a second, two per second: at least six waited.
    assert!(delayed.len() >= 6, "only {} delayed: {page}", delayed.len());
    for job in &delayed {
        assert_eq!(job["rateLimitedTags"], json!([TAG]));
        assert!(job["rateLimitedAt"].is_string(), "{job}");
        let until = job["rateLimitedUntil"].as_str().unwrap();
        let started = job["startedAt"].as_str().unwrap();
        // RFC 3339 UTC with milliseconds compares as text.
        assert!(
            started >= until,
            "started {started} before its release {until}"
        );
    }
}

//! End to end: generators (cron) against the real server binary on SQLite and a local target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// Every occurrence job of generator `id`, oldest first, as `/jobs` reports them.
async fn occurrences(server: &Server, generator: &str) -> Vec<Value> {
    let resp = client()
        .get(server.url("/jobs?limit=500"))
        .header("ttr-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let mut jobs: Vec<Value> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["generatorId"] == generator)
        .cloned()
        .collect();
    jobs.sort_by(|a, b| a["scheduledAt"].as_str().cmp(&b["scheduledAt"].as_str()));
    jobs
}

async fn cancel_key(server: &Server, key: &str) -> u16 {
    client()
        .delete(server.url("/cancel"))
        .header("ttr-api-key", API_KEY)
        .header("ttr-custom-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_second_generator_fires_repeatedly_and_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("tt.db"));
    let target = Target::start().await;
    let (status, json) = schedule(
        &server,
        &target.url("/tick"),
        &[
            ("ttr-scheduled-at", "* * * * * *"),
            ("ttr-custom-key", "ticker"),
        ],
        b"tick".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["kind"], "generator");
    let generator = json["triggerId"].as_str().unwrap().to_owned();

    let got = target.wait_for_path("/tick", 3, WAIT).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|a| a.header("x-callback-id").unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        ids.len(),
        "each occurrence is its own job"
    );
    for a in &got {
        assert_eq!(a.body, b"tick");
    }

    assert_eq!(cancel_key(&server, "ticker").await, 204);
    let after_cancel = target.arrivals_at("/tick").len();
    // A sentinel 2.5 s later: by then a live series would have fired twice more.
    let (status, _) = schedule(
        &server,
        &target.url("/sentinel"),
        &[("ttr-scheduled-at", &rfc3339(now_ms() + 2_500))],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    target.wait_for_path("/sentinel", 1, WAIT).await;
    let total = target.arrivals_at("/tick").len();
    assert!(
        total <= after_cancel + 1,
        "the series went on after its cancel: {after_cancel} then {total}"
    );
    let jobs = occurrences(&server, &generator).await;
    assert!(jobs.iter().all(|j| j["generatorStatus"] == "cancelled"));
    assert!(
        jobs.iter().any(|j| j["status"] == "cancelled"),
        "its pending occurrence was cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tt.db");
    let target = Target::start().await;
    let server = Server::start(&db);
    let (status, _) = schedule(
        &server,
        &target.url("/beat"),
        &[("ttr-scheduled-at", "* * * * * *")],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    target.wait_for_path("/beat", 1, WAIT).await;
    server.kill9();
    let before = target.arrivals_at("/beat").len();
    let _server = Server::start(&db);
    target.wait_for_path("/beat", before + 2, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_across_occurrences_fires_one_catch_up_and_records_the_rest_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tt.db");
    let target = Target::start().await;
    // Every occurrence older than "now" at start-up counts as missed (the contract's 60 s
    // would make this test take minutes; the rule is the same).
    let env = [("TIMETRIGGERS_MISSED_AFTER_MS", "0")];
    let server = Server::start_with(&db, &env);
    let (status, json) = schedule(
        &server,
        &target.url("/series"),
        &[
            ("ttr-scheduled-at", "* * * * * *"),
            ("ttr-run-missed", "true"),
        ],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let generator = json["triggerId"].as_str().unwrap().to_owned();
    target.wait_for_path("/series", 1, WAIT).await;
    assert_eq!(server.terminate(), Some(0));
    let delivered_before: Vec<String> = target
        .arrivals_at("/series")
        .iter()
        .map(|a| a.header("x-callback-id").unwrap().to_owned())
        .collect();
    // The outage itself: the server is down across at least three occurrences.
    tokio::time::sleep(Duration::from_millis(3_600)).await;

    let server = Server::start_with(&db, &env);
    let n = delivered_before.len();
    let got = target.wait_for_path("/series", n + 3, WAIT).await;
    let jobs = occurrences(&server, &generator).await;
    let by_id: HashMap<&str, &Value> = jobs
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j))
        .collect();
    let last_before = delivered_before
        .iter()
        .filter_map(|id| by_id.get(id.as_str()))
        .map(|j| j["scheduledAt"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    // After the last occurrence delivered before the stop: skipped records, then exactly one
    // catch-up, then the series goes on normally.
    let after: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["scheduledAt"].as_str().unwrap() > last_before.as_str())
        .collect();
    let first_run = after
        .iter()
        .position(|j| j["status"] != "skipped")
        .expect("the series fired again");
    assert!(
        first_run >= 2,
        "at least two missed occurrences recorded skipped: {after:#?}"
    );
    assert!(after[..first_run].iter().all(|j| j["status"] == "skipped"));
    let catch_up = after[first_run];
    let catch_up_id = catch_up["id"].as_str().unwrap();
    let catch_up_arrivals = got
        .iter()
        .filter(|a| a.header("x-callback-id") == Some(catch_up_id))
        .count();
    assert_eq!(catch_up_arrivals, 1, "the catch-up fired exactly once");
    for j in &after[first_run..] {
        assert_ne!(
            j["status"], "skipped",
            "nothing after the catch-up is skipped: {j}"
        );
    }
    let skipped_delivered = got.iter().any(|a| {
        let id = a.header("x-callback-id").unwrap();
        by_id.get(id).is_some_and(|j| j["status"] == "skipped")
    });
    assert!(!skipped_delivered, "a skipped occurrence was delivered");
}

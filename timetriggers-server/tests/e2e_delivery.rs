//! End to end on the real server binary: automatic retries and the private-target guard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

async fn executions(server: &Server, job: &str) -> Vec<Value> {
    let resp = client()
        .get(server.url(&format!("/jobs/{job}/executions")))
        .header("ttr-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Asks the API until `done` holds for the job's executions (the outcome is written just after
/// the delivery), or panics after the deadline.
async fn executions_until(
    server: &Server,
    job: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let end = Instant::now() + WAIT;
    loop {
        let execs = executions(server, job).await;
        if done(&execs) {
            return execs;
        }
        assert!(Instant::now() < end, "timed out; executions: {execs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_answering_503_503_200_gets_three_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("retry.db"));
    let target = Target::start().await;
    target.script("/flaky", &[503, 503, 200]);
    let (status, body) = schedule(
        &server,
        &target.url("/flaky"),
        &[("ttr-max-attempts", "3")],
        b"payload".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let job = body["triggerId"].as_str().unwrap().to_owned();

    let got = target.wait_for_path("/flaky", 3, WAIT).await;
    let attempts: Vec<&str> = got
        .iter()
        .map(|a| a.header("ttr-attempt").unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(got
        .iter()
        .all(|a| a.header("x-callback-id") == Some(job.as_str())));
    assert!(got.iter().all(|a| a.body == b"payload"));
    // Backoff: about 1 s, then about 2 s (±20 %), never less.
    assert!(
        got[1].at_ms - got[0].at_ms >= 800,
        "{}",
        got[1].at_ms - got[0].at_ms
    );
    assert!(
        got[2].at_ms - got[1].at_ms >= 1_600,
        "{}",
        got[2].at_ms - got[1].at_ms
    );

    let execs = executions_until(&server, &job, |e| {
        e.len() == 3 && e.iter().all(|x| x["status"] == "complete")
    })
    .await;
    let by: Vec<&str> = execs
        .iter()
        .map(|e| e["triggeredBy"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["retry", "retry", "scheduler"], "newest first");
    let statuses: Vec<i64> = execs
        .iter()
        .map(|e| e["responseStatus"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 503, 503]);
    let numbers: Vec<i64> = execs
        .iter()
        .map(|e| e["attemptNumber"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_guard_on_private_targets_are_never_reached() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("guard.db"),
        &[("TIMETRIGGERS_ALLOW_PRIVATE_TARGETS", "false")],
    );
    let target = Target::start().await;
    let port = target.addr.port();

    // A literal private address is refused when scheduled.
    for url in [
        format!("http://127.0.0.1:{port}/literal"),
        format!("http://[::1]:{port}/literal6"),
        format!("http://localhost:{port}/localhost"),
    ] {
        let (status, body) = schedule(&server, &url, &[], Vec::new()).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["_tag"], "BadRequest");
    }

    // A name that resolves to loopback is accepted, then refused at dispatch: the connection
    // is never made, and the execution records the error.
    let (status, body) = schedule(
        &server,
        &format!("http://localhost.:{port}/by-name"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let job = body["triggerId"].as_str().unwrap().to_owned();
    let execs = executions_until(&server, &job, |e| {
        e.first().is_some_and(|x| x["status"] == "complete")
    })
    .await;
    assert!(execs[0]["responseStatus"].is_null());
    let error = execs[0]["errorMessage"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(
        target.arrivals().is_empty(),
        "the guard let a request through: {:?}",
        target.arrivals()
    );
}

//! End to end through the dashboard: the real server binary on a temporary SQLite file, a real
//! target on 127.0.0.1. Sign up, create a key, schedule with it, watch the job complete, replay
//! it, delete the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Re-checks `probe` until it yields a value or `deadline` passes. The server records an
/// outcome just after the target has answered, so this follows an arrival the test already
/// waited for as an event; it never stands in for waiting on a schedule.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Dashboard {
    base: String,
    cookie: String,
}

impl Dashboard {
    async fn get(&self, path: &str) -> Value {
        let resp = client()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = client()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_schedule_watch_replay_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("tt.db"));
    let target = Target::start().await;

    // Sign up: the answer sets the session cookie.
    let resp = client()
        .post(server.url("/auth/signup"))
        .json(&json!({"email": "e2e@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let signed_up: Value = resp.json().await.unwrap();
    assert_eq!(signed_up["user"]["email"], "e2e@example.com");
    let dash = Dashboard {
        base: server.base.clone(),
        cookie,
    };
    let me = dash.get("/auth/me").await;
    assert_eq!(me["projects"][0], signed_up["project"]);

    // A key, shown in full once.
    let (status, key) = dash
        .send(reqwest::Method::POST, "/keys", json!({"name": "e2e"}))
        .await;
    assert_eq!(status, 200, "{key}");
    let secret = key["keyValue"].as_str().unwrap().to_owned();
    assert_eq!(key["projectId"], signed_up["project"]["id"]);

    // Schedule with it; the target receives the request.
    let resp = client()
        .post(server.url("/schedule"))
        .header("ttr-api-key", &secret)
        .header("ttr-url", target.url("/dash"))
        .header("ttr-custom-key", "e2e-job")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let scheduled: Value = resp.json().await.unwrap();
    let id = scheduled["triggerId"].as_str().unwrap().to_owned();
    let got = target.wait_for_path("/dash", 1, WAIT).await;
    assert_eq!(got[0].body, b"hello");
    assert_eq!(got[0].header("ttr-attempt"), Some("1"));

    // The job completes in /jobs with the target's status.
    let job = eventually("the job to complete", WAIT, || async {
        let page = dash.get("/jobs").await;
        let job = page["jobs"][0].clone();
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["customKey"], "e2e-job");
    assert_eq!(job["responseStatus"], 200);
    assert_eq!(job["attemptNumber"], 1);
    assert_eq!(job["projectSlug"], signed_up["project"]["slug"]);
    assert_eq!(job["httpHeaders"]["content-type"], "text/plain");

    // The execution carries the target's response headers and body.
    let executions = dash.get(&format!("/jobs/{id}/executions")).await;
    let first = &executions[0];
    assert_eq!(first["status"], "complete");
    assert_eq!(first["triggeredBy"], "scheduler");
    assert_eq!(first["responseStatus"], 200);
    assert_eq!(first["responseBody"], "ok");
    assert_eq!(first["responseSize"], 2);
    let content_type = first["responseHeaders"]["content-type"].as_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let listed = dash.get(&format!("/executions?jobId={id}")).await;
    assert_eq!(listed["total"], 1);

    // Replay: attempt 2, triggered by "replay", delivered again.
    let (status, ok) = dash
        .send(
            reqwest::Method::POST,
            &format!("/jobs/{id}/executions"),
            json!({"triggeredBy": "replay"}),
        )
        .await;
    assert_eq!((status, ok), (200, json!({"ok": true})));
    let got = target.wait_for_path("/dash", 2, WAIT).await;
    assert_eq!(got[1].header("ttr-attempt"), Some("2"));
    assert_eq!(got[1].header("x-callback-id"), Some(id.as_str()));
    assert_eq!(got[1].body, b"hello");
    let replayed = eventually("the replay to complete", WAIT, || async {
        let executions = dash.get(&format!("/jobs/{id}/executions")).await;
        (executions[0]["status"] == "complete").then_some(executions)
    })
    .await;
    assert_eq!(replayed.as_array().unwrap().len(), 2);
    assert_eq!(replayed[0]["attemptNumber"], 2);
    assert_eq!(replayed[0]["triggeredBy"], "replay");
    assert_eq!(replayed[0]["responseStatus"], 200);
    assert_eq!(replayed[1]["attemptNumber"], 1);
    let job = eventually("the job to be completed again", WAIT, || async {
        let job = dash.get(&format!("/jobs/{id}")).await;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(job["attemptNumber"], 2);

    // Delete the key: refused at once.
    let (status, ok) = dash
        .send(
            reqwest::Method::DELETE,
            &format!("/keys/{}", key["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!((status, ok), (200, json!({"ok": true})));
    let resp = client()
        .post(server.url("/schedule"))
        .header("ttr-api-key", &secret)
        .header("ttr-url", target.url("/dash"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["_tag"], "Unauthorized");

    // Log out: the session is gone.
    let (status, _) = dash
        .send(reqwest::Method::POST, "/auth/logout", json!({}))
        .await;
    assert_eq!(status, 200);
    let resp = client()
        .get(server.url("/auth/me"))
        .header("cookie", &dash.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_can_be_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("tt.db"),
        &[("TIMETRIGGERS_ALLOW_SIGNUP", "false")],
    );
    let resp = client()
        .post(server.url("/auth/signup"))
        .json(&json!({"email": "late@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["_tag"], "Forbidden");
}

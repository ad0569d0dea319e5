//! End to end: the real server binary on a temporary SQLite file, a real target on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_job_arrives_with_method_body_and_forwarded_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("tt.db"));
    let target = Target::start().await;
    let body: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();

    let resp = client()
        .put(server.url("/schedule"))
        .header("ttr-api-key", API_KEY)
        .header("ttr-url", target.url("/hook?x=1"))
        .header("ttr-title", "e2e")
        .header("content-type", "application/octet-stream")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "1.2.3.4")
        .header("via", "proxy")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header_id = resp.headers()["ttr-trigger-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let json: serde_json::Value = resp.json().await.unwrap();
    let id = json["triggerId"].as_str().unwrap().to_owned();
    assert_eq!(header_id, id);
    assert_eq!(json["operation"], "schedule");
    assert_eq!(json["kind"], "job");
    assert_eq!(json["monthQuotaRemaining"], "Infinity");

    let got = target.wait_for_path("/hook?x=1", 1, WAIT).await;
    let a = &got[0];
    assert_eq!(a.method, "PUT");
    assert_eq!(a.body, body, "exact body bytes");
    assert_eq!(a.header("x-custom"), Some("kept"));
    assert_eq!(a.header("content-type"), Some("application/octet-stream"));
    assert_eq!(a.header("x-callback-id"), Some(id.as_str()));
    assert_eq!(a.header("ttr-attempt"), Some("1"));
    assert_eq!(a.header("x-forwarded-for"), None);
    assert_eq!(a.header("via"), None);
    for (name, _) in &a.headers {
        assert!(
            !name.starts_with("ttr-") || name == "ttr-attempt",
            "ttr header {name} forwarded"
        );
    }
    assert_eq!(a.header("ttr-api-key"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_job_never_arrives_early() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("tt.db"));
    let target = Target::start().await;
    let due = now_ms() + 2_000;
    let (status, json) = schedule(
        &server,
        &target.url("/later"),
        &[("ttr-scheduled-at", &rfc3339(due))],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["scheduledAt"], rfc3339(due));
    let got = target.wait_for_path("/later", 1, WAIT).await;
    let lag = got[0].at_ms - due;
    assert!(lag >= 0, "arrived {}ms early", -lag);
    eprintln!("lag after due: {lag} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_job_never_arrives_and_reschedule_by_key_fires_only_the_new_definition() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("tt.db"));
    let target = Target::start().await;
    let soon = rfc3339(now_ms() + 1_000);

    let (status, json) = schedule(
        &server,
        &target.url("/cancelled"),
        &[("ttr-scheduled-at", &soon)],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let cancelled_id = json["triggerId"].as_str().unwrap().to_owned();
    let resp = client()
        .delete(server.url("/cancel"))
        .header("ttr-api-key", API_KEY)
        .header("ttr-trigger-id", &cancelled_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let (status, first) = schedule(
        &server,
        &target.url("/old"),
        &[("ttr-scheduled-at", &soon), ("ttr-custom-key", "the-key")],
        b"old".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, second) = schedule(
        &server,
        &target.url("/new"),
        &[("ttr-scheduled-at", &soon), ("ttr-custom-key", "the-key")],
        b"new".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second["triggerId"], first["triggerId"], "same id");
    assert_eq!(second["operation"], "reschedule");

    // A sentinel due after everything else: once it has arrived, nothing else is coming.
    let (status, _) = schedule(
        &server,
        &target.url("/sentinel"),
        &[("ttr-scheduled-at", &rfc3339(now_ms() + 1_500))],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    target.wait_for_path("/sentinel", 1, WAIT).await;
    let new = target.wait_for_path("/new", 1, WAIT).await;
    assert_eq!(new[0].body, b"new");
    assert_eq!(new[0].header("x-callback-id"), first["triggerId"].as_str());
    assert!(
        target.arrivals_at("/old").is_empty(),
        "old definition fired"
    );
    assert!(
        target.arrivals_at("/cancelled").is_empty(),
        "cancelled job fired"
    );
    assert_eq!(target.arrivals_at("/new").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_accepted_before_kill_9_fires_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tt.db");
    let target = Target::start().await;
    let server = Server::start(&db);
    let due = now_ms() + 1_500;
    let (status, json) = schedule(
        &server,
        &target.url("/survivor"),
        &[("ttr-scheduled-at", &rfc3339(due))],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let id = json["triggerId"].as_str().unwrap().to_owned();
    server.kill9();
    assert!(target.arrivals_at("/survivor").is_empty());

    let server = Server::start(&db);
    let got = target.wait_for_path("/survivor", 1, WAIT).await;
    assert_eq!(got[0].header("x-callback-id"), Some(id.as_str()));
    assert!(got[0].at_ms >= due, "fired early");
    // Schedule a sentinel after the restart; once it arrives the survivor had every chance to
    // fire twice.
    let (status, _) = schedule(&server, &target.url("/sentinel"), &[], vec![]).await;
    assert_eq!(status, 200);
    target.wait_for_path("/sentinel", 1, WAIT).await;
    assert_eq!(
        target.arrivals_at("/survivor").len(),
        1,
        "fired exactly once"
    );
    assert_eq!(server.terminate(), Some(0), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_first_start_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    // No bootstrap key: the server creates one and prints it; it must be usable.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_timetriggers-server"));
    cmd.env("TIMETRIGGERS_LISTEN", "127.0.0.1:0")
        .env(
            "TIMETRIGGERS_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env_remove("TIMETRIGGERS_BOOTSTRAP_API_KEY")
        .env("TIMETRIGGERS_ALLOW_PRIVATE_TARGETS", "true")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (key, base) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut key = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let t = line.trim();
            if t.starts_with("ttr_") && key.is_none() {
                key = Some(t.to_owned());
            }
            if let Some(base) = t.strip_prefix("listening on ") {
                return (key, base.to_owned());
            }
        }
        panic!("no address printed");
    })
    .await
    .unwrap();
    let key = key.expect("a key is printed on first start");
    let target = Target::start().await;
    let resp = client().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ok": true})
    );
    let resp = client()
        .post(format!("{base}/schedule"))
        .header("ttr-api-key", &key)
        .header("ttr-url", target.url("/first"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    target.wait_for_path("/first", 1, WAIT).await;
    let _ = child.kill();
    let _ = child.wait();
}

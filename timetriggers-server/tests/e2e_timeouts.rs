//! End to end: `ttr-timeout` on the real server binary. A target that accepts the connection
//! and never answers makes an execution that completes with an error and no status, about
//! `ttr-timeout` seconds after it started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A target that reads the request and then holds the connection without answering; each
/// accepted connection is reported on the channel.
async fn silent_target() -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = tx.send(());
                // Never answer; keep the socket open well past the job's timeout.
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(socket);
            });
        }
    });
    (format!("http://{addr}/slow"), rx)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_slower_than_ttr_timeout_gives_an_error_without_status() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut connected) = silent_target().await;
    let server = Server::start(&dir.path().join("timeout.db"));

    let (status, body) = schedule(&server, &url, &[("ttr-timeout", "1")], Vec::new()).await;
    assert_eq!(status, 200, "{body}");
    let job = body["triggerId"].as_str().unwrap().to_owned();

    // The request reaches the target (an event), which then says nothing.
    tokio::time::timeout(Duration::from_secs(20), connected.recv())
        .await
        .expect("the target was never contacted")
        .unwrap();

    // The server records the timeout about a second later; re-check its answer until then.
    let end = Instant::now() + Duration::from_secs(20);
    let execution = loop {
        let list = executions(&server, &job).await;
        if let Some(done) = list.iter().find(|e| e["status"] == "complete") {
            break done.clone();
        }
        assert!(Instant::now() < end, "no completed execution: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(execution["responseStatus"], Value::Null, "{execution}");
    let error = execution["errorMessage"]
        .as_str()
        .expect("an error message");
    assert!(error.contains("time"), "{error}");
    let started = execution["startedAt"].as_str().unwrap();
    let completed = execution["completedAt"].as_str().unwrap();
    assert!(completed > started, "{execution}");
}

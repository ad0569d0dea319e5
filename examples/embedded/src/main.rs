//! Embedding TimeTriggers: schedule and cancel HTTP requests from Rust code, on SQLite, with no
//! HTTP server of TimeTriggers' own. A tiny local receiver stands in for your webhook.
//!
//! Run with: cargo run -p example-embedded

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use timetriggers_core::{
    Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, ScheduleRequest, ServiceConfig,
    SystemClock, TimeTriggers, Timestamp, TriggerRef,
};
use timetriggers_store_sqlite::SqliteStore;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A receiver on 127.0.0.1 that reports every request's path.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<String>();
    let receiver = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let tx = arrived_tx.clone();
        async move {
            let _ = tx.send(uri.path().to_owned());
            "thanks"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // 1. A store, a dispatcher, a clock: the engine and the service over them.
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("triggers.db")).await?);
    let clock = Arc::new(SystemClock);
    let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig {
        // The receiver is on loopback; a hosted scheduler would keep the default (refuse).
        allow_private_targets: true,
        ..HttpDispatcherConfig::default()
    })?);
    let engine = Engine::new(
        store.clone(),
        dispatcher,
        clock.clone(),
        EngineConfig::default(),
    );
    let triggers = TimeTriggers::new(
        store,
        clock,
        engine.signal(),
        ServiceConfig {
            allow_private_targets: true,
            ..ServiceConfig::default()
        },
    );

    // 2. Run the engine until we say stop.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // 3. Schedule: one request a second from now, one an hour from now that we cancel.
    let project = triggers.create_project("embedded-demo").await?;
    let soon = Timestamp::from_millis(triggers.now().as_millis() + 1_000);
    let job = triggers
        .schedule(
            &project.id,
            ScheduleRequest::new("POST", format!("http://{receiver_addr}/hello"))
                .at(soon)
                .header("content-type", "text/plain")
                .body("hi from TimeTriggers"),
        )
        .await?;
    println!("scheduled {} for {}", job.id, job.scheduled_at);

    let later = Timestamp::from_millis(triggers.now().as_millis() + 3_600_000);
    triggers
        .schedule(
            &project.id,
            ScheduleRequest::new("GET", format!("http://{receiver_addr}/never"))
                .at(later)
                .custom_key("reminder-42"),
        )
        .await?;
    triggers
        .cancel(&project.id, TriggerRef::CustomKey("reminder-42".into()))
        .await?;
    println!("cancelled reminder-42");

    // 4. Wait for the delivery, then read its outcome back.
    let path = tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .context("the request did not arrive in time")?
        .context("receiver closed")?;
    println!("the receiver got POST {path}");

    // 5. Graceful shutdown: in-flight deliveries finish, outcomes are written.
    let _ = stop.send(());
    running.await?;

    let executions = triggers.list_job_executions(&project.id, &job.id).await?;
    let first = executions.first().context("no execution recorded")?;
    println!(
        "attempt {}: HTTP {:?}, answer {:?}",
        first.attempt_number, first.response_status, first.response_body
    );
    anyhow::ensure!(path == "/hello", "unexpected delivery {path}");
    anyhow::ensure!(
        first.response_status == Some(200),
        "the outcome was not recorded"
    );
    Ok(())
}

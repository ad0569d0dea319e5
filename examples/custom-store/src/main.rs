//! A custom storage backend at work: the real `TimeTriggers` service and `Engine` on the
//! in-memory [`MemoryStore`] of this crate, with a manual clock, delivering to a receiver on
//! 127.0.0.1. The store itself is in `src/`; its conformance suite runs with
//! `cargo test -p example-custom-store`.
//!
//! Run with: cargo run -p example-custom-store

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use example_custom_store::MemoryStore;
use timetriggers_core::{
    Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, JobStatus, ManualClock,
    ScheduleRequest, ServiceConfig, Store, TimeTriggers, Timestamp, TriggerRef,
};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A receiver on 127.0.0.1 that reports each request's method, path and body.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<String>();
    let receiver = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
            let tx = arrived_tx.clone();
            async move {
                let _ = tx.send(format!("{method} {} {body}", uri.path()));
                "thanks"
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // The custom store where the SQLite or PostgreSQL store would go; time moves by hand.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let start = Timestamp::parse_rfc3339("2026-11-22T09:00:00Z").context("start time")?;
    let clock = Arc::new(ManualClock::new(start));
    let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig {
        // The receiver is on loopback; a hosted scheduler keeps the default (refuse).
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
        clock.clone(),
        engine.signal(),
        ServiceConfig {
            allow_private_targets: true,
            ..ServiceConfig::default()
        },
    );

    // Schedule one request for 09:30 and one for 10:00 that is cancelled.
    let project = triggers.create_project("custom-store-demo").await?;
    let half_past = start.saturating_add(Duration::from_secs(30 * 60));
    let job = triggers
        .schedule(
            &project.id,
            ScheduleRequest::new("POST", format!("http://{receiver_addr}/hello"))
                .at(half_past)
                .header("content-type", "text/plain")
                .body("hi from a custom store"),
        )
        .await?;
    println!("scheduled {} for {}", job.id, job.scheduled_at);
    triggers
        .schedule(
            &project.id,
            ScheduleRequest::new("GET", format!("http://{receiver_addr}/never"))
                .at(start.saturating_add(Duration::from_secs(3_600)))
                .custom_key("reminder-42"),
        )
        .await?;
    triggers
        .cancel(&project.id, TriggerRef::CustomKey("reminder-42".into()))
        .await?;
    println!("cancelled reminder-42");

    // At 09:00 nothing is due; at 09:30 the engine delivers exactly one request.
    ensure!(engine.run_once().await? == 0, "something fired early");
    clock.set(half_past);
    let delivered = engine.run_once().await?;
    println!("at {half_past} the engine delivered {delivered} request(s)");
    ensure!(delivered == 1, "expected one delivery, got {delivered}");
    clock.advance(Duration::from_secs(3_600));
    ensure!(engine.run_once().await? == 0, "the cancelled job fired");

    let request = arrived.try_recv().context("the receiver got nothing")?;
    println!("the receiver got: {request}");
    ensure!(
        request == "POST /hello hi from a custom store",
        "unexpected {request}"
    );
    ensure!(arrived.try_recv().is_err(), "more than one request arrived");

    // The outcome, read back from the custom store.
    let stored = triggers.get_job(&project.id, &job.id).await?;
    let executions = triggers.list_job_executions(&project.id, &job.id).await?;
    let first = executions.first().context("no execution recorded")?;
    println!(
        "job {}: {:?}, attempt {} answered HTTP {:?} {:?}",
        stored.id, stored.status, first.attempt_number, first.response_status, first.response_body
    );
    ensure!(
        stored.status == JobStatus::Completed,
        "the job did not complete"
    );
    ensure!(
        first.response_status == Some(200),
        "the outcome was not recorded"
    );
    Ok(())
}

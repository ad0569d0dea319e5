//! Mounting TimeTriggers in an existing axum application: the app keeps its own routes and
//! its own auth layer, and nests the TimeTriggers HTTP API under `/triggers`.
//!
//! Run with: cargo run -p example-axum-mount

use std::sync::Arc;

use anyhow::ensure;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use timetriggers_core::{
    Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, ServiceConfig, SystemClock,
    TimeTriggers,
};
use timetriggers_http::{AppState, HttpConfig};
use timetriggers_store_sqlite::SqliteStore;

/// The application's own gate: every `/triggers` call must carry its internal token.
async fn require_app_token(request: Request, next: Next) -> Response {
    match request.headers().get("x-app-token") {
        Some(v) if v == "app-secret" => next.run(request).await,
        _ => (StatusCode::UNAUTHORIZED, "this app wants its x-app-token").into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("app.db")).await?);
    let clock = Arc::new(SystemClock);
    let dispatcher = Arc::new(HttpDispatcher::new(HttpDispatcherConfig::default())?);
    let engine = Engine::new(
        store.clone(),
        dispatcher,
        clock.clone(),
        EngineConfig::default(),
    );
    let service = TimeTriggers::new(store, clock, engine.signal(), ServiceConfig::default());
    let api_key = service.bootstrap(None).await?.unwrap_or_default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // The application: its own route, and TimeTriggers nested behind its own layer.
    let triggers = timetriggers_http::router(AppState::new(service, HttpConfig::default()))
        .layer(middleware::from_fn(require_app_token));
    let app = Router::new()
        .route("/", get(|| async { "my application" }))
        .nest("/triggers", triggers);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let home = client.get(format!("{base}/")).send().await?.text().await?;
    println!("GET /                      -> {home}");
    let refused = client.get(format!("{base}/triggers/health")).send().await?;
    println!(
        "GET /triggers/health       -> {} (no app token)",
        refused.status()
    );
    ensure!(
        refused.status() == 401,
        "the app's layer must guard /triggers"
    );

    let health = client
        .get(format!("{base}/triggers/health"))
        .header("x-app-token", "app-secret")
        .send()
        .await?;
    println!(
        "GET /triggers/health       -> {} {}",
        health.status(),
        health.text().await?
    );

    let scheduled = client
        .post(format!("{base}/triggers/schedule"))
        .header("x-app-token", "app-secret")
        .header("ttr-api-key", &api_key)
        .header("ttr-url", "https://example.com/hook")
        .header("ttr-scheduled-at", "now | add 1h")
        .send()
        .await?;
    let status = scheduled.status();
    let body: serde_json::Value = scheduled.json().await?;
    println!("POST /triggers/schedule    -> {status} {body}");
    ensure!(
        status == 200 && body["kind"] == "job",
        "scheduling through the mount failed"
    );

    let _ = stop.send(());
    engine_task.await?;
    server.abort();
    Ok(())
}

//! The TimeTriggers reference server: serves the HTTP API of API.md and runs the delivery
//! engine in one process. Every setting is in `docs/configuration.md`; running it (SQLite or
//! PostgreSQL, backups, upgrades, crashes, shutdown, health checks) in `docs/operations.md`.
//!
//! ```text
//! cargo run --release -p timetriggers-server            # http://127.0.0.1:8080 on ./timetriggers.db
//! cargo run --release -p timetriggers-server -- --help  # every flag, with its TIMETRIGGERS_* variable
//!
//! TIMETRIGGERS_DATABASE_URL=postgres://tt:secret@db.internal:5432/tt \
//! TIMETRIGGERS_LISTEN=0.0.0.0:8080 \
//!   ./target/release/timetriggers-server                # one of several instances on one database
//! ```
//!
//! At start it opens the store named by the database URL (`sqlite:` or `postgres:`; the
//! migrations run then), makes sure the project `default` exists (printing its new API key once
//! when it creates it, unless `TIMETRIGGERS_BOOTSTRAP_API_KEY` names the key), prints
//! `listening on http://ADDR` and serves. On SIGTERM or Ctrl-C it stops taking requests, lets
//! in-flight deliveries finish for up to `TIMETRIGGERS_SHUTDOWN_GRACE_SECS` (30 s), records
//! their outcomes and exits. Logs go to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! The crate is a binary only: applications embed `timetriggers-core` and `timetriggers-http`
//! instead (see `examples/`).

mod config;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use timetriggers_core::{
    Engine, EngineConfig, HttpDispatcher, HttpDispatcherConfig, MonthQuota, ServiceConfig, Store,
    SystemClock, TimeTriggers,
};
use timetriggers_http::{router, AppState, HttpConfig};
use timetriggers_store_postgres::PgStore;
use timetriggers_store_sqlite::SqliteStore;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Settings};

/// mimalloc: under load the system allocator cost ~18 % of the workers' time (fragmented
/// free lists) and held on to freed memory; see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::resolve(Cli::parse())?;
    run(settings).await
}

/// The store named by the database URL; for PostgreSQL also the `PgStore` itself, whose
/// wake-up listener the engine needs.
async fn open_store(url: &str) -> anyhow::Result<(Arc<dyn Store>, Option<PgStore>)> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url)
            .await
            .with_context(|| format!("opening {url}"))?;
        return Ok((Arc::new(store), None));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PgStore::connect(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
        return Ok((Arc::new(store.clone()), Some(store)));
    }
    bail!("TIMETRIGGERS_DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})")
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let (store, postgres) = open_store(&settings.database_url).await?;
    let clock = Arc::new(SystemClock);
    let dispatcher = Arc::new(
        HttpDispatcher::new(HttpDispatcherConfig {
            allow_private_targets: settings.allow_private_targets,
            // Every delivery slot keeps its connection: a smaller pool would close the
            // surplus after each burst and reconnect for the next one.
            pool_max_idle_per_host: settings.max_in_flight,
            ..HttpDispatcherConfig::default()
        })
        .context("building the HTTP client")?,
    );
    let engine = Engine::new(
        store.clone(),
        dispatcher,
        clock.clone(),
        EngineConfig {
            max_in_flight: settings.max_in_flight,
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
            lease_margin: Duration::from_secs(settings.lease_margin_secs),
            missed_after: Duration::from_millis(settings.missed_after_ms),
            ..EngineConfig::default()
        },
    );
    // On PostgreSQL, other instances announce jobs they schedule for soon: wake this engine.
    let _wake_ups = postgres
        .as_ref()
        .map(|pg| pg.spawn_listener(engine.signal()));
    let service = TimeTriggers::new(
        store,
        clock,
        engine.signal(),
        ServiceConfig {
            allow_private_targets: settings.allow_private_targets,
            default_month_quota: MonthQuota::from_option(settings.default_month_quota),
        },
    );

    if let Some(secret) = service
        .bootstrap(settings.bootstrap_api_key.as_deref())
        .await
        .context("creating the default project")?
    {
        println!("Created project \"default\". Its API key (shown only this once):");
        println!("  {secret}");
        println!("Use it as the ttr-api-key header, e.g.:");
        println!(
            "  curl -X POST http://{}/schedule -H 'ttr-api-key: {secret}' -H 'ttr-url: https://example.com/' -H 'ttr-scheduled-at: now | add 10s'",
            settings.listen
        );
    }

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("listening on http://{local}");
    tracing::info!(%local, database = %redact(&settings.database_url), "TimeTriggers started");

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = router(AppState {
        service,
        config: HttpConfig {
            max_body_bytes: settings.max_body_bytes,
            allow_signup: settings.allow_signup,
            secure_cookies: settings.secure_cookies,
        },
    });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let mut engine_stop = stop_rx;
    let engine_task = tokio::spawn(async move {
        engine
            .run(async move {
                let _ = engine_stop.wait_for(|s| *s).await;
            })
            .await;
    });

    shutdown_signal().await;
    tracing::info!("shutting down: no new requests, letting in-flight deliveries finish");
    let _ = stop_tx.send(true);
    server.await.context("HTTP server task")??;
    engine_task.await.context("engine task")?;
    tracing::info!("stopped");
    Ok(())
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

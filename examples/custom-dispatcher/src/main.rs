//! A custom `Dispatcher`: wraps the standard HTTP dispatcher and signs every outgoing request
//! with `x-signature: sha256=<HMAC of callback id, attempt and body>`, which the receiver
//! checks with the shared secret.
//!
//! Run with: cargo run -p example-custom-dispatcher

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use timetriggers_core::{
    DispatchOutcome, DispatchRequest, Dispatcher, Engine, EngineConfig, HttpDispatcher,
    HttpDispatcherConfig, ScheduleRequest, ServiceConfig, SystemClock, TimeTriggers,
};
use timetriggers_store_sqlite::SqliteStore;
use tokio::sync::mpsc;

const SECRET: &[u8] = b"shared-webhook-secret";

/// HMAC-SHA256 (RFC 2104), written out so the example needs no extra crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// What is signed: the callback id, the attempt and the body, so a replayed or altered
/// delivery does not verify.
fn signed_bytes(callback_id: &str, attempt: &str, body: &[u8]) -> Vec<u8> {
    [
        callback_id.as_bytes(),
        b"\n",
        attempt.as_bytes(),
        b"\n",
        body,
    ]
    .concat()
}

/// The wrapper: add the signature header, then let the inner dispatcher send.
#[derive(Debug)]
struct SigningDispatcher {
    inner: HttpDispatcher,
}

#[async_trait]
impl Dispatcher for SigningDispatcher {
    async fn dispatch(&self, req: &DispatchRequest) -> DispatchOutcome {
        let attempt = req.attempt_number.to_string();
        let mac = hmac_sha256(
            SECRET,
            &signed_bytes(req.job_id.as_str(), &attempt, &req.body),
        );
        let mut signed = req.clone();
        signed
            .headers
            .push(("x-signature".into(), format!("sha256={}", hex::encode(mac))));
        self.inner.dispatch(&signed).await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The receiver verifies every signature and reports the result.
    let (verified_tx, mut verified) = mpsc::unbounded_channel::<bool>();
    let receiver = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let tx = verified_tx.clone();
        async move {
            let text = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            };
            let expected = hmac_sha256(
                SECRET,
                &signed_bytes(text("x-callback-id"), text("ttr-attempt"), &body),
            );
            let ok = text("x-signature") == format!("sha256={}", hex::encode(expected));
            let _ = tx.send(ok);
            if ok {
                "verified"
            } else {
                "bad signature"
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("signed.db")).await?);
    let clock = Arc::new(SystemClock);
    let dispatcher = Arc::new(SigningDispatcher {
        inner: HttpDispatcher::new(HttpDispatcherConfig {
            allow_private_targets: true,
            ..HttpDispatcherConfig::default()
        })?,
    });
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    let project = triggers.create_project("signed-webhooks").await?;
    triggers
        .schedule(
            &project.id,
            ScheduleRequest::new("POST", format!("http://{addr}/webhook"))
                .body("{\"event\":\"paid\"}"),
        )
        .await?;
    let ok = tokio::time::timeout(Duration::from_secs(10), verified.recv())
        .await
        .context("no delivery in time")?
        .context("receiver closed")?;
    println!(
        "the receiver checked the signature: {}",
        if ok { "valid" } else { "INVALID" }
    );

    let _ = stop.send(());
    running.await?;
    anyhow::ensure!(ok, "the signature did not verify");
    Ok(())
}

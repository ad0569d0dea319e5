//! End to end on PostgreSQL: the database stops under load and comes back. The API answers
//! 503 `Unavailable` while it is down (quickly, never a hang or a 500), and once it is back
//! everything accepted is delivered.
//!
//! This test stops and restarts the database, so it runs its own PostgreSQL with
//! `scripts/pg.sh` (never the shared one). Like every PostgreSQL test it fails without
//! `TIMETRIGGERS_TEST_DATABASE_URL` (set by `./scripts/test.sh`), so it is never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use timetriggers_store_postgres::testing::{census, database_url};

const WAIT: Duration = Duration::from_secs(120);
const CALLERS: usize = 8;

/// What the callers saw, in order, each with the phase it was sent in.
#[derive(Default)]
struct Log {
    calls: Mutex<Vec<(Phase, Attempt)>>,
    notify: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Down,
    After,
}

impl Log {
    fn count(&self, phase: Phase, status: u16) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, a)| *p == phase && a.status == Some(status))
            .count()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Log) -> bool) {
        let end = Instant::now() + WAIT;
        loop {
            let notified = self.notify.notified();
            if pred(self) {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_under_load_answers_503_then_recovers() {
    // The shared rule: PostgreSQL tests need the variable (this one only to fail loudly the
    // same way); the server it restarts is its own.
    let _ = database_url();
    let pg = PgServer::start();
    let target = Target::start().await;
    let server = Server::start_on(&pg.url, &[("TIMETRIGGERS_LEASE_MARGIN_SECS", "1")]);

    let log = Arc::new(Log::default());
    let phase = Arc::new(Mutex::new(Phase::Before));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let headers = vec![
        ("ttr-timeout".to_owned(), "2".to_owned()),
        ("ttr-max-attempts".to_owned(), "3".to_owned()),
    ];
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (log, phase, stop, client, headers) = (
            log.clone(),
            phase.clone(),
            stop.clone(),
            client.clone(),
            headers.clone(),
        );
        let (base, url) = (server.base.clone(), target.url("/outage"));
        callers.push(tokio::spawn(async move {
            // Bounded: at most this many calls per caller.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let sent_in = *phase.lock().unwrap();
                let a = schedule_once(&client, &base, &url, &headers).await;
                if a.status.is_none() {
                    // Not even an HTTP answer: record it, and do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                log.calls.lock().unwrap().push((sent_in, a));
                log.notify.notify_waiters();
            }
        }));
    }

    log.wait_for("200 accepted calls before the outage", |l| {
        l.count(Phase::Before, 200) >= 200
    })
    .await;
    *phase.lock().unwrap() = Phase::Down;
    let down = pg.url.clone();
    let pg = tokio::task::spawn_blocking(move || {
        pg.down();
        pg
    })
    .await
    .unwrap();
    let outage_started = Instant::now();
    // Long enough that every caller has waited out the pool's acquire timeout at least once.
    log.wait_for("503s during the outage", |l| {
        l.count(Phase::Down, 503) >= 2 * CALLERS
    })
    .await;
    let health = client
        .get(server.url("/health"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "health while {down} is down");

    let pg = tokio::task::spawn_blocking(move || {
        pg.up();
        pg
    })
    .await
    .unwrap();
    let outage = outage_started.elapsed();
    *phase.lock().unwrap() = Phase::After;
    log.wait_for("200 accepted calls after the outage", |l| {
        l.count(Phase::After, 200) >= 200
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.await.unwrap();
    }

    let calls = log.calls.lock().unwrap().clone();
    for (p, a) in &calls {
        match a.status {
            Some(200) => {}
            Some(503) => assert_eq!(a.tag.as_deref(), Some("Unavailable"), "{a:?}"),
            other => panic!("a call sent {p:?} the outage got {other:?}: {a:?}"),
        }
        assert!(
            a.elapsed < Duration::from_secs(10),
            "a call took {:?}: the API must answer 503 quickly, not hang",
            a.elapsed
        );
    }
    let slowest_503 = calls
        .iter()
        .filter(|(_, a)| a.status == Some(503))
        .map(|(_, a)| a.elapsed)
        .max()
        .unwrap_or_default();
    let accepted: HashSet<String> = calls.iter().filter_map(|(_, a)| a.id.clone()).collect();

    target
        .wait_until(WAIT, "every accepted job to arrive", |got| {
            let seen: HashSet<&str> = got
                .iter()
                .filter_map(|a| a.header("x-callback-id"))
                .collect();
            accepted.iter().all(|id| seen.contains(id.as_str()))
        })
        .await;
    let end = Instant::now() + WAIT;
    let c = loop {
        let c = census(&pg.url, None).await.unwrap();
        if c.jobs_in("registered") + c.jobs_in("queued") + c.jobs_in("running") == 0 {
            break c;
        }
        assert!(
            Instant::now() < end,
            "jobs left waiting after the outage: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let n503 = calls.iter().filter(|(_, a)| a.status == Some(503)).count();
    eprintln!(
        "outage of {outage:?}: {} calls, {} accepted and all delivered, {n503} answered 503 \
         (slowest {slowest_503:?}), {} executions recovered as interrupted",
        calls.len(),
        accepted.len(),
        c.interrupted
    );
}

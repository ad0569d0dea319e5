//! End to end on PostgreSQL: two real server processes on one database (a fresh one per test,
//! on the server of `TIMETRIGGERS_TEST_DATABASE_URL`), a real target on 127.0.0.1.
//!
//! Without `TIMETRIGGERS_TEST_DATABASE_URL` these tests fail with a message naming
//! `./scripts/test.sh`, which provides one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::*;
use timetriggers_store_postgres::testing::{census, Census, TestDatabase};

const JOBS: usize = 5_000;
const CONCURRENCY: usize = 64;
const WAIT: Duration = Duration::from_secs(120);

/// Polls the store's row counts until `pred` holds, or panics after `deadline`.
async fn wait_for_census(
    url: &str,
    deadline: Duration,
    what: &str,
    pred: impl Fn(&Census) -> bool,
) -> Census {
    let end = Instant::now() + deadline;
    loop {
        let c = census(url, None).await.unwrap();
        if pred(&c) {
            return c;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}; last census: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing is waiting or in flight: every job reached a final state.
fn settled(c: &Census) -> bool {
    c.jobs_in("registered") == 0 && c.jobs_in("queued") == 0 && c.jobs_in("running") == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_instances_deliver_every_job_exactly_once() {
    let db = TestDatabase::create().await;
    let target = Target::start().await;
    let a = Server::start_on(db.url(), &[]);
    let b = Server::start_on(db.url(), &[]);

    let started = Instant::now();
    let attempts = schedule_many(
        &[a.base.clone(), b.base.clone()],
        &target.url("/once"),
        JOBS,
        CONCURRENCY,
        &[],
    )
    .await;
    let scheduled_in = started.elapsed();
    let ids: HashSet<String> = attempts.iter().filter_map(|a| a.id.clone()).collect();
    let failed: Vec<_> = attempts.iter().filter(|a| a.status != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "{} calls failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(ids.len(), JOBS, "every call made a distinct job");

    target
        .wait_until(WAIT, "every job to arrive", |got| got.len() >= JOBS)
        .await;
    let c = wait_for_census(db.url(), WAIT, "every job completed", |c| {
        c.jobs_in("completed") == JOBS as i64
    })
    .await;
    assert!(settled(&c), "{c:?}");
    assert_eq!(c.interrupted, 0, "{c:?}");
    let delivered_in = started.elapsed();

    let by_id = deliveries_by_id(&target.arrivals());
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} jobs arrived more than once, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let arrived: HashSet<String> = by_id.keys().cloned().collect();
    assert_eq!(arrived, ids, "exactly the scheduled jobs arrived");
    eprintln!(
        "two instances: {JOBS} jobs scheduled in {scheduled_in:?}, all delivered once after {delivered_in:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_survivor_delivers_the_work_of_a_killed_instance() {
    let db = TestDatabase::create().await;
    let target = Target::start().await;
    // A short lease: an execution of the killed instance is recovered 2 s (its timeout) + 1 s
    // after it started; the survivor looks for expired leases every 10 s.
    let env = [("TIMETRIGGERS_LEASE_MARGIN_SECS", "1")];
    let a = Server::start_on(db.url(), &env);
    let b = Server::start_on(db.url(), &env);
    // Slow answers keep deliveries in flight, so the kill interrupts some.
    target.delay("/kill", Duration::from_millis(300));

    let bases = vec![a.base.clone(), b.base.clone()];
    let target_url = target.url("/kill");
    let scheduling = tokio::spawn(async move {
        schedule_many(
            &bases,
            &target_url,
            JOBS,
            CONCURRENCY,
            &[("ttr-timeout", "2"), ("ttr-max-attempts", "3")],
        )
        .await
    });

    // Kill one instance in the middle of the run: scheduling and delivery are both under way,
    // and it has deliveries in flight (else there would be nothing to recover).
    target
        .wait_until(WAIT, "a quarter of the jobs to arrive", |got| {
            got.len() >= JOBS / 4
        })
        .await;
    let a_pid = a.pid();
    wait_for_census(
        db.url(),
        WAIT,
        "deliveries in flight on the instance to kill",
        |c| c.started_by_process(a_pid) > 0,
    )
    .await;
    a.kill9();
    let killed_after = target.arrivals().len();

    let attempts = scheduling.await.unwrap();
    let accepted: HashSet<String> = attempts.iter().filter_map(|a| a.id.clone()).collect();
    let failed: Vec<_> = attempts.iter().filter(|a| a.status != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "calls the killed instance did not answer were made again on the survivor: {:?}",
        failed.first()
    );
    assert_eq!(accepted.len(), JOBS);

    target
        .wait_until(WAIT, "every accepted job to arrive", |got| {
            let seen: HashSet<&str> = got
                .iter()
                .filter_map(|a| a.header("x-callback-id"))
                .collect();
            accepted.iter().all(|id| seen.contains(id.as_str()))
        })
        .await;
    let c = wait_for_census(
        db.url(),
        WAIT,
        "no job left registered, queued or running",
        settled,
    )
    .await;

    // At-least-once across a crash: a delivery that the killed instance made but could not
    // record is made again (attempt 2) after its lease expired. Only those may repeat.
    assert!(
        c.interrupted > 0,
        "the killed instance had deliveries in flight: {c:?}"
    );
    // Everything settled, retries included: now count the deliveries.
    let by_id = deliveries_by_id(&target.arrivals());
    let repeated = by_id.values().filter(|n| **n > 1).count() as i64;
    assert!(
        repeated <= c.interrupted,
        "{repeated} jobs arrived twice but only {} executions were interrupted",
        c.interrupted
    );
    let total_jobs: i64 = c.jobs.values().sum();
    assert_eq!(c.jobs_in("completed"), total_jobs, "{c:?}");
    // Jobs the killed instance committed without answering (their calls were made again on
    // the survivor) are delivered too; nothing else.
    assert!(by_id.len() as i64 <= total_jobs);
    eprintln!(
        "kill -9 after {killed_after} arrivals: {} accepted, {total_jobs} stored, {} arrived, \
         {} interrupted executions recovered, {repeated} delivered twice",
        accepted.len(),
        by_id.len(),
        c.interrupted
    );
}

//! PostgreSQL-specific behaviour that the shared conformance suite cannot see: several store
//! handles on one schema (as several server instances are), concurrent upserts of one key,
//! exact quotas under concurrency, lock order (no deadlocks), the NOTIFY wake-up and its
//! listener's reconnection, and the schema itself.
//!
//! Like the conformance suite, these need `TIMETRIGGERS_TEST_DATABASE_URL` and fail without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use timetriggers_core::testing::{
    at, claim, definition, finished, ok_response, project, run_due, schedule_ok, upsert, T0,
};
use timetriggers_core::{
    DispatchOutcome, DispatchRequest, Dispatcher, Engine, EngineConfig, JobId, JobStatus,
    MonthQuota, Refusal, ReplayJob, ResponseSummary, Store, SystemClock, Timestamp, TriggerRef,
    TriggeredBy, UpsertOperation,
};
use timetriggers_store_postgres::testing::{database_url, unique_name};
use timetriggers_store_postgres::{PgStore, PgStoreOptions};
use tokio::sync::mpsc;

/// A schema of its own, dropped at the end, and `n` independent store handles on it (each with
/// its own pool and notifier, as separate server instances have).
struct Cluster {
    url: String,
    schema: String,
    stores: Vec<PgStore>,
}

impl Cluster {
    async fn new(n: usize) -> Cluster {
        let url = database_url();
        let schema = unique_name("tt_pg");
        let mut stores = Vec::new();
        for _ in 0..n {
            let options = PgStoreOptions::with_schema(&schema).max_connections(8);
            stores.push(PgStore::connect_with(&url, options).await.unwrap());
        }
        Cluster {
            url,
            schema,
            stores,
        }
    }

    async fn drop_schema(self) {
        for s in &self.stores {
            s.close().await;
        }
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_key_make_one_item() {
    let c = Cluster::new(2).await;
    let p = project(&c.stores[0], MonthQuota::Unlimited).await;
    let calls = (0..40).map(|i| {
        let store = c.stores[i % 2].clone();
        let p = p.id.clone();
        tokio::spawn(async move {
            let def = definition("https://example.com/k", at(60_000 + i as i64));
            store
                .upsert_trigger(upsert(&p, None, Some("same"), def, T0))
                .await
                .expect("no store error (no unique violation, no deadlock)")
                .expect("accepted")
        })
    });
    let done: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: HashSet<JobId> = done.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 1, "one item holds the key");
    let created = done
        .iter()
        .filter(|d| d.operation == UpsertOperation::Schedule)
        .count();
    assert_eq!(created, 1, "created once, rescheduled by the others");
    c.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finite_quota_is_exact_under_concurrency() {
    let c = Cluster::new(2).await;
    let p = project(&c.stores[0], MonthQuota::Limited(10)).await;
    let calls = (0..30).map(|i| {
        let store = c.stores[i % 2].clone();
        let p = p.id.clone();
        tokio::spawn(async move {
            let def = definition("https://example.com/q", at(60_000));
            store
                .upsert_trigger(upsert(&p, None, None, def, T0))
                .await
                .unwrap()
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 10);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|r| *r == Refusal::QuotaExceeded));
    let mut remaining: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|u| u.month_quota_remaining.unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u64>>(), "each unit once");
    c.drop_schema().await;
}

/// Keyless one-off jobs arriving together are inserted many per statement (the store's group
/// commit): each keeps its own fields, a skipped one gets no planned execution, every job is
/// charged exactly once, and a project with a quota still takes the exact, per-job path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_keyless_jobs_are_batched_and_keep_their_fields() {
    let c = Cluster::new(1).await;
    let store = c.stores[0].clone();
    let unlimited = project(&store, MonthQuota::Unlimited).await;
    let limited = project(&store, MonthQuota::Limited(5)).await;
    let n = 300usize;
    let calls = (0..n).map(|i| {
        let store = store.clone();
        let p = if i % 10 == 0 {
            limited.id.clone()
        } else {
            unlimited.id.clone()
        };
        tokio::spawn(async move {
            let mut def = definition(&format!("https://example.com/b/{i}"), at(60_000 + i as i64));
            def.title = (i % 2 == 0).then(|| format!("title {i}"));
            def.tags = (0..i % 4).map(|t| format!("tag-{i}-{t}")).collect();
            def.request.headers = vec![("x-n".into(), i.to_string())];
            def.request.body = bytes::Bytes::from(vec![i as u8, 0, 255]);
            if i % 7 == 3 {
                def.schedule = timetriggers_core::TriggerSchedule::Once {
                    at: at(60_000),
                    skip: true,
                };
            }
            let done = store
                .upsert_trigger(upsert(&p, None, None, def.clone(), T0))
                .await;
            (i, p, def, done.unwrap())
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut accepted_unlimited = 0;
    let mut accepted_limited = 0;
    for (i, p, def, done) in &results {
        let Ok(up) = done else {
            assert_eq!(p, &limited.id, "job {i}: only the limited project refuses");
            assert_eq!(done.as_ref().unwrap_err(), &Refusal::QuotaExceeded);
            continue;
        };
        if p == &limited.id {
            accepted_limited += 1;
        } else {
            accepted_unlimited += 1;
        }
        let job = store.get_job(p, &up.id).await.unwrap().expect("stored");
        assert_eq!(job.request, def.request, "job {i}");
        assert_eq!(job.title, def.title, "job {i}");
        assert_eq!(job.tags, def.tags, "job {i}");
        let skipped = i % 7 == 3;
        let expected = if skipped {
            JobStatus::Skipped
        } else {
            JobStatus::Registered
        };
        assert_eq!(job.status, expected, "job {i}");
        let executions = store.list_job_executions(p, &up.id).await.unwrap().unwrap();
        assert_eq!(executions.len(), usize::from(!skipped), "job {i}");
    }
    assert_eq!(accepted_limited, 5, "the quota is exact");
    assert_eq!(accepted_unlimited, n - n / 10);
    let mut conn = PgConnection::connect(&c.url).await.unwrap();
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT COALESCE(SUM(used), 0)::int8 FROM \"{}\".quota_usage WHERE project_id = $1",
        c.schema
    ))
    .bind(unlimited.id.as_str())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(used as usize, accepted_unlimited, "each job charged once");
    conn.close().await.unwrap();
    c.drop_schema().await;
}

/// A job the database refuses (here a `max_attempts` of 0 against its CHECK constraint) fails
/// its batch's statement; every other job of that batch is then inserted alone and accepted, so
/// one job's error is never another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_job_in_a_batch_fails_alone() {
    let c = Cluster::new(1).await;
    let store = c.stores[0].clone();
    let p = project(&store, MonthQuota::Unlimited).await;
    let calls = (0..60).map(|i| {
        let store = store.clone();
        let p = p.id.clone();
        tokio::spawn(async move {
            let mut def = definition(&format!("https://example.com/r/{i}"), at(60_000));
            if i == 30 {
                def.options.max_attempts = 0;
            }
            (
                i,
                store.upsert_trigger(upsert(&p, None, None, def, T0)).await,
            )
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, result) in results {
        if i == 30 {
            assert!(result.is_err(), "the bad job is refused by the database");
            continue;
        }
        let up = result.unwrap().unwrap();
        let job = store.get_job(&p.id, &up.id).await.unwrap().expect("stored");
        assert_eq!(job.request.url, format!("https://example.com/r/{i}"));
    }
    c.drop_schema().await;
}

/// Claims, reschedules, cancels and completions of the same jobs from several handles at once:
/// every call succeeds (no deadlock, no serialization failure) and every job ends in one
/// consistent state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_reschedules_and_cancels_never_deadlock() {
    let c = Cluster::new(3).await;
    let p = project(&c.stores[0], MonthQuota::Unlimited).await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let def = definition("https://example.com/r", at(i % 5));
        let key = format!("k{}", i % 50);
        ids.push(
            schedule_ok(
                &c.stores[0],
                upsert(&p.id, None, Some(key.as_str()), def, T0),
            )
            .await
            .id,
        );
    }
    let ids = Arc::new(ids);
    let mut tasks = Vec::new();
    for w in 0..3 {
        let store = c.stores[w].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..30 {
                let claimed = store.claim_due(claim(at(10), 7)).await.unwrap();
                let done: Vec<_> = claimed
                    .iter()
                    .map(|c| finished(c, ok_response(), at(20)))
                    .collect();
                store.complete_executions(&done).await.unwrap();
            }
        }));
    }
    for w in 0..3 {
        let (store, ids, project) = (c.stores[w].clone(), ids.clone(), p.id.clone());
        tasks.push(tokio::spawn(async move {
            for (i, id) in ids.iter().enumerate().skip(w).step_by(3) {
                let def = definition("https://example.com/moved", at(5));
                let by_key = format!("k{}", i % 50);
                let _ = store
                    .upsert_trigger(upsert(&project, Some(id), None, def.clone(), T0))
                    .await
                    .unwrap();
                let _ = store
                    .upsert_trigger(upsert(&project, None, Some(by_key.as_str()), def, T0))
                    .await
                    .unwrap();
                if i % 4 == 0 {
                    let _ = store
                        .cancel_trigger(&project, &TriggerRef::Id(id.clone()), T0)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Drain what is left, then every job is in a final state with consistent executions.
    run_due(&c.stores[1], at(1_000)).await;
    for id in ids.iter() {
        let job = c.stores[2].get_job(&p.id, id).await.unwrap().unwrap();
        assert!(
            matches!(job.status, JobStatus::Completed | JobStatus::Cancelled),
            "{id}: {:?}",
            job.status
        );
        let execs = c.stores[2]
            .list_job_executions(&p.id, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(execs.len(), 1, "{id}: one execution, never two");
    }
    c.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_keep_nul_bytes() {
    let c = Cluster::new(1).await;
    let store = &c.stores[0];
    let p = project(store, MonthQuota::Unlimited).await;
    let id = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await
    .id;
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    let body = "a\0b\u{fffd}c".to_owned();
    let outcome = DispatchOutcome::Response(ResponseSummary {
        status: 200,
        headers: vec![("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
        body: body.clone(),
        size: 5,
    });
    store
        .complete_executions(&[finished(&claimed[0], outcome, at(1))])
        .await
        .unwrap();
    let e = &store
        .list_job_executions(&p.id, &id)
        .await
        .unwrap()
        .unwrap()[0];
    assert_eq!(e.response_body.as_deref(), Some(body.as_str()));
    assert_eq!(
        e.response_headers,
        Some(vec![("x-a".into(), "1".into()), ("x-a".into(), "2".into())])
    );
    c.drop_schema().await;
}

/// A replayed occurrence whose generator has since become a one-off job (so the generator row
/// is gone) is still claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occurrences_outlive_their_generator() {
    let c = Cluster::new(1).await;
    let store = &c.stores[0];
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occurrence) =
        timetriggers_core::testing::cron_definition("https://example.com/g", T0);
    let g = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    assert_eq!(run_due(store, T0).await.len(), 1);
    // The series becomes a one-off job under the same id: the generator row is deleted.
    schedule_ok(
        store,
        upsert(
            &p.id,
            Some(&g),
            None,
            definition("https://example.com/j", at(1_000_000)),
            at(1),
        ),
    )
    .await;
    store
        .replay_job(ReplayJob {
            project_ids: vec![p.id.clone()],
            job_id: occurrence.clone(),
            execution_id: timetriggers_core::ExecutionId::generate(),
            triggered_by: TriggeredBy::Replay,
            now: at(2),
        })
        .await
        .unwrap()
        .unwrap();
    let claimed = store.claim_due(claim(at(2), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, occurrence);
    c.drop_schema().await;
}

/// A job due now announces itself on `<schema>_due` once committed; a job due later than the
/// horizon does not (every engine finds it by polling before it is due).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_soon_due_jobs_are_announced() {
    let c = Cluster::new(1).await;
    let store = &c.stores[0];
    let mut listener = PgListener::connect(&c.url).await.unwrap();
    listener.listen(&format!("{}_due", c.schema)).await.unwrap();
    let p = project(store, MonthQuota::Unlimited).await;
    let now = Timestamp::from_millis(chrono_now());
    let later = Timestamp::from_millis(now.as_millis() + 3_600_000);
    schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", later),
            now,
        ),
    )
    .await;
    schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", now),
            now,
        ),
    )
    .await;
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(
        n.payload(),
        now.as_millis().to_string(),
        "the first announcement is the job due now, not the one in an hour"
    );

    // A burst is coalesced: far fewer NOTIFYs than jobs.
    let burst = 300;
    let calls = (0..burst).map(|_| {
        let (store, p) = (store.clone(), p.id.clone());
        async move {
            schedule_ok(
                &store,
                upsert(&p, None, None, definition("https://example.com/", now), now),
            )
            .await
        }
    });
    futures::future::join_all(calls).await;
    let mut received = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        received += 1;
    }
    assert!(received >= 1, "the burst was announced");
    assert!(received < burst / 2, "{received} NOTIFYs for {burst} jobs");
    c.drop_schema().await;
}

/// The backends LISTENing on `channel`.
async fn listening(admin: &mut PgConnection, channel: &str) -> Vec<i32> {
    let sql = format!(
        "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN \"{channel}\"' \
         AND datname = current_database()"
    );
    sqlx::query_scalar::<_, i32>(&sql)
        .fetch_all(admin)
        .await
        .unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reports each delivery on a channel.
#[derive(Debug)]
struct Recorder(mpsc::UnboundedSender<(String, Instant)>);

#[async_trait]
impl Dispatcher for Recorder {
    async fn dispatch(&self, req: &DispatchRequest) -> DispatchOutcome {
        let _ = self.0.send((req.job_id.to_string(), Instant::now()));
        ok_response()
    }
}

/// Instance A only schedules; instance B's engine polls once a minute, so only the NOTIFY can
/// wake it in time. It delivers within a second, also after its LISTEN connection was killed
/// (the listener reconnects).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_wakes_at_once_and_after_a_lost_listen_connection() {
    let c = Cluster::new(2).await;
    let (a, b) = (c.stores[0].clone(), c.stores[1].clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = Engine::new(
        Arc::new(b.clone()),
        Arc::new(Recorder(tx)),
        Arc::new(SystemClock),
        EngineConfig {
            idle_poll: Duration::from_secs(60),
            stale_check_interval: Duration::from_secs(60),
            ..EngineConfig::default()
        },
    );
    let _listener = b.spawn_listener(engine.signal());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let channel = format!("{}_due", c.schema);
    let mut admin = PgConnection::connect(&c.url).await.unwrap();
    // Wait until B listens (its engine has started and sleeps for a minute).
    let end = Instant::now() + Duration::from_secs(10);
    let first_pid = loop {
        if let Some(pid) = listening(&mut admin, &channel).await.first() {
            break *pid;
        }
        assert!(Instant::now() < end, "B never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let p = project(&a, MonthQuota::Unlimited).await;
    for round in 0..2 {
        let now = Timestamp::from_millis(chrono_now());
        let id = schedule_ok(
            &a,
            upsert(
                &p.id,
                None,
                None,
                definition("https://example.com/", now),
                now,
            ),
        )
        .await
        .id;
        let sent = Instant::now();
        let (got, when) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("B delivered long before its one-minute poll")
            .unwrap();
        assert_eq!(got, id.to_string());
        let lag = when.duration_since(sent);
        assert!(
            lag < Duration::from_secs(1),
            "round {round}: woken after {lag:?}"
        );

        if round == 0 {
            // Cut B's LISTEN connection; it must reconnect and listen again.
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(first_pid)
                .execute(&mut admin)
                .await
                .unwrap();
            let end = Instant::now() + Duration::from_secs(20);
            loop {
                let pids = listening(&mut admin, &channel).await;
                if pids.iter().any(|p| *p != first_pid) {
                    break;
                }
                assert!(Instant::now() < end, "B never listened again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let _ = stop.send(());
    running.await.unwrap();
    admin.close().await.unwrap();
    c.drop_schema().await;
}

/// Everything lives in the store's schema, sqlx's migration table included; reconnecting runs
/// the migrations again as a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_holds_everything_and_migrations_are_idempotent() {
    let c = Cluster::new(2).await;
    let mut conn = PgConnection::connect(&c.url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY 1",
    )
    .bind(&c.schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for t in [
        "_sqlx_migrations",
        "executions",
        "generators",
        "jobs",
        "projects",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} in {tables:?}");
    }
    let applied: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM \"{}\"._sqlx_migrations",
        c.schema
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files);
    let elsewhere: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name = '_sqlx_migrations' AND table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(elsewhere, 0, "nothing in public");
    conn.close().await.unwrap();
    c.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable_quickly() {
    // Nothing listens on port 1.
    let started = Instant::now();
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .unwrap_err();
    assert!(
        matches!(err, timetriggers_core::StoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = PgStore::connect("mysql://localhost/db").await.unwrap_err();
    assert!(err.to_string().contains("postgres://"), "{err}");
}

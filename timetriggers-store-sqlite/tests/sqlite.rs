//! SQLite-specific behaviour that the shared conformance suite cannot see: the file, WAL,
//! migrations, the writer under concurrency, the advisory lock, corrupt rows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use timetriggers_core::testing::{at, definition, project, schedule_ok, upsert, T0};
use timetriggers_core::{
    JobId, MonthQuota, NewProject, ProjectId, Store, StoreError, Timestamp, TriggerRef,
};
use timetriggers_store_sqlite::SqliteStore;

/// A plain connection to the file, beside the store (as an operator's `sqlite3` shell would be).
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn opens_in_wal_mode_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tt.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.path(), path);
    let p = project(&store, MonthQuota::Limited(10)).await;
    store.close().await;

    // Reopening runs the migrations again: nothing to do, nothing lost.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_project(&p.id).await.unwrap(), Some(p));
    store.close().await;
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.ping().await.unwrap();

    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files);
    conn.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn urls_with_and_without_slashes_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let abs = path.display().to_string();
    assert!(abs.starts_with('/'));
    let store = SqliteStore::connect(&format!("sqlite:{abs}"))
        .await
        .unwrap();
    let p = project(&store, MonthQuota::Unlimited).await;
    store.close().await;
    // sqlite:///abs/path is the same absolute path.
    let store = SqliteStore::connect(&format!("sqlite://{abs}"))
        .await
        .unwrap();
    assert!(store.get_project(&p.id).await.unwrap().is_some());
    store.close().await;

    let err = SqliteStore::connect("postgres://localhost/tt")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sqlite://PATH"), "{err}");
    let err = SqliteStore::connect("sqlite::memory:").await.unwrap_err();
    assert!(err.to_string().contains("not a plain file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_from_many_tasks_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("c.db")).await.unwrap());
    let p = project(&*store, MonthQuota::Limited(100_000)).await;
    let tasks = 64;
    let per_task = 40;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let pid = p.id.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_task {
                // Half of them use a custom key, rescheduled once (never due during the
                // test, so that no claim takes them in between); one per task is due at T0.
                let key = (i % 2 == 0).then(|| format!("k-{t}-{i}"));
                let fire = if i == 1 { T0 } else { at(1_000 + i64::from(i)) };
                let def = definition("https://example.com/", fire);
                let req = upsert(&pid, None, key.as_deref(), def.clone(), T0);
                let first = store.upsert_trigger(req).await.unwrap().unwrap();
                if key.is_some() {
                    let again = upsert(&pid, None, key.as_deref(), def, T0);
                    let second = store.upsert_trigger(again).await.unwrap().unwrap();
                    assert_eq!(second.id, first.id);
                }
                ids.push(first.id);
            }
            ids
        }));
    }
    // Claims and reads run at the same time as the writes.
    let claimer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = 0;
            for _ in 0..50 {
                claimed += store
                    .claim_due(timetriggers_core::testing::claim(T0, 10))
                    .await
                    .unwrap()
                    .len();
                store.next_due_at().await.unwrap();
                tokio::task::yield_now().await;
            }
            claimed
        })
    };
    let mut all = HashSet::new();
    for h in handles {
        for id in h.await.unwrap() {
            assert!(all.insert(id));
        }
    }
    let claimed = claimer.await.unwrap();
    assert_eq!(all.len(), tasks * per_task as usize);
    for id in all.iter().take(50) {
        assert!(store.get_job(&p.id, id).await.unwrap().is_some());
    }
    // Everything due at T0 (i == 1 in each task) is claimed exactly once, now or later.
    let rest = store
        .claim_due(timetriggers_core::testing::claim(T0, 1_000))
        .await
        .unwrap()
        .len();
    assert_eq!(claimed + rest, tasks);
    // Every accepted call was charged exactly once.
    let charged = tasks * per_task as usize * 3 / 2;
    let more = schedule_ok(
        &*store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(
        more.month_quota_remaining,
        Some(100_000 - charged as u64 - 1)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_fails_alone_among_concurrent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("g.db")).await.unwrap());
    // 200 concurrent creations over 20 slugs: exactly one per slug wins, the others get their
    // own Conflict, and nobody gets "database is locked".
    let calls = (0..200).map(|i| {
        let store = store.clone();
        async move {
            store
                .create_project(NewProject {
                    id: ProjectId::generate(),
                    slug: format!("slug-{}", i % 20),
                    month_quota: MonthQuota::Unlimited,
                    now: T0,
                })
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut won = HashSet::new();
    for r in results {
        match r {
            Ok(p) => assert!(won.insert(p.slug), "two winners"),
            Err(StoreError::Conflict(m)) => assert!(m.contains("already taken"), "{m}"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won.len(), 20);
    for slug in won {
        assert!(store.get_project_by_slug(&slug).await.unwrap().is_some());
    }
    store.close().await;
}

#[tokio::test]
async fn committed_rows_are_seen_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let p = project(&store, MonthQuota::Unlimited).await;
    let mut def = definition("https://example.com/bin", at(5_000));
    def.request.body = (0..=255u8).collect::<Vec<_>>().into();
    let id = schedule_ok(&store, upsert(&p.id, None, Some("dur"), def.clone(), T0))
        .await
        .id;
    // Dropped without close: the next open waits for the writer to let go of the file.
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.request, def.request);
    assert_eq!(job.custom_key.as_deref(), Some("dur"));
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(5_000)));
    store.close().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await;
    match second {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("in use"), "{m}"),
        other => panic!("expected the lock to refuse, got {other:?}"),
    }
    first.close().await;
    let second = SqliteStore::open(&path).await.unwrap();
    second.ping().await.unwrap();
    second.close().await;
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("x.db")).await.unwrap();
    let clone = store.clone();
    store.close().await;
    assert!(matches!(
        clone.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let r = clone
        .create_project(NewProject {
            id: ProjectId::generate(),
            slug: "after-close".into(),
            month_quota: MonthQuota::Unlimited,
            now: T0,
        })
        .await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(matches!(
        clone.get_project_by_slug("x").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let p = project(&store, MonthQuota::Unlimited).await;
    let id = schedule_ok(
        &store,
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
    let mut conn = raw(&path).await;
    sqlx::query("UPDATE jobs SET headers = 'not json', max_attempts = 99999999999 WHERE id = ?1")
        .bind(id.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = store.get_job(&p.id, &id).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    let err = store
        .claim_due(timetriggers_core::testing::claim(T0, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    // The failed claim was rolled back: the execution is still planned.
    assert_eq!(store.next_due_at().await.unwrap(), Some(T0));
    store.close().await;
}

#[tokio::test]
async fn a_project_that_does_not_exist_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("nf.db")).await.unwrap();
    let ghost = ProjectId::generate();
    let r = store
        .upsert_trigger(upsert(
            &ghost,
            None,
            None,
            definition("https://example.com/", T0),
            T0,
        ))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = store
        .create_api_key(timetriggers_core::testing::new_key(&ghost, "h"))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = store
        .cancel_trigger(&ghost, &TriggerRef::Id(JobId::generate()), T0)
        .await
        .unwrap();
    assert!(r.is_err());
    store.close().await;
}

#[tokio::test]
async fn rescheduling_into_skip_cancels_the_planned_execution() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let p = project(&store, MonthQuota::Unlimited).await;
    let id = schedule_ok(
        &store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    let mut def = definition("https://example.com/", at(-1_000));
    def.schedule = timetriggers_core::TriggerSchedule::Once {
        at: at(-1_000),
        skip: true,
    };
    let done = schedule_ok(&store, upsert(&p.id, Some(&id), None, def, T0)).await;
    assert_eq!(done.id, id);
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.status, timetriggers_core::JobStatus::Skipped);
    assert_eq!(job.custom_key.as_deref(), Some("k"));
    let execs = store
        .list_job_executions(&p.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(
        execs[0].status,
        timetriggers_core::ExecutionStatus::Cancelled
    );
    assert_eq!(store.next_due_at().await.unwrap(), None);

    // The key was released with the skip.
    let fresh = schedule_ok(
        &store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(fresh.id, id);

    let mut conn = raw(&path).await;
    let rows = sqlx::query("SELECT status FROM executions WHERE job_id = ?1")
        .bind(id.as_str())
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("status"), "cancelled");
    conn.close().await.unwrap();
    store.close().await;
}

/// A file written before migration 0006 (rowid tables for jobs and executions) opens with its
/// jobs, executions, keys and cascades intact.
#[tokio::test]
async fn a_file_from_before_the_lean_rows_migration_keeps_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The schema as migrations 0001-0005 left it.
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0006" {
            std::fs::copy(entry.path(), old.join(&name)).unwrap();
            copied += 1;
        }
    }
    assert_eq!(copied, 5);
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let job = |id: &str, key: Option<&str>, status: &str| {
        format!(
            "INSERT INTO jobs (id, project_id, custom_key, status, scheduled_at, method, url, \
             headers, body, tags, max_attempts, timeout_ms, origin, registered_at) VALUES \
             ('{id}', 'p1', {}, '{status}', 5000, 'POST', 'https://example.com/{id}', \
             '[[\"a\",\"b\"]]', x'00ff', '[\"t\"]', 3, 1000, 'schedule', 1000)",
            key.map_or("NULL".to_owned(), |k| format!("'{k}'"))
        )
    };
    for sql in [
        "INSERT INTO projects (id, slug, month_quota, created_at) VALUES ('p1', 'old', NULL, 0)"
            .to_owned(),
        job("j1", Some("k1"), "registered"),
        job("j2", None, "completed"),
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES ('e1', 'j1', 'p1', 1, 'scheduler', 'planned', 5000, 5000)"
            .to_owned(),
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at, completed_at, response_status) VALUES \
         ('e2', 'j2', 'p1', 1, 'scheduler', 'complete', 4000, 4000, 4100, 204)"
            .to_owned(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    let p1 = ProjectId::from("p1");
    let j1 = store
        .get_job(&p1, &JobId::from("j1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j1.custom_key.as_deref(), Some("k1"));
    assert_eq!(j1.request.body.as_ref(), &[0x00, 0xff]);
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(Timestamp::from_millis(5_000))
    );
    let e2 = store
        .list_job_executions(&p1, &JobId::from("j2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e2.len(), 1);
    assert_eq!(e2[0].response_status, Some(204));
    // The live key still belongs to j1: scheduling it again reschedules j1.
    let again = schedule_ok(
        &store,
        upsert(
            &p1,
            None,
            Some("k1"),
            definition("https://example.com/x", at(9_000)),
            T0,
        ),
    )
    .await;
    assert_eq!(again.id, JobId::from("j1"));
    store.close().await;

    let mut conn = raw(&path).await;
    let broken = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(broken.is_empty());
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('jobs_old', 'executions_old', 'jobs_origin')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
    // Deleting the project still cascades through jobs to executions.
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM projects WHERE id = 'p1'")
        .execute(&mut conn)
        .await
        .unwrap();
    let executions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(executions, 0);
    conn.close().await.unwrap();
}

/// New keyless one-off jobs are written in groups; a job the database refuses (here: an id
/// that already exists) fails its group, whose other jobs are then written one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_job_in_a_group_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("grp.db")).await.unwrap());
    let p = project(&*store, MonthQuota::Limited(1_000)).await;
    let keyless = |due| {
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", at(due)),
            T0,
        )
    };
    let taken = schedule_ok(&*store, keyless(1)).await.id;
    let mut reqs: Vec<_> = (0..40).map(keyless).collect();
    reqs[17].new_job_id = taken.clone();
    let results =
        futures::future::join_all(reqs.iter().map(|r| store.upsert_trigger(r.clone()))).await;
    let mut created = 0;
    for (i, result) in results.into_iter().enumerate() {
        if i == 17 {
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        } else {
            let done = result.unwrap().unwrap();
            assert_eq!(done.id, reqs[i].new_job_id);
            assert!(store.get_job(&p.id, &done.id).await.unwrap().is_some());
            created += 1;
        }
    }
    assert_eq!(created, 39);
    // The first job, then 39: charged once each, the refused one not at all.
    let next = schedule_ok(&*store, keyless(1)).await;
    assert_eq!(next.month_quota_remaining, Some(1_000 - 41));
    store.close().await;
}

/// The store's threads outlive the runtime that opened it; so does scheduling, even though
/// the task that groups keyless jobs went with that runtime.
#[test]
fn a_store_opened_in_another_runtime_still_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.db");
    let first = tokio::runtime::Runtime::new().unwrap();
    let (store, p) = first.block_on(async {
        let store = SqliteStore::open(&path).await.unwrap();
        let p = project(&store, MonthQuota::Limited(10)).await;
        (store, p)
    });
    drop(first);

    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let done = schedule_ok(
            &store,
            upsert(
                &p.id,
                None,
                None,
                definition("https://example.com/", at(5)),
                T0,
            ),
        )
        .await;
        assert_eq!(done.month_quota_remaining, Some(9));
        assert!(store.get_job(&p.id, &done.id).await.unwrap().is_some());
        store.close().await;
    });
}

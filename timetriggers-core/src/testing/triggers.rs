//! Checks for create-or-reschedule, cancel, quota and scoping.

use std::time::Duration;

use bytes::Bytes;

use crate::ids::JobId;
use crate::lifecycle::Refusal;
use crate::model::{
    DeliveryOptions, ExecutionStatus, HttpRequest, JobKind, JobStatus, MonthQuota, Origin,
    TriggeredBy,
};
use crate::store::{Store, TriggerRef, TriggerSchedule, UpsertOperation};
use crate::testing::fixtures::*;
use crate::time::Timestamp;

/// Every field written by an upsert reads back exactly.
pub async fn job_insert_and_get_round_trips_every_field(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut def = definition("https://example.com/hook?x=1", at(60_123));
    def.title = Some("Title ✓".into());
    def.tags = vec!["emails".into(), "a:b/c-d.e_f".into()];
    def.options = DeliveryOptions {
        max_attempts: 3,
        timeout: Duration::from_secs(7),
    };
    let done = schedule_ok(store, upsert(&p.id, None, Some("key-1"), def.clone(), T0)).await;
    assert_eq!(done.operation, UpsertOperation::Schedule);
    assert_eq!(done.kind, JobKind::Job);
    assert_eq!(done.scheduled_at, at(60_123));
    assert_eq!(done.month_quota_remaining, None);

    let job = store.get_job(&p.id, &done.id).await.unwrap().unwrap();
    assert_eq!(job.id, done.id);
    assert_eq!(job.project_id, p.id);
    assert_eq!(job.project_slug, p.slug);
    assert_eq!(job.custom_key.as_deref(), Some("key-1"));
    assert_eq!(job.title.as_deref(), Some("Title ✓"));
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.scheduled_at, at(60_123));
    assert_eq!(job.request, def.request);
    assert_eq!(job.tags, def.tags);
    assert_eq!(job.options, def.options);
    assert_eq!(job.origin, Origin::Schedule);
    assert_eq!(job.registered_at, T0);
    assert_eq!(job.cancelled_at, None);
    assert_eq!(job.queued_at, None);
    assert_eq!(job.started_at, None);
    assert_eq!(job.completed_at, None);
    assert_eq!(job.last.attempt_number, None);
    assert_eq!(job.last.response_status, None);
    assert_eq!(job.last.error_message, None);
    assert_eq!(job.rate_limited.limited_at, None);
    assert!(job.rate_limited.tags.is_empty());
    assert!(job.generator.is_none());

    let execs = store
        .list_job_executions(&p.id, &done.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 1, "a registered job has one planned execution");
    let e = &execs[0];
    assert_eq!(e.job_id, done.id);
    assert_eq!(e.project_id, p.id);
    assert_eq!(e.status, ExecutionStatus::Planned);
    assert_eq!(e.triggered_by, TriggeredBy::Scheduler);
    assert_eq!(e.attempt_number, 1);
    assert_eq!(e.planned_at, at(60_123));
    assert_eq!(e.started_at, None);
    assert_eq!(e.response_status, None);
    assert_eq!(e.response_headers, None);
    assert_eq!(e.response_body, None);
    assert_eq!(e.response_size, None);
    assert_eq!(e.error_message, None);
}

/// Bodies are binary safe and headers keep their order and duplicates.
pub async fn job_binary_body_and_header_order_round_trip(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut def = definition("https://example.com/", T0);
    let body: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    def.request = HttpRequest {
        method: "PUT".into(),
        url: "https://example.com/bin".into(),
        headers: vec![
            ("x-b".into(), "2".into()),
            ("x-a".into(), "1".into()),
            ("x-b".into(), "3 \"quoted\" ✓".into()),
        ],
        body: Bytes::from(body.clone()),
    };
    let id = schedule_ok(store, upsert(&p.id, None, None, def.clone(), T0))
        .await
        .id;
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.request.body.as_ref(), body.as_slice());
    assert_eq!(job.request, def.request);
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    let mine = claimed.iter().find(|c| c.job_id == id).unwrap();
    assert_eq!(mine.request, def.request);
}

/// A live key reschedules the same item in place; the new definition replaces the old one and
/// the planned execution moves.
pub async fn upsert_by_key_reschedules_in_place(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let first = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/old", at(10_000)),
            T0,
        ),
    )
    .await;
    let mut def = definition("https://example.com/new", at(20_000));
    def.request.method = "PATCH".into();
    def.request.body = Bytes::from_static(b"new body");
    def.request.headers = vec![("x-new".into(), "1".into())];
    def.title = Some("new title".into());
    def.tags = vec!["t".into()];
    def.options.max_attempts = 4;
    let second = schedule_ok(store, upsert(&p.id, None, Some("k"), def.clone(), at(1))).await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.operation, UpsertOperation::Reschedule);
    assert_eq!(second.scheduled_at, at(20_000));

    let job = store.get_job(&p.id, &first.id).await.unwrap().unwrap();
    assert_eq!(job.request, def.request);
    assert_eq!(job.title.as_deref(), Some("new title"));
    assert_eq!(job.tags, vec!["t".to_string()]);
    assert_eq!(job.options.max_attempts, 4);
    assert_eq!(job.scheduled_at, at(20_000));
    assert_eq!(job.status, JobStatus::Registered);
    let execs = store
        .list_job_executions(&p.id, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].planned_at, at(20_000));
    assert_eq!(execs[0].status, ExecutionStatus::Planned);

    // Only the new time is due.
    assert!(store
        .claim_due(claim(at(15_000), 10))
        .await
        .unwrap()
        .is_empty());
    let claimed = store.claim_due(claim(at(20_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].request.url, "https://example.com/new");
}

/// Once the job holding a key has finished (or was cancelled or skipped), the key makes a new
/// item.
pub async fn upsert_by_key_after_finish_creates_new_item(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let first = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    run_due(store, T0).await;
    assert_eq!(
        store
            .get_job(&p.id, &first.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Completed
    );
    let second = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/", at(5_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(second.id, first.id);
    assert_eq!(second.operation, UpsertOperation::Schedule);

    store
        .cancel_trigger(&p.id, &TriggerRef::CustomKey("k".into()), T0)
        .await
        .unwrap()
        .unwrap();
    let third = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("k"),
            definition("https://example.com/", at(5_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(third.id, second.id);
    assert_eq!(third.operation, UpsertOperation::Schedule);
}

/// A key held by a job that an engine took is 410.
pub async fn upsert_by_key_of_running_job_is_gone(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let first = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("busy"),
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    assert!(claimed.iter().any(|c| c.job_id == first.id));
    let refusal = schedule_refused(
        store,
        upsert(
            &p.id,
            None,
            Some("busy"),
            definition("https://example.com/", at(1)),
            T0,
        ),
    )
    .await;
    assert_eq!(refusal, Refusal::Gone);
    // Nothing was charged or changed.
    let job = store.get_job(&p.id, &first.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
}

/// Reschedule by id: 404 unknown, 410 not registered, key clash 400, in place otherwise.
pub async fn upsert_by_id_follows_the_table(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let unknown = JobId::generate();
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&unknown),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::NotFound);

    let a = job_at(store, &p.id, at(10_000)).await;
    let done = schedule_ok(
        store,
        upsert(
            &p.id,
            Some(&a),
            Some("taken-by-a"),
            definition("https://example.com/id", at(30_000)),
            T0,
        ),
    )
    .await;
    assert_eq!(done.id, a);
    assert_eq!(done.operation, UpsertOperation::Reschedule);
    let job = store.get_job(&p.id, &a).await.unwrap().unwrap();
    assert_eq!(job.custom_key.as_deref(), Some("taken-by-a"));
    assert_eq!(job.request.url, "https://example.com/id");
    assert_eq!(job.scheduled_at, at(30_000));

    // The same key again on the same id is fine.
    schedule_ok(
        store,
        upsert(
            &p.id,
            Some(&a),
            Some("taken-by-a"),
            definition("https://example.com/id", at(31_000)),
            T0,
        ),
    )
    .await;

    // Another item may not take a live key.
    let b = job_at(store, &p.id, at(10_000)).await;
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&b),
            Some("taken-by-a"),
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::CustomKeyTaken);

    store
        .cancel_trigger(&p.id, &TriggerRef::Id(b.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&b),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::Gone);

    let c = job_at(store, &p.id, T0).await;
    run_due(store, T0).await;
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&c),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::Gone);
}

/// A skipped job is recorded, never claimed, and holds no key.
pub async fn upsert_skip_records_skipped_job(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut def = definition("https://example.com/", at(-60_000));
    def.schedule = TriggerSchedule::Once {
        at: at(-60_000),
        skip: true,
    };
    let done = schedule_ok(store, upsert(&p.id, None, Some("sk"), def, T0)).await;
    assert_eq!(done.scheduled_at, at(-60_000));
    let job = store.get_job(&p.id, &done.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Skipped);
    let execs = store
        .list_job_executions(&p.id, &done.id)
        .await
        .unwrap()
        .unwrap();
    assert!(execs.iter().all(|e| e.status != ExecutionStatus::Planned));
    assert!(store
        .claim_due(claim(at(1_000_000), 100))
        .await
        .unwrap()
        .is_empty());
    let again = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("sk"),
            definition("https://example.com/", at(5_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(again.id, done.id);
}

/// Cancel by id and by key: the job and its planned execution become cancelled and the key is
/// released.
pub async fn cancel_by_id_and_key(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let a = job_at(store, &p.id, at(10_000)).await;
    let got = store
        .cancel_trigger(&p.id, &TriggerRef::Id(a.clone()), at(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, a);
    let job = store.get_job(&p.id, &a).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.cancelled_at, Some(at(5)));
    let execs = store.list_job_executions(&p.id, &a).await.unwrap().unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].status, ExecutionStatus::Cancelled);

    let b = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("ck"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    let got = store
        .cancel_trigger(&p.id, &TriggerRef::CustomKey("ck".into()), at(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b);
    assert_eq!(
        store.get_job(&p.id, &b).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert!(store
        .claim_due(claim(at(20_000), 100))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), None);
}

/// Cancel refusals: 404 unknown id or key, 410 already cancelled, running or completed.
pub async fn cancel_refusals(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let r = store
        .cancel_trigger(&p.id, &TriggerRef::Id(JobId::generate()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::NotFound));
    let r = store
        .cancel_trigger(&p.id, &TriggerRef::CustomKey("nope".into()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::NotFound));

    let a = job_at(store, &p.id, at(10_000)).await;
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(a.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let r = store
        .cancel_trigger(&p.id, &TriggerRef::Id(a.clone()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::Gone));

    let running = job_at(store, &p.id, T0).await;
    store.claim_due(claim(T0, 100)).await.unwrap();
    let r = store
        .cancel_trigger(&p.id, &TriggerRef::Id(running.clone()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::Gone));
    assert_eq!(
        store
            .get_job(&p.id, &running)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Running
    );
}

/// One unit per accepted upsert; refused upserts cost nothing; quota is checked before 404.
pub async fn quota_is_charged_and_enforced(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(2)).await;
    let one = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", at(1_000)),
            T0,
        ),
    )
    .await;
    assert_eq!(one.month_quota_remaining, Some(1));
    // A refusal (404) is not charged.
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&JobId::generate()),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::NotFound);
    let two = schedule_ok(
        store,
        upsert(
            &p.id,
            Some(&one.id),
            None,
            definition("https://example.com/", at(2_000)),
            T0,
        ),
    )
    .await;
    assert_eq!(two.month_quota_remaining, Some(0));
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::QuotaExceeded);
    // 402 comes before 404.
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            Some(&JobId::generate()),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::QuotaExceeded);
    // The refused calls changed nothing.
    let job = store.get_job(&p.id, &one.id).await.unwrap().unwrap();
    assert_eq!(job.scheduled_at, at(2_000));
}

/// Usage is counted per calendar month (UTC).
pub async fn quota_resets_each_month(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(1)).await;
    let nov = Timestamp::parse_rfc3339("2026-11-30T23:59:59.999Z").unwrap();
    let dec = Timestamp::parse_rfc3339("2026-12-01T00:00:00.000Z").unwrap();
    schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", nov),
            nov,
        ),
    )
    .await;
    let r = schedule_refused(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", nov),
            nov,
        ),
    )
    .await;
    assert_eq!(r, Refusal::QuotaExceeded);
    let d = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", dec),
            dec,
        ),
    )
    .await;
    assert_eq!(d.month_quota_remaining, Some(0));
}

/// Another project's items are invisible and untouchable; keys are per project.
pub async fn project_scoping(store: &dyn Store) {
    let mine = project(store, MonthQuota::Unlimited).await;
    let theirs = project(store, MonthQuota::Unlimited).await;
    let a = schedule_ok(
        store,
        upsert(
            &theirs.id,
            None,
            Some("shared"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    assert!(store.get_job(&mine.id, &a).await.unwrap().is_none());
    assert!(store
        .list_job_executions(&mine.id, &a)
        .await
        .unwrap()
        .is_none());
    let r = store
        .cancel_trigger(&mine.id, &TriggerRef::Id(a.clone()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::NotFound));
    let r = store
        .cancel_trigger(&mine.id, &TriggerRef::CustomKey("shared".into()), T0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::NotFound));
    let r = schedule_refused(
        store,
        upsert(
            &mine.id,
            Some(&a),
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::NotFound);
    // The same key in my project is a different item.
    let b = schedule_ok(
        store,
        upsert(
            &mine.id,
            None,
            Some("shared"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(b.id, a);
    assert_eq!(b.operation, UpsertOperation::Schedule);
    assert_eq!(
        store.get_job(&theirs.id, &a).await.unwrap().unwrap().status,
        JobStatus::Registered
    );
}

/// Many new keyless one-off jobs at once (the shape stores may group into one write): each
/// is charged exactly once, the quota stops exactly at its limit, and a call that cannot be
/// served (its project does not exist) fails alone.
pub async fn concurrent_keyless_creations_are_charged_and_fail_alone(store: &dyn Store) {
    let limited = project(store, MonthQuota::Limited(10)).await;
    let open = project(store, MonthQuota::Unlimited).await;
    let missing = crate::ids::ProjectId::generate();
    let mut calls = Vec::new();
    for i in 0..60 {
        let project = match i % 3 {
            0 => limited.id.clone(),
            1 => open.id.clone(),
            // Two of them name a project that does not exist.
            _ if i < 6 => missing.clone(),
            _ => open.id.clone(),
        };
        let def = definition("https://example.com/", at(1_000 + i));
        calls.push((project.clone(), upsert(&project, None, None, def, T0)));
    }
    let results = futures::future::join_all(
        calls
            .iter()
            .map(|(_, req)| store.upsert_trigger(req.clone())),
    )
    .await;

    let mut remaining = Vec::new();
    let mut refused = 0;
    let mut created = Vec::new();
    for ((project, req), result) in calls.iter().zip(results) {
        if project == &missing {
            assert!(!matches!(result, Ok(Ok(_))), "{result:?}");
            continue;
        }
        match result {
            Ok(Ok(done)) => {
                assert_eq!(done.id, req.new_job_id);
                assert_eq!(done.operation, UpsertOperation::Schedule);
                if project == &limited.id {
                    remaining.push(done.month_quota_remaining.unwrap());
                } else {
                    assert_eq!(done.month_quota_remaining, None);
                }
                created.push((project.clone(), done.id));
            }
            Ok(Err(r)) => {
                assert_eq!(project, &limited.id, "only the limited project refuses");
                assert_eq!(r, Refusal::QuotaExceeded);
                refused += 1;
            }
            Err(e) => panic!("store error: {e}"),
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u64>>());
    assert_eq!(refused, 10);
    assert_eq!(created.len(), 10 + 38);
    for (project, id) in &created {
        assert!(store.get_job(project, id).await.unwrap().is_some());
    }
    // Nothing was charged twice: the limited project is exactly used up.
    let r = schedule_refused(
        store,
        upsert(
            &limited.id,
            None,
            None,
            definition("https://example.com/", T0),
            T0,
        ),
    )
    .await;
    assert_eq!(r, Refusal::QuotaExceeded);
}

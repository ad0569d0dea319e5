//! Checks for `/declare` and `/bulk`.

use crate::declare::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, SyncOperation, SyncOutcome,
};
use crate::ids::{ExecutionId, JobId, ProjectId};
use crate::lifecycle::Refusal;
use crate::model::{JobKind, JobStatus, MonthQuota};
use crate::store::{Store, TriggerSchedule};
use crate::testing::fixtures::*;
use crate::testing::generators::cron_definition;
use crate::time::Timestamp;

/// A one-off declaration.
pub fn declared(key: Option<&str>, url: &str, fire: Timestamp) -> DeclareItem {
    DeclareItem {
        custom_key: key.map(str::to_owned),
        spec: Some(fire.to_rfc3339()),
        timezone: None,
        definition: definition(url, fire),
        new_job_id: JobId::generate(),
        new_execution_id: ExecutionId::generate(),
    }
}

/// A generator declaration.
pub fn declared_cron(key: Option<&str>, url: &str, first_at: Timestamp) -> DeclareItem {
    let (definition, _) = cron_definition(url, first_at);
    DeclareItem {
        custom_key: key.map(str::to_owned),
        spec: Some("* * * * *".into()),
        timezone: Some("UTC".into()),
        definition,
        new_job_id: JobId::generate(),
        new_execution_id: ExecutionId::generate(),
    }
}

/// Fresh ids, as a new request would carry.
fn again(items: &[DeclareItem]) -> Vec<DeclareItem> {
    items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.new_job_id = JobId::generate();
            i.new_execution_id = ExecutionId::generate();
            if let TriggerSchedule::Cron { occurrence_id, .. } = &mut i.definition.schedule {
                *occurrence_id = JobId::generate();
            }
            i
        })
        .collect()
}

async fn declare(
    store: &dyn Store,
    p: &ProjectId,
    items: Vec<DeclareItem>,
    now: Timestamp,
) -> SyncOutcome {
    store
        .declare(DeclareSync {
            project_id: p.clone(),
            items,
            now,
        })
        .await
        .unwrap()
        .unwrap()
}

fn ops(o: &SyncOutcome) -> Vec<&'static str> {
    o.operations.iter().map(|l| l.operation.as_str()).collect()
}

/// A declaration is added once, then unchanged; the same ids come back.
pub async fn declare_adds_then_leaves_unchanged(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let items = vec![
        declared(Some("a"), "https://example.com/a", at(10_000)),
        declared_cron(Some("b"), "https://example.com/b", at(60_000)),
        declared(None, "https://example.com/c", at(20_000)),
    ];
    let first = declare(store, &p.id, items.clone(), T0).await;
    assert_eq!(ops(&first), ["added", "added", "added"]);
    assert_eq!(first.operations[1].kind, JobKind::Generator);
    assert_eq!(first.operations[0].custom_key.as_deref(), Some("a"));
    let a = first.operations[0].id.clone();
    let job = store.get_job(&p.id, &a).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.origin, crate::model::Origin::Declare);

    let second = declare(store, &p.id, again(&items), at(1)).await;
    assert_eq!(ops(&second), ["unchanged", "unchanged", "unchanged"]);
    for (x, y) in first.operations.iter().zip(&second.operations) {
        assert_eq!(x.id, y.id);
    }
    assert_eq!(second.count(SyncOperation::Added), 0);
}

/// A differing declaration updates the item in place and names what changed.
pub async fn declare_updates_in_place_with_changed_fields(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let items = vec![declared(Some("a"), "https://example.com/a", at(10_000))];
    let first = declare(store, &p.id, items.clone(), T0).await;
    let mut changed = again(&items);
    changed[0].definition.request.url = "https://example.com/a2".into();
    changed[0].definition.title = Some("new".into());
    let second = declare(store, &p.id, changed, at(1)).await;
    assert_eq!(ops(&second), ["updated"]);
    assert_eq!(second.operations[0].id, first.operations[0].id);
    assert_eq!(
        second.operations[0].changed_fields.as_deref(),
        Some(&["title".to_string(), "url".to_string()][..])
    );
    let job = store
        .get_job(&p.id, &first.operations[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.request.url, "https://example.com/a2");
    assert_eq!(job.status, JobStatus::Registered);
}

/// Items `/declare` created and no longer declares are cancelled; others are never touched.
pub async fn declare_cancels_only_its_own_absent_items(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mine = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("by-schedule"),
            definition("https://example.com/s", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    let items = vec![
        declared(Some("a"), "https://example.com/a", at(10_000)),
        declared_cron(Some("g"), "https://example.com/g", at(60_000)),
    ];
    let first = declare(store, &p.id, items, T0).await;
    let kept = vec![declared(Some("a"), "https://example.com/a", at(10_000))];
    let second = declare(store, &p.id, kept, at(1)).await;
    assert_eq!(ops(&second), ["unchanged", "cancelled"]);
    assert_eq!(second.operations[1].id, first.operations[1].id);
    assert_eq!(second.operations[1].kind, JobKind::Generator);
    assert_eq!(second.operations[1].custom_key.as_deref(), Some("g"));
    let third = declare(store, &p.id, vec![], at(2)).await;
    assert_eq!(ops(&third), ["cancelled"]);
    assert_eq!(
        store
            .get_job(&p.id, &first.operations[0].id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Cancelled
    );
    assert_eq!(
        store.get_job(&p.id, &mine).await.unwrap().unwrap().status,
        JobStatus::Registered,
        "a /schedule item is never touched by /declare"
    );
}

/// Skipped: a past one-off not to run, a job that already left `registered`, or a key held
/// by an item `/declare` does not manage.
pub async fn declare_skips_what_it_cannot_apply(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut past = declared(Some("past"), "https://example.com/p", at(-60_000));
    past.definition.schedule = TriggerSchedule::Once {
        at: at(-60_000),
        skip: true,
    };
    let running = declared(Some("run"), "https://example.com/r", T0);
    schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("theirs"),
            definition("https://example.com/t", at(10_000)),
            T0,
        ),
    )
    .await;
    let first = declare(store, &p.id, vec![past.clone(), running.clone()], T0).await;
    assert_eq!(ops(&first), ["skipped", "added"]);
    let skipped = store
        .get_job(&p.id, &first.operations[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.status, JobStatus::Skipped);
    store.claim_due(claim(T0, 10)).await.unwrap();

    let mut changed = again(&[running])[0].clone();
    changed.definition.request.url = "https://example.com/r2".into();
    let theirs = declared(Some("theirs"), "https://example.com/x", at(10_000));
    let second = declare(
        store,
        &p.id,
        vec![again(&[past])[0].clone(), changed, theirs],
        at(1),
    )
    .await;
    assert_eq!(ops(&second), ["unchanged", "skipped", "skipped"]);
    assert_eq!(second.operations[1].id, first.operations[1].id);
}

/// A finished job declared again unchanged is left alone (never fired again); changed, it is a
/// new item.
pub async fn declare_leaves_finished_jobs_alone(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let items = vec![declared(Some("once"), "https://example.com/o", T0)];
    let first = declare(store, &p.id, items.clone(), T0).await;
    run_due(store, T0).await;
    let second = declare(store, &p.id, again(&items), at(1)).await;
    assert_eq!(ops(&second), ["unchanged"]);
    assert_eq!(second.operations[0].id, first.operations[0].id);
    assert!(store.claim_due(claim(at(10), 10)).await.unwrap().is_empty());
    let mut changed = again(&items);
    changed[0].definition.request.url = "https://example.com/o2".into();
    let third = declare(store, &p.id, changed, at(2)).await;
    assert_eq!(ops(&third), ["added"]);
    assert_ne!(third.operations[0].id, first.operations[0].id);
}

/// If the quota cannot cover every item added or updated, nothing changes.
pub async fn declare_is_all_or_nothing_on_quota(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(2)).await;
    let items = vec![
        declared(Some("a"), "https://example.com/a", at(10_000)),
        declared(Some("b"), "https://example.com/b", at(10_000)),
        declared(Some("c"), "https://example.com/c", at(10_000)),
    ];
    let r = store
        .declare(DeclareSync {
            project_id: p.id.clone(),
            items: items.clone(),
            now: T0,
        })
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::QuotaExceeded));
    assert_eq!(
        store.next_due_at().await.unwrap(),
        None,
        "nothing was created"
    );
    let ok = declare(store, &p.id, items[..2].to_vec(), T0).await;
    assert_eq!(ops(&ok), ["added", "added"]);
}

/// A bulk refused for quota changes nothing: its cancels are rolled back with it (one
/// transaction).
pub async fn bulk_is_all_or_nothing_on_quota(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(2)).await;
    let kept = job_at(store, &p.id, at(10_000)).await;
    let sync = BulkSync {
        project_id: p.id.clone(),
        cancels: vec![BulkSelector::Id(kept.clone())],
        upserts: vec![
            declared(Some("a"), "https://example.com/a", at(20_000)),
            declared(Some("b"), "https://example.com/b", at(20_000)),
        ],
        now: at(1),
    };
    assert_eq!(store.bulk(sync).await.unwrap(), Err(Refusal::QuotaExceeded));
    assert_eq!(
        store.get_job(&p.id, &kept).await.unwrap().unwrap().status,
        JobStatus::Registered,
        "the cancel was rolled back with the refused bulk"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(10_000)));
}

/// Bulk: cancels by tag, key, id and bare string first, then upserts by key.
pub async fn bulk_cancels_then_upserts(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut tagged = definition("https://example.com/t", at(10_000));
    tagged.tags = vec!["batch".into()];
    let t1 = schedule_ok(store, upsert(&p.id, None, Some("t1"), tagged.clone(), T0))
        .await
        .id;
    let t2 = schedule_ok(store, upsert(&p.id, None, None, tagged, T0))
        .await
        .id;
    let by_id = job_at(store, &p.id, at(10_000)).await;
    let by_bare = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("bare-key"),
            definition("https://example.com/b", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    let untouched = job_at(store, &p.id, at(10_000)).await;

    let sync = BulkSync {
        project_id: p.id.clone(),
        cancels: vec![
            BulkSelector::Tag("batch".into()),
            BulkSelector::Id(by_id.clone()),
            BulkSelector::Bare("bare-key".into()),
            BulkSelector::CustomKey("no-such-key".into()),
            BulkSelector::Bare(JobId::generate().into_string()),
        ],
        upserts: vec![
            declared(Some("t1"), "https://example.com/t1-new", at(20_000)),
            declared(None, "https://example.com/n", at(20_000)),
        ],
        now: at(1),
    };
    let out = store.bulk(sync).await.unwrap().unwrap();
    assert_eq!(
        ops(&out),
        [
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled",
            "added",
            "added"
        ]
    );
    let cancelled: Vec<JobId> = out.operations[..4].iter().map(|o| o.id.clone()).collect();
    for id in [&t1, &t2, &by_id, &by_bare] {
        assert!(cancelled.contains(id));
        assert_eq!(
            store.get_job(&p.id, id).await.unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }
    assert_ne!(
        out.operations[4].id, t1,
        "the key was released by the cancel: a new item"
    );
    assert_eq!(
        store
            .get_job(&p.id, &untouched)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Registered
    );

    // Upsert by a live key: updated in place; a key held by a running job: skipped.
    let running = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("busy"),
            definition("https://example.com/r", at(1)),
            T0,
        ),
    )
    .await
    .id;
    store.claim_due(claim(at(1), 100)).await.unwrap();
    let sync = BulkSync {
        project_id: p.id.clone(),
        cancels: vec![BulkSelector::CustomKey("busy".into())],
        upserts: vec![
            declared(Some("t1"), "https://example.com/t1-newer", at(20_000)),
            declared(Some("busy"), "https://example.com/r2", at(20_000)),
        ],
        now: at(2),
    };
    let out = store.bulk(sync).await.unwrap().unwrap();
    assert_eq!(
        ops(&out),
        ["updated", "skipped"],
        "a running job is neither cancelled nor changed"
    );
    assert_eq!(
        out.operations[0].changed_fields.as_deref(),
        Some(&["url".to_string()][..])
    );
    assert_eq!(out.operations[1].id, running);
}

//! Checks for generators: occurrences, planning, cancelling, conversions, quota.

use crate::ids::{ExecutionId, JobId};
use crate::lifecycle::Refusal;
use crate::model::{ExecutionStatus, GeneratorStatus, JobKind, JobStatus, MonthQuota};
use crate::store::{
    MaterializeGenerator, NewOccurrence, Store, TriggerDefinition, TriggerRef, TriggerSchedule,
    UpsertOperation,
};
use crate::testing::fixtures::*;
use crate::time::Timestamp;

/// A generator definition whose first occurrence is at `first_at`.
pub fn cron_definition(url: &str, first_at: Timestamp) -> (TriggerDefinition, JobId) {
    let occurrence = JobId::generate();
    let mut def = definition(url, first_at);
    def.title = Some("every minute".into());
    def.tags = vec!["cron".into()];
    def.schedule = TriggerSchedule::Cron {
        expression: "* * * * *".into(),
        timezone: "UTC".into(),
        run_missed: false,
        first_at,
        occurrence_id: occurrence.clone(),
    };
    (def, occurrence)
}

fn occurrence(at: Timestamp) -> NewOccurrence {
    NewOccurrence {
        job_id: JobId::generate(),
        execution_id: ExecutionId::generate(),
        at,
    }
}

/// A new generator has exactly one pending occurrence carrying its request, title and tags.
pub async fn generator_create_makes_one_pending_occurrence(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let done = schedule_ok(store, upsert(&p.id, None, Some("series"), def.clone(), T0)).await;
    assert_eq!(done.kind, JobKind::Generator);
    assert_eq!(done.operation, UpsertOperation::Schedule);
    assert_eq!(done.scheduled_at, at(60_000));
    assert!(
        store.get_job(&p.id, &done.id).await.unwrap().is_none(),
        "a generator is not a job"
    );

    let job = store
        .get_job(&p.id, &occ)
        .await
        .unwrap()
        .expect("the pending occurrence");
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.scheduled_at, at(60_000));
    assert_eq!(job.request, def.request);
    assert_eq!(job.title.as_deref(), Some("every minute"));
    assert_eq!(job.tags, vec!["cron".to_string()]);
    assert_eq!(
        job.custom_key, None,
        "the generator holds the key, not its occurrences"
    );
    let link = job.generator.expect("generator link");
    assert_eq!(link.id, done.id);
    assert_eq!(link.custom_key.as_deref(), Some("series"));
    assert_eq!(link.status, GeneratorStatus::Active);
    let execs = store
        .list_job_executions(&p.id, &occ)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].status, ExecutionStatus::Planned);
    assert_eq!(execs[0].planned_at, at(60_000));
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(60_000)));
    assert!(store
        .list_generators_due(at(60_000), 10)
        .await
        .unwrap()
        .is_empty());

    // The key reschedules the generator in place.
    let (def2, occ2) = cron_definition("https://example.com/cron2", at(120_000));
    let again = schedule_ok(store, upsert(&p.id, None, Some("series"), def2, at(1))).await;
    assert_eq!(again.id, done.id);
    assert_eq!(again.operation, UpsertOperation::Reschedule);
    assert_eq!(again.kind, JobKind::Generator);
    assert!(
        store.get_job(&p.id, &occ).await.unwrap().is_none(),
        "old pending occurrence replaced"
    );
    let job = store.get_job(&p.id, &occ2).await.unwrap().unwrap();
    assert_eq!(job.request.url, "https://example.com/cron2");
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(120_000)));
}

/// Claiming an occurrence leaves the generator without one; planning makes the next, once.
pub async fn generator_occurrence_fires_and_the_next_is_planned(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    let claimed = store.claim_due(claim(at(60_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, occ);
    assert_eq!(claimed[0].generator_id.as_ref(), Some(&g));

    let due = store.list_generators_due(at(0), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, g);
    assert_eq!(due[0].project_id, p.id);
    assert_eq!(due[0].expression, "* * * * *");
    assert_eq!(due[0].timezone, "UTC");
    assert!(!due[0].run_missed);
    assert_eq!(due[0].pending, None);
    assert_eq!(due[0].last_occurrence_at, Some(at(60_000)));
    assert_eq!(due[0].defined_at, T0);

    let next = occurrence(at(120_000));
    let plan = MaterializeGenerator {
        generator_id: g.clone(),
        expected_pending: None,
        skip_pending: false,
        skipped: vec![],
        create: Some(next.clone()),
        now: at(60_010),
    };
    assert!(store.materialize_generator(plan.clone()).await.unwrap());
    assert!(
        !store
            .materialize_generator(MaterializeGenerator {
                create: Some(occurrence(at(120_000))),
                ..plan
            })
            .await
            .unwrap(),
        "a second plan for the same state is refused"
    );
    assert!(store
        .list_generators_due(at(0), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(120_000)));
    let job = store.get_job(&p.id, &next.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.generator.unwrap().id, g);
    // The fired occurrence completes like any job.
    store
        .complete_executions(&[finished(&claimed[0], ok_response(), at(60_050))])
        .await
        .unwrap();
    assert_eq!(
        store.get_job(&p.id, &occ).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

/// Cancelling a generator stops the series and cancels its pending occurrence.
pub async fn generator_cancel_stops_the_series(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, None, Some("gk"), def, T0))
        .await
        .id;
    let got = store
        .cancel_trigger(&p.id, &TriggerRef::CustomKey("gk".into()), at(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, g);
    let job = store.get_job(&p.id, &occ).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.generator.unwrap().status, GeneratorStatus::Cancelled);
    assert!(store
        .claim_due(claim(at(1_000_000), 10))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_generators_due(at(1_000_000), 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .cancel_trigger(&p.id, &TriggerRef::Id(g.clone()), at(6))
        .await
        .unwrap();
    assert_eq!(again, Err(Refusal::Gone));
    let (def, _) = cron_definition("https://example.com/cron", at(60_000));
    let r = schedule_refused(store, upsert(&p.id, Some(&g), None, def.clone(), at(7))).await;
    assert_eq!(r, Refusal::Gone);
    // The key was released.
    let fresh = schedule_ok(store, upsert(&p.id, None, Some("gk"), def, at(8))).await;
    assert_ne!(fresh.id, g);
}

/// Cancelling one occurrence skips only it: the generator stays active and needs the next.
pub async fn cancelling_an_occurrence_skips_only_it(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(occ.clone()), at(5))
        .await
        .unwrap()
        .unwrap();
    let job = store.get_job(&p.id, &occ).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.generator.unwrap().status, GeneratorStatus::Active);
    let due = store.list_generators_due(at(0), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, g);
    assert_eq!(due[0].last_occurrence_at, Some(at(60_000)));
}

/// An overdue pending occurrence is listed; a plan may skip it, record missed occurrences and
/// make the next.
pub async fn missed_occurrences_are_recorded_as_skipped(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    assert!(
        store
            .list_generators_due(at(60_000), 10)
            .await
            .unwrap()
            .is_empty(),
        "not overdue yet"
    );
    let due = store.list_generators_due(at(60_001), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let pending = due[0]
        .pending
        .clone()
        .expect("the overdue pending occurrence");
    assert_eq!(pending.job_id, occ);
    assert_eq!(pending.scheduled_at, at(60_000));

    let missed = [occurrence(at(120_000)), occurrence(at(180_000))];
    let next = occurrence(at(240_000));
    let plan = MaterializeGenerator {
        generator_id: g.clone(),
        expected_pending: Some(occ.clone()),
        skip_pending: true,
        skipped: missed.to_vec(),
        create: Some(next.clone()),
        now: at(200_000),
    };
    assert!(store.materialize_generator(plan).await.unwrap());
    let old = store.get_job(&p.id, &occ).await.unwrap().unwrap();
    assert_eq!(old.status, JobStatus::Skipped);
    for m in &missed {
        let job = store.get_job(&p.id, &m.job_id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Skipped);
        assert_eq!(job.scheduled_at, m.at);
        assert_eq!(job.generator.as_ref().unwrap().id, g);
        assert!(store
            .list_job_executions(&p.id, &m.job_id)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .all(|e| e.status != ExecutionStatus::Planned));
    }
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(240_000)));
    let claimed = store.claim_due(claim(at(240_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the new pending occurrence fires");
    assert_eq!(claimed[0].job_id, next.job_id);
}

/// A plan may keep the overdue pending occurrence (a run-missed catch-up) and skip others.
pub async fn catch_up_keeps_the_pending_occurrence(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    let plan = MaterializeGenerator {
        generator_id: g,
        expected_pending: Some(occ.clone()),
        skip_pending: false,
        skipped: vec![occurrence(at(0))],
        create: None,
        now: at(500_000),
    };
    assert!(store.materialize_generator(plan).await.unwrap());
    let claimed = store.claim_due(claim(at(500_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, occ);
}

/// Rescheduling by id turns a job into a generator and back, keeping the id.
pub async fn reschedule_converts_job_and_generator_keeping_the_id(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let id = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("conv"),
            definition("https://example.com/", at(10_000)),
            T0,
        ),
    )
    .await
    .id;
    let (def, occ) = cron_definition("https://example.com/cron", at(60_000));
    let g = schedule_ok(store, upsert(&p.id, Some(&id), None, def, at(1))).await;
    assert_eq!(g.id, id);
    assert_eq!(g.kind, JobKind::Generator);
    assert_eq!(g.operation, UpsertOperation::Reschedule);
    assert!(store.get_job(&p.id, &id).await.unwrap().is_none());
    let o = store.get_job(&p.id, &occ).await.unwrap().unwrap();
    assert_eq!(
        o.generator.as_ref().unwrap().custom_key.as_deref(),
        Some("conv"),
        "key kept"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(60_000)));

    let back = schedule_ok(
        store,
        upsert(
            &p.id,
            Some(&id),
            None,
            definition("https://example.com/back", at(30_000)),
            at(2),
        ),
    )
    .await;
    assert_eq!(back.id, id);
    assert_eq!(back.kind, JobKind::Job);
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.custom_key.as_deref(), Some("conv"));
    assert!(
        store.get_job(&p.id, &occ).await.unwrap().is_none(),
        "pending occurrence removed"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(30_000)));
    assert!(store
        .list_generators_due(at(1_000_000), 10)
        .await
        .unwrap()
        .is_empty());
    // Nothing of the removed job or occurrence is left planned: once the job's own execution
    // is taken, nothing is due at all.
    let claimed = store.claim_due(claim(at(1_000_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, id);
    assert_eq!(claimed[0].planned_at, at(30_000));
    assert_eq!(
        store.next_due_at().await.unwrap(),
        None,
        "no execution of a removed job or occurrence is left planned"
    );
}

/// Each occurrence fired costs one unit, like the upsert that created the series.
pub async fn generator_occurrences_are_charged(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(3)).await;
    let (def, _) = cron_definition("https://example.com/cron", T0);
    let done = schedule_ok(store, upsert(&p.id, None, None, def, T0)).await;
    assert_eq!(done.month_quota_remaining, Some(2));
    assert_eq!(store.claim_due(claim(T0, 10)).await.unwrap().len(), 1);
    let last = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            None,
            definition("https://example.com/", at(5_000)),
            T0,
        ),
    )
    .await;
    assert_eq!(
        last.month_quota_remaining,
        Some(0),
        "create + occurrence + this call"
    );
}

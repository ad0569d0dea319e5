//! Checks for what the engine relies on: claims, leases, outcomes, retries.

use std::collections::HashSet;
use std::time::Duration;

use crate::dispatch::DispatchOutcome;
use crate::ids::ExecutionId;
use crate::model::{ExecutionStatus, JobStatus, MonthQuota, TriggeredBy};
use crate::store::{Claim, CompletedExecution, PlannedRetry, StaleScope, Store};
use crate::testing::fixtures::*;

/// A claim takes what is due by its `due_by` (the engine's look-ahead), not later, and says
/// when each execution is due so that the engine sends it then.
pub async fn claims_look_ahead_to_due_by(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let soon = job_at(store, &p.id, at(1_000)).await;
    let _later = job_at(store, &p.id, at(1_020)).await;
    let ahead = |now, due_by| Claim {
        due_by,
        ..claim(now, 100)
    };
    let first = store.claim_due(ahead(at(995), at(1_010))).await.unwrap();
    assert_eq!(first.len(), 1, "only what is due by due_by");
    assert_eq!(first[0].job_id, soon);
    assert_eq!(
        (first[0].planned_at, first[0].due_at),
        (at(1_000), at(1_000))
    );
    let job = store.get_job(&p.id, &soon).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert!(store
        .claim_due(ahead(at(995), at(1_010)))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(1_020)));
}

/// Only executions due at `now` are claimed, each once; the job becomes `running`.
pub async fn claim_only_due_and_only_once(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let due = job_at(store, &p.id, T0).await;
    let later = job_at(store, &p.id, at(1_000)).await;

    let first = store.claim_due(claim(T0, 100)).await.unwrap();
    assert_eq!(first.len(), 1);
    let c = &first[0];
    assert_eq!(c.job_id, due);
    assert_eq!(c.project_id, p.id);
    assert_eq!(c.attempt_number, 1);
    assert_eq!(c.triggered_by, TriggeredBy::Scheduler);
    assert_eq!(c.planned_at, T0);
    assert_eq!(c.request.url, "https://example.com/a");

    assert!(store.claim_due(claim(T0, 100)).await.unwrap().is_empty());
    assert!(store
        .claim_due(claim(at(999), 100))
        .await
        .unwrap()
        .is_empty());

    let job = store.get_job(&p.id, &due).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.queued_at, Some(T0));
    assert_eq!(job.started_at, Some(T0));
    let execs = store
        .list_job_executions(&p.id, &due)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs[0].status, ExecutionStatus::Started);
    assert_eq!(execs[0].started_at, Some(T0));

    let second = store.claim_due(claim(at(1_000), 100)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].job_id, later);
}

/// A claim takes at most `limit`, earliest due first.
pub async fn claim_respects_limit_and_due_order(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let mut ids = Vec::new();
    for i in (0..10).rev() {
        ids.push((i, job_at(store, &p.id, at(i * 10)).await));
    }
    ids.sort();
    let got = store.claim_due(claim(at(1_000), 4)).await.unwrap();
    assert_eq!(got.len(), 4);
    let got_ids: Vec<_> = got.iter().map(|c| c.job_id.clone()).collect();
    let expected: Vec<_> = ids.iter().take(4).map(|(_, id)| id.clone()).collect();
    let mut sorted_got = got_ids.clone();
    sorted_got.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(
        sorted_got, sorted_expected,
        "the four earliest are claimed first"
    );
    let rest = store.claim_due(claim(at(1_000), 100)).await.unwrap();
    assert_eq!(rest.len(), 6);
}

/// Many claimers at once never receive the same execution, and together take every one.
pub async fn claims_are_disjoint_under_concurrent_claimers(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let total = 300;
    let mut all = HashSet::new();
    for i in 0..total {
        all.insert(job_at(store, &p.id, at(i % 7)).await);
    }
    let claimers = (0..8).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let batch = store.claim_due(claim(at(10), 7)).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch.into_iter().map(|c| c.execution_id));
        }
    });
    let results = futures::future::join_all(claimers).await;
    let mut seen = HashSet::new();
    let mut count = 0;
    for ids in results {
        for id in ids {
            count += 1;
            assert!(seen.insert(id.clone()), "execution {id} claimed twice");
        }
    }
    assert_eq!(
        count, total as usize,
        "every due execution is claimed exactly once"
    );
}

/// `next_due_at` is the earliest planned execution; started and cancelled ones do not count.
pub async fn next_due_at_tracks_planned_executions(store: &dyn Store) {
    assert_eq!(store.next_due_at().await.unwrap(), None);
    let p = project(store, MonthQuota::Unlimited).await;
    job_at(store, &p.id, at(5_000)).await;
    let early = job_at(store, &p.id, at(1_000)).await;
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(1_000)));
    store
        .cancel_trigger(&p.id, &crate::store::TriggerRef::Id(early), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(5_000)));
    store.claim_due(claim(at(5_000), 10)).await.unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), None);
}

/// An outcome completes the execution and the job, with every response field kept.
pub async fn outcome_recording_completes_job(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let ok = job_at(store, &p.id, T0).await;
    let failed = job_at(store, &p.id, T0).await;
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let done: Vec<_> = claimed
        .iter()
        .map(|c| {
            if c.job_id == ok {
                finished(c, ok_response(), at(250))
            } else {
                finished(
                    c,
                    DispatchOutcome::Failed("connection refused".into()),
                    at(300),
                )
            }
        })
        .collect();
    store.complete_executions(&done).await.unwrap();

    let job = store.get_job(&p.id, &ok).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.completed_at, Some(at(250)));
    assert_eq!(job.last.attempt_number, Some(1));
    assert_eq!(job.last.response_status, Some(200));
    assert_eq!(job.last.error_message, None);
    let e = &store
        .list_job_executions(&p.id, &ok)
        .await
        .unwrap()
        .unwrap()[0];
    assert_eq!(e.status, ExecutionStatus::Complete);
    assert_eq!(e.completed_at, Some(at(250)));
    assert_eq!(e.response_status, Some(200));
    assert_eq!(
        e.response_headers,
        Some(vec![("content-type".to_string(), "text/plain".to_string())])
    );
    assert_eq!(e.response_body.as_deref(), Some("done"));
    assert_eq!(e.response_size, Some(4));
    assert_eq!(e.error_message, None);

    let job = store.get_job(&p.id, &failed).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "a job completes whatever the outcome"
    );
    assert_eq!(job.last.response_status, None);
    assert_eq!(
        job.last.error_message.as_deref(),
        Some("connection refused")
    );
    let e = &store
        .list_job_executions(&p.id, &failed)
        .await
        .unwrap()
        .unwrap()[0];
    assert_eq!(e.error_message.as_deref(), Some("connection refused"));
    assert_eq!(e.response_status, None);
    assert_eq!(e.response_body, None);
}

/// An execution that is no longer `started` ignores a late outcome.
pub async fn outcome_recording_is_fenced(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let id = job_at(store, &p.id, T0).await;
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    let first = finished(
        &claimed[0],
        DispatchOutcome::Failed("interrupted".into()),
        at(10),
    );
    store.complete_executions(&[first]).await.unwrap();
    let late = finished(&claimed[0], ok_response(), at(20));
    store.complete_executions(&[late]).await.unwrap();
    let e = &store
        .list_job_executions(&p.id, &id)
        .await
        .unwrap()
        .unwrap()[0];
    assert_eq!(e.error_message.as_deref(), Some("interrupted"));
    assert_eq!(e.completed_at, Some(at(10)));
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.completed_at, Some(at(10)));
    assert_eq!(job.last.response_status, None);
}

/// A retry plans the next attempt: the job waits `queued`, the new execution is claimable at
/// its time, and the job completes after it.
pub async fn retry_plans_next_attempt(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let id = job_at(store, &p.id, T0).await;
    let claimed = store.claim_due(claim(T0, 10)).await.unwrap();
    let retry_id = ExecutionId::generate();
    let done = CompletedExecution {
        retry: Some(PlannedRetry {
            execution_id: retry_id.clone(),
            attempt_number: 2,
            due_at: at(1_000),
        }),
        ..finished(
            &claimed[0],
            DispatchOutcome::Failed("timeout".into()),
            at(100),
        )
    };
    store.complete_executions(&[done]).await.unwrap();
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.completed_at, None);
    assert_eq!(job.last.attempt_number, Some(1));
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(1_000)));
    assert!(store
        .claim_due(claim(at(999), 10))
        .await
        .unwrap()
        .is_empty());

    let again = store.claim_due(claim(at(1_000), 10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].execution_id, retry_id);
    assert_eq!(again[0].attempt_number, 2);
    assert_eq!(again[0].triggered_by, TriggeredBy::Retry);
    assert_eq!(
        store.get_job(&p.id, &id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    store
        .complete_executions(&[finished(&again[0], ok_response(), at(1_100))])
        .await
        .unwrap();
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.last.attempt_number, Some(2));
    assert_eq!(job.last.response_status, Some(200));
    let execs = store
        .list_job_executions(&p.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].attempt_number, 2, "newest first");
    assert_eq!(execs[0].triggered_by, TriggeredBy::Retry);
    assert_eq!(execs[0].planned_at, at(1_000));
    assert_eq!(execs[1].attempt_number, 1);
    assert_eq!(execs[1].triggered_by, TriggeredBy::Scheduler);
}

/// A started execution whose lease ran out (timeout + margin) is handed back as stale; with
/// `AllStarted` every started one is.
pub async fn lease_expiry_recovery(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let id = job_at(store, &p.id, T0).await;
    let mut c = claim(T0, 10);
    c.lease_margin = Duration::from_secs(5);
    let claimed = store.claim_due(c).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Default timeout 30 s + margin 5 s.
    let lease_end = at(35_000);
    assert!(store
        .list_stale_executions(at(34_999), StaleScope::ExpiredLeases, 10)
        .await
        .unwrap()
        .is_empty());
    let all = store
        .list_stale_executions(T0, StaleScope::AllStarted, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let stale = store
        .list_stale_executions(lease_end, StaleScope::ExpiredLeases, 10)
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].execution_id, claimed[0].execution_id);
    assert_eq!(stale[0].job_id, id);
    assert_eq!(stale[0].request, claimed[0].request);
    // Listing does not change anything; completing does.
    store
        .complete_executions(&[finished(
            &stale[0],
            DispatchOutcome::Failed("interrupted".into()),
            lease_end,
        )])
        .await
        .unwrap();
    assert!(store
        .list_stale_executions(at(100_000), StaleScope::AllStarted, 10)
        .await
        .unwrap()
        .is_empty());
    let job = store.get_job(&p.id, &id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.last.error_message.as_deref(), Some("interrupted"));
}

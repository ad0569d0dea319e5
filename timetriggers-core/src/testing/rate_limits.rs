//! Rate limits: rules (CRUD, project scoping) and their enforcement in `claim_due`.

use std::collections::HashSet;

use futures::future::join_all;

use crate::ids::{ExecutionId, JobId, ProjectId, RateLimitId};
use crate::model::{ExecutionStatus, JobStatus, MonthQuota, RateLimit, WindowLimits};
use crate::store::{PlannedRetry, Store, StoreError};
use crate::store_rate_limits::{NewRateLimit, UpdateRateLimit};
use crate::time::Timestamp;

use super::fixtures::*;

fn per_second(n: u64) -> WindowLimits {
    WindowLimits {
        per_second: Some(n),
        ..WindowLimits::default()
    }
}

async fn rule(
    store: &dyn Store,
    project: &ProjectId,
    tag: &str,
    limits: WindowLimits,
) -> RateLimit {
    rule_at(store, project, tag, limits, T0).await
}

/// [`rule`], created at `now`.
async fn rule_at(
    store: &dyn Store,
    project: &ProjectId,
    tag: &str,
    limits: WindowLimits,
    now: Timestamp,
) -> RateLimit {
    store
        .create_rate_limit(NewRateLimit {
            id: RateLimitId::generate(),
            project_id: project.clone(),
            tag: tag.into(),
            limits,
            now,
        })
        .await
        .expect("create rate limit")
}

/// A job with `tags` firing at `fire`.
async fn tagged_job(
    store: &dyn Store,
    project: &ProjectId,
    tags: &[&str],
    fire: Timestamp,
) -> JobId {
    let mut def = definition("https://example.com/limited", fire);
    def.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    schedule_ok(store, upsert(project, None, None, def, T0))
        .await
        .id
}

async fn claimed_ids(store: &dyn Store, now: Timestamp, limit: usize) -> Vec<JobId> {
    store
        .claim_due(claim(now, limit))
        .await
        .expect("claim")
        .into_iter()
        .map(|c| c.job_id)
        .collect()
}

/// Executions a rule applies to are only claimed once due, whatever the claim's look-ahead
/// (a rule's window counts real starts); others may be claimed ahead.
pub async fn rate_limited_executions_are_not_claimed_ahead(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    rule(store, &p.id, "api", per_second(5)).await;
    let ruled = tagged_job(store, &p.id, &["api"], at(2_000)).await;
    let ahead = |now: Timestamp| crate::store::Claim {
        due_by: now.saturating_add(std::time::Duration::from_millis(10)),
        ..claim(now, 100)
    };
    let early = store.claim_due(ahead(at(1_995))).await.unwrap();
    assert!(
        early.iter().all(|c| c.job_id != ruled),
        "a ruled execution is not claimed before it is due"
    );
    let due = store.claim_due(ahead(at(2_000))).await.unwrap();
    assert_eq!(
        due.iter().map(|c| &c.job_id).collect::<Vec<_>>(),
        vec![&ruled]
    );
    assert_eq!(due[0].due_at, at(2_000));
}

/// Rules are created, listed, read, updated and deleted within their project only; one rule
/// per tag and project.
pub async fn rate_limit_rules_crud_and_scoping(store: &dyn Store) {
    let a = project(store, MonthQuota::Unlimited).await;
    let b = project(store, MonthQuota::Unlimited).await;
    let limits = WindowLimits {
        per_second: Some(5),
        per_day: Some(0),
        ..WindowLimits::default()
    };
    let r = rule(store, &a.id, "api", limits).await;
    assert_eq!(r.project_id, a.id);
    assert_eq!(r.tag, "api");
    assert_eq!(r.limits, limits);
    assert_eq!((r.created_at, r.updated_at), (T0, T0));

    assert_eq!(
        store
            .list_rate_limits(std::slice::from_ref(&a.id))
            .await
            .unwrap(),
        vec![r.clone()]
    );
    assert!(store
        .list_rate_limits(std::slice::from_ref(&b.id))
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_rate_limits(&[]).await.unwrap().is_empty());
    assert_eq!(
        store
            .get_rate_limit(&[b.id.clone(), a.id.clone()], &r.id)
            .await
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store
            .get_rate_limit(std::slice::from_ref(&b.id), &r.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_rate_limit(
                std::slice::from_ref(&a.id),
                &RateLimitId::from("rl_unknown")
            )
            .await
            .unwrap(),
        None
    );

    // One rule per tag and project; the same tag in another project is fine.
    let dup = store
        .create_rate_limit(NewRateLimit {
            id: RateLimitId::generate(),
            project_id: a.id.clone(),
            tag: "api".into(),
            limits: WindowLimits::default(),
            now: T0,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let other = rule(store, &b.id, "api", per_second(1)).await;
    // A millisecond later: rules list in creation order, (created_at, id).
    let second = rule_at(store, &a.id, "mail", WindowLimits::default(), at(1)).await;
    assert_eq!(
        store
            .list_rate_limits(std::slice::from_ref(&a.id))
            .await
            .unwrap(),
        vec![r.clone(), second.clone()]
    );

    // Update: in its own project only; the new tag must be free.
    let change = |project: &ProjectId, tag: &str| UpdateRateLimit {
        id: r.id.clone(),
        project_id: project.clone(),
        tag: tag.into(),
        limits: WindowLimits {
            per_minute: Some(60),
            ..WindowLimits::default()
        },
        now: at(5_000),
    };
    let wrong = store.update_rate_limit(change(&b.id, "api")).await;
    assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    let taken = store.update_rate_limit(change(&a.id, "mail")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let updated = store
        .update_rate_limit(change(&a.id, "api-v2"))
        .await
        .unwrap();
    assert_eq!(updated.tag, "api-v2");
    assert_eq!(updated.limits.per_minute, Some(60));
    assert_eq!(updated.limits.per_second, None);
    assert_eq!((updated.created_at, updated.updated_at), (T0, at(5_000)));
    assert_eq!(
        store
            .get_rate_limit(std::slice::from_ref(&a.id), &r.id)
            .await
            .unwrap(),
        Some(updated)
    );

    // Delete: in its own project only.
    let wrong = store.delete_rate_limit(&b.id, &r.id, at(6_000)).await;
    assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    store
        .delete_rate_limit(&a.id, &r.id, at(6_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_rate_limit(std::slice::from_ref(&a.id), &r.id)
            .await
            .unwrap(),
        None
    );
    let again = store.delete_rate_limit(&a.id, &r.id, at(6_000)).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    assert_eq!(
        store
            .list_rate_limits(std::slice::from_ref(&b.id))
            .await
            .unwrap(),
        vec![other]
    );
}

/// A full window holds jobs back (`registered`, planned execution moved to the release time,
/// bookkeeping on both), they are released at that time in `scheduledAt` order, the
/// bookkeeping stays as history, and jobs without a ruled tag are not affected.
pub async fn rate_limit_holds_back_and_releases_in_order(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let other = project(store, MonthQuota::Unlimited).await;
    rule(store, &p.id, "api", per_second(2)).await;
    rule(store, &p.id, "unused", per_second(0)).await;
    // Scheduled out of order: released by scheduledAt.
    let j3 = tagged_job(store, &p.id, &["x", "api"], at(3)).await;
    let j1 = tagged_job(store, &p.id, &["api"], at(1)).await;
    let j5 = tagged_job(store, &p.id, &["api"], at(5)).await;
    let j2 = tagged_job(store, &p.id, &["api"], at(2)).await;
    let j4 = tagged_job(store, &p.id, &["api"], at(4)).await;
    let free = tagged_job(store, &p.id, &["x"], at(6)).await;
    let plain = job_at(store, &p.id, at(7)).await;
    // Same tag, other project without a rule.
    let elsewhere = tagged_job(store, &other.id, &["api"], at(8)).await;

    let first: HashSet<JobId> = claimed_ids(store, at(10), 100).await.into_iter().collect();
    let expected: HashSet<JobId> = [&j1, &j2, &free, &plain, &elsewhere]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(first, expected);

    let release = at(1_010);
    for held in [&j3, &j4, &j5] {
        let job = store.get_job(&p.id, held).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Registered);
        assert_eq!(job.rate_limited.limited_at, Some(at(10)));
        assert_eq!(job.rate_limited.limited_until, Some(release));
        assert_eq!(job.rate_limited.tags, vec!["api".to_owned()]);
        let execs = store
            .list_job_executions(&p.id, held)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(execs.len(), 1);
        assert_eq!(execs[0].status, ExecutionStatus::Planned);
        assert_eq!(execs[0].rate_limited, job.rate_limited);
    }
    let j1_job = store.get_job(&p.id, &j1).await.unwrap().unwrap();
    assert_eq!(j1_job.rate_limited.limited_at, None);
    assert_eq!(store.next_due_at().await.unwrap(), Some(release));

    // Not a millisecond early.
    assert!(claimed_ids(store, at(1_009), 100).await.is_empty());
    // Released two at a time, in scheduledAt order.
    assert_eq!(claimed_ids(store, release, 1).await, vec![j3.clone()]);
    assert_eq!(claimed_ids(store, release, 100).await, vec![j4.clone()]);
    let j5_job = store.get_job(&p.id, &j5).await.unwrap().unwrap();
    assert_eq!(
        j5_job.rate_limited.limited_at,
        Some(at(10)),
        "first time only"
    );
    assert_eq!(j5_job.rate_limited.limited_until, Some(at(2_010)));
    assert_eq!(claimed_ids(store, at(2_010), 100).await, vec![j5.clone()]);

    // Released jobs keep their bookkeeping as history.
    let j3_job = store.get_job(&p.id, &j3).await.unwrap().unwrap();
    assert_eq!(j3_job.status, JobStatus::Running);
    assert_eq!(j3_job.rate_limited.limited_until, Some(release));
    assert_eq!(j3_job.rate_limited.tags, vec!["api".to_owned()]);
    let execs = store
        .list_job_executions(&p.id, &j3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs[0].status, ExecutionStatus::Started);
    assert_eq!(execs[0].rate_limited.limited_until, Some(release));
}

/// Several windows and tags: the job waits until every full window has room; a rule with a
/// 0 limit holds everything back until the rule changes, which re-checks held jobs at once.
pub async fn rate_limit_windows_combine_and_rule_changes_release(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    rule(
        store,
        &p.id,
        "a",
        WindowLimits {
            per_second: Some(10),
            per_minute: Some(2),
            ..WindowLimits::default()
        },
    )
    .await;
    let b = rule(store, &p.id, "b", per_second(1)).await;
    let first = tagged_job(store, &p.id, &["a"], at(0)).await;
    let second = tagged_job(store, &p.id, &["a", "b"], at(100)).await;
    assert_eq!(claimed_ids(store, at(0), 10).await, vec![first]);
    assert_eq!(claimed_ids(store, at(100), 10).await, vec![second]);
    // "a" has used its 2 per minute (starts at 0 and 100); "b" its 1 per second (at 100).
    let third = tagged_job(store, &p.id, &["b", "a"], at(500)).await;
    assert!(claimed_ids(store, at(500), 10).await.is_empty());
    let job = store.get_job(&p.id, &third).await.unwrap().unwrap();
    assert_eq!(job.rate_limited.limited_until, Some(at(60_000)));
    assert_eq!(job.rate_limited.tags, vec!["b".to_owned(), "a".to_owned()]);
    assert!(claimed_ids(store, at(59_999), 10).await.is_empty());
    assert_eq!(claimed_ids(store, at(60_000), 10).await, vec![third]);

    // Pause "b" entirely, then lift it: the held job is due again at once.
    let paused = store
        .update_rate_limit(UpdateRateLimit {
            id: b.id.clone(),
            project_id: p.id.clone(),
            tag: "b".into(),
            limits: per_second(0),
            now: at(70_000),
        })
        .await
        .unwrap();
    let waiting = tagged_job(store, &p.id, &["b"], at(70_000)).await;
    assert!(claimed_ids(store, at(70_000), 10).await.is_empty());
    let job = store.get_job(&p.id, &waiting).await.unwrap().unwrap();
    assert_eq!(job.rate_limited.limited_until, Some(at(71_000)));
    assert!(claimed_ids(store, at(71_000), 10).await.is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(72_000)));
    store
        .update_rate_limit(UpdateRateLimit {
            id: paused.id.clone(),
            project_id: p.id.clone(),
            tag: "b".into(),
            limits: WindowLimits::default(),
            now: at(71_500),
        })
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(at(71_500)));
    assert_eq!(
        claimed_ids(store, at(71_500), 10).await,
        vec![waiting.clone()]
    );

    // Deleting a rule releases what it held back, too.
    store
        .update_rate_limit(UpdateRateLimit {
            id: b.id.clone(),
            project_id: p.id.clone(),
            tag: "b".into(),
            limits: per_second(0),
            now: at(80_000),
        })
        .await
        .unwrap();
    let held = tagged_job(store, &p.id, &["b"], at(80_000)).await;
    assert!(claimed_ids(store, at(80_000), 10).await.is_empty());
    store
        .delete_rate_limit(&p.id, &b.id, at(80_500))
        .await
        .unwrap();
    assert_eq!(claimed_ids(store, at(80_500), 10).await, vec![held]);
}

/// Many concurrent claimers over 50 due jobs on a tag limited to 5 per second never claim more
/// than 5 in that second, and never the same execution twice.
pub async fn rate_limit_reservations_are_atomic_under_concurrent_claimers(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    rule(store, &p.id, "burst", per_second(5)).await;
    for i in 0..50 {
        tagged_job(store, &p.id, &["burst"], at(i)).await;
    }
    let claims = (0..8).map(|_| store.claim_due(claim(at(100), 10)));
    let mut all = Vec::new();
    for result in join_all(claims).await {
        all.extend(result.expect("claim").into_iter().map(|c| c.execution_id));
    }
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(distinct.len(), all.len(), "an execution was claimed twice");
    assert_eq!(all.len(), 5, "the limit is 5 per second");

    // Still within the second: nothing more, whoever asks.
    let claims = (0..8).map(|_| store.claim_due(claim(at(1_099), 10)));
    for result in join_all(claims).await {
        assert!(result.expect("claim").is_empty());
    }
    // The next second: the next 5.
    let claims = (0..8).map(|_| store.claim_due(claim(at(1_100), 10)));
    let mut next = 0;
    for result in join_all(claims).await {
        next += result.expect("claim").len();
    }
    assert_eq!(next, 5);
}

/// Retries count like first attempts: a retry due while the window is full waits.
pub async fn rate_limit_counts_retries(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    rule(
        store,
        &p.id,
        "api",
        WindowLimits {
            per_minute: Some(1),
            ..WindowLimits::default()
        },
    )
    .await;
    let job = tagged_job(store, &p.id, &["api"], at(0)).await;
    let first = store.claim_due(claim(at(0), 10)).await.unwrap();
    assert_eq!(first.len(), 1);
    let mut done = finished(&first[0], ok_response(), at(500));
    done.retry = Some(PlannedRetry {
        execution_id: ExecutionId::generate(),
        attempt_number: 2,
        due_at: at(1_000),
    });
    store.complete_executions(&[done]).await.unwrap();

    assert!(claimed_ids(store, at(1_000), 10).await.is_empty());
    let stored = store.get_job(&p.id, &job).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        JobStatus::Queued,
        "a held retry keeps the job queued"
    );
    assert_eq!(stored.rate_limited.limited_until, Some(at(60_000)));
    let execs = store
        .list_job_executions(&p.id, &job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs[0].attempt_number, 2);
    assert_eq!(execs[0].rate_limited.limited_until, Some(at(60_000)));
    let retry = store.claim_due(claim(at(60_000), 10)).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt_number, 2);
}

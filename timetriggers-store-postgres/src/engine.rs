//! What the engine needs: claims, outcomes, retries, stale leases, the next due time.
//!
//! Each of these is one statement (so one round trip, atomic on its own, no explicit
//! transaction), whatever the batch size.

use std::collections::HashSet;

use sqlx::postgres::PgPool;
use timetriggers_core::{
    Claim, ClaimedExecution, CompletedExecution, DispatchOutcome, StaleScope, StoreResult,
    Timestamp,
};

use crate::error::from_sqlx;
use crate::rows::{self, count, duration_ms, headers_json, int4, ms, CLAIMED_COLUMNS};
use crate::triggers::random_shard;

/// Takes up to `$2` planned executions due by `$7` (the claim's look-ahead; `$1` is now),
/// earliest first (by due time, then planned time, so that jobs held back until one instant are
/// released in `scheduledAt` order), and starts them.
///
/// - `picked` locks each execution *and its job* with `SKIP LOCKED`: concurrent claimers (other
///   instances) skip each other's rows instead of waiting, so they never receive the same
///   execution, and a job being rescheduled or cancelled right now is left for the next round.
/// - `picked` takes nothing once a rate-limit rule exists. This statement is the claim without
///   rules; the store looks for rules first (`rate_limits::claim_due`), but a rule created
///   after that look and before this statement's snapshot (with jobs scheduled after it)
///   would otherwise let this claim start them unlimited. The engine then claims again and
///   takes the rules' path. (The claim of admitted executions replaces this whole `WHERE`.)
/// - `gens` does the same for the generators of picked first occurrences (first attempts by
///   the scheduler, which release and bill their generator); such an occurrence whose
///   generator is locked (being redefined, cancelled or planned) waits for the next round, so
///   the claim never waits for a lock and can never be part of a deadlock. Retries and replays
///   of occurrences, and occurrences whose generator is gone, need no generator.
/// - `started` marks the executions `started` under a lease (the job's timeout + `$4`),
///   `running` marks their jobs, `released` frees the generators of fired occurrences (first
///   attempts) so the engine plans their next one, and `charged` bills one unit per such
///   occurrence to its project (`$5` the month, `$6` the shard).
pub(crate) const CLAIM: &str = "WITH picked AS MATERIALIZED ( \
         SELECT e.id, j.generator_id, \
             (j.generator_id IS NOT NULL AND e.attempt_number = 1 \
                 AND e.triggered_by = 'scheduler' \
                 AND EXISTS (SELECT 1 FROM generators g WHERE g.id = j.generator_id)) \
                 AS needs_generator \
         FROM executions e JOIN jobs j ON j.id = e.job_id \
         WHERE e.status = 'planned' AND e.due_at <= $7 \
             AND NOT EXISTS (SELECT 1 FROM rate_limits) \
         ORDER BY e.due_at, e.planned_at, e.id LIMIT $2 \
         FOR NO KEY UPDATE OF e, j SKIP LOCKED), \
     gens AS MATERIALIZED ( \
         SELECT g.id FROM generators g \
         WHERE g.id = ANY(ARRAY(SELECT generator_id FROM picked WHERE needs_generator)) \
         FOR NO KEY UPDATE SKIP LOCKED), \
     started AS ( \
         UPDATE executions e \
         SET status = 'started', started_at = $1, worker = $3, \
             lease_until = $1 + j.timeout_ms + $4 \
         FROM jobs j \
         WHERE e.id = ANY(ARRAY( \
                 SELECT p.id FROM picked p \
                 WHERE NOT p.needs_generator \
                     OR p.generator_id = ANY(ARRAY(SELECT id FROM gens)))) \
             AND j.id = e.job_id \
         RETURNING e.id, e.job_id, e.project_id, e.attempt_number, e.triggered_by, \
             e.planned_at, e.due_at), \
     running AS ( \
         UPDATE jobs j \
         SET status = 'running', queued_at = COALESCE(j.queued_at, $1), started_at = $1 \
         WHERE j.id = ANY(ARRAY(SELECT job_id FROM started)) \
         RETURNING j.id, j.method, j.url, j.headers, j.body, j.max_attempts, j.timeout_ms, \
             j.generator_id, j.scheduled_at), \
     fired AS ( \
         SELECT s.project_id, r.id AS job_id, r.generator_id, r.scheduled_at \
         FROM started s JOIN running r ON r.id = s.job_id \
         WHERE r.generator_id IS NOT NULL AND s.attempt_number = 1 \
             AND s.triggered_by = 'scheduler'), \
     released AS ( \
         UPDATE generators g SET pending_job_id = NULL, last_occurrence_at = f.scheduled_at \
         FROM fired f WHERE g.id = f.generator_id AND g.pending_job_id = f.job_id), \
     charged AS ( \
         INSERT INTO quota_usage (project_id, month, shard, used) \
         SELECT project_id, $5, $6, COUNT(*) FROM fired GROUP BY project_id \
         ON CONFLICT (project_id, month, shard) \
         DO UPDATE SET used = quota_usage.used + EXCLUDED.used) \
     SELECT s.id, s.job_id, s.project_id, s.attempt_number, s.triggered_by, s.planned_at, \
         s.due_at, r.method, r.url, r.headers, r.body, r.max_attempts, r.timeout_ms, r.generator_id \
     FROM started s JOIN running r ON r.id = s.job_id \
     ORDER BY s.due_at, s.planned_at, s.id";

/// The earliest planned execution; an index seek on `executions_planned_due`.
pub(crate) const NEXT_DUE: &str =
    "SELECT due_at FROM executions WHERE status = 'planned' ORDER BY due_at LIMIT 1";

/// Records a batch of outcomes (arrays, one element per outcome, `$1` the execution ids).
///
/// - `locked` locks the executions that are still `started`, in id order, so that two
///   instances completing overlapping batches (an outcome racing the recovery of its expired
///   lease) queue instead of deadlocking; an execution that is no longer `started` is left
///   untouched (fencing). `done` waits for it (the `COUNT(*)` is a one-time filter evaluated
///   before the update reads anything).
/// - `done` writes the outcomes, looking each execution up by primary key from the unnested
///   input, `retried` plans the next attempts, and the final update moves the jobs on:
///   `queued` when retried, else `completed`, with the latest outcome copied.
///
/// Both statements here hand row sets from one CTE to the next as `= ANY(ARRAY(…))` or as a
/// function scan, never as a join against a CTE scan: the planner cannot estimate CTE sizes,
/// and a join against one degenerates into a nested loop over the whole batch, or a hash of
/// the whole table, when batches are large.
pub(crate) const COMPLETE: &str = "WITH locked AS MATERIALIZED ( \
         SELECT e.id FROM executions e \
         WHERE e.id = ANY($1::text[]) AND e.status = 'started' \
         ORDER BY e.id FOR NO KEY UPDATE), \
     done AS ( \
         UPDATE executions e \
         SET status = 'complete', completed_at = i.completed_at, \
             response_status = i.response_status, \
             response_headers = i.response_headers::jsonb, response_body = i.response_body, \
             response_size = i.response_size, error_message = i.error_message \
         FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::bytea[], \
             $6::int8[], $7::text[], $8::text[], $9::int4[], $10::int8[]) \
             AS i(id, completed_at, response_status, response_headers, response_body, \
                 response_size, error_message, retry_id, retry_attempt, retry_due) \
         WHERE e.id = i.id AND e.status = 'started' AND (SELECT COUNT(*) FROM locked) >= 0 \
         RETURNING e.id, e.job_id, e.project_id, e.attempt_number, i.completed_at, \
             i.response_status, i.error_message, i.retry_id, i.retry_attempt, i.retry_due), \
     retried AS ( \
         INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
             planned_at, due_at) \
         SELECT retry_id, job_id, project_id, retry_attempt, 'retry', 'planned', retry_due, \
             retry_due \
         FROM done WHERE retry_id IS NOT NULL) \
     UPDATE jobs j \
     SET status = CASE WHEN d.retry_id IS NULL THEN 'completed' ELSE 'queued' END, \
         completed_at = CASE WHEN d.retry_id IS NULL THEN d.completed_at ELSE j.completed_at END, \
         last_attempt = d.attempt_number, last_status = d.response_status, \
         last_error = d.error_message \
     FROM done d \
     WHERE j.id = d.job_id";

/// [`timetriggers_core::Store::claim_due`]: one statement whatever the batch size.
pub(crate) async fn claim_due(pool: &PgPool, claim: &Claim) -> StoreResult<Vec<ClaimedExecution>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    sqlx::query(CLAIM)
        .bind(ms(claim.now))
        .bind(limit)
        .bind(&claim.worker)
        .bind(duration_ms(claim.lease_margin))
        .bind(claim.now.month_key())
        .bind(random_shard())
        .bind(ms(claim.due_by.max(claim.now)))
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rows::claimed)
        .collect()
}

/// The columns of [`COMPLETE`]'s input, one vector per column.
#[derive(Default)]
struct Outcomes<'a> {
    id: Vec<&'a str>,
    completed_at: Vec<i64>,
    response_status: Vec<Option<i32>>,
    response_headers: Vec<Option<String>>,
    response_body: Vec<Option<&'a [u8]>>,
    response_size: Vec<Option<i64>>,
    error_message: Vec<Option<&'a str>>,
    retry_id: Vec<Option<&'a str>>,
    retry_attempt: Vec<Option<i32>>,
    retry_due: Vec<Option<i64>>,
}

/// [`timetriggers_core::Store::complete_executions`]: one statement for the whole batch. An
/// execution listed twice is recorded once, with its first outcome (as if the second came
/// later and found it no longer `started`).
pub(crate) async fn complete(pool: &PgPool, done: &[CompletedExecution]) -> StoreResult<()> {
    let mut seen = HashSet::with_capacity(done.len());
    let mut o = Outcomes::default();
    for d in done {
        if !seen.insert(d.execution_id.as_str()) {
            continue;
        }
        let (status, headers, body, size) = match &d.outcome {
            DispatchOutcome::Response(r) => (
                Some(i32::from(r.status)),
                Some(headers_json(&r.headers)?),
                Some(r.body.as_bytes()),
                Some(count(r.size)),
            ),
            DispatchOutcome::Failed(_) => (None, None, None, None),
        };
        o.id.push(d.execution_id.as_str());
        o.completed_at.push(ms(d.completed_at));
        o.response_status.push(status);
        o.response_headers.push(headers);
        o.response_body.push(body);
        o.response_size.push(size);
        o.error_message.push(d.outcome.error());
        o.retry_id
            .push(d.retry.as_ref().map(|r| r.execution_id.as_str()));
        o.retry_attempt
            .push(d.retry.as_ref().map(|r| int4(r.attempt_number)));
        o.retry_due.push(d.retry.as_ref().map(|r| ms(r.due_at)));
    }
    if o.id.is_empty() {
        return Ok(());
    }
    sqlx::query(COMPLETE)
        .bind(&o.id)
        .bind(&o.completed_at)
        .bind(&o.response_status)
        .bind(&o.response_headers)
        .bind(&o.response_body)
        .bind(&o.response_size)
        .bind(&o.error_message)
        .bind(&o.retry_id)
        .bind(&o.retry_attempt)
        .bind(&o.retry_due)
        .execute(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// [`timetriggers_core::Store::list_stale_executions`]: reads only.
pub(crate) async fn list_stale(
    pool: &PgPool,
    now: Timestamp,
    scope: StaleScope,
    limit: usize,
) -> StoreResult<Vec<ClaimedExecution>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // With AllStarted every lease counts as expired.
    let until = match scope {
        StaleScope::ExpiredLeases => ms(now),
        StaleScope::AllStarted => i64::MAX,
    };
    let sql = format!(
        "SELECT {CLAIMED_COLUMNS} FROM executions e JOIN jobs j ON j.id = e.job_id \
         WHERE e.status = 'started' AND e.lease_until <= $1 \
         ORDER BY e.lease_until LIMIT $2"
    );
    sqlx::query(&sql)
        .bind(until)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rows::claimed)
        .collect()
}

/// [`timetriggers_core::Store::next_due_at`].
pub(crate) async fn next_due_at(pool: &PgPool) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> = sqlx::query_scalar(NEXT_DUE)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(due.map(Timestamp::from_millis))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use timetriggers_core::testing::{claim, definition, project, schedule_ok, upsert, T0};
    use timetriggers_core::{
        MonthQuota, NewRateLimit, RateLimitId, Store, Timestamp, WindowLimits,
    };

    use super::*;
    use crate::testing::scratch_store;

    /// The claim without rules takes nothing once a rule exists, as when the rule is created
    /// between the store's look for rules and the claim statement (two instances, one creating
    /// a rule while the other claims): the jobs scheduled after the rule are left for the
    /// claim that enforces it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_claim_without_rules_takes_nothing_once_a_rule_exists() {
        let (store, _schema) = scratch_store("tt_rule_race").await;
        let p = project(&store, MonthQuota::Unlimited).await;
        store
            .create_rate_limit(NewRateLimit {
                id: RateLimitId::generate(),
                project_id: p.id.clone(),
                tag: "emails".into(),
                limits: WindowLimits {
                    per_second: Some(1),
                    ..WindowLimits::default()
                },
                now: T0,
            })
            .await
            .unwrap();
        let mut def = definition("https://example.com/limited", T0);
        def.tags = vec!["emails".into()];
        schedule_ok(&store, upsert(&p.id, None, None, def.clone(), T0)).await;
        schedule_ok(&store, upsert(&p.id, None, None, def, T0)).await;
        let now = Timestamp::from_millis(T0.as_millis() + 10);

        let unruled = claim_due(store.pool(), &claim(now, 10)).await.unwrap();
        assert!(unruled.is_empty(), "claimed past a rule: {unruled:?}");
        // Through the store, the rule's path admits one of the two this second.
        let ruled = store.claim_due(claim(now, 10)).await.unwrap();
        assert_eq!(ruled.len(), 1, "{ruled:?}");
    }
}

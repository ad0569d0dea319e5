//! What the engine needs: claims, outcomes, retries, stale leases, the next due time.

use std::collections::HashMap;

use rusqlite::{params, Connection};
use timetriggers_core::{
    Claim, ClaimedExecution, CompletedExecution, DispatchOutcome, JobStatus, StaleScope,
    StoreResult, Timestamp, TriggeredBy,
};

use crate::rows::{self, count, duration_ms, headers_json, id_list, ms, CLAIMED_COLUMNS};
use crate::sql::{execute, fetch_all, fetch_optional, first};

/// Marks the executions due by `?5` (the claim's look-ahead) `started` and returns them.
/// Spelled with `status = 'planned'` as a literal so that SQLite seeks the partial index
/// `executions_planned_due`.
pub(crate) const CLAIM_EXECUTIONS: &str = "UPDATE executions AS e \
     SET status = 'started', started_at = ?1, worker = ?3, lease_until = ?1 + j.timeout_ms + ?4 \
     FROM jobs AS j \
     WHERE j.id = e.job_id AND e.id IN ( \
         SELECT id FROM executions WHERE status = 'planned' AND due_at <= ?5 \
         ORDER BY due_at, planned_at LIMIT ?2) \
     RETURNING id, job_id, project_id, attempt_number, triggered_by, planned_at, due_at";

/// [`CLAIM_EXECUTIONS`] for the executions the rate limits admitted: `?2` is a JSON array of
/// their ids (see [`crate::rate_limits::admit`]).
const CLAIM_ADMITTED: &str = "UPDATE executions AS e \
     SET status = 'started', started_at = ?1, worker = ?3, lease_until = ?1 + j.timeout_ms + ?4 \
     FROM jobs AS j \
     WHERE j.id = e.job_id AND e.status = 'planned' \
         AND e.id IN (SELECT value FROM json_each(?2)) \
     RETURNING id, job_id, project_id, attempt_number, triggered_by, planned_at, due_at";

/// Marks the claimed executions' jobs `running` and returns what to deliver.
const CLAIM_JOBS: &str = "UPDATE jobs \
     SET status = 'running', queued_at = COALESCE(queued_at, ?1), started_at = ?1 \
     WHERE id IN (SELECT value FROM json_each(?2)) \
     RETURNING id, project_id, method, url, headers, body, max_attempts, timeout_ms, \
         generator_id";

/// The earliest planned execution; same index as the claim.
pub(crate) const NEXT_DUE: &str =
    "SELECT due_at FROM executions WHERE status = 'planned' ORDER BY due_at LIMIT 1";

/// [`timetriggers_core::Store::claim_due`] in the writer's transaction: two statements
/// whatever the batch size.
pub(crate) fn claim_due(conn: &Connection, claim: &Claim) -> StoreResult<Vec<ClaimedExecution>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let (worker, margin) = (&claim.worker, duration_ms(claim.lease_margin));
    let mut started = match crate::rate_limits::admit(conn, claim)? {
        None => fetch_all(
            conn,
            CLAIM_EXECUTIONS,
            params![
                ms(claim.now),
                limit,
                worker,
                margin,
                ms(claim.due_by.max(claim.now))
            ],
            rows::started,
        )?,
        Some(admitted) => fetch_all(
            conn,
            CLAIM_ADMITTED,
            params![ms(claim.now), admitted, worker, margin],
            rows::started,
        )?,
    };
    if started.is_empty() {
        return Ok(Vec::new());
    }
    // RETURNING comes in no particular order; the engine gets the earliest first.
    started.sort_by_key(|s| (s.due_at, s.planned_at));

    let job_ids = id_list(started.iter().map(|s| s.job_id.as_str()))?;
    let jobs = fetch_all(
        conn,
        CLAIM_JOBS,
        params![ms(claim.now), job_ids],
        rows::job_delivery,
    )?;
    let mut deliveries = HashMap::with_capacity(jobs.len());
    for d in jobs {
        deliveries.insert(d.id.clone(), d);
    }
    fire_occurrences(conn, claim.now, &started, &deliveries)?;

    started
        .into_iter()
        .map(|s| {
            let d = deliveries.get(&s.job_id).cloned().ok_or_else(|| {
                timetriggers_core::StoreError::corrupt(format!(
                    "execution {} belongs to job {}, which was not found",
                    s.execution_id, s.job_id
                ))
            })?;
            Ok(ClaimedExecution {
                execution_id: s.execution_id,
                job_id: s.job_id,
                project_id: s.project_id,
                attempt_number: s.attempt_number,
                triggered_by: s.triggered_by,
                planned_at: s.planned_at,
                due_at: s.due_at,
                request: d.request,
                options: d.options,
                generator_id: d.generator_id,
            })
        })
        .collect()
}

/// Generator occurrences taken by a claim: their generators need the next occurrence, and each
/// first attempt of an occurrence costs its project one quota unit.
fn fire_occurrences(
    conn: &Connection,
    now: Timestamp,
    started: &[rows::StartedRow],
    deliveries: &HashMap<timetriggers_core::JobId, rows::JobDelivery>,
) -> StoreResult<()> {
    let mut occurrences = Vec::new();
    let mut charges: HashMap<&str, i64> = HashMap::new();
    for s in started {
        let is_occurrence = deliveries
            .get(&s.job_id)
            .is_some_and(|d| d.generator_id.is_some());
        if is_occurrence && s.attempt_number == 1 && s.triggered_by == TriggeredBy::Scheduler {
            occurrences.push(s.job_id.as_str());
            *charges.entry(s.project_id.as_str()).or_default() += 1;
        }
    }
    if occurrences.is_empty() {
        return Ok(());
    }
    crate::generators::release_pending(conn, &id_list(occurrences)?)?;
    let month = now.month_key();
    for (project, n) in charges {
        execute(
            conn,
            "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, ?3) \
             ON CONFLICT (project_id, month) DO UPDATE SET used = used + ?3",
            params![project, month, n],
        )?;
    }
    Ok(())
}

/// Records one outcome if the execution (of job `?8`) is still `started` (fencing). No
/// `RETURNING`: SQLite buffers returned rows in a temporary B-tree, one per execution here.
const COMPLETE_EXECUTION: &str = "UPDATE executions SET status = 'complete', completed_at = ?2, \
     response_status = ?3, response_headers = ?4, response_body = ?5, response_size = ?6, \
     error_message = ?7 \
     WHERE id = ?1 AND status = 'started' AND job_id = ?8";

/// Plans the retries of a batch: a JSON array of `{"id", "job", "attempt", "due"}`; each
/// retry belongs to its job's project.
const PLAN_RETRIES: &str = "INSERT INTO executions (id, job_id, project_id, attempt_number, \
     triggered_by, status, planned_at, due_at) \
     SELECT value ->> 'id', j.id, j.project_id, value ->> 'attempt', 'retry', \
         'planned', value ->> 'due', value ->> 'due' \
     FROM json_each(?1) JOIN jobs j ON j.id = value ->> 'job'";

/// Moves the jobs of a batch on (`queued` for a retry, else `completed`) and copies the
/// outcome of the execution that finished: a JSON array of
/// `{"job", "execution", "status", "completed_at"}` (`completed_at` null for a retry).
const FINISH_JOBS: &str = "UPDATE jobs SET status = d.status, \
         completed_at = COALESCE(d.completed_at, jobs.completed_at), \
         last_attempt = e.attempt_number, last_status = e.response_status, \
         last_error = e.error_message \
     FROM (SELECT value ->> 'job' AS job_id, value ->> 'execution' AS execution_id, \
             value ->> 'status' AS status, value ->> 'completed_at' AS completed_at \
           FROM json_each(?1)) AS d \
         JOIN executions e ON e.id = d.execution_id \
     WHERE jobs.id = d.job_id";

/// [`timetriggers_core::Store::complete_executions`] in the writer's transaction. An execution
/// that is no longer `started` is skipped (fencing). One statement per outcome (it carries the
/// response body, bound as is), then two for the whole batch: the retries and the jobs.
pub(crate) fn complete(conn: &Connection, done: &[CompletedExecution]) -> StoreResult<()> {
    let mut retries = Vec::new();
    let mut jobs = Vec::with_capacity(done.len());
    for d in done {
        if !record_outcome(conn, d)? {
            tracing::debug!(execution = %d.execution_id, "outcome for an execution that is no longer started; ignored");
            continue;
        }
        let job_id = d.job_id.as_str();
        let (status, completed_at) = match &d.retry {
            Some(retry) => {
                retries.push(serde_json::json!({
                    "id": retry.execution_id.as_str(),
                    "job": job_id,
                    "attempt": retry.attempt_number,
                    "due": ms(retry.due_at),
                }));
                (JobStatus::Queued, None)
            }
            None => (JobStatus::Completed, Some(ms(d.completed_at))),
        };
        jobs.push(serde_json::json!({
            "job": job_id,
            "execution": d.execution_id.as_str(),
            "status": status.as_str(),
            "completed_at": completed_at,
        }));
    }
    if !retries.is_empty() {
        execute(
            conn,
            PLAN_RETRIES,
            [serde_json::Value::Array(retries).to_string()],
        )?;
    }
    if !jobs.is_empty() {
        execute(
            conn,
            FINISH_JOBS,
            [serde_json::Value::Array(jobs).to_string()],
        )?;
    }
    Ok(())
}

/// Writes one outcome onto its execution; `false` if the execution is no longer `started`.
fn record_outcome(conn: &Connection, d: &CompletedExecution) -> StoreResult<bool> {
    let (status, headers, body, size) = match &d.outcome {
        DispatchOutcome::Response(r) => (
            Some(i64::from(r.status)),
            Some(headers_json(&r.headers)?),
            Some(r.body.as_str()),
            Some(count(r.size)),
        ),
        DispatchOutcome::Failed(_) => (None, None, None, None),
    };
    let changed = execute(
        conn,
        COMPLETE_EXECUTION,
        params![
            d.execution_id.as_str(),
            ms(d.completed_at),
            status,
            headers,
            body,
            size,
            d.outcome.error(),
            d.job_id.as_str()
        ],
    )?;
    Ok(changed == 1)
}

/// [`timetriggers_core::Store::list_stale_executions`]: reads only.
pub(crate) fn list_stale(
    conn: &Connection,
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
         WHERE e.status = 'started' AND e.lease_until <= ?1 \
         ORDER BY e.lease_until LIMIT ?2"
    );
    fetch_all(conn, &sql, [until, limit], rows::claimed)
}

/// [`timetriggers_core::Store::next_due_at`].
pub(crate) fn next_due_at(conn: &Connection) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> = fetch_optional(conn, NEXT_DUE, [], first)?;
    Ok(due.map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan_test::{explainer, plan};

    /// Claims, next_due_at and lease recovery seek partial indexes, so a million far-future
    /// jobs cost them nothing.
    #[tokio::test]
    async fn engine_queries_use_the_partial_indexes() {
        let (_dir, store, conn) = explainer().await;

        let claim = plan(&conn, CLAIM_EXECUTIONS);
        assert!(claim.contains("executions_planned_due"), "{claim}");
        assert!(!claim.contains("SCAN e"), "{claim}");
        let next = plan(&conn, NEXT_DUE);
        assert!(next.contains("executions_planned_due"), "{next}");
        assert!(!next.contains("TEMP B-TREE"), "{next}");
        let stale = plan(
            &conn,
            &format!(
                "SELECT {CLAIMED_COLUMNS} FROM executions e JOIN jobs j ON j.id = e.job_id \
                 WHERE e.status = 'started' AND e.lease_until <= 1 ORDER BY e.lease_until LIMIT 5"
            ),
        );
        assert!(stale.contains("executions_started_lease"), "{stale}");
        let key = plan(
            &conn,
            "SELECT id, status FROM jobs WHERE project_id = 'p' AND custom_key = 'k' \
             AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running')",
        );
        assert!(key.contains("jobs_live_custom_key"), "{key}");
        let release = plan(&conn, crate::generators::RELEASE_PENDING);
        assert!(release.contains("generators_active"), "{release}");

        drop(conn);
        store.close().await;
    }
}

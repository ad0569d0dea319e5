//! What the engine needs: claims, outcomes, retries, stale leases, the next due time.

use std::collections::HashMap;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use timetriggers_core::{
    Claim, ClaimedExecution, CompletedExecution, DispatchOutcome, JobStatus, StaleScope,
    StoreResult, Timestamp, TriggeredBy,
};

use crate::error::from_sqlx;
use crate::rows::{self, count, duration_ms, headers_json, id_list, ms, CLAIMED_COLUMNS};

/// Marks the due executions `started` and returns them. Spelled with `status = 'planned'` as a
/// literal so that SQLite seeks the partial index `executions_planned_due`.
pub(crate) const CLAIM_EXECUTIONS: &str = "UPDATE executions AS e \
     SET status = 'started', started_at = ?1, worker = ?3, lease_until = ?1 + j.timeout_ms + ?4 \
     FROM jobs AS j \
     WHERE j.id = e.job_id AND e.id IN ( \
         SELECT id FROM executions WHERE status = 'planned' AND due_at <= ?1 \
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
pub(crate) async fn claim_due(
    conn: &mut SqliteConnection,
    claim: &Claim,
) -> StoreResult<Vec<ClaimedExecution>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let query = match crate::rate_limits::admit(conn, claim).await? {
        None => sqlx::query(CLAIM_EXECUTIONS)
            .bind(ms(claim.now))
            .bind(limit),
        Some(admitted) => sqlx::query(CLAIM_ADMITTED)
            .bind(ms(claim.now))
            .bind(admitted),
    };
    let started = query
        .bind(&claim.worker)
        .bind(duration_ms(claim.lease_margin))
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if started.is_empty() {
        return Ok(Vec::new());
    }
    let mut started = started
        .iter()
        .map(rows::started)
        .collect::<StoreResult<Vec<_>>>()?;
    // RETURNING comes in no particular order; the engine gets the earliest first.
    started.sort_by_key(|s| (s.due_at, s.planned_at));

    let job_ids = id_list(started.iter().map(|s| s.job_id.as_str()))?;
    let jobs = sqlx::query(CLAIM_JOBS)
        .bind(ms(claim.now))
        .bind(job_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let mut deliveries = HashMap::with_capacity(jobs.len());
    for row in &jobs {
        let d = rows::job_delivery(row)?;
        deliveries.insert(d.id.clone(), d);
    }
    fire_occurrences(conn, claim.now, &started, &deliveries).await?;

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
                request: d.request,
                options: d.options,
                generator_id: d.generator_id,
            })
        })
        .collect()
}

/// Generator occurrences taken by a claim: their generators need the next occurrence, and each
/// first attempt of an occurrence costs its project one quota unit.
async fn fire_occurrences(
    conn: &mut SqliteConnection,
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
    crate::generators::release_pending(conn, &id_list(occurrences)?).await?;
    let month = now.month_key();
    for (project, n) in charges {
        sqlx::query(
            "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, ?3) \
             ON CONFLICT (project_id, month) DO UPDATE SET used = used + ?3",
        )
        .bind(project)
        .bind(&month)
        .bind(n)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Records one outcome if the execution is still `started` (fencing); returns its job, project
/// and attempt number, or nothing if it was not.
const COMPLETE_EXECUTION: &str = "UPDATE executions SET status = 'complete', completed_at = ?2, \
     response_status = ?3, response_headers = ?4, response_body = ?5, response_size = ?6, \
     error_message = ?7 \
     WHERE id = ?1 AND status = 'started' \
     RETURNING job_id, project_id, attempt_number";

/// Plans the retries of a batch: a JSON array of
/// `{"id", "job", "project", "attempt", "due"}`.
const PLAN_RETRIES: &str = "INSERT INTO executions (id, job_id, project_id, attempt_number, \
     triggered_by, status, planned_at, due_at) \
     SELECT value ->> 'id', value ->> 'job', value ->> 'project', value ->> 'attempt', 'retry', \
         'planned', value ->> 'due', value ->> 'due' \
     FROM json_each(?1)";

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
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    done: &[CompletedExecution],
) -> StoreResult<()> {
    let mut retries = Vec::new();
    let mut jobs = Vec::with_capacity(done.len());
    for d in done {
        let Some((job_id, project_id)) = record_outcome(conn, d).await? else {
            tracing::debug!(execution = %d.execution_id, "outcome for an execution that is no longer started; ignored");
            continue;
        };
        let (status, completed_at) = match &d.retry {
            Some(retry) => {
                retries.push(serde_json::json!({
                    "id": retry.execution_id.as_str(),
                    "job": job_id,
                    "project": project_id,
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
        sqlx::query(PLAN_RETRIES)
            .bind(serde_json::Value::Array(retries).to_string())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    if !jobs.is_empty() {
        sqlx::query(FINISH_JOBS)
            .bind(serde_json::Value::Array(jobs).to_string())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Writes one outcome onto its execution; `None` if the execution is no longer `started`.
async fn record_outcome(
    conn: &mut SqliteConnection,
    d: &CompletedExecution,
) -> StoreResult<Option<(String, String)>> {
    let (status, headers, body, size) = match &d.outcome {
        DispatchOutcome::Response(r) => (
            Some(i64::from(r.status)),
            Some(headers_json(&r.headers)?),
            Some(r.body.as_str()),
            Some(count(r.size)),
        ),
        DispatchOutcome::Failed(_) => (None, None, None, None),
    };
    let row = sqlx::query(COMPLETE_EXECUTION)
        .bind(d.execution_id.as_str())
        .bind(ms(d.completed_at))
        .bind(status)
        .bind(headers)
        .bind(body)
        .bind(size)
        .bind(d.outcome.error())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let job_id: String = sqlx::Row::try_get(&row, "job_id").map_err(from_sqlx)?;
    let project_id: String = sqlx::Row::try_get(&row, "project_id").map_err(from_sqlx)?;
    Ok(Some((job_id, project_id)))
}

/// [`timetriggers_core::Store::list_stale_executions`]: reads only.
pub(crate) async fn list_stale(
    pool: &SqlitePool,
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
pub(crate) async fn next_due_at(pool: &SqlitePool) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> = sqlx::query_scalar(NEXT_DUE)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(due.map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    use crate::plan_test::{explainer, plan};

    /// Claims, next_due_at and lease recovery seek partial indexes, so a million far-future
    /// jobs cost them nothing.
    #[tokio::test]
    async fn engine_queries_use_the_partial_indexes() {
        let (_dir, store, mut conn) = explainer().await;

        let claim = plan(&mut conn, CLAIM_EXECUTIONS).await;
        assert!(claim.contains("executions_planned_due"), "{claim}");
        assert!(!claim.contains("SCAN e"), "{claim}");
        let next = plan(&mut conn, NEXT_DUE).await;
        assert!(next.contains("executions_planned_due"), "{next}");
        assert!(!next.contains("TEMP B-TREE"), "{next}");
        let stale = plan(
            &mut conn,
            &format!(
                "SELECT {CLAIMED_COLUMNS} FROM executions e JOIN jobs j ON j.id = e.job_id \
                 WHERE e.status = 'started' AND e.lease_until <= 1 ORDER BY e.lease_until LIMIT 5"
            ),
        )
        .await;
        assert!(stale.contains("executions_started_lease"), "{stale}");
        let key = plan(
            &mut conn,
            "SELECT id, status FROM jobs WHERE project_id = 'p' AND custom_key = 'k' \
             AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running')",
        )
        .await;
        assert!(key.contains("jobs_live_custom_key"), "{key}");
        let release = plan(&mut conn, crate::generators::RELEASE_PENDING).await;
        assert!(release.contains("generators_active"), "{release}");

        conn.close().await.unwrap();
        store.close().await;
    }
}

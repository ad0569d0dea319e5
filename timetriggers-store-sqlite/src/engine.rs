//! What the engine needs: claims, outcomes, retries, stale leases, the next due time.

use std::collections::HashMap;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use timetriggers_core::{
    Claim, ClaimedExecution, CompletedExecution, DispatchOutcome, JobStatus, StaleScope,
    StoreResult, Timestamp,
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
         ORDER BY due_at LIMIT ?2) \
     RETURNING id, job_id, project_id, attempt_number, triggered_by, planned_at, due_at";

/// Marks the claimed executions' jobs `running` and returns what to deliver.
const CLAIM_JOBS: &str = "UPDATE jobs \
     SET status = 'running', queued_at = COALESCE(queued_at, ?1), started_at = ?1 \
     WHERE id IN (SELECT value FROM json_each(?2)) \
     RETURNING id, method, url, headers, body, max_attempts, timeout_ms";

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
    let started = sqlx::query(CLAIM_EXECUTIONS)
        .bind(ms(claim.now))
        .bind(limit)
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
    started.sort_by_key(|s| s.due_at);

    let job_ids = id_list(started.iter().map(|s| s.job_id.as_str()))?;
    let jobs = sqlx::query(CLAIM_JOBS)
        .bind(ms(claim.now))
        .bind(job_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let mut deliveries = HashMap::with_capacity(jobs.len());
    for row in &jobs {
        let (id, request, options) = rows::job_delivery(row)?;
        deliveries.insert(id, (request, options));
    }

    started
        .into_iter()
        .map(|s| {
            let (request, options) = deliveries.get(&s.job_id).cloned().ok_or_else(|| {
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
                request,
                options,
            })
        })
        .collect()
}

/// [`timetriggers_core::Store::complete_executions`] in the writer's transaction. An execution
/// that is no longer `started` is skipped (fencing).
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    done: &[CompletedExecution],
) -> StoreResult<()> {
    for d in done {
        complete_one(conn, d).await?;
    }
    Ok(())
}

async fn complete_one(conn: &mut SqliteConnection, d: &CompletedExecution) -> StoreResult<()> {
    let (status, headers, body, size) = match &d.outcome {
        DispatchOutcome::Response(r) => (
            Some(i64::from(r.status)),
            Some(headers_json(&r.headers)?),
            Some(r.body.as_str()),
            Some(count(r.size)),
        ),
        DispatchOutcome::Failed(_) => (None, None, None, None),
    };
    let error = d.outcome.error();
    let row = sqlx::query(
        "UPDATE executions SET status = 'complete', completed_at = ?2, response_status = ?3, \
         response_headers = ?4, response_body = ?5, response_size = ?6, error_message = ?7 \
         WHERE id = ?1 AND status = 'started' \
         RETURNING job_id, project_id, attempt_number",
    )
    .bind(d.execution_id.as_str())
    .bind(ms(d.completed_at))
    .bind(status)
    .bind(headers)
    .bind(body)
    .bind(size)
    .bind(error)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let Some(row) = row else {
        tracing::debug!(execution = %d.execution_id, "outcome for an execution that is no longer started; ignored");
        return Ok(());
    };
    let job_id = rows::job_id(&row, "job_id")?;
    let attempt: i64 = sqlx::Row::try_get(&row, "attempt_number").map_err(from_sqlx)?;
    let project_id: String = sqlx::Row::try_get(&row, "project_id").map_err(from_sqlx)?;

    let (job_status, completed_at) = match &d.retry {
        Some(retry) => {
            sqlx::query(
                "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, \
                 status, planned_at, due_at) VALUES (?1, ?2, ?3, ?4, 'retry', 'planned', ?5, ?5)",
            )
            .bind(retry.execution_id.as_str())
            .bind(job_id.as_str())
            .bind(&project_id)
            .bind(i64::from(retry.attempt_number))
            .bind(ms(retry.due_at))
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            (JobStatus::Queued, None)
        }
        None => (JobStatus::Completed, Some(d.completed_at)),
    };
    sqlx::query(
        "UPDATE jobs SET status = ?2, completed_at = COALESCE(?3, completed_at), \
         last_attempt = ?4, last_status = ?5, last_error = ?6 WHERE id = ?1",
    )
    .bind(job_id.as_str())
    .bind(job_status.as_str())
    .bind(completed_at.map(ms))
    .bind(attempt)
    .bind(status)
    .bind(error)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
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
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    use crate::SqliteStore;

    async fn plan(conn: &mut SqliteConnection, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// Claims, next_due_at and lease recovery seek partial indexes, so a million far-future
    /// jobs cost them nothing.
    #[tokio::test]
    async fn engine_queries_use_the_partial_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .connect()
            .await
            .unwrap();

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

        conn.close().await.unwrap();
        store.close().await;
    }
}

//! The dashboard's reads (key, job and execution listings with filters, paging and totals) and
//! replay. Each listing reads its page and its total in one `REPEATABLE READ` read-only
//! transaction, so both come from the same snapshot.

use sqlx::postgres::{PgConnection, PgPool, PgRow, Postgres};
use sqlx::{Acquire, QueryBuilder};
use timetriggers_core::{
    plan_replay, ApiKey, ExecutionJob, ExecutionListing, ExecutionPage, ExecutionQuery, JobId,
    JobPage, JobQuery, ProjectId, ReplayJob, ReplayRefusal, Replayed, StoreResult,
};

use crate::error::from_sqlx;
use crate::rows::{self, int4, ms, API_KEY_COLUMNS, GENERATOR_JOIN, JOB_COLUMNS};
use crate::triggers::{charge, lock_generator, lock_key, quota_state};

/// What a listed execution reads: every column of [`rows::execution`] except the response
/// headers and body (NULL here), plus its job's facts.
const LISTED_EXECUTION_COLUMNS: &str = "e.id, e.job_id, e.project_id, e.attempt_number, \
     e.triggered_by, e.status, e.planned_at, e.started_at, e.completed_at, e.response_status, \
     NULL::jsonb AS response_headers, NULL::bytea AS response_body, e.response_size, \
     e.error_message, e.rate_limited_at, e.rate_limited_until, e.rate_limited_tags, \
     j.custom_key AS job_custom_key, j.title AS job_title, j.status AS job_status, \
     j.url AS job_url, j.method AS job_method, p.slug AS project_slug";

fn project_ids(ids: &[ProjectId]) -> Vec<String> {
    ids.iter().map(|p| p.as_str().to_owned()).collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn page_bounds(limit: u32, offset: u64) -> (i64, i64) {
    (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX))
}

/// Begins a read-only transaction on one snapshot.
async fn snapshot(conn: &mut PgConnection) -> StoreResult<sqlx::Transaction<'_, Postgres>> {
    let mut tx = conn.begin().await.map_err(from_sqlx)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    Ok(tx)
}

pub(crate) async fn list_api_keys(
    pool: &PgPool,
    projects: &[ProjectId],
) -> StoreResult<Vec<ApiKey>> {
    if projects.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = ANY($1) \
         ORDER BY created_at DESC, id DESC"
    );
    sqlx::query(&sql)
        .bind(project_ids(projects))
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rows::api_key)
        .collect()
}

/// The WHERE clause of a job listing (the table is `jobs j`).
fn push_job_filters(qb: &mut QueryBuilder<'_, Postgres>, q: &JobQuery) {
    qb.push(" WHERE j.project_id = ANY(")
        .push_bind(project_ids(&q.project_ids))
        .push(")");
    if !q.statuses.is_empty() {
        let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
        qb.push(" AND j.status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if let Some(id) = &q.id {
        qb.push(" AND (j.id = ")
            .push_bind(id.as_str().to_owned())
            .push(" OR j.generator_id = ")
            .push_bind(id.as_str().to_owned())
            .push(")");
    }
}

/// The job listing's page query.
pub(crate) fn jobs_page_query(q: &JobQuery) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN projects p ON p.id = j.project_id {GENERATOR_JOIN}"
    ));
    push_job_filters(&mut qb, q);
    let (limit, offset) = page_bounds(q.limit, q.offset);
    qb.push(" ORDER BY j.scheduled_at DESC, j.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    qb
}

/// The job listing's total query.
pub(crate) fn jobs_count_query(q: &JobQuery) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM jobs j");
    push_job_filters(&mut qb, q);
    qb
}

pub(crate) async fn list_jobs(pool: &PgPool, q: &JobQuery) -> StoreResult<JobPage> {
    if q.project_ids.is_empty() {
        return Ok(JobPage {
            jobs: Vec::new(),
            total: 0,
        });
    }
    let mut conn = pool.acquire().await.map_err(from_sqlx)?;
    let mut tx = snapshot(&mut conn).await?;
    let found = jobs_page_query(q)
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    let total: i64 = jobs_count_query(q)
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(JobPage {
        jobs: found.iter().map(rows::job).collect::<StoreResult<_>>()?,
        total: count(total),
    })
}

/// The WHERE clause of an execution listing (`executions e JOIN jobs j`).
fn push_execution_filters(qb: &mut QueryBuilder<'_, Postgres>, q: &ExecutionQuery) {
    qb.push(" WHERE e.project_id = ANY(")
        .push_bind(project_ids(&q.project_ids))
        .push(")");
    if let Some(job) = &q.job_id {
        qb.push(" AND e.job_id = ")
            .push_bind(job.as_str().to_owned());
    }
    if let Some(key) = &q.custom_key {
        qb.push(" AND j.custom_key IS NOT NULL AND j.custom_key = ")
            .push_bind(key.clone());
    }
    if !q.job_statuses.is_empty() {
        let statuses: Vec<String> = q
            .job_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        qb.push(" AND j.status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if !q.execution_statuses.is_empty() {
        let statuses: Vec<String> = q
            .execution_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        qb.push(" AND e.status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if let Some(filter) = q.http_status {
        let (low, high) = filter.range();
        qb.push(" AND e.response_status BETWEEN ")
            .push_bind(i32::from(low))
            .push(" AND ")
            .push_bind(i32::from(high));
    }
}

/// The execution listing's page query.
pub(crate) fn executions_page_query(q: &ExecutionQuery) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {LISTED_EXECUTION_COLUMNS} FROM executions e JOIN jobs j ON j.id = e.job_id \
         JOIN projects p ON p.id = e.project_id"
    ));
    push_execution_filters(&mut qb, q);
    let (limit, offset) = page_bounds(q.limit, q.offset);
    qb.push(" ORDER BY e.planned_at DESC, e.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    qb
}

/// The execution listing's total query.
pub(crate) fn executions_count_query(q: &ExecutionQuery) -> QueryBuilder<'static, Postgres> {
    let mut qb =
        QueryBuilder::new("SELECT COUNT(*) FROM executions e JOIN jobs j ON j.id = e.job_id");
    push_execution_filters(&mut qb, q);
    qb
}

fn listed_execution(row: &PgRow) -> StoreResult<ExecutionListing> {
    Ok(ExecutionListing {
        execution: rows::execution(row)?,
        job: ExecutionJob {
            custom_key: rows::opt_text(row, "job_custom_key")?,
            title: rows::opt_text(row, "job_title")?,
            status: rows::job_status(row, "job_status")?,
            url: rows::text(row, "job_url")?,
            method: rows::text(row, "job_method")?,
            project_slug: rows::text(row, "project_slug")?,
        },
    })
}

pub(crate) async fn list_executions(
    pool: &PgPool,
    q: &ExecutionQuery,
) -> StoreResult<ExecutionPage> {
    if q.project_ids.is_empty() {
        return Ok(ExecutionPage {
            executions: Vec::new(),
            total: 0,
        });
    }
    let mut conn = pool.acquire().await.map_err(from_sqlx)?;
    let mut tx = snapshot(&mut conn).await?;
    let found = executions_page_query(q)
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    let total: i64 = executions_count_query(q)
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(ExecutionPage {
        executions: found
            .iter()
            .map(listed_execution)
            .collect::<StoreResult<_>>()?,
        total: count(total),
    })
}

/// [`timetriggers_core::Store::replay_job`]: one transaction, committed only when accepted.
pub(crate) async fn replay_job(
    pool: &PgPool,
    req: &ReplayJob,
) -> StoreResult<Result<Replayed, ReplayRefusal>> {
    if req.project_ids.is_empty() {
        return Ok(Err(ReplayRefusal::NotFound));
    }
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let result = replay_in(&mut tx, req).await?;
    match result {
        Ok(_) => tx.commit().await.map_err(from_sqlx)?,
        Err(_) => tx.rollback().await.map_err(from_sqlx)?,
    }
    Ok(result)
}

/// Checks in the order of [`ReplayRefusal`]: not found, not finished, key taken, quota. Locks
/// in the store's order: the custom key (advisory), the generator, the job.
async fn replay_in(
    conn: &mut PgConnection,
    req: &ReplayJob,
) -> StoreResult<Result<Replayed, ReplayRefusal>> {
    // A finished job's project, key and generator never change: read them, then lock.
    let Some(row) = sqlx::query(
        "SELECT project_id, custom_key, generator_id FROM jobs \
         WHERE id = $1 AND project_id = ANY($2)",
    )
    .bind(req.job_id.as_str())
    .bind(project_ids(&req.project_ids))
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?
    else {
        return Ok(Err(ReplayRefusal::NotFound));
    };
    let project_id = ProjectId::new(rows::text(&row, "project_id")?);
    let key = rows::opt_text(&row, "custom_key")?;
    if let Some(key) = &key {
        lock_key(conn, &project_id, key).await?;
    }
    if let Some(generator) = rows::opt_job_id(&row, "generator_id")? {
        lock_generator(conn, &generator).await?;
    }
    let row = sqlx::query(
        "SELECT status, (SELECT COALESCE(MAX(e.attempt_number), 0) FROM executions e \
             WHERE e.job_id = j.id) AS last_attempt \
         FROM jobs j WHERE j.id = $1 FOR NO KEY UPDATE",
    )
    .bind(req.job_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let Some(row) = row else {
        return Ok(Err(ReplayRefusal::NotFound));
    };
    if let Err(refusal) = plan_replay(rows::job_status(&row, "status")?) {
        return Ok(Err(refusal));
    }
    if let Some(key) = &key {
        if key_held_elsewhere(conn, &project_id, key, &req.job_id).await? {
            return Ok(Err(ReplayRefusal::CustomKeyTaken));
        }
    }
    let month = req.now.month_key();
    let (quota, used) = quota_state(conn, &project_id, &month).await?;
    if quota.remaining(used) == Some(0) {
        return Ok(Err(ReplayRefusal::QuotaExceeded));
    }
    let last: i32 = sqlx::Row::try_get(&row, "last_attempt").map_err(from_sqlx)?;
    let attempt = u32::try_from(last.saturating_add(1)).unwrap_or(1);

    sqlx::query(
        "WITH planned AS ( \
             INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, \
                 status, planned_at, due_at) \
             VALUES ($1, $2, $3, $4, $5, 'planned', $6, $6)) \
         UPDATE jobs SET status = 'queued', completed_at = NULL, rate_limited_at = NULL, \
             rate_limited_until = NULL, rate_limited_tags = '{}' \
         WHERE id = $2",
    )
    .bind(req.execution_id.as_str())
    .bind(req.job_id.as_str())
    .bind(project_id.as_str())
    .bind(int4(attempt))
    .bind(req.triggered_by.as_str())
    .bind(ms(req.now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    charge(conn, &project_id, &month, 1).await?;
    Ok(Ok(Replayed {
        job_id: req.job_id.clone(),
        project_id,
        execution_id: req.execution_id.clone(),
        attempt_number: attempt,
        due_at: req.now,
        month_quota_remaining: quota.remaining(used.saturating_add(1)),
    }))
}

/// Whether another live job or an active generator of the project holds `key`.
async fn key_held_elsewhere(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    key: &str,
    job_id: &JobId,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT 1 FROM jobs WHERE project_id = $1 AND custom_key = $2 \
             AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running') \
             AND id <> $3 \
         UNION ALL \
         SELECT 1 FROM generators WHERE project_id = $1 AND custom_key = $2 \
             AND custom_key IS NOT NULL AND status = 'active' \
         LIMIT 1",
    )
    .bind(project_id.as_str())
    .bind(key)
    .bind(job_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(row.is_some())
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use timetriggers_core::{JobStatus, ProjectId};

    use super::*;
    use crate::testing::scratch_store;

    /// A project's job listing, filtered by status or not, and its total seek
    /// `jobs_project_listing`; the total reads the index only (the status is on the index
    /// entry). The tables are tiny here, so the planner is kept off sequential and bitmap
    /// scans, as it would keep off them on a large table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn job_listings_seek_one_index() {
        let (store, _schema) = scratch_store("tt_list").await;
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::raw_sql("SET enable_seqscan = off; SET enable_bitmapscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        for statuses in [vec![], vec![JobStatus::Running, JobStatus::Queued]] {
            let q = JobQuery {
                project_ids: vec![ProjectId::new("p")],
                statuses: statuses.clone(),
                id: None,
                limit: 50,
                offset: 0,
            };
            let page = plan(&mut conn, jobs_page_query(&q).sql(), &statuses, true).await;
            assert!(
                page.contains("using jobs_project_listing on jobs"),
                "the page seeks the project's entries ({statuses:?}):\n{page}"
            );
            let total = plan(&mut conn, jobs_count_query(&q).sql(), &statuses, false).await;
            assert!(
                total.contains("Index Only Scan using jobs_project_listing"),
                "the total reads the index only ({statuses:?}):\n{total}"
            );
        }
        drop(conn);
    }

    /// `EXPLAIN` of a listing query for project `p` (`statuses` bound if any, then the page
    /// bounds if `page`).
    #[allow(clippy::unwrap_used)]
    async fn plan(
        conn: &mut sqlx::PgConnection,
        sql: &str,
        statuses: &[JobStatus],
        page: bool,
    ) -> String {
        let sql = format!("EXPLAIN {sql}");
        let mut query = sqlx::query_scalar::<_, String>(&sql)
            .persistent(false)
            .bind(vec!["p".to_owned()]);
        if !statuses.is_empty() {
            let names: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
            query = query.bind(names);
        }
        if page {
            query = query.bind(50_i64).bind(0_i64);
        }
        query.fetch_all(conn).await.unwrap().join("\n")
    }
}

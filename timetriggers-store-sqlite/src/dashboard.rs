//! The dashboard's reads (key, job and execution listings with filters, paging and totals) and
//! replay. Each listing reads its page and its total in one read transaction, so both come
//! from the same snapshot.

use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row};
use timetriggers_core::{
    plan_replay, ApiKey, ExecutionJob, ExecutionListing, ExecutionPage, ExecutionQuery, JobPage,
    JobQuery, ProjectId, ReplayJob, ReplayRefusal, Replayed, StoreResult,
};

use crate::error::from_sqlx;
use crate::rows::{self, ms, API_KEY_COLUMNS, GENERATOR_JOIN, JOB_COLUMNS};

/// What a listed execution reads: every column of [`rows::execution`] except the response
/// headers and body (NULL here), plus its job's facts.
const LISTED_EXECUTION_COLUMNS: &str = "e.id, e.job_id, e.project_id, e.attempt_number, \
     e.triggered_by, e.status, e.planned_at, e.started_at, e.completed_at, e.response_status, \
     NULL AS response_headers, NULL AS response_body, e.response_size, e.error_message, \
     e.rate_limited_at, e.rate_limited_until, e.rate_limited_tags, \
     j.custom_key AS job_custom_key, j.title AS job_title, j.status AS job_status, \
     j.url AS job_url, j.method AS job_method, p.slug AS project_slug";

/// `<column> IN (?, ?, …)` with one bind per id.
fn push_in(qb: &mut QueryBuilder<'_, Sqlite>, column: &str, values: &[String]) {
    qb.push(column).push(" IN (");
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    list.push_unseparated(")");
}

fn project_ids(ids: &[ProjectId]) -> Vec<String> {
    ids.iter().map(|p| p.as_str().to_owned()).collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn page_bounds(limit: u32, offset: u64) -> (i64, i64) {
    (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX))
}

pub(crate) async fn list_api_keys(
    pool: &SqlitePool,
    projects: &[ProjectId],
) -> StoreResult<Vec<ApiKey>> {
    if projects.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::new(format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE "));
    push_in(&mut qb, "project_id", &project_ids(projects));
    qb.push(" ORDER BY created_at DESC, id DESC");
    qb.build()
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rows::api_key)
        .collect()
}

/// The WHERE clause of a job listing (the table is `jobs j`).
fn push_job_filters(qb: &mut QueryBuilder<'_, Sqlite>, q: &JobQuery) {
    qb.push(" WHERE ");
    push_in(qb, "j.project_id", &project_ids(&q.project_ids));
    if !q.statuses.is_empty() {
        qb.push(" AND ");
        let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
        push_in(qb, "j.status", &statuses);
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
pub(crate) fn jobs_page_query(q: &JobQuery) -> QueryBuilder<'static, Sqlite> {
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
pub(crate) fn jobs_count_query(q: &JobQuery) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM jobs j");
    push_job_filters(&mut qb, q);
    qb
}

pub(crate) async fn list_jobs(pool: &SqlitePool, q: &JobQuery) -> StoreResult<JobPage> {
    if q.project_ids.is_empty() {
        return Ok(JobPage {
            jobs: Vec::new(),
            total: 0,
        });
    }
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
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
fn push_execution_filters(qb: &mut QueryBuilder<'_, Sqlite>, q: &ExecutionQuery) {
    qb.push(" WHERE ");
    // With a job id or a custom key the few matching executions are found through the job
    // (`executions_job`, `jobs_project_custom_key`); the unary `+` keeps SQLite from walking the
    // whole project in `planned_at` order instead.
    let scope = if q.job_id.is_some() || q.custom_key.is_some() {
        "+e.project_id"
    } else {
        "e.project_id"
    };
    push_in(qb, scope, &project_ids(&q.project_ids));
    if let Some(job) = &q.job_id {
        qb.push(" AND e.job_id = ")
            .push_bind(job.as_str().to_owned());
    }
    if let Some(key) = &q.custom_key {
        qb.push(" AND j.custom_key IS NOT NULL AND j.custom_key = ")
            .push_bind(key.clone());
    }
    if !q.job_statuses.is_empty() {
        qb.push(" AND ");
        let statuses: Vec<String> = q
            .job_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        push_in(qb, "j.status", &statuses);
    }
    if !q.execution_statuses.is_empty() {
        qb.push(" AND ");
        let statuses: Vec<String> = q
            .execution_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        push_in(qb, "e.status", &statuses);
    }
    if let Some(filter) = q.http_status {
        let (low, high) = filter.range();
        qb.push(" AND e.response_status BETWEEN ")
            .push_bind(i64::from(low))
            .push(" AND ")
            .push_bind(i64::from(high));
    }
}

/// The execution listing's page query.
pub(crate) fn executions_page_query(q: &ExecutionQuery) -> QueryBuilder<'static, Sqlite> {
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
pub(crate) fn executions_count_query(q: &ExecutionQuery) -> QueryBuilder<'static, Sqlite> {
    let mut qb =
        QueryBuilder::new("SELECT COUNT(*) FROM executions e JOIN jobs j ON j.id = e.job_id");
    push_execution_filters(&mut qb, q);
    qb
}

fn listed_execution(row: &SqliteRow) -> StoreResult<ExecutionListing> {
    let text = |col: &str| -> StoreResult<String> { row.try_get(col).map_err(from_sqlx) };
    Ok(ExecutionListing {
        execution: rows::execution(row)?,
        job: ExecutionJob {
            custom_key: rows::opt_text_col(row, "job_custom_key")?,
            title: rows::opt_text_col(row, "job_title")?,
            status: rows::job_status(row, "job_status")?,
            url: text("job_url")?,
            method: text("job_method")?,
            project_slug: text("project_slug")?,
        },
    })
}

pub(crate) async fn list_executions(
    pool: &SqlitePool,
    q: &ExecutionQuery,
) -> StoreResult<ExecutionPage> {
    if q.project_ids.is_empty() {
        return Ok(ExecutionPage {
            executions: Vec::new(),
            total: 0,
        });
    }
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
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

/// [`timetriggers_core::Store::replay_job`] in the writer's transaction.
pub(crate) async fn replay_job(
    conn: &mut SqliteConnection,
    req: &ReplayJob,
) -> StoreResult<Result<Replayed, ReplayRefusal>> {
    if req.project_ids.is_empty() {
        return Ok(Err(ReplayRefusal::NotFound));
    }
    let month = req.now.month_key();
    let mut qb = QueryBuilder::new(
        "SELECT j.project_id, j.status, j.custom_key, p.month_quota, \
         COALESCE((SELECT q.used FROM quota_usage q \
             WHERE q.project_id = j.project_id AND q.month = ",
    );
    qb.push_bind(month.clone())
        .push(
            "), 0) AS used, \
             COALESCE((SELECT MAX(e.attempt_number) FROM executions e WHERE e.job_id = j.id), 0) \
                 AS last_attempt \
             FROM jobs j JOIN projects p ON p.id = j.project_id WHERE j.id = ",
        )
        .push_bind(req.job_id.as_str().to_owned())
        .push(" AND ");
    push_in(&mut qb, "j.project_id", &project_ids(&req.project_ids));
    let Some(row) = qb
        .build()
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?
    else {
        return Ok(Err(ReplayRefusal::NotFound));
    };
    let project_id = ProjectId::new(row.try_get::<String, _>("project_id").map_err(from_sqlx)?);
    if let Err(refusal) = plan_replay(rows::job_status(&row, "status")?) {
        return Ok(Err(refusal));
    }
    if let Some(key) = rows::opt_text_col(&row, "custom_key")? {
        if key_held_elsewhere(conn, &project_id, &key, &req.job_id).await? {
            return Ok(Err(ReplayRefusal::CustomKeyTaken));
        }
    }
    let quota = rows::month_quota(&row, "month_quota")?;
    let used: i64 = row.try_get("used").map_err(from_sqlx)?;
    if quota.remaining(count(used)) == Some(0) {
        return Ok(Err(ReplayRefusal::QuotaExceeded));
    }
    let last: i64 = row.try_get("last_attempt").map_err(from_sqlx)?;
    let attempt = u32::try_from(last.saturating_add(1)).unwrap_or(u32::MAX);

    sqlx::query(
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, 'planned', ?6, ?6)",
    )
    .bind(req.execution_id.as_str())
    .bind(req.job_id.as_str())
    .bind(project_id.as_str())
    .bind(i64::from(attempt))
    .bind(req.triggered_by.as_str())
    .bind(ms(req.now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        "UPDATE jobs SET status = 'queued', completed_at = NULL, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '[]' WHERE id = ?1",
    )
    .bind(req.job_id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let used: i64 = sqlx::query_scalar(
        "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, 1) \
         ON CONFLICT (project_id, month) DO UPDATE SET used = used + 1 RETURNING used",
    )
    .bind(project_id.as_str())
    .bind(&month)
    .fetch_one(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(Ok(Replayed {
        job_id: req.job_id.clone(),
        project_id,
        execution_id: req.execution_id.clone(),
        attempt_number: attempt,
        due_at: req.now,
        month_quota_remaining: quota.remaining(count(used)),
    }))
}

/// Whether another live job or an active generator of the project holds `key`. Spelled like
/// the partial indexes' WHERE clauses so that SQLite uses them.
async fn key_held_elsewhere(
    conn: &mut SqliteConnection,
    project_id: &ProjectId,
    key: &str,
    job_id: &timetriggers_core::JobId,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT 1 FROM jobs WHERE project_id = ?1 AND custom_key = ?2 \
             AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running') \
             AND id <> ?3 \
         UNION ALL \
         SELECT 1 FROM generators WHERE project_id = ?1 AND custom_key = ?2 \
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

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    use timetriggers_core::{ExecutionStatus, HttpStatusFilter, JobId, JobStatus};

    use super::*;
    use crate::SqliteStore;

    /// `EXPLAIN QUERY PLAN` of a built query, its `?` placeholders filled with `values`.
    async fn plan(
        conn: &mut SqliteConnection,
        qb: &QueryBuilder<'_, Sqlite>,
        values: &[&str],
    ) -> String {
        let mut sql = String::from("EXPLAIN QUERY PLAN ");
        let mut values = values.iter();
        for c in qb.sql().chars() {
            if c == '?' {
                sql.push_str(values.next().expect("a value per placeholder"));
            } else {
                sql.push(c);
            }
        }
        assert!(values.next().is_none(), "unused values");
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&sql).fetch_all(&mut *conn).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    fn jobs(statuses: Vec<JobStatus>, id: Option<&str>) -> JobQuery {
        JobQuery {
            project_ids: vec![ProjectId::from("prj_a")],
            statuses,
            id: id.map(JobId::from),
            limit: 50,
            offset: 100,
        }
    }

    fn executions() -> ExecutionQuery {
        ExecutionQuery {
            project_ids: vec![ProjectId::from("prj_a")],
            job_id: None,
            custom_key: None,
            job_statuses: Vec::new(),
            execution_statuses: Vec::new(),
            http_status: None,
            limit: 50,
            offset: 0,
        }
    }

    /// A project's pages are read in index order (no sort of the whole project), and counts
    /// stay on an index.
    #[tokio::test]
    async fn dashboard_listings_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .connect()
            .await
            .unwrap();

        let q = jobs(Vec::new(), None);
        let page = plan(&mut conn, &jobs_page_query(&q), &["'prj_a'", "50", "100"]).await;
        assert!(page.contains("jobs_project_scheduled"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(&mut conn, &jobs_count_query(&q), &["'prj_a'"]).await;
        assert!(total.contains("COVERING INDEX"), "{total}");

        let q = jobs(vec![JobStatus::Completed], None);
        let page = plan(
            &mut conn,
            &jobs_page_query(&q),
            &["'prj_a'", "'completed'", "50", "100"],
        )
        .await;
        assert!(page.contains("jobs_project_status_scheduled"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(
            &mut conn,
            &jobs_count_query(&q),
            &["'prj_a'", "'completed'"],
        )
        .await;
        assert!(
            total.contains("COVERING INDEX jobs_project_status_scheduled"),
            "{total}"
        );

        let q = jobs(Vec::new(), Some("job_x"));
        let page = plan(
            &mut conn,
            &jobs_page_query(&q),
            &["'prj_a'", "'job_x'", "'job_x'", "50", "100"],
        )
        .await;
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{page}");

        let q = executions();
        let page = plan(
            &mut conn,
            &executions_page_query(&q),
            &["'prj_a'", "50", "0"],
        )
        .await;
        assert!(page.contains("executions_project_planned"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(&mut conn, &executions_count_query(&q), &["'prj_a'"]).await;
        assert!(total.contains("executions_project_planned"), "{total}");

        let mut q = executions();
        q.job_id = Some(JobId::from("job_x"));
        q.execution_statuses = vec![ExecutionStatus::Complete];
        q.http_status = Some(HttpStatusFilter::Class(5));
        let page = plan(
            &mut conn,
            &executions_page_query(&q),
            &["'prj_a'", "'job_x'", "'complete'", "500", "599", "50", "0"],
        )
        .await;
        assert!(page.contains("executions_job"), "{page}");
        let total = plan(
            &mut conn,
            &executions_count_query(&q),
            &["'prj_a'", "'job_x'", "'complete'", "500", "599"],
        )
        .await;
        assert!(total.contains("executions_job"), "{total}");
        let mut q = executions();
        q.custom_key = Some("nightly".into());
        let page = plan(
            &mut conn,
            &executions_page_query(&q),
            &["'prj_a'", "'nightly'", "50", "0"],
        )
        .await;
        assert!(page.contains("jobs_project_custom_key"), "{page}");
        assert!(page.contains("executions_job"), "{page}");

        conn.close().await.unwrap();
        store.close().await;
    }
}

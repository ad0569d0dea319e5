//! The dashboard's reads (key, job and execution listings with filters, paging and totals) and
//! replay. Each listing reads its page and its total in one read transaction, so both come
//! from the same snapshot.

use rusqlite::{params, Connection, Row};
use timetriggers_core::{
    plan_replay, ApiKey, ExecutionJob, ExecutionListing, ExecutionPage, ExecutionQuery, JobPage,
    JobQuery, ProjectId, ReplayJob, ReplayRefusal, Replayed, StoreResult,
};

use crate::rows::{self, get, ms, API_KEY_COLUMNS, GENERATOR_JOIN, JOB_COLUMNS};
use crate::sql::{execute, fetch_one, fetch_optional, first, snapshot, Query};

/// What a listed execution reads: every column of [`rows::execution`] except the response
/// headers and body (NULL here), plus its job's facts.
const LISTED_EXECUTION_COLUMNS: &str = "e.id, e.job_id, e.project_id, e.attempt_number, \
     e.triggered_by, e.status, e.planned_at, e.started_at, e.completed_at, e.response_status, \
     NULL AS response_headers, NULL AS response_body, e.response_size, e.error_message, \
     e.rate_limited_at, e.rate_limited_until, e.rate_limited_tags, \
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

pub(crate) fn list_api_keys(conn: &Connection, projects: &[ProjectId]) -> StoreResult<Vec<ApiKey>> {
    if projects.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Query::new(format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE "));
    q.push_in("project_id", &project_ids(projects))
        .push(" ORDER BY created_at DESC, id DESC");
    q.fetch_all(conn, rows::api_key)
}

/// The WHERE clause of a job listing (the table is `jobs j`).
fn push_job_filters(qb: &mut Query, q: &JobQuery) {
    qb.push(" WHERE ");
    qb.push_in("j.project_id", &project_ids(&q.project_ids));
    if !q.statuses.is_empty() {
        qb.push(" AND ");
        let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
        qb.push_in("j.status", &statuses);
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
pub(crate) fn jobs_page_query(q: &JobQuery) -> Query {
    let mut qb = Query::new(format!(
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
pub(crate) fn jobs_count_query(q: &JobQuery) -> Query {
    let mut qb = Query::new("SELECT COUNT(*) FROM jobs j");
    push_job_filters(&mut qb, q);
    qb
}

pub(crate) fn list_jobs(conn: &Connection, q: &JobQuery) -> StoreResult<JobPage> {
    if q.project_ids.is_empty() {
        return Ok(JobPage {
            jobs: Vec::new(),
            total: 0,
        });
    }
    snapshot(conn, |conn| {
        let jobs = jobs_page_query(q).fetch_all(conn, rows::job)?;
        let total: Option<i64> = jobs_count_query(q).fetch_optional(conn, first)?;
        Ok(JobPage {
            jobs,
            total: count(total.unwrap_or(0)),
        })
    })
}

/// The WHERE clause of an execution listing (`executions e JOIN jobs j`).
fn push_execution_filters(qb: &mut Query, q: &ExecutionQuery) {
    qb.push(" WHERE ");
    // With a job id or a custom key the few matching executions are found through the job
    // (`executions_job`, `jobs_project_custom_key`); the unary `+` keeps SQLite from walking the
    // whole project in `planned_at` order instead.
    let scope = if q.job_id.is_some() || q.custom_key.is_some() {
        "+e.project_id"
    } else {
        "e.project_id"
    };
    qb.push_in(scope, &project_ids(&q.project_ids));
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
        qb.push_in("j.status", &statuses);
    }
    if !q.execution_statuses.is_empty() {
        qb.push(" AND ");
        let statuses: Vec<String> = q
            .execution_statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        qb.push_in("e.status", &statuses);
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
pub(crate) fn executions_page_query(q: &ExecutionQuery) -> Query {
    let mut qb = Query::new(format!(
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
pub(crate) fn executions_count_query(q: &ExecutionQuery) -> Query {
    let mut qb = Query::new("SELECT COUNT(*) FROM executions e JOIN jobs j ON j.id = e.job_id");
    push_execution_filters(&mut qb, q);
    qb
}

fn listed_execution(row: &Row<'_>) -> StoreResult<ExecutionListing> {
    Ok(ExecutionListing {
        execution: rows::execution(row)?,
        job: ExecutionJob {
            custom_key: rows::opt_text_col(row, "job_custom_key")?,
            title: rows::opt_text_col(row, "job_title")?,
            status: rows::job_status(row, "job_status")?,
            url: get(row, "job_url")?,
            method: get(row, "job_method")?,
            project_slug: get(row, "project_slug")?,
        },
    })
}

pub(crate) fn list_executions(conn: &Connection, q: &ExecutionQuery) -> StoreResult<ExecutionPage> {
    if q.project_ids.is_empty() {
        return Ok(ExecutionPage {
            executions: Vec::new(),
            total: 0,
        });
    }
    snapshot(conn, |conn| {
        let executions = executions_page_query(q).fetch_all(conn, listed_execution)?;
        let total: Option<i64> = executions_count_query(q).fetch_optional(conn, first)?;
        Ok(ExecutionPage {
            executions,
            total: count(total.unwrap_or(0)),
        })
    })
}

/// What a replay decides on.
struct ReplayTarget {
    project_id: ProjectId,
    status: timetriggers_core::JobStatus,
    custom_key: Option<String>,
    quota: timetriggers_core::MonthQuota,
    used: i64,
    last_attempt: i64,
}

/// [`timetriggers_core::Store::replay_job`] in the writer's transaction.
pub(crate) fn replay_job(
    conn: &Connection,
    req: &ReplayJob,
) -> StoreResult<Result<Replayed, ReplayRefusal>> {
    if req.project_ids.is_empty() {
        return Ok(Err(ReplayRefusal::NotFound));
    }
    let month = req.now.month_key();
    let mut qb = Query::new(
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
    qb.push_in("j.project_id", &project_ids(&req.project_ids));
    let Some(target) = qb.fetch_optional(conn, |row| {
        Ok(ReplayTarget {
            project_id: ProjectId::new(get::<String>(row, "project_id")?),
            status: rows::job_status(row, "status")?,
            custom_key: rows::opt_text_col(row, "custom_key")?,
            quota: rows::month_quota(row, "month_quota")?,
            used: get(row, "used")?,
            last_attempt: get(row, "last_attempt")?,
        })
    })?
    else {
        return Ok(Err(ReplayRefusal::NotFound));
    };
    let project_id = target.project_id;
    if let Err(refusal) = plan_replay(target.status) {
        return Ok(Err(refusal));
    }
    if let Some(key) = &target.custom_key {
        if key_held_elsewhere(conn, &project_id, key, &req.job_id)? {
            return Ok(Err(ReplayRefusal::CustomKeyTaken));
        }
    }
    let quota = target.quota;
    if quota.remaining(count(target.used)) == Some(0) {
        return Ok(Err(ReplayRefusal::QuotaExceeded));
    }
    let attempt = u32::try_from(target.last_attempt.saturating_add(1)).unwrap_or(u32::MAX);

    execute(
        conn,
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, 'planned', ?6, ?6)",
        params![
            req.execution_id.as_str(),
            req.job_id.as_str(),
            project_id.as_str(),
            i64::from(attempt),
            req.triggered_by.as_str(),
            ms(req.now)
        ],
    )?;
    execute(
        conn,
        "UPDATE jobs SET status = 'queued', completed_at = NULL, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '[]' WHERE id = ?1",
        [req.job_id.as_str()],
    )?;
    let used: i64 = fetch_one(
        conn,
        "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, 1) \
         ON CONFLICT (project_id, month) DO UPDATE SET used = used + 1 RETURNING used",
        [project_id.as_str(), month.as_str()],
        first,
    )?;
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
fn key_held_elsewhere(
    conn: &Connection,
    project_id: &ProjectId,
    key: &str,
    job_id: &timetriggers_core::JobId,
) -> StoreResult<bool> {
    let row = fetch_optional(
        conn,
        "SELECT 1 FROM jobs WHERE project_id = ?1 AND custom_key = ?2 \
             AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running') \
             AND id <> ?3 \
         UNION ALL \
         SELECT 1 FROM generators WHERE project_id = ?1 AND custom_key = ?2 \
             AND custom_key IS NOT NULL AND status = 'active' \
         LIMIT 1",
        [project_id.as_str(), key, job_id.as_str()],
        |_| Ok(()),
    )?;
    Ok(row.is_some())
}

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;
    use timetriggers_core::{ExecutionStatus, HttpStatusFilter, JobId, JobStatus};

    use super::*;
    use crate::SqliteStore;

    /// `EXPLAIN QUERY PLAN` of a built query, its `?` placeholders filled with `values`.
    fn plan(conn: &Connection, qb: &Query, values: &[&str]) -> String {
        let mut sql = String::new();
        let mut values = values.iter();
        for c in qb.sql().chars() {
            if c == '?' {
                sql.push_str(values.next().expect("a value per placeholder"));
            } else {
                sql.push(c);
            }
        }
        assert!(values.next().is_none(), "unused values");
        crate::plan_test::plan(conn, &sql)
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
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();

        let q = jobs(Vec::new(), None);
        let page = plan(&conn, &jobs_page_query(&q), &["'prj_a'", "50", "100"]);
        assert!(page.contains("jobs_project_scheduled"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(&conn, &jobs_count_query(&q), &["'prj_a'"]);
        assert!(total.contains("COVERING INDEX"), "{total}");

        let q = jobs(vec![JobStatus::Completed], None);
        let page = plan(
            &conn,
            &jobs_page_query(&q),
            &["'prj_a'", "'completed'", "50", "100"],
        );
        assert!(page.contains("jobs_project_status_scheduled"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(&conn, &jobs_count_query(&q), &["'prj_a'", "'completed'"]);
        assert!(
            total.contains("COVERING INDEX jobs_project_status_scheduled"),
            "{total}"
        );

        let q = jobs(Vec::new(), Some("job_x"));
        let page = plan(
            &conn,
            &jobs_page_query(&q),
            &["'prj_a'", "'job_x'", "'job_x'", "50", "100"],
        );
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{page}");

        let q = executions();
        let page = plan(&conn, &executions_page_query(&q), &["'prj_a'", "50", "0"]);
        assert!(page.contains("executions_project_planned"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "{page}");
        let total = plan(&conn, &executions_count_query(&q), &["'prj_a'"]);
        assert!(total.contains("executions_project_planned"), "{total}");

        let mut q = executions();
        q.job_id = Some(JobId::from("job_x"));
        q.execution_statuses = vec![ExecutionStatus::Complete];
        q.http_status = Some(HttpStatusFilter::Class(5));
        let page = plan(
            &conn,
            &executions_page_query(&q),
            &["'prj_a'", "'job_x'", "'complete'", "500", "599", "50", "0"],
        );
        assert!(page.contains("executions_job"), "{page}");
        let total = plan(
            &conn,
            &executions_count_query(&q),
            &["'prj_a'", "'job_x'", "'complete'", "500", "599"],
        );
        assert!(total.contains("executions_job"), "{total}");
        let mut q = executions();
        q.custom_key = Some("nightly".into());
        let page = plan(
            &conn,
            &executions_page_query(&q),
            &["'prj_a'", "'nightly'", "50", "0"],
        );
        assert!(page.contains("jobs_project_custom_key"), "{page}");
        assert!(page.contains("executions_job"), "{page}");

        drop(conn);
        store.close().await;
    }
}

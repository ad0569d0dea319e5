//! Row ↔ domain conversions: column decoding, JSON columns, integer ranges. A row that does not
//! decode is reported with [`StoreError::corrupt`], never a panic.

use std::time::Duration;

use bytes::Bytes;
use rusqlite::types::{FromSql, ValueRef};
use rusqlite::Row;
use timetriggers_core::{
    ApiKey, ApiKeyId, ClaimedExecution, DeliveryOptions, Execution, ExecutionId, ExecutionStatus,
    GeneratorLink, GeneratorStatus, HttpRequest, Job, JobId, JobStatus, LastAttempt, MonthQuota,
    Origin, Project, ProjectId, RateLimitState, StoreError, StoreResult, Timestamp, TriggeredBy,
};

/// Column lists shared by the queries and the decoders below, so that they cannot drift apart.
pub(crate) const PROJECT_COLUMNS: &str = "id, slug, month_quota, created_at";
pub(crate) const API_KEY_COLUMNS: &str = "id, project_id, name, masked, created_at";

/// Every column [`job`] reads; `p.slug` comes from a join on `projects p`.
pub(crate) const JOB_COLUMNS: &str = "j.id, j.project_id, p.slug, j.custom_key, j.title, \
     j.status, j.scheduled_at, j.method, j.url, j.headers, j.body, j.tags, j.max_attempts, \
     j.timeout_ms, j.origin, j.registered_at, j.cancelled_at, j.queued_at, j.started_at, \
     j.completed_at, j.last_attempt, j.last_status, j.last_error, j.rate_limited_at, \
     j.rate_limited_until, j.rate_limited_tags, j.generator_id, \
     g.custom_key AS generator_custom_key, g.status AS generator_status";

/// The join [`JOB_COLUMNS`] needs for the generator link.
pub(crate) const GENERATOR_JOIN: &str = "LEFT JOIN generators g ON g.id = j.generator_id";

/// Every column [`execution`] reads, from `executions e`.
pub(crate) const EXECUTION_COLUMNS: &str = "e.id, e.job_id, e.project_id, e.attempt_number, \
     e.triggered_by, e.status, e.planned_at, e.started_at, e.completed_at, e.response_status, \
     e.response_headers, e.response_body, e.response_size, e.error_message, \
     e.rate_limited_at, e.rate_limited_until, e.rate_limited_tags";

/// Every column [`claimed`] reads: the execution `e` and its job `j`.
pub(crate) const CLAIMED_COLUMNS: &str = "e.id, e.job_id, e.project_id, e.attempt_number, \
     e.triggered_by, e.planned_at, e.due_at, j.method, j.url, j.headers, j.body, j.max_attempts, \
     j.timeout_ms, j.generator_id";

// ---- encoding ---------------------------------------------------------------------------------

/// Milliseconds since the epoch.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millis()
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count as SQLite's signed INTEGER (saturating; no real count comes near).
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Header pairs as a JSON array of `[name, value]` arrays.
pub(crate) fn headers_json(headers: &[(String, String)]) -> StoreResult<String> {
    serde_json::to_string(headers).map_err(StoreError::backend)
}

/// Tags as a JSON array.
pub(crate) fn tags_json(tags: &[String]) -> StoreResult<String> {
    serde_json::to_string(tags).map_err(StoreError::backend)
}

/// A list of ids as a JSON array, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> StoreResult<String> {
    serde_json::to_string(&ids.into_iter().collect::<Vec<_>>()).map_err(StoreError::backend)
}

// ---- decoding ---------------------------------------------------------------------------------

/// A column by name. A missing column or a value of the wrong type is a corrupt row.
pub(crate) fn get<T: FromSql>(row: &Row<'_>, col: &str) -> StoreResult<T> {
    row.get(col)
        .map_err(|e| StoreError::corrupt(format!("column {col}: {e}")))
}

fn text(row: &Row<'_>, col: &str) -> StoreResult<String> {
    get(row, col)
}

fn opt_text(row: &Row<'_>, col: &str) -> StoreResult<Option<String>> {
    get(row, col)
}

fn ts(row: &Row<'_>, col: &str) -> StoreResult<Timestamp> {
    get::<i64>(row, col).map(Timestamp::from_millis)
}

fn opt_ts(row: &Row<'_>, col: &str) -> StoreResult<Option<Timestamp>> {
    get::<Option<i64>>(row, col).map(|v| v.map(Timestamp::from_millis))
}

fn int<T: TryFrom<i64>>(row: &Row<'_>, col: &str) -> StoreResult<T> {
    let v: i64 = get(row, col)?;
    T::try_from(v).map_err(|_| StoreError::corrupt(format!("column {col}: {v} is out of range")))
}

fn opt_int<T: TryFrom<i64>>(row: &Row<'_>, col: &str) -> StoreResult<Option<T>> {
    match get::<Option<i64>>(row, col)? {
        None => Ok(None),
        Some(v) => T::try_from(v)
            .map(Some)
            .map_err(|_| StoreError::corrupt(format!("column {col}: {v} is out of range"))),
    }
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, col: &str) -> StoreResult<T> {
    let raw: String = get(row, col)?;
    serde_json::from_str(&raw)
        .map_err(|e| StoreError::corrupt(format!("column {col}: invalid JSON: {e}")))
}

fn opt_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, col: &str) -> StoreResult<Option<T>> {
    match get::<Option<String>>(row, col)? {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| StoreError::corrupt(format!("column {col}: invalid JSON: {e}"))),
    }
}

fn parsed<T>(row: &Row<'_>, col: &str, parse: impl FnOnce(&str) -> Option<T>) -> StoreResult<T> {
    let raw: String = get(row, col)?;
    parse(&raw).ok_or_else(|| StoreError::corrupt(format!("column {col}: unknown value {raw:?}")))
}

/// A job's status column.
pub(crate) fn job_status(row: &Row<'_>, col: &str) -> StoreResult<JobStatus> {
    parsed(row, col, JobStatus::parse)
}

/// A nullable job status column.
pub(crate) fn opt_job_status(row: &Row<'_>, col: &str) -> StoreResult<Option<JobStatus>> {
    match opt_text(row, col)? {
        None => Ok(None),
        Some(raw) => JobStatus::parse(&raw)
            .map(Some)
            .ok_or_else(|| StoreError::corrupt(format!("column {col}: unknown value {raw:?}"))),
    }
}

/// A generator status column.
pub(crate) fn generator_status(row: &Row<'_>, col: &str) -> StoreResult<GeneratorStatus> {
    parsed(row, col, GeneratorStatus::parse)
}

/// A nullable generator status column.
pub(crate) fn opt_generator_status(
    row: &Row<'_>,
    col: &str,
) -> StoreResult<Option<GeneratorStatus>> {
    match opt_text(row, col)? {
        None => Ok(None),
        Some(raw) => GeneratorStatus::parse(&raw)
            .map(Some)
            .ok_or_else(|| StoreError::corrupt(format!("column {col}: unknown value {raw:?}"))),
    }
}

/// A nullable text column.
pub(crate) fn opt_text_col(row: &Row<'_>, col: &str) -> StoreResult<Option<String>> {
    opt_text(row, col)
}

/// An id column.
pub(crate) fn job_id(row: &Row<'_>, col: &str) -> StoreResult<JobId> {
    text(row, col).map(JobId::new)
}

/// A row of [`PROJECT_COLUMNS`].
pub(crate) fn project(row: &Row<'_>) -> StoreResult<Project> {
    Ok(Project {
        id: ProjectId::new(text(row, "id")?),
        slug: text(row, "slug")?,
        month_quota: month_quota(row, "month_quota")?,
        created_at: ts(row, "created_at")?,
    })
}

/// A `month_quota` column: NULL is unlimited.
pub(crate) fn month_quota(row: &Row<'_>, col: &str) -> StoreResult<MonthQuota> {
    opt_int::<u64>(row, col).map(MonthQuota::from_option)
}

/// A row of [`API_KEY_COLUMNS`].
pub(crate) fn api_key(row: &Row<'_>) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::new(text(row, "id")?),
        project_id: ProjectId::new(text(row, "project_id")?),
        name: text(row, "name")?,
        masked: text(row, "masked")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) fn request(row: &Row<'_>) -> StoreResult<HttpRequest> {
    Ok(HttpRequest {
        method: text(row, "method")?,
        url: text(row, "url")?,
        headers: json(row, "headers")?,
        body: blob(row, "body")?,
    })
}

/// A BLOB column (a TEXT value is taken as its bytes).
fn blob(row: &Row<'_>, col: &str) -> StoreResult<Bytes> {
    let value = row
        .get_ref(col)
        .map_err(|e| StoreError::corrupt(format!("column {col}: {e}")))?;
    match value {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(Bytes::copy_from_slice(bytes)),
        other => Err(StoreError::corrupt(format!(
            "column {col}: expected bytes, found {}",
            other.data_type()
        ))),
    }
}

pub(crate) fn options(row: &Row<'_>) -> StoreResult<DeliveryOptions> {
    Ok(DeliveryOptions {
        max_attempts: int(row, "max_attempts")?,
        timeout: Duration::from_millis(int(row, "timeout_ms")?),
    })
}

fn rate_limited(row: &Row<'_>) -> StoreResult<RateLimitState> {
    Ok(RateLimitState {
        limited_at: opt_ts(row, "rate_limited_at")?,
        limited_until: opt_ts(row, "rate_limited_until")?,
        tags: json(row, "rate_limited_tags")?,
    })
}

/// A row of [`JOB_COLUMNS`].
pub(crate) fn job(row: &Row<'_>) -> StoreResult<Job> {
    let id = job_id(row, "id")?;
    let generator = match opt_text(row, "generator_id")? {
        None => None,
        Some(generator) => Some(GeneratorLink {
            id: JobId::new(generator),
            custom_key: opt_text(row, "generator_custom_key")?,
            // A generator turned back into a one-off job no longer exists: its series ended.
            status: opt_generator_status(row, "generator_status")?
                .unwrap_or(GeneratorStatus::Cancelled),
        }),
    };
    Ok(Job {
        project_id: ProjectId::new(text(row, "project_id")?),
        project_slug: text(row, "slug")?,
        custom_key: opt_text(row, "custom_key")?,
        title: opt_text(row, "title")?,
        status: job_status(row, "status")?,
        scheduled_at: ts(row, "scheduled_at")?,
        request: request(row)?,
        tags: json(row, "tags")?,
        options: options(row)?,
        origin: parsed(row, "origin", Origin::parse)?,
        registered_at: ts(row, "registered_at")?,
        cancelled_at: opt_ts(row, "cancelled_at")?,
        queued_at: opt_ts(row, "queued_at")?,
        started_at: opt_ts(row, "started_at")?,
        completed_at: opt_ts(row, "completed_at")?,
        last: LastAttempt {
            attempt_number: opt_int(row, "last_attempt")?,
            response_status: opt_int(row, "last_status")?,
            error_message: opt_text(row, "last_error")?,
        },
        rate_limited: rate_limited(row)?,
        generator,
        id,
    })
}

/// A row of [`EXECUTION_COLUMNS`].
pub(crate) fn execution(row: &Row<'_>) -> StoreResult<Execution> {
    Ok(Execution {
        id: ExecutionId::new(text(row, "id")?),
        job_id: job_id(row, "job_id")?,
        project_id: ProjectId::new(text(row, "project_id")?),
        attempt_number: int(row, "attempt_number")?,
        triggered_by: parsed(row, "triggered_by", TriggeredBy::parse)?,
        status: parsed(row, "status", ExecutionStatus::parse)?,
        planned_at: ts(row, "planned_at")?,
        started_at: opt_ts(row, "started_at")?,
        completed_at: opt_ts(row, "completed_at")?,
        response_status: opt_int(row, "response_status")?,
        response_headers: opt_json(row, "response_headers")?,
        response_body: opt_text(row, "response_body")?,
        response_size: opt_int(row, "response_size")?,
        error_message: opt_text(row, "error_message")?,
        rate_limited: rate_limited(row)?,
    })
}

/// A row of [`CLAIMED_COLUMNS`].
pub(crate) fn claimed(row: &Row<'_>) -> StoreResult<ClaimedExecution> {
    Ok(ClaimedExecution {
        execution_id: ExecutionId::new(text(row, "id")?),
        job_id: job_id(row, "job_id")?,
        project_id: ProjectId::new(text(row, "project_id")?),
        attempt_number: int(row, "attempt_number")?,
        triggered_by: parsed(row, "triggered_by", TriggeredBy::parse)?,
        planned_at: ts(row, "planned_at")?,
        due_at: ts(row, "due_at")?,
        request: request(row)?,
        options: options(row)?,
        generator_id: opt_text(row, "generator_id")?.map(JobId::new),
    })
}

/// The job part of a claimed execution.
#[derive(Debug, Clone)]
pub(crate) struct JobDelivery {
    pub(crate) id: JobId,
    pub(crate) request: HttpRequest,
    pub(crate) options: DeliveryOptions,
    pub(crate) generator_id: Option<JobId>,
}

/// The part of a claimed execution that comes from its execution row (`UPDATE … RETURNING`).
#[derive(Debug)]
pub(crate) struct StartedRow {
    pub(crate) execution_id: ExecutionId,
    pub(crate) job_id: JobId,
    pub(crate) project_id: ProjectId,
    pub(crate) attempt_number: u32,
    pub(crate) triggered_by: TriggeredBy,
    pub(crate) planned_at: Timestamp,
    pub(crate) due_at: Timestamp,
}

/// A row returned by the claim's execution update.
pub(crate) fn started(row: &Row<'_>) -> StoreResult<StartedRow> {
    Ok(StartedRow {
        execution_id: ExecutionId::new(text(row, "id")?),
        job_id: job_id(row, "job_id")?,
        project_id: ProjectId::new(text(row, "project_id")?),
        attempt_number: int(row, "attempt_number")?,
        triggered_by: parsed(row, "triggered_by", TriggeredBy::parse)?,
        planned_at: ts(row, "planned_at")?,
        due_at: ts(row, "due_at")?,
    })
}

/// The job part of a claim (`UPDATE jobs … RETURNING id, method, url, headers, body,
/// max_attempts, timeout_ms`).
pub(crate) fn job_delivery(row: &Row<'_>) -> StoreResult<JobDelivery> {
    Ok(JobDelivery {
        id: job_id(row, "id")?,
        request: request(row)?,
        options: options(row)?,
        generator_id: opt_text(row, "generator_id")?.map(JobId::new),
    })
}

/// A key found by hash (`SELECT id, project_id`).
pub(crate) fn api_key_ref(row: &Row<'_>) -> StoreResult<timetriggers_core::AuthenticatedKey> {
    Ok(timetriggers_core::AuthenticatedKey {
        key_id: ApiKeyId::new(text(row, "id")?),
        project_id: ProjectId::new(text(row, "project_id")?),
    })
}

//! Row ↔ domain conversions: column decoding, JSON columns, integer ranges. A row that does not
//! decode is reported with [`StoreError::corrupt`], never a panic.

use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, ClaimedExecution, DeliveryOptions, Execution, ExecutionId,
    ExecutionStatus, GeneratorLink, GeneratorStatus, HttpRequest, Job, JobId, JobStatus,
    LastAttempt, MonthQuota, Origin, Project, ProjectId, RateLimitState, StoreError, StoreResult,
    Timestamp, TriggeredBy,
};

use crate::error::from_sqlx;

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
     e.triggered_by, e.planned_at, e.due_at, j.method, j.url, j.headers, j.body, \
     j.max_attempts, j.timeout_ms, j.generator_id";

// ---- encoding ---------------------------------------------------------------------------------

/// Milliseconds since the epoch.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millis()
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count as BIGINT (saturating; no real count comes near).
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A small number as INTEGER (saturating).
pub(crate) fn int4(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Header pairs as JSON text: an array of `[name, value]` arrays (bound as `$n::jsonb`).
pub(crate) fn headers_json(headers: &[(String, String)]) -> StoreResult<String> {
    serde_json::to_string(headers).map_err(StoreError::backend)
}

// ---- decoding ---------------------------------------------------------------------------------

fn get<'r, T>(row: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(from_sqlx)
}

pub(crate) fn text(row: &PgRow, col: &str) -> StoreResult<String> {
    get(row, col)
}

pub(crate) fn opt_text(row: &PgRow, col: &str) -> StoreResult<Option<String>> {
    get(row, col)
}

pub(crate) fn ts(row: &PgRow, col: &str) -> StoreResult<Timestamp> {
    get::<i64>(row, col).map(Timestamp::from_millis)
}

pub(crate) fn opt_ts(row: &PgRow, col: &str) -> StoreResult<Option<Timestamp>> {
    get::<Option<i64>>(row, col).map(|v| v.map(Timestamp::from_millis))
}

fn out_of_range(col: &str, v: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("column {col}: {v} is out of range"))
}

fn int<T: TryFrom<i32>>(row: &PgRow, col: &str) -> StoreResult<T> {
    let v: i32 = get(row, col)?;
    T::try_from(v).map_err(|_| out_of_range(col, v))
}

fn opt_int<T: TryFrom<i32>>(row: &PgRow, col: &str) -> StoreResult<Option<T>> {
    match get::<Option<i32>>(row, col)? {
        None => Ok(None),
        Some(v) => T::try_from(v).map(Some).map_err(|_| out_of_range(col, v)),
    }
}

fn big<T: TryFrom<i64>>(row: &PgRow, col: &str) -> StoreResult<T> {
    let v: i64 = get(row, col)?;
    T::try_from(v).map_err(|_| out_of_range(col, v))
}

fn opt_big<T: TryFrom<i64>>(row: &PgRow, col: &str) -> StoreResult<Option<T>> {
    match get::<Option<i64>>(row, col)? {
        None => Ok(None),
        Some(v) => T::try_from(v).map(Some).map_err(|_| out_of_range(col, v)),
    }
}

fn headers(row: &PgRow, col: &str) -> StoreResult<Vec<(String, String)>> {
    get::<Json<Vec<(String, String)>>>(row, col).map(|j| j.0)
}

fn opt_headers(row: &PgRow, col: &str) -> StoreResult<Option<Vec<(String, String)>>> {
    get::<Option<Json<Vec<(String, String)>>>>(row, col).map(|j| j.map(|j| j.0))
}

fn parsed<T>(row: &PgRow, col: &str, parse: impl FnOnce(&str) -> Option<T>) -> StoreResult<T> {
    let raw: String = get(row, col)?;
    parse(&raw).ok_or_else(|| StoreError::corrupt(format!("column {col}: unknown value {raw:?}")))
}

/// A job's status column.
pub(crate) fn job_status(row: &PgRow, col: &str) -> StoreResult<JobStatus> {
    parsed(row, col, JobStatus::parse)
}

/// A generator status column.
pub(crate) fn generator_status(row: &PgRow, col: &str) -> StoreResult<GeneratorStatus> {
    parsed(row, col, GeneratorStatus::parse)
}

fn opt_parsed<T>(
    row: &PgRow,
    col: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> StoreResult<Option<T>> {
    match opt_text(row, col)? {
        None => Ok(None),
        Some(raw) => parse(&raw)
            .map(Some)
            .ok_or_else(|| StoreError::corrupt(format!("column {col}: unknown value {raw:?}"))),
    }
}

/// A boolean column.
pub(crate) fn flag(row: &PgRow, col: &str) -> StoreResult<bool> {
    get(row, col)
}

/// An id column.
pub(crate) fn job_id(row: &PgRow, col: &str) -> StoreResult<JobId> {
    text(row, col).map(JobId::new)
}

/// An optional id column.
pub(crate) fn opt_job_id(row: &PgRow, col: &str) -> StoreResult<Option<JobId>> {
    opt_text(row, col).map(|v| v.map(JobId::new))
}

/// A row of [`PROJECT_COLUMNS`].
pub(crate) fn project(row: &PgRow) -> StoreResult<Project> {
    Ok(Project {
        id: ProjectId::new(text(row, "id")?),
        slug: text(row, "slug")?,
        month_quota: month_quota(row, "month_quota")?,
        created_at: ts(row, "created_at")?,
    })
}

/// A `month_quota` column: NULL is unlimited.
pub(crate) fn month_quota(row: &PgRow, col: &str) -> StoreResult<MonthQuota> {
    opt_big::<u64>(row, col).map(MonthQuota::from_option)
}

/// A row of [`API_KEY_COLUMNS`].
pub(crate) fn api_key(row: &PgRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::new(text(row, "id")?),
        project_id: ProjectId::new(text(row, "project_id")?),
        name: text(row, "name")?,
        masked: text(row, "masked")?,
        created_at: ts(row, "created_at")?,
    })
}

/// A key found by hash (`SELECT id, project_id`).
pub(crate) fn api_key_ref(row: &PgRow) -> StoreResult<AuthenticatedKey> {
    Ok(AuthenticatedKey {
        key_id: ApiKeyId::new(text(row, "id")?),
        project_id: ProjectId::new(text(row, "project_id")?),
    })
}

/// The request columns `method, url, headers, body`.
pub(crate) fn request(row: &PgRow) -> StoreResult<HttpRequest> {
    let body: Vec<u8> = get(row, "body")?;
    Ok(HttpRequest {
        method: text(row, "method")?,
        url: text(row, "url")?,
        headers: headers(row, "headers")?,
        body: Bytes::from(body),
    })
}

/// The option columns `max_attempts, timeout_ms`.
pub(crate) fn options(row: &PgRow) -> StoreResult<DeliveryOptions> {
    Ok(DeliveryOptions {
        max_attempts: int(row, "max_attempts")?,
        timeout: Duration::from_millis(big(row, "timeout_ms")?),
    })
}

/// A tags column (`TEXT[]`).
pub(crate) fn tags(row: &PgRow, col: &str) -> StoreResult<Vec<String>> {
    get(row, col)
}

fn rate_limited(row: &PgRow) -> StoreResult<RateLimitState> {
    Ok(RateLimitState {
        limited_at: opt_ts(row, "rate_limited_at")?,
        limited_until: opt_ts(row, "rate_limited_until")?,
        tags: tags(row, "rate_limited_tags")?,
    })
}

/// A row of [`JOB_COLUMNS`].
pub(crate) fn job(row: &PgRow) -> StoreResult<Job> {
    let id = job_id(row, "id")?;
    let generator = match opt_text(row, "generator_id")? {
        None => None,
        Some(generator) => Some(GeneratorLink {
            id: JobId::new(generator),
            custom_key: opt_text(row, "generator_custom_key")?,
            // A generator turned back into a one-off job no longer exists: its series ended.
            status: opt_parsed(row, "generator_status", GeneratorStatus::parse)?
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
        tags: tags(row, "tags")?,
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
pub(crate) fn execution(row: &PgRow) -> StoreResult<Execution> {
    let body: Option<Vec<u8>> = get(row, "response_body")?;
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
        response_headers: opt_headers(row, "response_headers")?,
        // Stored as the UTF-8 bytes the dispatcher kept; decoding cannot fail for what we wrote.
        response_body: body.map(|b| String::from_utf8_lossy(&b).into_owned()),
        response_size: opt_big(row, "response_size")?,
        error_message: opt_text(row, "error_message")?,
        rate_limited: rate_limited(row)?,
    })
}

/// A row of [`CLAIMED_COLUMNS`] (or the claim's own result, which has the same names).
pub(crate) fn claimed(row: &PgRow) -> StoreResult<ClaimedExecution> {
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
        generator_id: opt_job_id(row, "generator_id")?,
    })
}

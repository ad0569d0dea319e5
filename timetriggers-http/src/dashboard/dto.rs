//! The dashboard's JSON shapes, field for field as the API reference names them. Every field
//! is always present (`null` when empty, `[]` for empty lists); times are RFC 3339 UTC with
//! milliseconds.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use timetriggers_core::{
    ApiKey, Execution, ExecutionListing, Job, ListedExecutions, ListedJobs, MonthQuota, Project,
    RateLimitState, Timestamp, User,
};
use timetriggers_core::{ExecutionStatus, GeneratorStatus, JobStatus, TriggeredBy};
use utoipa::ToSchema;

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn opt_time(t: Option<Timestamp>) -> Option<String> {
    t.map(time)
}

/// Header pairs as a JSON object; the values of a repeated name are joined with `", "` in
/// their order.
pub(crate) fn headers_object(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in pairs {
        match out.get_mut(name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                out.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    out
}

/// `monthQuota`: a number, or `"Infinity"` when unlimited.
pub(crate) struct Quota(MonthQuota);

impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            MonthQuota::Limited(n) => serializer.serialize_u64(n),
            MonthQuota::Unlimited => serializer.serialize_str("Infinity"),
        }
    }
}

/// `{ok: true}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct OkResponse {
    ok: bool,
}

/// The one `{ok: true}`.
pub(crate) const OK: OkResponse = OkResponse { ok: true };

/// A user account.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserDto {
    id: String,
    email: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        UserDto {
            id: u.id.as_str().to_owned(),
            email: u.email.clone(),
            created_at: time(u.created_at),
        }
    }
}

/// A project.
#[derive(Serialize, ToSchema)]
#[schema(as = Project)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectDto {
    id: String,
    slug: String,
    /// Schedules allowed per calendar month.
    #[schema(schema_with = crate::openapi::count_or_infinity)]
    month_quota: Quota,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Project> for ProjectDto {
    fn from(p: &Project) -> Self {
        ProjectDto {
            id: p.id.as_str().to_owned(),
            slug: p.slug.clone(),
            month_quota: Quota(p.month_quota),
            created_at: time(p.created_at),
        }
    }
}

/// An API key.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyDto {
    id: String,
    project_id: String,
    name: String,
    /// The full secret in the answer of `POST /keys` only; elsewhere the first 6 characters
    /// followed by `…`.
    key_value: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl ApiKeyDto {
    /// As listed: masked.
    pub(crate) fn masked(k: &ApiKey) -> Self {
        Self::with_value(k, k.masked.clone())
    }

    /// As created: the full secret.
    pub(crate) fn with_value(k: &ApiKey, key_value: String) -> Self {
        ApiKeyDto {
            id: k.id.as_str().to_owned(),
            project_id: k.project_id.as_str().to_owned(),
            name: k.name.clone(),
            key_value,
            created_at: time(k.created_at),
        }
    }
}

/// A job (a one-off job, or one occurrence of a generator) with its latest attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DashboardJob {
    id: String,
    project_id: String,
    project_slug: String,
    custom_key: Option<String>,
    title: Option<String>,
    #[schema(value_type = JobStatus)]
    status: &'static str,
    #[schema(format = DateTime)]
    scheduled_at: String,
    http_url: String,
    http_method: String,
    /// The headers sent; the values of a repeated name joined with `", "`.
    #[schema(value_type = HashMap<String, String>)]
    http_headers: Map<String, Value>,
    #[schema(format = DateTime)]
    registered_at: String,
    #[schema(format = DateTime)]
    cancelled_at: Option<String>,
    #[schema(format = DateTime)]
    queued_at: Option<String>,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    completed_at: Option<String>,
    response_status: Option<u16>,
    error_message: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_at: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_until: Option<String>,
    rate_limited_tags: Vec<String>,
    attempt_number: Option<u32>,
    generator_id: Option<String>,
    generator_custom_key: Option<String>,
    #[schema(value_type = Option<GeneratorStatus>)]
    generator_status: Option<&'static str>,
    tags: Vec<String>,
}

impl From<Job> for DashboardJob {
    fn from(j: Job) -> Self {
        let RateLimitState {
            limited_at,
            limited_until,
            tags: limited_tags,
        } = j.rate_limited;
        let (generator_id, generator_custom_key, generator_status) = match j.generator {
            Some(g) => (
                Some(g.id.into_string()),
                g.custom_key,
                Some(g.status.as_str()),
            ),
            None => (None, None, None),
        };
        DashboardJob {
            id: j.id.into_string(),
            project_id: j.project_id.into_string(),
            project_slug: j.project_slug,
            custom_key: j.custom_key,
            title: j.title,
            status: j.status.as_str(),
            scheduled_at: time(j.scheduled_at),
            http_url: j.request.url,
            http_method: j.request.method,
            http_headers: headers_object(&j.request.headers),
            registered_at: time(j.registered_at),
            cancelled_at: opt_time(j.cancelled_at),
            queued_at: opt_time(j.queued_at),
            started_at: opt_time(j.started_at),
            completed_at: opt_time(j.completed_at),
            response_status: j.last.response_status,
            error_message: j.last.error_message,
            rate_limited_at: opt_time(limited_at),
            rate_limited_until: opt_time(limited_until),
            rate_limited_tags: limited_tags,
            attempt_number: j.last.attempt_number,
            generator_id,
            generator_custom_key,
            generator_status,
            tags: j.tags,
        }
    }
}

/// A page of jobs.
#[derive(Serialize, ToSchema)]
pub(crate) struct ListJobsResponse {
    jobs: Vec<DashboardJob>,
    total: u64,
    limit: u32,
    offset: u64,
}

impl From<ListedJobs> for ListJobsResponse {
    fn from(l: ListedJobs) -> Self {
        ListJobsResponse {
            jobs: l.jobs.into_iter().map(DashboardJob::from).collect(),
            total: l.total,
            limit: l.limit,
            offset: l.offset,
        }
    }
}

/// One attempt to deliver a job, with the response headers and body.
#[derive(Serialize, ToSchema)]
#[schema(as = Execution)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecutionDto {
    id: String,
    job_id: String,
    attempt_number: u32,
    #[schema(value_type = TriggeredBy)]
    triggered_by: &'static str,
    #[schema(value_type = ExecutionStatus)]
    status: &'static str,
    #[schema(format = DateTime)]
    planned_at: String,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    completed_at: Option<String>,
    response_status: Option<u16>,
    /// The target's response headers; the values of a repeated name joined with `", "`.
    #[schema(value_type = Option<HashMap<String, String>>)]
    response_headers: Option<Map<String, Value>>,
    /// At most 64 KiB of the response body (UTF-8, invalid bytes replaced).
    response_body: Option<String>,
    /// The full size of the response body read, in bytes.
    response_size: Option<u64>,
    error_message: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_at: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_until: Option<String>,
    rate_limited_tags: Vec<String>,
}

impl From<Execution> for ExecutionDto {
    fn from(e: Execution) -> Self {
        ExecutionDto {
            id: e.id.into_string(),
            job_id: e.job_id.into_string(),
            attempt_number: e.attempt_number,
            triggered_by: e.triggered_by.as_str(),
            status: e.status.as_str(),
            planned_at: time(e.planned_at),
            started_at: opt_time(e.started_at),
            completed_at: opt_time(e.completed_at),
            response_status: e.response_status,
            response_headers: e.response_headers.as_deref().map(headers_object),
            response_body: e.response_body,
            response_size: e.response_size,
            error_message: e.error_message,
            rate_limited_at: opt_time(e.rate_limited.limited_at),
            rate_limited_until: opt_time(e.rate_limited.limited_until),
            rate_limited_tags: e.rate_limited.tags,
        }
    }
}

/// An execution (without response headers and body) with its job's facts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DashboardExecution {
    id: String,
    job_id: String,
    attempt_number: u32,
    #[schema(value_type = TriggeredBy)]
    triggered_by: &'static str,
    #[schema(value_type = ExecutionStatus)]
    status: &'static str,
    #[schema(format = DateTime)]
    planned_at: String,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    completed_at: Option<String>,
    response_status: Option<u16>,
    response_size: Option<u64>,
    error_message: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_at: Option<String>,
    #[schema(format = DateTime)]
    rate_limited_until: Option<String>,
    rate_limited_tags: Vec<String>,
    job_custom_key: Option<String>,
    job_title: Option<String>,
    #[schema(value_type = JobStatus)]
    job_status: &'static str,
    job_http_url: String,
    job_http_method: String,
    project_slug: String,
}

impl From<ExecutionListing> for DashboardExecution {
    fn from(l: ExecutionListing) -> Self {
        let e = l.execution;
        DashboardExecution {
            id: e.id.into_string(),
            job_id: e.job_id.into_string(),
            attempt_number: e.attempt_number,
            triggered_by: e.triggered_by.as_str(),
            status: e.status.as_str(),
            planned_at: time(e.planned_at),
            started_at: opt_time(e.started_at),
            completed_at: opt_time(e.completed_at),
            response_status: e.response_status,
            response_size: e.response_size,
            error_message: e.error_message,
            rate_limited_at: opt_time(e.rate_limited.limited_at),
            rate_limited_until: opt_time(e.rate_limited.limited_until),
            rate_limited_tags: e.rate_limited.tags,
            job_custom_key: l.job.custom_key,
            job_title: l.job.title,
            job_status: l.job.status.as_str(),
            job_http_url: l.job.url,
            job_http_method: l.job.method,
            project_slug: l.job.project_slug,
        }
    }
}

/// A page of executions.
#[derive(Serialize, ToSchema)]
#[schema(as = ListDashboardExecutionsResponse)]
pub(crate) struct ListExecutionsResponse {
    executions: Vec<DashboardExecution>,
    total: u64,
    limit: u32,
    offset: u64,
}

impl From<ListedExecutions> for ListExecutionsResponse {
    fn from(l: ListedExecutions) -> Self {
        ListExecutionsResponse {
            executions: l
                .executions
                .into_iter()
                .map(DashboardExecution::from)
                .collect(),
            total: l.total,
            limit: l.limit,
            offset: l.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_join_in_order() {
        let pairs = vec![
            ("accept".to_owned(), "a".to_owned()),
            ("x-one".to_owned(), "1".to_owned()),
            ("accept".to_owned(), "b".to_owned()),
        ];
        let obj = headers_object(&pairs);
        assert_eq!(obj["accept"], "a, b");
        assert_eq!(obj["x-one"], "1");
        assert_eq!(obj.len(), 2);
        assert!(headers_object(&[]).is_empty());
    }

    #[test]
    fn quotas_are_numbers_or_infinity() {
        assert_eq!(
            serde_json::to_value(Quota(MonthQuota::Limited(5))).unwrap(),
            5
        );
        assert_eq!(
            serde_json::to_value(Quota(MonthQuota::Unlimited)).unwrap(),
            "Infinity"
        );
    }
}

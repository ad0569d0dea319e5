//! The dashboard API (API.md §3): `/auth/*`, `/projects`, `/keys`, `/jobs`, `/executions`,
//! translated onto [`timetriggers_core::Dashboard`]. Every route but `/auth/*` needs an
//! [`auth::Authed`] caller and sees only the caller's projects.

pub(crate) mod auth;
pub(crate) mod dto;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Json, Path, Query, Request, State};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use timetriggers_core::{ApiKeyId, ExecutionFilter, JobFilter, JobId, ProjectId, TriggeredBy};
use utoipa::ToSchema;

pub(crate) use self::auth::Authed;
use self::dto::{
    ApiKeyDto, DashboardJob, ExecutionDto, ListExecutionsResponse, ListJobsResponse, ProjectDto,
};
pub(crate) use self::dto::{OkResponse, OK};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::Api;
use crate::state::AppState;
use crate::ApiJson;

/// The dashboard routes (`/auth/*` included), for [`crate::router`] to merge.
pub(crate) fn api() -> Api {
    use self::auth::{__path_login, __path_logout, __path_me, __path_signup};
    Api::new("auth")
        .route::<__path_signup, _, _>(auth::signup)
        .route::<__path_login, _, _>(auth::login)
        .route::<__path_logout, _, _>(auth::logout)
        .route::<__path_me, _, _>(auth::me)
        .merge(
            Api::new("dashboard")
                .route::<__path_list_projects, _, _>(list_projects)
                .route::<__path_create_project, _, _>(create_project)
                .route::<__path_list_keys, _, _>(list_keys)
                .route::<__path_create_key, _, _>(create_key)
                .route::<__path_delete_key, _, _>(delete_key)
                .route::<__path_list_jobs, _, _>(list_jobs)
                .route::<__path_get_job, _, _>(get_job)
                .route::<__path_job_executions, _, _>(job_executions)
                .route::<__path_replay_job, _, _>(replay_job)
                .route::<__path_list_executions, _, _>(list_executions),
        )
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The decoded query string, or a 400.
fn pairs(query: QueryPairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
}

/// The `projectId` query parameter, if given (non-empty).
fn query_project(pairs: &[(String, String)]) -> Option<ProjectId> {
    pairs
        .iter()
        .find(|(k, v)| k == "projectId" && !v.trim().is_empty())
        .map(|(_, v)| ProjectId::from(v.trim()))
}

/// A JSON body that may be absent: an empty body (or `null`) is `T::default()`; a non-empty one
/// must be JSON (`content-type: application/json`) and decode, else a 400 naming the problem.
struct OptionalJson<T>(T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!(
                "could not read the request body: {}",
                e.body_text()
            ))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(ApiError::bad_request(
                "expected a JSON body with content-type: application/json",
            ));
        }
        Json::<Option<T>>::from_bytes(&bytes)
            .map(|Json(v)| OptionalJson(v.unwrap_or_default()))
            .map_err(ApiError::from)
    }
}

// ---- projects ---------------------------------------------------------------------------------

/// The caller's projects.
#[utoipa::path(
    get,
    path = "/projects",
    security(("apiKey" = []), ("session" = [])),
    responses(
        (status = 200, description = "The caller's projects (an API key: its own).", body = Vec<ProjectDto>),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn list_projects(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> ApiJson<Vec<ProjectDto>> {
    let projects = state.service.dashboard(&caller).projects();
    ApiJson(projects.iter().map(ProjectDto::from).collect())
}

/// The body of `POST /projects`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct NewProjectBody {
    /// `^[a-z0-9_-]{3,40}$`, unique.
    #[schema(pattern = "^[a-z0-9_-]{3,40}$")]
    slug: String,
}

/// Create a project owned by the signed-in user.
#[utoipa::path(
    post,
    path = "/projects",
    security(("session" = [])),
    request_body = NewProjectBody,
    responses(
        (status = 200, description = "The new project.", body = ProjectDto),
        (status = 400, description = "`BadRequest`: a body that does not decode, or an invalid \
            slug.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: an API key (it acts for its own project \
            only), or a cookie request without `content-type: application/json`.", body = ErrorBody),
        (status = 409, description = "`Conflict`: the slug is taken.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn create_project(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<NewProjectBody>,
) -> Result<ApiJson<ProjectDto>, ApiError> {
    let project = state
        .service
        .dashboard(&caller)
        .create_project(&body.slug)
        .await?;
    Ok(ApiJson(ProjectDto::from(&project)))
}

// ---- keys -------------------------------------------------------------------------------------

/// The API keys of the caller's projects, masked.
#[utoipa::path(
    get,
    path = "/keys",
    security(("apiKey" = []), ("session" = [])),
    params(("projectId" = Option<String>, Query, description = "Only this project's keys.")),
    responses(
        (status = 200, description = "The keys, newest first; `keyValue` masked.", body = Vec<ApiKeyDto>),
        (status = 400, description = "`BadRequest`: an undecodable query string.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn list_keys(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
) -> Result<ApiJson<Vec<ApiKeyDto>>, ApiError> {
    let project = query_project(&pairs(query)?);
    let keys = state
        .service
        .dashboard(&caller)
        .list_keys(project.as_ref())
        .await?;
    Ok(ApiJson(keys.iter().map(ApiKeyDto::masked).collect()))
}

/// The body of `POST /keys`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewKeyBody {
    /// 1 to 100 characters.
    name: String,
    /// The project (default: the caller's first).
    #[serde(default)]
    project_id: Option<String>,
}

/// Create an API key.
#[utoipa::path(
    post,
    path = "/keys",
    security(("apiKey" = []), ("session" = [])),
    params(("projectId" = Option<String>, Query,
        description = "The project (default: the caller's first); may be given in the body instead.")),
    request_body = NewKeyBody,
    responses(
        (status = 200, description = "The new key; `keyValue` is the full secret, shown this \
            once.", body = ApiKeyDto),
        (status = 400, description = "`BadRequest`: a body that does not decode, or an invalid \
            name.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn create_key(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> Result<ApiJson<ApiKeyDto>, ApiError> {
    let in_query = query_project(&pairs(query)?);
    let in_body = body
        .project_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(ProjectId::from);
    let project = match (in_query, in_body) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::bad_request(
                "projectId differs between the query string and the body",
            ))
        }
        (q, b) => q.or(b),
    };
    let created = state
        .service
        .dashboard(&caller)
        .create_key(&body.name, project.as_ref())
        .await?;
    Ok(ApiJson(ApiKeyDto::with_value(&created.key, created.secret)))
}

/// Delete an API key; it is refused from then on.
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 200, description = "Deleted.", body = OkResponse),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such key in the caller's projects.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn delete_key(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<ApiJson<OkResponse>, ApiError> {
    state
        .service
        .dashboard(&caller)
        .delete_key(&ApiKeyId::new(id))
        .await?;
    Ok(ApiJson(OK))
}

// ---- jobs and executions ----------------------------------------------------------------------

/// A page of the caller's jobs, newest `scheduledAt` first.
#[utoipa::path(
    get,
    path = "/jobs",
    security(("apiKey" = []), ("session" = [])),
    params(
        ("status" = Option<String>, Query,
            description = "Comma-separated job statuses (repeatable)."),
        ("id" = Option<String>, Query, description = "Only this job, or this generator's occurrences."),
        ("projectId" = Option<String>, Query, description = "Only this project."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)."),
        ("offset" = Option<u64>, Query, description = "Items skipped (default 0)."),
    ),
    responses(
        (status = 200, description = "The page.", body = ListJobsResponse),
        (status = 400, description = "`BadRequest`: an invalid filter or paging value.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn list_jobs(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
) -> Result<ApiJson<ListJobsResponse>, ApiError> {
    let filter = JobFilter::from_query(&pairs(query)?)?;
    let page = state.service.dashboard(&caller).list_jobs(&filter).await?;
    Ok(ApiJson(page.into()))
}

/// One of the caller's jobs.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = DashboardJob),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such job in the caller's projects.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn get_job(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<ApiJson<DashboardJob>, ApiError> {
    let job = state
        .service
        .dashboard(&caller)
        .job(&JobId::new(id))
        .await?;
    Ok(ApiJson(job.into()))
}

/// A job's executions, newest first, with response headers and bodies.
#[utoipa::path(
    get,
    path = "/jobs/{id}/executions",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The executions.", body = Vec<ExecutionDto>),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such job in the caller's projects.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn job_executions(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<ExecutionDto>>, ApiError> {
    let executions = state
        .service
        .dashboard(&caller)
        .job_executions(&JobId::new(id))
        .await?;
    Ok(ApiJson(
        executions.into_iter().map(ExecutionDto::from).collect(),
    ))
}

/// The body of `POST /jobs/{id}/executions` (optional).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayBody {
    /// `replay` (default) or `retry`.
    #[serde(default)]
    triggered_by: Option<ReplayKind>,
}

/// How a dashboard run is recorded.
#[derive(Deserialize, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReplayKind {
    Replay,
    Retry,
}

/// Run a finished job again now, as a new execution.
#[utoipa::path(
    post,
    path = "/jobs/{id}/executions",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The job's id.")),
    request_body(content = Option<ReplayBody>, description = "Optional; an empty body replays."),
    responses(
        (status = 200, description = "Queued to run now.", body = OkResponse),
        (status = 400, description = "`BadRequest`: the job is not `completed`, `cancelled` or \
            `skipped`, the quota is used up, its key is held by another live item, or the body \
            does not decode.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such job in the caller's projects.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn replay_job(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ReplayBody>,
) -> Result<ApiJson<OkResponse>, ApiError> {
    let by = match body.triggered_by {
        None | Some(ReplayKind::Replay) => TriggeredBy::Replay,
        Some(ReplayKind::Retry) => TriggeredBy::Retry,
    };
    state
        .service
        .dashboard(&caller)
        .replay(&JobId::new(id), by)
        .await?;
    Ok(ApiJson(OK))
}

/// A page of the caller's executions, newest `plannedAt` first.
#[utoipa::path(
    get,
    path = "/executions",
    security(("apiKey" = []), ("session" = [])),
    params(
        ("jobId" = Option<String>, Query, description = "Only this job's executions."),
        ("customKey" = Option<String>, Query, description = "Only executions of jobs with this key."),
        ("jobStatus" = Option<String>, Query, description = "Comma-separated job statuses."),
        ("executionStatus" = Option<String>, Query, description = "Comma-separated execution statuses."),
        ("httpStatus" = Option<String>, Query, description = "A status code (`503`) or a class (`5xx`)."),
        ("projectId" = Option<String>, Query, description = "Only this project."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)."),
        ("offset" = Option<u64>, Query, description = "Items skipped (default 0)."),
    ),
    responses(
        (status = 200, description = "The page.", body = ListExecutionsResponse),
        (status = 400, description = "`BadRequest`: an invalid filter or paging value.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn list_executions(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
) -> Result<ApiJson<ListExecutionsResponse>, ApiError> {
    let filter = ExecutionFilter::from_query(&pairs(query)?)?;
    let page = state
        .service
        .dashboard(&caller)
        .list_executions(&filter)
        .await?;
    Ok(ApiJson(page.into()))
}

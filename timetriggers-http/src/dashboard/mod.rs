//! The dashboard API (API.md §3): `/auth/*`, `/projects`, `/keys`, `/jobs`, `/executions`,
//! translated onto [`timetriggers_core::Dashboard`]. Every route but `/auth/*` needs an
//! [`auth::Authed`] caller and sees only the caller's projects.

mod auth;
mod dto;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Json, Path, Query, Request, State};
use axum::routing::{delete, get, post};
use axum::Router;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use timetriggers_core::{ApiKeyId, ExecutionFilter, JobFilter, JobId, ProjectId, TriggeredBy};

pub(crate) use self::auth::Authed;
use self::dto::{
    ApiKeyDto, DashboardJob, ExecutionDto, ListExecutionsResponse, ListJobsResponse, OkResponse,
    ProjectDto, OK,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ApiJson;

/// The dashboard routes, for [`crate::router`] to merge.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/projects", get(list_projects).post(create_project))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(delete_key))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route(
            "/jobs/{id}/executions",
            get(job_executions).post(replay_job),
        )
        .route("/executions", get(list_executions))
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

/// A JSON body that may be absent: an empty body is `T::default()`; a non-empty one must be
/// JSON (`content-type: application/json`) and decode, else a 400 naming the problem.
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
        Json::<T>::from_bytes(&bytes)
            .map(|Json(v)| OptionalJson(v))
            .map_err(ApiError::from)
    }
}

// ---- projects ---------------------------------------------------------------------------------

async fn list_projects(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> ApiJson<Vec<ProjectDto>> {
    let projects = state.service.dashboard(&caller).projects();
    ApiJson(projects.iter().map(ProjectDto::from).collect())
}

#[derive(Deserialize)]
struct NewProjectBody {
    slug: String,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewKeyBody {
    name: String,
    #[serde(default)]
    project_id: Option<String>,
}

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

async fn list_jobs(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
) -> Result<ApiJson<ListJobsResponse>, ApiError> {
    let filter = JobFilter::from_query(&pairs(query)?)?;
    let page = state.service.dashboard(&caller).list_jobs(&filter).await?;
    Ok(ApiJson(page.into()))
}

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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReplayBody {
    #[serde(default)]
    triggered_by: Option<ReplayKind>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ReplayKind {
    Replay,
    Retry,
}

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

//! `GET/POST /rate-limits`, `PUT/DELETE /rate-limits/{id}` (API.md §3 "Rate limits"),
//! translated onto the [`timetriggers_core::Dashboard`] rate-limit methods. Authenticated like
//! every dashboard route: the session cookie, or a `ttr-api-key` header scoped to its project.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use serde_json::Value;
use timetriggers_core::{ProjectId, RateLimit, RateLimitId, RateLimitPatch};
use utoipa::ToSchema;

use crate::dashboard::{Authed, OkResponse, OK};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::Api;
use crate::state::AppState;
use crate::ApiJson;

/// The rate-limit routes, for [`crate::router`] to merge.
pub(crate) fn api() -> Api {
    Api::new("rateLimits")
        .route::<__path_list, _, _>(list)
        .route::<__path_create, _, _>(create)
        .route::<__path_update, _, _>(update)
        .route::<__path_remove, _, _>(remove)
}

/// A per-tag rate-limit rule: at most so many executions carrying the tag may start per
/// sliding window; `null` is no limit for that window.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RateLimit)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RateLimitDto {
    id: String,
    project_id: String,
    tag: String,
    max_per_second: Option<u64>,
    max_per_minute: Option<u64>,
    max_per_hour: Option<u64>,
    max_per_day: Option<u64>,
    max_per_week: Option<u64>,
    max_per_month: Option<u64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// The body of `POST /rate-limits`. Each `maxPer…` is a whole number from 0 to 1 000 000 000, or `null`; a
/// window left out has no limit.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(
    dead_code,
    reason = "it describes the body for the OpenAPI document; never built"
)]
pub(crate) struct CreateRateLimitRequest {
    /// The tag the rule applies to (as in `ttr-tags`); one rule per tag.
    tag: String,
    max_per_second: Option<u64>,
    max_per_minute: Option<u64>,
    max_per_hour: Option<u64>,
    max_per_day: Option<u64>,
    max_per_week: Option<u64>,
    max_per_month: Option<u64>,
    /// The project (default: the caller's first); may be given in the query instead.
    project_id: Option<String>,
}

/// The body of `PUT /rate-limits/{id}`: a field left out is left as it is, a window set to
/// `null` loses its limit.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(
    dead_code,
    reason = "it describes the body for the OpenAPI document; never built"
)]
pub(crate) struct UpdateRateLimitRequest {
    /// A new tag.
    tag: Option<String>,
    max_per_second: Option<u64>,
    max_per_minute: Option<u64>,
    max_per_hour: Option<u64>,
    max_per_day: Option<u64>,
    max_per_week: Option<u64>,
    max_per_month: Option<u64>,
}

impl From<RateLimit> for RateLimitDto {
    fn from(r: RateLimit) -> Self {
        RateLimitDto {
            id: r.id.into_string(),
            project_id: r.project_id.into_string(),
            tag: r.tag,
            max_per_second: r.limits.per_second,
            max_per_minute: r.limits.per_minute,
            max_per_hour: r.limits.per_hour,
            max_per_day: r.limits.per_day,
            max_per_week: r.limits.per_week,
            max_per_month: r.limits.per_month,
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
        }
    }
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The `projectId` query parameter, if given (non-empty); 400 for an undecodable query.
fn query_project(query: QueryPairs) -> Result<Option<ProjectId>, ApiError> {
    let Query(pairs) = query
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    Ok(pairs
        .iter()
        .find(|(k, v)| k == "projectId" && !v.trim().is_empty())
        .map(|(_, v)| ProjectId::from(v.trim())))
}

/// The rate-limit rules of the caller's projects.
#[utoipa::path(
    get,
    path = "/rate-limits",
    security(("apiKey" = []), ("session" = [])),
    params(("projectId" = Option<String>, Query, description = "Only this project's rules.")),
    responses(
        (status = 200, description = "The rules.", body = Vec<RateLimitDto>),
        (status = 400, description = "`BadRequest`: an undecodable query string.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
) -> Result<ApiJson<Vec<RateLimitDto>>, ApiError> {
    let project = query_project(query)?;
    let rules = state
        .service
        .dashboard(&caller)
        .list_rate_limits(project.as_ref())
        .await?;
    Ok(ApiJson(rules.into_iter().map(RateLimitDto::from).collect()))
}

/// Create a rule for a tag.
#[utoipa::path(
    post,
    path = "/rate-limits",
    security(("apiKey" = []), ("session" = [])),
    params(("projectId" = Option<String>, Query,
        description = "The project (default: the caller's first); may be given in the body instead.")),
    request_body = CreateRateLimitRequest,
    responses(
        (status = 200, description = "The new rule.", body = RateLimitDto),
        (status = 400, description = "`BadRequest`: a body that does not decode, an empty or \
            invalid tag, an invalid number, or a tag that already has a rule.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: `projectId` is not one of the caller's.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: QueryPairs,
    ApiJson(body): ApiJson<Value>,
) -> Result<ApiJson<RateLimitDto>, ApiError> {
    let in_query = query_project(query)?;
    let mut patch = RateLimitPatch::from_json(&body)?;
    patch.project_id = match (in_query, patch.project_id.take()) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::bad_request(
                "projectId differs between the query string and the body",
            ))
        }
        (q, b) => q.or(b),
    };
    let rule = state
        .service
        .dashboard(&caller)
        .create_rate_limit(patch)
        .await?;
    Ok(ApiJson(rule.into()))
}

/// Change a rule.
#[utoipa::path(
    put,
    path = "/rate-limits/{id}",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The rule's id.")),
    request_body = UpdateRateLimitRequest,
    responses(
        (status = 200, description = "The rule as changed.", body = RateLimitDto),
        (status = 400, description = "`BadRequest`: a body that does not decode, an invalid \
            tag or number, or a tag that already has a rule.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such rule in the caller's projects.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<ApiJson<RateLimitDto>, ApiError> {
    let patch = RateLimitPatch::from_json(&body)?;
    let rule = state
        .service
        .dashboard(&caller)
        .update_rate_limit(&RateLimitId::new(id), patch)
        .await?;
    Ok(ApiJson(rule.into()))
}

/// Delete a rule.
#[utoipa::path(
    delete,
    path = "/rate-limits/{id}",
    security(("apiKey" = []), ("session" = [])),
    params(("id" = String, Path, description = "The rule's id.")),
    responses(
        (status = 200, description = "Deleted.", body = OkResponse),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such rule in the caller's projects.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<ApiJson<OkResponse>, ApiError> {
    state
        .service
        .dashboard(&caller)
        .delete_rate_limit(&RateLimitId::new(id))
        .await?;
    Ok(ApiJson(OK))
}

//! `GET/POST /rate-limits`, `PUT/DELETE /rate-limits/{id}` (API.md §3 "Rate limits"),
//! translated onto the [`timetriggers_core::Dashboard`] rate-limit methods. Authenticated like
//! every dashboard route: the session cookie, or a `ttr-api-key` header scoped to its project.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use axum::Router;
use serde::Serialize;
use serde_json::Value;
use timetriggers_core::{ProjectId, RateLimit, RateLimitId, RateLimitPatch};

use crate::dashboard::Authed;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ApiJson;

/// The rate-limit routes, for [`crate::router`] to merge.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rate-limits", get(list).post(create))
        .route("/rate-limits/{id}", put(update).delete(remove))
}

/// `RateLimit`: every field present, `null` for a window without a limit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RateLimitDto {
    id: String,
    project_id: String,
    tag: String,
    max_per_second: Option<u64>,
    max_per_minute: Option<u64>,
    max_per_hour: Option<u64>,
    max_per_day: Option<u64>,
    max_per_week: Option<u64>,
    max_per_month: Option<u64>,
    created_at: String,
    updated_at: String,
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

#[derive(Serialize)]
struct OkBody {
    ok: bool,
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

async fn remove(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<ApiJson<OkBody>, ApiError> {
    state
        .service
        .dashboard(&caller)
        .delete_rate_limit(&RateLimitId::new(id))
        .await?;
    Ok(ApiJson(OkBody { ok: true }))
}

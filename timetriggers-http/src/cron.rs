//! `GET /cron/next`: preview the next fire times of a cron expression, computed by the very code
//! generators use.

use std::sync::Arc;

use axum::extract::{Query, State};
use serde::Serialize;
use timetriggers_core::Timestamp;
use utoipa::ToSchema;

use crate::dashboard::Authed;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::ApiJson;

/// The answer of `GET /cron/next`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CronNext {
    /// The next fire instants, RFC 3339 UTC.
    times: Vec<String>,
}

/// Preview the next fire times of a cron expression.
///
/// Exactly as a generator would fire them, DST rules included.
#[utoipa::path(
    get,
    path = "/cron/next",
    params(
        ("expression" = String, Query, description = "A cron expression (5 or 6 fields, or a macro)."),
        ("timezone" = Option<String>, Query, description = "IANA zone (default `UTC`)."),
        ("from" = Option<String>, Query, format = DateTime,
            description = "Times later than this RFC 3339 instant (default now)."),
        ("count" = Option<u32>, Query, minimum = 1, maximum = 100,
            description = "How many times (default 10)."),
    ),
    security(("apiKey" = []), ("session" = [])),
    responses(
        (status = 200, description = "The next fire times.", body = CronNext),
        (status = 400, description = "`BadRequest`: an invalid expression, zone, `from` or \
            `count`.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no session and no valid API key.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn cron_next(
    State(state): State<Arc<AppState>>,
    _caller: Authed,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<ApiJson<CronNext>, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expression = get("expression")
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("missing required query parameter: expression"))?
        .to_owned();
    let timezone = get("timezone")
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("UTC")
        .trim()
        .to_owned();
    let from = match get("from").filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(raw) => Some(Timestamp::parse_rfc3339(raw).ok_or_else(|| {
            ApiError::bad_request(format!("from must be an RFC 3339 time (got {raw:?})"))
        })?),
    };
    let count = match get("count").filter(|c| !c.trim().is_empty()) {
        None => 10,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "count must be a whole number from 1 to 100 (got {raw:?})"
                ))
            })?,
    };
    let from = from.unwrap_or_else(|| state.service.now());
    let times = state
        .service
        .cron_next(&expression, &timezone, from, count)?
        .into_iter()
        .map(Timestamp::to_rfc3339)
        .collect();
    Ok(ApiJson(CronNext { times }))
}

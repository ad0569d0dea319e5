//! The trigger API (API.md §2): `/schedule` and `/cancel`, translated onto the service.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::{Serialize, Serializer};
use timetriggers_core::{JobId, ScheduleRequest, TriggerRef, Upserted};

use crate::error::{ApiError, APPLICATION_JSON};
use crate::extract::{header_pairs, header_text, read_body, required_header};
use crate::state::AppState;

const TTR_TRIGGER_ID: HeaderName = HeaderName::from_static("ttr-trigger-id");
const TTR_SCHEDULED_AT: HeaderName = HeaderName::from_static("ttr-scheduled-at");
const TTR_MONTH_QUOTA_REMAINING: HeaderName = HeaderName::from_static("ttr-month-quota-remaining");

/// `/schedule`. Order of checks: 413 body → 400 decode (`ttr-api-key`, `ttr-url`) → 401 →
/// 400 invalid values → 402 → 404 → 410 (the last four from the service).
pub(crate) async fn schedule(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    let api_key = required_header(&parts.headers, "ttr-api-key")?;
    required_header(&parts.headers, "ttr-url")?;
    let service = &state.service;
    let key = service.authenticate(&api_key).await?;
    let headers = header_pairs(&parts.headers);
    let request =
        ScheduleRequest::from_headers(parts.method.as_str(), &headers, body, service.now())?;
    let done = service.schedule(&key.project_id, request).await?;
    Ok(schedule_response(done))
}

/// `/cancel`: `ttr-api-key` and exactly one of `ttr-trigger-id` / `ttr-custom-key`. Order of
/// checks: 400 decode → 401 → 404 → 410.
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let api_key = required_header(headers, "ttr-api-key")?;
    let target = match (
        header_text(headers, "ttr-trigger-id"),
        header_text(headers, "ttr-custom-key"),
    ) {
        (Some(id), None) => TriggerRef::Id(JobId::new(id.into_owned())),
        (None, Some(key)) => TriggerRef::CustomKey(key.into_owned()),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give exactly one of ttr-trigger-id and ttr-custom-key, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing required header: one of ttr-trigger-id or ttr-custom-key",
            ))
        }
    };
    let key = state.service.authenticate(&api_key).await?;
    state.service.cancel(&key.project_id, target).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `monthQuotaRemaining`: a number, or `"Infinity"` when the quota is unlimited.
struct QuotaRemaining(Option<u64>);

impl Serialize for QuotaRemaining {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => serializer.serialize_u64(n),
            None => serializer.serialize_str("Infinity"),
        }
    }
}

/// The `ScheduleResult` body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleResult<'a> {
    trigger_id: &'a str,
    scheduled_at: &'a str,
    operation: &'static str,
    kind: &'static str,
    month_quota_remaining: QuotaRemaining,
}

/// 200 with the `ScheduleResult` body and the same facts as `ttr-*` headers (for `HEAD`).
fn schedule_response(done: Upserted) -> Response {
    let trigger_id = done.id.into_string();
    let scheduled_at = done.scheduled_at.to_rfc3339();
    let result = ScheduleResult {
        trigger_id: &trigger_id,
        scheduled_at: &scheduled_at,
        operation: done.operation.as_str(),
        kind: done.kind.as_str(),
        month_quota_remaining: QuotaRemaining(done.month_quota_remaining),
    };
    let mut body = Vec::with_capacity(160);
    if let Err(e) = serde_json::to_writer(&mut body, &result) {
        return ApiError::new(
            crate::ErrorTag::InternalError,
            format!("failed to serialise the schedule result: {e}"),
        )
        .into_response();
    }
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, APPLICATION_JSON);
    // Ids and RFC 3339 times are ASCII; an id that is not a valid header value (impossible for
    // generated ids) only loses its header, never the 200.
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(trigger_id)) {
        headers.insert(TTR_TRIGGER_ID, v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(scheduled_at)) {
        headers.insert(TTR_SCHEDULED_AT, v);
    }
    if let Some(n) = done.month_quota_remaining {
        headers.insert(TTR_MONTH_QUOTA_REMAINING, HeaderValue::from(n));
    }
    response
}

//! The trigger API (API.md §2): `/schedule` and `/cancel`, translated onto the service.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::{Serialize, Serializer};
use timetriggers_core::{JobId, JobKind, ScheduleRequest, TriggerRef, UpsertOperation, Upserted};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, APPLICATION_JSON};
use crate::extract::{header_pairs, header_text, read_body, required_header};
use crate::state::AppState;

const TTR_TRIGGER_ID: HeaderName = HeaderName::from_static("ttr-trigger-id");
const TTR_SCHEDULED_AT: HeaderName = HeaderName::from_static("ttr-scheduled-at");
const TTR_MONTH_QUOTA_REMAINING: HeaderName = HeaderName::from_static("ttr-month-quota-remaining");

/// Schedule or reschedule a request.
///
/// The request's method, body and every header not starting with `ttr-` are stored and sent
/// to `ttr-url` at `ttr-scheduled-at`; a cron expression there makes a generator instead of a
/// one-off job. Order of checks: 413 body → 400 decode (`ttr-api-key`, `ttr-url`) → 401 → 400
/// invalid values → 402 → 404 → 410.
#[utoipa::path(
    method(get, head, post, put, patch, delete),
    path = "/schedule",
    params(
        ("ttr-api-key" = String, Header, description = "The project's API key."),
        ("ttr-url" = String, Header,
            description = "Absolute http or https URL the request is sent to."),
        ("ttr-scheduled-at" = Option<String>, Header,
            description = "When to fire: `now` (default), an ISO-8601 time, a Unix timestamp, \
                optionally followed by `| add <n><unit>` steps; or a cron expression (5 or 6 \
                fields, or a macro like `@daily`), which makes a generator."),
        ("ttr-trigger-id" = Option<String>, Header,
            description = "Reschedule the job or generator with this id."),
        ("ttr-custom-key" = Option<String>, Header,
            description = "The caller's own key (1 to 256 characters); reusing it reschedules."),
        ("ttr-title" = Option<String>, Header, description = "Display title (at most 200 characters)."),
        ("ttr-tags" = Option<String>, Header,
            description = "Comma-separated tags (or a JSON array of strings), at most 20."),
        ("ttr-run-missed" = Option<String>, Header,
            description = "`true` / `false` (also `1/0`, `yes/no`): whether a time already past \
                fires at once (one-off default `true`; generator default `false`)."),
        ("ttr-timezone" = Option<String>, Header,
            description = "IANA zone of a cron expression (default `UTC`)."),
        ("ttr-max-attempts" = Option<u32>, Header, minimum = 1, maximum = 10,
            description = "Attempts on a network error, timeout, 429 or 5xx (default 1)."),
        ("ttr-timeout" = Option<u32>, Header, minimum = 1, maximum = 300,
            description = "Seconds the target has to answer (default 30)."),
    ),
    request_body(content_type = "*/*",
        description = "Any bytes: sent to the target as they are (at most the server's body limit)."),
    responses(
        (status = 200, description = "Scheduled (or rescheduled).", body = ScheduleResult,
            headers(
                ("ttr-trigger-id" = String, description = "The job or generator id."),
                ("ttr-scheduled-at" = String, description = "The fire time, RFC 3339 UTC."),
                ("ttr-month-quota-remaining" = u64,
                    description = "Quota left this month; absent when unlimited."),
            )),
        (status = 400, description = "`BadRequest`: a missing `ttr-api-key` or `ttr-url`, or an \
            invalid value (the message names it).", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: an unknown or revoked API key.", body = ErrorBody),
        (status = 402, description = "`QuotaExceeded`: the monthly quota is used up.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such `ttr-trigger-id` in the project.", body = ErrorBody),
        (status = 410, description = "`Gone`: the job is no longer `registered` (or the generator \
            is cancelled), or the key is held by a queued or running job.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
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

/// Cancel a registered job or a generator.
///
/// `ttr-api-key` and exactly one of `ttr-trigger-id` / `ttr-custom-key`. Order of checks: 400
/// decode → 401 → 404 → 410.
#[utoipa::path(
    method(delete, get, post),
    path = "/cancel",
    params(
        ("ttr-api-key" = String, Header, description = "The project's API key."),
        ("ttr-trigger-id" = Option<String>, Header,
            description = "The job or generator to cancel (or give `ttr-custom-key`)."),
        ("ttr-custom-key" = Option<String>, Header,
            description = "The live item holding this key (or give `ttr-trigger-id`)."),
    ),
    responses(
        (status = 204, description = "Cancelled."),
        (status = 400, description = "`BadRequest`: no `ttr-api-key`, or not exactly one of \
            `ttr-trigger-id` and `ttr-custom-key`.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: an unknown or revoked API key.", body = ErrorBody),
        (status = 404, description = "`NotFound`: no such id or live key in the project.", body = ErrorBody),
        (status = 410, description = "`Gone`: the job is no longer `registered`.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
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

/// The answer of `/schedule`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleResult<'a> {
    /// The job or generator id.
    trigger_id: &'a str,
    /// The fire time (a generator's next occurrence), RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    scheduled_at: &'a str,
    /// Whether an item was created or updated in place.
    #[schema(value_type = UpsertOperation)]
    operation: &'static str,
    /// A one-off job or a generator.
    #[schema(value_type = JobKind)]
    kind: &'static str,
    /// What is left of the monthly quota after this call.
    #[schema(schema_with = crate::openapi::count_or_infinity)]
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

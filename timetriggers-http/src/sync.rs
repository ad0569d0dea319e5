//! `POST /declare` and `POST /bulk` (API.md §2), translated onto the service.

use std::sync::Arc;

use axum::extract::{Request, State};
use serde::Serialize;
use serde_json::Value;
use timetriggers_core::{BulkSelector, JobDeclaration, JobId, JobKind, SyncOperation, SyncOutcome};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{read_body, reject_nul_escapes, required_header};
use crate::state::AppState;
use crate::ApiJson;

/// The answer of `/declare` and `/bulk`: the counts, and one line per item in request order
/// (cancellations appended).
#[derive(Serialize, ToSchema)]
#[schema(as = DeclareResponse)]
pub(crate) struct SyncResponse {
    summary: Summary,
    operations: Vec<Operation>,
}

/// How many items ended in each operation.
#[derive(Serialize, ToSchema)]
#[schema(as = DeclareSummary)]
struct Summary {
    unchanged: usize,
    added: usize,
    skipped: usize,
    updated: usize,
    cancelled: usize,
}

/// What happened to one item.
#[derive(Serialize, ToSchema)]
#[schema(as = DeclareOperationResult)]
#[serde(rename_all = "camelCase")]
struct Operation {
    #[schema(value_type = SyncOperation)]
    operation: &'static str,
    custom_key: Option<String>,
    #[schema(value_type = JobKind)]
    kind: &'static str,
    id: String,
    /// For `updated`: the differing fields among `title, scheduledAt, url, method, headers,
    /// body, tags`.
    changed_fields: Option<Vec<String>>,
}

impl From<SyncOutcome> for SyncResponse {
    fn from(o: SyncOutcome) -> Self {
        SyncResponse {
            summary: Summary {
                unchanged: o.count(SyncOperation::Unchanged),
                added: o.count(SyncOperation::Added),
                skipped: o.count(SyncOperation::Skipped),
                updated: o.count(SyncOperation::Updated),
                cancelled: o.count(SyncOperation::Cancelled),
            },
            operations: o
                .operations
                .into_iter()
                .map(|l| Operation {
                    operation: l.operation.as_str(),
                    custom_key: l.custom_key,
                    kind: l.kind.as_str(),
                    id: l.id.into_string(),
                    changed_fields: l.changed_fields,
                })
                .collect(),
        }
    }
}

/// Reads the key and a JSON body (decode errors first, as on `/schedule`).
async fn key_and_json(state: &AppState, request: Request) -> Result<(String, Value), ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
    let key = required_header(&parts.headers, "ttr-api-key")?.into_owned();
    reject_nul_escapes(&body)?;
    let value = serde_json::from_slice::<Value>(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok((key, value))
}

fn declarations(field: &str, value: Value) -> Result<Vec<JobDeclaration>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request(format!("{field} must be an array")));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<JobDeclaration>(v)
                .map_err(|e| ApiError::bad_request(format!("{field}[{i}]: {e}")))
        })
        .collect()
}

fn run_missed(value: Option<Value>) -> Result<Option<bool>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(ApiError::bad_request(
            "runMissed must be true, false or null",
        )),
    }
}

/// The body of `POST /declare`: the declarations, alone or with `runMissed`. (The handler
/// reads it by hand, for precise messages; this type describes it for the OpenAPI document.)
#[derive(ToSchema)]
#[serde(untagged)]
#[expect(
    dead_code,
    reason = "it describes the body for the OpenAPI document; never built"
)]
pub(crate) enum DeclareRequest {
    /// The declarations alone.
    Jobs(Vec<JobDeclaration>),
    /// The declarations and whether past one-off times fire at once.
    WithOptions {
        /// The whole desired set of declare-managed items.
        jobs: Vec<JobDeclaration>,
        /// Whether a one-off time already past fires at once (`false`: `skipped`).
        #[serde(rename = "runMissed")]
        run_missed: Option<bool>,
    },
}

/// The body of `POST /bulk`. (The handler reads it by hand, for precise messages; this type
/// describes it for the OpenAPI document.)
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(
    dead_code,
    reason = "it describes the body for the OpenAPI document; never built"
)]
pub(crate) struct BulkRequest {
    /// Whether a one-off time already past fires at once.
    run_missed: Option<bool>,
    /// Created or rescheduled by `customKey`, after the cancels.
    upserts: Option<Vec<JobDeclaration>>,
    /// Applied first.
    cancels: Option<Vec<BulkCancel>>,
}

/// One cancel of `POST /bulk`: a customKey (if one matches, else an id), or an explicit
/// selector.
#[derive(ToSchema)]
#[serde(untagged)]
#[expect(
    dead_code,
    reason = "it describes the body for the OpenAPI document; never built"
)]
enum BulkCancel {
    /// A customKey, else an id.
    Bare(String),
    /// By customKey.
    CustomKey {
        #[serde(rename = "customKey")]
        custom_key: String,
    },
    /// By id.
    Id { id: String },
    /// Every registered job and active generator carrying the tag.
    Tag { tag: String },
}

/// Declarative sync.
///
/// The declarations are the whole desired state of the items `/declare` manages in the
/// project: missing ones are added, differing ones updated in place, absent ones cancelled.
/// All or nothing, in one transaction.
#[utoipa::path(
    post,
    path = "/declare",
    params(("ttr-api-key" = String, Header, description = "The project's API key.")),
    request_body = DeclareRequest,
    responses(
        (status = 200, description = "Applied.", body = SyncResponse),
        (status = 400, description = "`BadRequest`: no `ttr-api-key`, a body that does not \
            decode, an invalid declaration or a duplicate customKey.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: an unknown or revoked API key.", body = ErrorBody),
        (status = 402, description = "`QuotaExceeded`: the quota cannot cover the items added \
            or updated; nothing changed.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn declare(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<ApiJson<SyncResponse>, ApiError> {
    let (key, value) = key_and_json(&state, request).await?;
    let (jobs, missed) = match value {
        Value::Array(_) => (declarations("jobs", value)?, None),
        Value::Object(mut map) => {
            if let Some(unknown) = map.keys().find(|k| *k != "jobs" && *k != "runMissed") {
                return Err(ApiError::bad_request(format!("unknown field {unknown:?}")));
            }
            let jobs = map
                .remove("jobs")
                .ok_or_else(|| ApiError::bad_request("missing field jobs"))?;
            (
                declarations("jobs", jobs)?,
                run_missed(map.remove("runMissed"))?,
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "the body must be an array of declarations or {\"jobs\": [...]}",
            ))
        }
    };
    let auth = state.service.authenticate(&key).await?;
    let done = state
        .service
        .declare(&auth.project_id, jobs, missed)
        .await?;
    Ok(ApiJson(done.into()))
}

/// Cancel and create-or-reschedule many items at once.
///
/// Cancels first, then upserts by customKey, in one transaction.
#[utoipa::path(
    post,
    path = "/bulk",
    params(("ttr-api-key" = String, Header, description = "The project's API key.")),
    request_body = BulkRequest,
    responses(
        (status = 200, description = "Applied.", body = SyncResponse),
        (status = 400, description = "`BadRequest`: no `ttr-api-key`, a body that does not \
            decode or an invalid item.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: an unknown or revoked API key.", body = ErrorBody),
        (status = 402, description = "`QuotaExceeded`: the quota cannot cover the upserts; \
            nothing changed.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn bulk(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<ApiJson<SyncResponse>, ApiError> {
    let (key, value) = key_and_json(&state, request).await?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::bad_request(
            "the body must be an object {runMissed?, upserts?, cancels?}",
        ));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "runMissed" | "upserts" | "cancels"))
    {
        return Err(ApiError::bad_request(format!("unknown field {unknown:?}")));
    }
    let missed = run_missed(map.remove("runMissed"))?;
    let upserts = match map.remove("upserts") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => declarations("upserts", v)?,
    };
    let cancels = match map.remove("cancels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| selector(i, v))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::bad_request("cancels must be an array")),
    };
    let auth = state.service.authenticate(&key).await?;
    let done = state
        .service
        .bulk(&auth.project_id, cancels, upserts, missed)
        .await?;
    Ok(ApiJson(done.into()))
}

fn selector(i: usize, v: Value) -> Result<BulkSelector, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "cancels[{i}] must be a string, {{\"customKey\"}}, {{\"id\"}} or {{\"tag\"}}"
        ))
    };
    match v {
        Value::String(s) => Ok(BulkSelector::Bare(s)),
        Value::Object(map) if map.len() == 1 => {
            let Some((k, Value::String(s))) = map.into_iter().next() else {
                return Err(bad());
            };
            match k.as_str() {
                "customKey" => Ok(BulkSelector::CustomKey(s)),
                "id" => Ok(BulkSelector::Id(JobId::new(s))),
                "tag" => Ok(BulkSelector::Tag(s)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

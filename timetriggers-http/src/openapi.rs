//! The OpenAPI 3.1 document, generated from the code.
//!
//! Every route goes into the router through [`Api::route`], which takes the path and the
//! methods from the handler's `#[utoipa::path]` annotation and records its operation at the
//! same time: a route cannot be mounted without being documented, nor documented without
//! being mounted. [`document`] adds the schemas, the security schemes and the responses every
//! route gets from the router's layers.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths};
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi as Document, Ref, RefOr};
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorTag, APPLICATION_JSON};
use crate::state::AppState;

/// Routes and their documentation, built together.
pub(crate) struct Api {
    router: Router<Arc<AppState>>,
    paths: Paths,
    tag: &'static str,
}

impl Api {
    /// No routes yet; operations added later are grouped under `tag`.
    pub(crate) fn new(tag: &'static str) -> Self {
        Api {
            router: Router::new(),
            paths: Paths::new(),
            tag,
        }
    }

    /// Mounts `handler` at the path and on the methods of its `#[utoipa::path]` (`P`, the
    /// `__path_<handler>` type the attribute generates) and documents it.
    pub(crate) fn route<P, H, T>(mut self, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let Some(filter) = methods.iter().map(method_filter).reduce(MethodFilter::or) else {
            return self;
        };
        self.router = self.router.route(&path, on(filter, handler));
        let mut operation = P::operation();
        operation
            .tags
            .get_or_insert_with(Vec::new)
            .push(self.tag.to_owned());
        self.paths.add_path_operation(&path, methods, operation);
        self
    }

    /// Both sets of routes (a path may get methods from each).
    pub(crate) fn merge(mut self, other: Api) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.merge(other.paths);
        self
    }

    /// The routes, for their state to be applied.
    pub(crate) fn into_router(self) -> Router<Arc<AppState>> {
        self.router
    }

    /// The document of the routes.
    pub(crate) fn into_document(self) -> Document {
        document(self.paths)
    }
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// The name of the error-body component every 4xx and 5xx response refers to.
pub(crate) const ERROR_SCHEMA: &str = "Error";

/// The security scheme of the `ttr-api-key` header.
pub(crate) const API_KEY_SCHEME: &str = "apiKey";

/// The security scheme of the `ttr_session` cookie.
pub(crate) const SESSION_SCHEME: &str = "session";

/// What the derive provides: the info block, the tags and the schemas (those the handlers
/// refer to; the ones they contain come along).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "TimeTriggers API",
        description = "Schedule HTTP requests to fire at a given time or on a cron schedule. \
            Trigger endpoints (`/schedule`, `/cancel`, `/declare`, `/bulk`) take a `ttr-api-key` \
            header; dashboard endpoints take the `ttr_session` cookie issued by `/auth/*`, or a \
            `ttr-api-key` header scoped to that key's project. Every error is a JSON \
            `{\"_tag\", \"message\"}` body with a `ttr-error` header repeating the message."
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::triggers::ScheduleResult,
        crate::sync::SyncResponse,
        crate::sync::DeclareRequest,
        crate::sync::BulkRequest,
        crate::cron::CronNext,
        crate::dashboard::dto::OkResponse,
        crate::dashboard::auth::SignupResponse,
        crate::dashboard::auth::LoginResponse,
        crate::dashboard::auth::MeResponse,
        crate::dashboard::auth::CredentialsBody,
        crate::dashboard::NewProjectBody,
        crate::dashboard::NewKeyBody,
        crate::dashboard::ReplayBody,
        crate::dashboard::dto::ProjectDto,
        crate::dashboard::dto::ApiKeyDto,
        crate::dashboard::dto::DashboardJob,
        crate::dashboard::dto::ListJobsResponse,
        crate::dashboard::dto::ExecutionDto,
        crate::dashboard::dto::DashboardExecution,
        crate::dashboard::dto::ListExecutionsResponse,
        crate::rate_limits::RateLimitDto,
        crate::rate_limits::CreateRateLimitRequest,
        crate::rate_limits::UpdateRateLimitRequest,
    )),
    tags(
        (name = "triggers", description = "Schedule, cancel and sync triggers (API key)."),
        (name = "auth", description = "Accounts and the session cookie."),
        (name = "dashboard", description = "Projects, API keys, jobs and executions."),
        (name = "rateLimits", description = "Per-tag rate-limit rules."),
        (name = "meta", description = "Health and this document."),
    )
)]
struct ApiDoc;

/// The whole document: `paths` with the schemas, the security schemes, the responses the
/// router's layers add to every route, and unique operation ids.
fn document(paths: Paths) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.paths = paths;
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        API_KEY_SCHEME.to_owned(),
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "ttr-api-key",
            "A project's API key; on dashboard routes it scopes the caller to that project.",
        ))),
    );
    components.security_schemes.insert(
        SESSION_SCHEME.to_owned(),
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "ttr_session",
            "The session cookie set by POST /auth/signup and POST /auth/login.",
        ))),
    );
    for item in doc.paths.paths.values_mut() {
        for (method, operation) in operations_mut(item) {
            add_layer_responses(operation);
            if method == "head" {
                // A HEAD answer has the headers of the GET one and no body.
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.content.clear();
                    }
                }
            }
        }
    }
    unique_operation_ids(&mut doc.paths);
    response_fields_required(&mut doc);
    doc
}

/// Every field of a response body is always present (`null` when empty, API.md): utoipa marks
/// `Option` fields optional, so every property of the schemas that responses use (directly or
/// nested) is made required.
fn response_fields_required(doc: &mut Document) {
    let mut pending = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            for response in operation.responses.responses.values() {
                if let Ok(value) = serde_json::to_value(response) {
                    schema_refs(&value, &mut pending);
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let mut done = std::collections::HashSet::new();
    while let Some(name) = pending.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let Some(RefOr::T(schema)) = components.schemas.get_mut(&name) else {
            continue;
        };
        if let Ok(value) = serde_json::to_value(&*schema) {
            schema_refs(&value, &mut pending);
        }
        if let Schema::Object(object) = schema {
            object.required = object.properties.keys().cloned().collect();
        }
    }
}

/// The component names of the `#/components/schemas/…` references in `value`.
fn schema_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", serde_json::Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => schema_refs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| schema_refs(v, out)),
        _ => {}
    }
}

/// The operations of a path item, with their lower-case method names.
pub(crate) fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// An error response: the `Error` body and the `ttr-error` header.
pub(crate) fn error_response(description: &str) -> DocResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ERROR_SCHEMA))),
        )
        .build()
}

/// What the layers of [`crate::router`] answer on any route: a 400 for an encoded NUL in the
/// path or query (when the handler documents no 400 of its own) and a 500 for a handler
/// panic. Every 4xx and 5xx response also gets the `ttr-error` header.
fn add_layer_responses(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    responses.entry("400".to_owned()).or_insert_with(|| {
        RefOr::T(error_response(
            "`BadRequest`: the path or query string holds an encoded NUL (`%00`).",
        ))
    });
    responses.entry("500".to_owned()).or_insert_with(|| {
        RefOr::T(error_response(
            "`InternalError`: a bug; the body carries a generic message, the cause is logged.",
        ))
    });
    for (status, response) in responses.iter_mut() {
        let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
        if let (true, RefOr::T(response)) = (is_error, response) {
            let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
            header.description =
                Some("The error message (printable ASCII, cut at 200 bytes).".into());
            response.headers.insert("ttr-error".to_owned(), header);
        }
    }
}

/// An operation mounted on several methods (`/schedule`, `/cancel`) gets one id per method:
/// `<id>_<method>`. OpenAPI wants operation ids unique across the document.
fn unique_operation_ids(paths: &mut Paths) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in paths.paths.values_mut() {
        for (method, operation) in operations_mut(item) {
            if let Some(id) = &mut operation.operation_id {
                if seen.get(id.as_str()).is_some_and(|n| *n > 1) {
                    *id = format!("{id}_{method}");
                }
            }
        }
    }
}

/// The schema of a count that may be unlimited: a whole number, or the string `"Infinity"`
/// (`monthQuota`, `monthQuotaRemaining`).
pub(crate) fn count_or_infinity() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["Infinity"])),
        )
        .description(Some("A whole number, or \"Infinity\" when unlimited."))
        .into()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API.",
            content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn openapi_json() -> Response {
    static JSON: OnceLock<Result<Bytes, String>> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        crate::openapi()
            .to_json()
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    });
    match json {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes.clone()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, APPLICATION_JSON);
            response
        }
        Err(e) => ApiError::new(
            ErrorTag::InternalError,
            format!("failed to serialise the OpenAPI document: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use timetriggers_core::{
        ExecutionStatus, GeneratorStatus, JobKind, JobStatus, SyncOperation, TriggeredBy,
        UpsertOperation,
    };
    use utoipa::PartialSchema;

    use super::*;

    /// The `enum` values of `T`'s schema.
    fn enum_values<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn wire<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| name(*v).to_owned()).collect()
    }

    #[test]
    fn schema_enums_are_the_wire_names() {
        use ErrorTag::*;
        let tags = [
            BadRequest,
            Unauthorized,
            QuotaExceeded,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            Gone,
            PayloadTooLarge,
            TooManyRequests,
            InternalError,
            Unavailable,
        ];
        assert_eq!(enum_values::<ErrorTag>(), wire(&tags, ErrorTag::as_str));
        use JobStatus as J;
        let jobs = [
            J::Registered,
            J::Queued,
            J::Running,
            J::Completed,
            J::Cancelled,
            J::Skipped,
        ];
        assert_eq!(enum_values::<JobStatus>(), wire(&jobs, JobStatus::as_str));
        use ExecutionStatus as E;
        let executions = [E::Planned, E::Started, E::Complete, E::Cancelled];
        assert_eq!(
            enum_values::<ExecutionStatus>(),
            wire(&executions, ExecutionStatus::as_str)
        );
        use TriggeredBy as T;
        let by = [T::Scheduler, T::Retry, T::Replay];
        assert_eq!(enum_values::<TriggeredBy>(), wire(&by, TriggeredBy::as_str));
        let kinds = [JobKind::Job, JobKind::Generator];
        assert_eq!(enum_values::<JobKind>(), wire(&kinds, JobKind::as_str));
        let generators = [GeneratorStatus::Active, GeneratorStatus::Cancelled];
        assert_eq!(
            enum_values::<GeneratorStatus>(),
            wire(&generators, GeneratorStatus::as_str)
        );
        let upserts = [UpsertOperation::Schedule, UpsertOperation::Reschedule];
        assert_eq!(
            enum_values::<UpsertOperation>(),
            wire(&upserts, UpsertOperation::as_str)
        );
        use SyncOperation as S;
        let syncs = [S::Unchanged, S::Added, S::Skipped, S::Updated, S::Cancelled];
        assert_eq!(
            enum_values::<SyncOperation>(),
            wire(&syncs, SyncOperation::as_str)
        );
    }

    #[test]
    fn operations_on_several_methods_get_one_id_each() {
        let doc = crate::openapi();
        let schedule = &doc.paths.paths["/schedule"];
        let ids: Vec<_> = [&schedule.get, &schedule.post, &schedule.head]
            .into_iter()
            .map(|op| op.as_ref().and_then(|op| op.operation_id.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                Some("schedule_get".to_owned()),
                Some("schedule_post".to_owned()),
                Some("schedule_head".to_owned())
            ]
        );
        let health = doc.paths.paths["/health"].get.as_ref().unwrap();
        assert_eq!(health.operation_id.as_deref(), Some("health"));
    }
}

//! [`router`]: the routes, the JSON 404 / 405 fallbacks, and the few layers every route gets.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::header::CONTENT_TYPE;
use http::Method;
use tower_http::catch_panic::CatchPanicLayer;

use crate::cron::{__path_cron_next, cron_next};
use crate::dashboard::OkResponse;
use crate::error::{panic_response, ApiError, ErrorBody, ErrorTag, APPLICATION_JSON};
use crate::openapi::{__path_openapi_json, openapi_json, Api};
use crate::state::AppState;
use crate::sync::{__path_bulk, __path_declare, bulk, declare};
use crate::triggers::{__path_cancel, __path_schedule, cancel, schedule};

/// The router of the TimeTriggers API, with `state` applied.
///
/// It mounts every documented route (see the crate's route table), including
/// `GET /openapi.json`, the OpenAPI document of them all. Unknown routes answer a JSON 404 and
/// known routes a JSON 405 for other methods; a handler panic answers a JSON 500. Nest it
/// under any prefix and add your own layers around it.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let routes = api().into_router().with_state(Arc::new(state));
    with_contract_layers(routes, limit)
}

/// The OpenAPI 3.1 document of the routes [`router`] mounts, as `GET /openapi.json` serves it.
///
/// The paths are relative to where the router is mounted; an application nesting it under a
/// prefix can nest the document the same way (`utoipa::openapi::OpenApi::nest`) to merge it
/// into its own.
///
/// ```
/// let doc = timetriggers_http::openapi();
/// assert!(doc.paths.paths.contains_key("/schedule"));
/// let json = doc.to_json().unwrap();
/// assert!(json.starts_with(r#"{"openapi":"3.1.0""#));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_document()
}

/// Every route, each mounted with its documentation. Add routes only through [`Api::route`]
/// (here or in a module's `api()`): a route mounted with `Router::route` would be served
/// undocumented, and no test could see it.
fn api() -> Api {
    Api::new("triggers")
        .route::<__path_schedule, _, _>(schedule)
        .route::<__path_cancel, _, _>(cancel)
        .route::<__path_declare, _, _>(declare)
        .route::<__path_bulk, _, _>(bulk)
        .route::<__path_cron_next, _, _>(cron_next)
        .merge(crate::dashboard::api())
        .merge(crate::rate_limits::api())
        .merge(
            Api::new("meta")
                .route::<__path_health, _, _>(health)
                .route::<__path_openapi_json, _, _>(openapi_json),
        )
}

/// The JSON fallbacks, the body limit for [`crate::ApiJson`] and the panic guard. Kept apart
/// from [`router`] so unit tests can put the same dressing on their own routes.
pub(crate) fn with_contract_layers(routes: Router, max_body_bytes: usize) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refuse_nul_in_uri))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// 400 for a path or query string carrying an encoded NUL (`%00`): no id, key or filter may
/// contain one (PostgreSQL refuses them in text), so it is refused for every backend.
async fn refuse_nul_in_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    let has_nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::bad_request("ids, keys and query values must not contain NUL (%00)")
            .into_response();
    }
    next.run(request).await
}

const HEALTHY: &[u8] = br#"{"ok":true}"#;

/// Whether the server can reach its store.
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "The store is reachable.", body = OkResponse),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
async fn health(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.service.health().await?;
    let mut response = Response::new(Body::from(HEALTHY));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON);
    Ok(response)
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    ApiError::new(
        ErrorTag::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    ApiError::new(
        ErrorTag::MethodNotAllowed,
        format!("method {method} is not allowed on {}", uri.path()),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::extract::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::error::TTR_ERROR;

    async fn boom() -> &'static str {
        panic!("the handler blew up")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let app = with_contract_layers(Router::new().route("/boom", get(boom)), 1024);
        let res = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 500);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(res.headers()[TTR_ERROR], "internal server error");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"_tag": "InternalError", "message": "internal server error"})
        );
    }

    #[tokio::test]
    async fn fallbacks_name_the_method_and_path() {
        let app = with_contract_layers(Router::new().route("/x", get(|| async { "x" })), 1024);
        let res = app
            .clone()
            .oneshot(Request::get("/nope?q=1").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()[TTR_ERROR], "no route for GET /nope");
        let res = app
            .oneshot(Request::delete("/x").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(
            res.headers()[TTR_ERROR],
            "method DELETE is not allowed on /x"
        );
        assert_eq!(res.headers()[http::header::ALLOW], "GET,HEAD");
    }
}

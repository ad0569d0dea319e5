//! `/health`, the JSON 404 / 405 fallbacks, and nesting under a prefix.

use axum::body::Body;
use http::{Method, Request};
use timetriggers_http::{router, AppState, HttpConfig};
use tower::ServiceExt;

use crate::common::{Harness, TARGET};

fn empty(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn health_is_ok_json() {
    let h = Harness::new().await;
    let reply = h.send(empty(Method::GET, "/health")).await;
    assert_eq!(reply.ok_json(), serde_json::json!({"ok": true}));
    let reply = h.send(empty(Method::HEAD, "/health")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let h = Harness::new().await;
    for (method, uri) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/schedule/extra"),
        (Method::DELETE, "/jobs/123/nope"),
        (Method::GET, "/health?verbose=1&x"),
    ] {
        let reply = h.send(empty(method.clone(), uri)).await;
        if uri.starts_with("/health") {
            reply.ok_json();
            continue;
        }
        let message = reply.error(404, "NotFound");
        assert!(message.contains(method.as_str()), "{message}");
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let h = Harness::new().await;
    for (method, uri, allow) in [
        (Method::PUT, "/health", "GET,HEAD"),
        (Method::POST, "/health", "GET,HEAD"),
        (Method::PUT, "/cancel", "DELETE,GET,HEAD,POST"),
        (Method::PATCH, "/cancel", "DELETE,GET,HEAD,POST"),
        (Method::OPTIONS, "/schedule", ""),
    ] {
        let reply = h.send(empty(method.clone(), uri)).await;
        let message = reply.error(405, "MethodNotAllowed");
        assert!(
            message.contains(method.as_str()) && message.contains(uri),
            "{message}"
        );
        if !allow.is_empty() {
            let mut got: Vec<&str> = reply.header("allow").unwrap().split(',').collect();
            got.sort_unstable();
            assert_eq!(got.join(","), allow);
        }
    }
}

#[tokio::test]
async fn the_router_nests_under_a_prefix() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let app = axum::Router::new().nest(
        "/triggers",
        router(AppState::new(h.service.clone(), HttpConfig::default())),
    );
    let res = app
        .clone()
        .oneshot(empty(Method::GET, "/triggers/health"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let req = Request::post("/triggers/schedule")
        .header("ttr-api-key", &t.key)
        .header("ttr-url", TARGET)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("ttr-trigger-id"));

    let res = app
        .clone()
        .oneshot(empty(Method::GET, "/triggers/nope"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.headers()["ttr-error"],
        "no route for GET /triggers/nope"
    );

    let res = app
        .oneshot(empty(Method::PUT, "/triggers/health"))
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn an_unreachable_store_is_503_with_a_generic_message() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    h.sqlite.close().await;

    let reply = h.send(empty(Method::GET, "/health")).await;
    let message = reply.error(503, "Unavailable");
    assert_eq!(
        message,
        "the service is temporarily unavailable; retry later"
    );

    let req = Request::post("/schedule")
        .header("ttr-api-key", &t.key)
        .header("ttr-url", TARGET)
        .body(Body::empty())
        .unwrap();
    let message = h.send(req).await.error(503, "Unavailable");
    assert!(!message.contains("store"), "{message}");

    let req = Request::delete("/cancel")
        .header("ttr-api-key", &t.key)
        .header("ttr-custom-key", "k")
        .body(Body::empty())
        .unwrap();
    h.send(req).await.error(503, "Unavailable");

    // Decoding still comes first.
    let req = Request::post("/schedule")
        .header("ttr-url", TARGET)
        .body(Body::empty())
        .unwrap();
    h.send(req).await.error(400, "BadRequest");
}

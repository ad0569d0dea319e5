//! NUL characters never reach a store (PostgreSQL refuses them in text): every way in is a 400.

use axum::body::Body;
use http::{Method, Request};

use crate::common::{Harness, TARGET};

#[tokio::test]
async fn nul_characters_in_paths_queries_and_json_bodies_are_400() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for uri in [
        "/jobs?customKey=a%00b",
        "/jobs?id=%00",
        "/executions?jobId=job%00x",
        "/jobs/job%00x/executions",
        "/cron/next?expression=*+*+*+*+*&timezone=UTC%00",
    ] {
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header("ttr-api-key", &t.key)
            .body(Body::empty())
            .unwrap();
        let message = h.send(req).await.error(400, "BadRequest");
        assert!(message.contains("NUL"), "{uri}: {message}");
    }
    for (path, body) in [
        (
            "/declare",
            format!(r#"[{{"url": "{TARGET}", "title": "a\u0000b"}}]"#),
        ),
        ("/bulk", r#"{"cancels": ["k\u0000"]}"#.to_owned()),
        ("/keys", r#"{"name": "key\u0000"}"#.to_owned()),
        (
            "/rate-limits",
            r#"{"tag": "t\u0000", "maxPerSecond": 1}"#.to_owned(),
        ),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("ttr-api-key", &t.key)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let message = h.send(req).await.error(400, "BadRequest");
        assert!(message.contains("NUL"), "{path} {body}: {message}");
    }
    // An escaped backslash followed by "u0000" is ordinary text.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/declare")
        .header("ttr-api-key", &t.key)
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"[{{"url": "{TARGET}", "title": "a\\u0000b"}}]"#
        )))
        .unwrap();
    h.send(req).await.ok_json();
}

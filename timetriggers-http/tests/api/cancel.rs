//! `/cancel`: 204, 400, 401, 404 and 410, for each accepted method.

use std::time::Duration;

use http::Method;
use timetriggers_core::{Claim, JobId, JobStatus};

use crate::common::Harness;

#[tokio::test]
async fn cancel_by_id_is_204_then_410() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for method in [Method::DELETE, Method::GET, Method::POST] {
        let job = h
            .schedule_ok(&t.key, &[("ttr-scheduled-at", "2026-12-01T00:00:00Z")])
            .await;
        let id = job["triggerId"].as_str().unwrap();
        let headers = [("ttr-api-key", t.key.as_str()), ("ttr-trigger-id", id)];
        let reply = h.cancel(method.clone(), &headers).await;
        assert_eq!(reply.status, 204, "{method}: {:?}", reply.body);
        assert!(reply.body.is_empty());
        assert!(reply.header("ttr-error").is_none());
        let stored = h
            .service
            .get_job(&t.project, &JobId::new(id))
            .await
            .unwrap();
        assert_eq!(stored.status, JobStatus::Cancelled);
        assert!(stored.cancelled_at.is_some());

        let message = h.cancel(method, &headers).await.error(410, "Gone");
        assert!(message.contains(id), "{message}");
    }
}

#[tokio::test]
async fn cancel_by_custom_key_is_204_and_releases_the_key() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let job = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-custom-key", "nightly"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
        )
        .await;
    let id = job["triggerId"].as_str().unwrap();
    let headers = [
        ("ttr-api-key", t.key.as_str()),
        ("ttr-custom-key", "nightly"),
    ];
    assert_eq!(h.cancel(Method::DELETE, &headers).await.status, 204);
    // The key is released: no live item holds it any more.
    h.cancel(Method::DELETE, &headers)
        .await
        .error(404, "NotFound");
    // The job itself is gone.
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &t.key), ("ttr-trigger-id", id)],
    )
    .await
    .error(410, "Gone");
    // And the key can be used again: a new job.
    let again = h
        .schedule_ok(&t.key, &[("ttr-custom-key", "nightly")])
        .await;
    assert_eq!(again["operation"], "schedule");
    assert_ne!(again["triggerId"], id);
}

#[tokio::test]
async fn cancelling_a_running_job_is_410() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let job = h.schedule_ok(&t.key, &[("ttr-custom-key", "busy")]).await;
    let id = job["triggerId"].as_str().unwrap();
    let claimed = h
        .store
        .claim_due(Claim {
            now: h.service.now(),
            due_by: h.service.now(),
            limit: 10,
            lease_margin: Duration::from_secs(60),
            worker: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    for headers in [
        [("ttr-api-key", t.key.as_str()), ("ttr-custom-key", "busy")],
        [("ttr-api-key", t.key.as_str()), ("ttr-trigger-id", id)],
    ] {
        h.cancel(Method::DELETE, &headers).await.error(410, "Gone");
    }
}

#[tokio::test]
async fn decode_errors_are_400_before_the_key_is_checked() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let job = h.schedule_ok(&t.key, &[("ttr-custom-key", "k1")]).await;
    let id = job["triggerId"].as_str().unwrap();

    let both = h
        .cancel(
            Method::DELETE,
            &[
                ("ttr-api-key", &t.key),
                ("ttr-trigger-id", id),
                ("ttr-custom-key", "k1"),
            ],
        )
        .await
        .error(400, "BadRequest");
    assert!(both.contains("ttr-trigger-id") && both.contains("ttr-custom-key"));

    let neither = h
        .cancel(Method::DELETE, &[("ttr-api-key", &t.key)])
        .await
        .error(400, "BadRequest");
    assert!(neither.contains("ttr-trigger-id") && neither.contains("ttr-custom-key"));

    // Blank values count as absent.
    h.cancel(
        Method::DELETE,
        &[
            ("ttr-api-key", &t.key),
            ("ttr-trigger-id", " "),
            ("ttr-custom-key", ""),
        ],
    )
    .await
    .error(400, "BadRequest");

    let missing = h
        .cancel(Method::DELETE, &[("ttr-trigger-id", id)])
        .await
        .error(400, "BadRequest");
    assert!(missing.contains("ttr-api-key"), "{missing}");

    // An unknown key with a decode error is still 400; a well-formed request is 401.
    h.cancel(Method::DELETE, &[("ttr-api-key", "bad")])
        .await
        .error(400, "BadRequest");
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", "bad"), ("ttr-trigger-id", id)],
    )
    .await
    .error(401, "Unauthorized");

    // Nothing was cancelled along the way.
    let stored = h
        .service
        .get_job(&t.project, &JobId::new(id))
        .await
        .unwrap();
    assert_eq!(stored.status, JobStatus::Registered);
}

#[tokio::test]
async fn unknown_and_foreign_triggers_are_404() {
    let h = Harness::new().await;
    let a = h.tenant("alpha").await;
    let b = h.tenant("bravo").await;
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &a.key), ("ttr-trigger-id", "job_nope")],
    )
    .await
    .error(404, "NotFound");
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &a.key), ("ttr-custom-key", "nope")],
    )
    .await
    .error(404, "NotFound");

    let theirs = h.schedule_ok(&b.key, &[("ttr-custom-key", "shared")]).await;
    let id = theirs["triggerId"].as_str().unwrap();
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &a.key), ("ttr-trigger-id", id)],
    )
    .await
    .error(404, "NotFound");
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &a.key), ("ttr-custom-key", "shared")],
    )
    .await
    .error(404, "NotFound");
    let stored = h
        .service
        .get_job(&b.project, &JobId::new(id))
        .await
        .unwrap();
    assert_eq!(stored.status, JobStatus::Registered);
}

#[tokio::test]
async fn hostile_cancel_headers_are_client_errors() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let huge = "y".repeat(128 * 1024);
    for value in [&b"\xff\xfe"[..], huge.as_bytes(), b"tab\tchar"] {
        for name in ["ttr-trigger-id", "ttr-custom-key"] {
            let req = http::Request::delete("/cancel")
                .header("ttr-api-key", &t.key)
                .header(name, http::HeaderValue::from_bytes(value).unwrap())
                .body(axum::body::Body::empty())
                .unwrap();
            h.send(req).await.error(404, "NotFound");
        }
    }
}

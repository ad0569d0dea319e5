//! `/schedule`: every status of the contract, the order of checks, and what is stored.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request};
use timetriggers_core::{Claim, JobId, JobStatus, MonthQuota};
use timetriggers_http::HttpConfig;

use crate::common::{Harness, NOW, TARGET};

#[tokio::test]
async fn schedule_answers_the_result_in_body_and_headers() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let reply = h
        .schedule(Method::POST, Some(&t.key), &[("ttr-url", TARGET)], b"")
        .await;
    let body = reply.ok_json();
    let id = body["triggerId"].as_str().unwrap();
    assert!(id.starts_with(JobId::PREFIX), "{id}");
    assert_eq!(
        body,
        serde_json::json!({
            "triggerId": id,
            "scheduledAt": NOW,
            "operation": "schedule",
            "kind": "job",
            "monthQuotaRemaining": "Infinity",
        })
    );
    assert_eq!(reply.header("ttr-trigger-id"), Some(id));
    assert_eq!(reply.header("ttr-scheduled-at"), Some(NOW));
    assert!(reply.header("ttr-month-quota-remaining").is_none());

    // An explicit time with an offset comes back in UTC with milliseconds.
    let reply = h
        .schedule(
            Method::GET,
            Some(&t.key),
            &[
                ("ttr-url", TARGET),
                ("ttr-scheduled-at", "2026-12-01T10:00:00+01:00"),
            ],
            b"",
        )
        .await;
    let body = reply.ok_json();
    assert_eq!(body["scheduledAt"], "2026-12-01T09:00:00.000Z");
    assert_eq!(
        reply.header("ttr-scheduled-at"),
        Some("2026-12-01T09:00:00.000Z")
    );
    let job = h
        .service
        .get_job(&t.project, &JobId::new(body["triggerId"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Registered);
    assert_eq!(job.request.method, "GET");
    assert_eq!(job.scheduled_at.to_rfc3339(), "2026-12-01T09:00:00.000Z");
}

#[tokio::test]
async fn the_stored_job_has_the_forwarded_headers_and_the_exact_body() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let body: &[u8] = b"\x00\xff\xfe binary \r\n\x7f";
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/schedule")
        .header("ttr-api-key", &t.key)
        .header("ttr-url", TARGET)
        .header("ttr-title", "  nightly report ")
        .header("ttr-tags", "billing, eu,billing")
        .header("ttr-unknown-extension", "ignored")
        .header("content-type", "application/octet-stream")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header("authorization", "Bearer t0ken")
        .header("x-bin", &b"a\xffb"[..])
        .header("host", "scheduler.example")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("upgrade", "h2c")
        .header("expect", "100-continue")
        .header("forwarded", "for=1.2.3.4")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "1.2.3.4")
        .header("via", "1.1 proxy")
        .header("proxy-authorization", "Basic x")
        .header("content-length", body.len().to_string())
        .body(Body::from(body.to_vec()))
        .unwrap();
    let reply = h.send(req).await;
    let id = JobId::new(reply.ok_json()["triggerId"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &id).await.unwrap();
    assert_eq!(job.request.method, "PUT");
    assert_eq!(job.request.url, TARGET);
    assert_eq!(job.request.body, Bytes::from_static(body));
    let headers: Vec<(&str, &str)> = job
        .request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("content-type", "application/octet-stream"),
            ("x-custom", "one"),
            ("x-custom", "two"),
            ("authorization", "Bearer t0ken"),
            ("x-bin", "a\u{fffd}b"),
        ]
    );
    assert_eq!(job.title.as_deref(), Some("nightly report"));
    assert_eq!(job.tags, ["billing", "eu"]);
}

#[tokio::test]
async fn reschedule_by_custom_key_and_by_id_keeps_the_id() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let first = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-custom-key", "nightly"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
        )
        .await;
    let id = first["triggerId"].as_str().unwrap().to_owned();
    assert_eq!(first["operation"], "schedule");

    let again = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[
                ("ttr-url", "https://example.com/v2"),
                ("ttr-custom-key", "nightly"),
                ("ttr-scheduled-at", "2026-12-02T00:00:00Z"),
            ],
            b"v2",
        )
        .await;
    let body = again.ok_json();
    assert_eq!(body["triggerId"], id.as_str());
    assert_eq!(body["operation"], "reschedule");
    assert_eq!(body["kind"], "job");
    assert_eq!(body["scheduledAt"], "2026-12-02T00:00:00.000Z");
    assert_eq!(again.header("ttr-trigger-id"), Some(id.as_str()));
    let job = h
        .service
        .get_job(&t.project, &JobId::new(&*id))
        .await
        .unwrap();
    assert_eq!(job.request.url, "https://example.com/v2");
    assert_eq!(&job.request.body[..], b"v2");

    let by_id = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-trigger-id", &id),
                ("ttr-scheduled-at", "2026-12-03T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(by_id["triggerId"], id.as_str());
    assert_eq!(by_id["operation"], "reschedule");
    assert_eq!(by_id["scheduledAt"], "2026-12-03T00:00:00.000Z");
}

#[tokio::test]
async fn head_gets_the_result_headers_without_a_body() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let reply = h
        .schedule(
            Method::HEAD,
            Some(&t.key),
            &[
                ("ttr-url", TARGET),
                ("ttr-scheduled-at", "2026-12-01T08:00:00Z"),
            ],
            b"",
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    let id = reply.header("ttr-trigger-id").unwrap();
    assert!(id.starts_with(JobId::PREFIX));
    assert_eq!(
        reply.header("ttr-scheduled-at"),
        Some("2026-12-01T08:00:00.000Z")
    );
    let job = h
        .service
        .get_job(&t.project, &JobId::new(id))
        .await
        .unwrap();
    assert_eq!(job.request.method, "HEAD");

    // Errors on HEAD still carry ttr-error.
    let reply = h
        .schedule(Method::HEAD, Some("nope"), &[("ttr-url", TARGET)], b"")
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("ttr-error"), Some("invalid API key"));
}

#[tokio::test]
async fn missing_required_headers_are_400_naming_the_header() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let reply = h
        .schedule(Method::POST, None, &[("ttr-url", TARGET)], b"")
        .await;
    let message = reply.error(400, "BadRequest");
    assert!(message.contains("ttr-api-key"), "{message}");

    let reply = h.schedule(Method::POST, Some(&t.key), &[], b"").await;
    let message = reply.error(400, "BadRequest");
    assert!(message.contains("ttr-url"), "{message}");

    // Blank counts as missing.
    let reply = h
        .schedule(Method::POST, Some(&t.key), &[("ttr-url", "  ")], b"")
        .await;
    assert!(reply.error(400, "BadRequest").contains("ttr-url"));

    // Decoding comes before authentication.
    let reply = h.schedule(Method::POST, Some("unknown"), &[], b"").await;
    assert!(reply.error(400, "BadRequest").contains("ttr-url"));
}

#[tokio::test]
async fn unknown_keys_are_401_before_values_are_checked() {
    let h = Harness::new().await;
    h.tenant("acme").await;
    let reply = h
        .schedule(
            Method::POST,
            Some("ttr_unknown"),
            &[("ttr-url", TARGET)],
            b"",
        )
        .await;
    assert_eq!(reply.error(401, "Unauthorized"), "invalid API key");

    for (name, value) in [
        ("ttr-url", "not a url"),
        ("ttr-scheduled-at", "whenever"),
        ("ttr-max-attempts", "99"),
    ] {
        let mut headers = vec![("ttr-url", TARGET)];
        if name == "ttr-url" {
            headers.clear();
        }
        headers.push((name, value));
        let reply = h
            .schedule(Method::POST, Some("ttr_unknown"), &headers, b"")
            .await;
        reply.error(401, "Unauthorized");
    }
}

#[tokio::test]
async fn invalid_values_are_400_naming_the_problem() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let many_tags = (0..21)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let long_key = "k".repeat(257);
    let cases: Vec<(&str, &str, &str)> = vec![
        ("ttr-url", "not a url", "ttr-url"),
        ("ttr-url", "/relative/path", "ttr-url"),
        ("ttr-url", "ftp://example.com/file", "scheme"),
        ("ttr-url", "javascript:alert(1)", "ttr-url"),
        ("ttr-scheduled-at", "next tuesday-ish", "ttr-scheduled-at"),
        (
            "ttr-scheduled-at",
            "2026-13-45T99:00:00Z",
            "ttr-scheduled-at",
        ),
        ("ttr-tags", "ok,bad tag!", "tag"),
        ("ttr-tags", "[1,2]", "ttr-tags"),
        ("ttr-tags", &many_tags, "tags"),
        ("ttr-custom-key", &long_key, "ttr-custom-key"),
        ("ttr-run-missed", "maybe", "ttr-run-missed"),
        ("ttr-max-attempts", "11", "ttr-max-attempts"),
        ("ttr-max-attempts", "0", "ttr-max-attempts"),
        ("ttr-max-attempts", "2.5", "ttr-max-attempts"),
        ("ttr-timeout", "0", "ttr-timeout"),
        ("ttr-timeout", "301", "ttr-timeout"),
        ("ttr-timeout", "NaN", "ttr-timeout"),
        ("ttr-timezone", "Mars/Olympus_Mons", "ttr-timezone"),
    ];
    for (name, value, needle) in cases {
        let mut headers = vec![("ttr-url", TARGET)];
        if name == "ttr-url" {
            headers.clear();
        }
        headers.push((name, value));
        let reply = h.schedule(Method::POST, Some(&t.key), &headers, b"").await;
        let message = reply.error(400, "BadRequest");
        assert!(
            message.contains(needle),
            "{name}: {value:?} -> {message:?} should mention {needle}"
        );
    }
    // The limits themselves are accepted.
    let twenty = (0..20)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let key = "k".repeat(256);
    h.schedule_ok(
        &t.key,
        &[
            ("ttr-tags", &twenty),
            ("ttr-custom-key", &key),
            ("ttr-max-attempts", "10"),
            ("ttr-timeout", "300"),
            ("ttr-run-missed", "No"),
            ("ttr-timezone", "Europe/Paris"),
        ],
    )
    .await;
}

#[tokio::test]
async fn quota_is_counted_down_then_402_which_beats_404() {
    let h = Harness::with(MonthQuota::Limited(1), HttpConfig::default()).await;
    let t = h.tenant("small").await;
    let reply = h
        .schedule(Method::POST, Some(&t.key), &[("ttr-url", TARGET)], b"")
        .await;
    let body = reply.ok_json();
    assert_eq!(body["monthQuotaRemaining"], 0);
    assert!(body["monthQuotaRemaining"].is_u64());
    assert_eq!(reply.header("ttr-month-quota-remaining"), Some("0"));

    let reply = h
        .schedule(Method::POST, Some(&t.key), &[("ttr-url", TARGET)], b"")
        .await;
    reply.error(402, "QuotaExceeded");

    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET), ("ttr-trigger-id", "job_doesnotexist")],
            b"",
        )
        .await;
    reply.error(402, "QuotaExceeded");

    // 401 and invalid values still come first.
    let reply = h
        .schedule(Method::POST, Some("bad"), &[("ttr-url", TARGET)], b"")
        .await;
    reply.error(401, "Unauthorized");
    let reply = h
        .schedule(Method::POST, Some(&t.key), &[("ttr-url", "ftp://x")], b"")
        .await;
    reply.error(400, "BadRequest");
}

#[tokio::test]
async fn quota_counts_down_across_calls() {
    let h = Harness::with(MonthQuota::Limited(3), HttpConfig::default()).await;
    let t = h.tenant("small").await;
    for left in [2_u64, 1, 0] {
        let reply = h
            .schedule(Method::POST, Some(&t.key), &[("ttr-url", TARGET)], b"")
            .await;
        assert_eq!(reply.ok_json()["monthQuotaRemaining"], left);
        assert_eq!(
            reply.header("ttr-month-quota-remaining"),
            Some(left.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn unknown_ids_and_other_projects_ids_are_404() {
    let h = Harness::new().await;
    let a = h.tenant("alpha").await;
    let b = h.tenant("bravo").await;
    let reply = h
        .schedule(
            Method::POST,
            Some(&a.key),
            &[("ttr-url", TARGET), ("ttr-trigger-id", "job_doesnotexist")],
            b"",
        )
        .await;
    let message = reply.error(404, "NotFound");
    assert!(message.contains("job_doesnotexist"), "{message}");

    let theirs = h.schedule_ok(&b.key, &[]).await;
    let id = theirs["triggerId"].as_str().unwrap();
    let reply = h
        .schedule(
            Method::POST,
            Some(&a.key),
            &[("ttr-url", TARGET), ("ttr-trigger-id", id)],
            b"",
        )
        .await;
    reply.error(404, "NotFound");
    // Untouched.
    let job = h
        .service
        .get_job(&b.project, &JobId::new(id))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Registered);
}

#[tokio::test]
async fn rescheduling_a_cancelled_or_running_job_is_410() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;

    // Cancelled, by id.
    let job = h
        .schedule_ok(&t.key, &[("ttr-scheduled-at", "2026-12-01T00:00:00Z")])
        .await;
    let id = job["triggerId"].as_str().unwrap();
    let reply = h
        .cancel(
            Method::DELETE,
            &[("ttr-api-key", &t.key), ("ttr-trigger-id", id)],
        )
        .await;
    assert_eq!(reply.status, 204);
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET), ("ttr-trigger-id", id)],
            b"",
        )
        .await;
    reply.error(410, "Gone");

    // Running, by custom key and by id.
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
    assert_eq!(claimed[0].job_id.as_str(), id);
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET), ("ttr-custom-key", "busy")],
            b"",
        )
        .await;
    reply.error(410, "Gone");
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET), ("ttr-trigger-id", id)],
            b"",
        )
        .await;
    reply.error(410, "Gone");
    let job = h
        .service
        .get_job(&t.project, &JobId::new(id))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Running);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_at_the_limit_accepted() {
    let h = Harness::with(
        MonthQuota::Unlimited,
        HttpConfig {
            max_body_bytes: 16,
            ..HttpConfig::default()
        },
    )
    .await;
    let t = h.tenant("acme").await;

    // Exactly at the limit, with and without content-length.
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET)],
            &[b'x'; 16],
        )
        .await;
    let id = JobId::new(reply.ok_json()["triggerId"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &id).await.unwrap();
    assert_eq!(job.request.body.len(), 16);
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET), ("content-length", "16")],
            &[b'x'; 16],
        )
        .await;
    reply.ok_json();

    // Declared too large: refused up front, whatever the key.
    for key in [Some(t.key.as_str()), Some("bad"), None] {
        let req = Request::post("/schedule")
            .header("ttr-url", TARGET)
            .header("content-length", "17");
        let req = match key {
            Some(k) => req.header("ttr-api-key", k),
            None => req,
        };
        let reply = h.send(req.body(Body::from(vec![b'x'; 17])).unwrap()).await;
        let message = reply.error(413, "PayloadTooLarge");
        assert!(message.contains("16"), "{message}");
    }

    // No content-length: enforced while reading, also for a chunked stream.
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET)],
            &[b'x'; 17],
        )
        .await;
    reply.error(413, "PayloadTooLarge");
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..5).map(|_| Ok(Bytes::from_static(b"abcd"))).collect();
    let req = Request::post("/schedule")
        .header("ttr-api-key", &t.key)
        .header("ttr-url", TARGET)
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    h.send(req).await.error(413, "PayloadTooLarge");

    // A chunked body within the limit is stored whole.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..4).map(|i| Ok(Bytes::from(vec![b'a' + i; 4]))).collect();
    let req = Request::post("/schedule")
        .header("ttr-api-key", &t.key)
        .header("ttr-url", TARGET)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let reply = h.send(req).await;
    let id = JobId::new(reply.ok_json()["triggerId"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &id).await.unwrap();
    assert_eq!(&job.request.body[..], b"aaaabbbbccccdddd");
}

#[tokio::test]
async fn the_default_limit_is_one_mebibyte() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET)],
            &vec![0_u8; 1024 * 1024],
        )
        .await;
    reply.ok_json();
    let reply = h
        .schedule(
            Method::POST,
            Some(&t.key),
            &[("ttr-url", TARGET)],
            &vec![0_u8; 1024 * 1024 + 1],
        )
        .await;
    reply.error(413, "PayloadTooLarge");
}

#[tokio::test]
async fn hostile_header_values_never_cause_a_server_error() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let huge = "x".repeat(256 * 1024);
    let huge_url = format!("https://example.com/{huge}");
    let names = [
        "ttr-url",
        "ttr-scheduled-at",
        "ttr-trigger-id",
        "ttr-custom-key",
        "ttr-title",
        "ttr-tags",
        "ttr-run-missed",
        "ttr-timezone",
        "ttr-max-attempts",
        "ttr-timeout",
        "x-forwarded-header",
    ];
    let values: Vec<Vec<u8>> = vec![
        b"\xff\xfe\xfd".to_vec(),
        b"caf\xe9 \x80\x81".to_vec(),
        huge.as_bytes().to_vec(),
        huge_url.as_bytes().to_vec(),
        b"tab\there".to_vec(),
        br#"["a\u0000b", "\u001b[31m"]"#.to_vec(),
        "émoji ☃ 💥".as_bytes().to_vec(),
        b"now | add 99999999999999999999years".to_vec(),
        b"2026-11-22T09:30:00Z | add -9999999999d".to_vec(),
        b"@every".to_vec(),
        b"99999999999".to_vec(),
        b"-1".to_vec(),
        b"\"".to_vec(),
    ];
    for name in names {
        for value in &values {
            let mut req = Request::post("/schedule").header("ttr-api-key", &t.key);
            if name != "ttr-url" {
                req = req.header("ttr-url", TARGET);
            }
            let req = req
                .header(name, http::HeaderValue::from_bytes(value).unwrap())
                .body(Body::empty())
                .unwrap();
            let reply = h.send(req).await;
            assert!(
                reply.status.is_success() || reply.status.is_client_error(),
                "{name}: {:?} -> {}",
                String::from_utf8_lossy(&value[..value.len().min(80)]),
                reply.status
            );
            if reply.status.is_client_error() {
                let v = reply.json();
                reply.any_error(v["_tag"].as_str().unwrap());
            }
        }
    }
    // Hostile keys are a plain 401.
    for value in &values {
        let req = Request::post("/schedule")
            .header("ttr-api-key", http::HeaderValue::from_bytes(value).unwrap())
            .header("ttr-url", TARGET)
            .body(Body::empty())
            .unwrap();
        h.send(req).await.error(401, "Unauthorized");
    }
}

#[tokio::test]
async fn every_schedule_method_is_served_and_stored() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let reply = h
            .schedule(method.clone(), Some(&t.key), &[("ttr-url", TARGET)], b"")
            .await;
        let id = JobId::new(reply.ok_json()["triggerId"].as_str().unwrap());
        let job = h.service.get_job(&t.project, &id).await.unwrap();
        assert_eq!(job.request.method, method.as_str());
    }
    for method in [Method::OPTIONS, Method::TRACE] {
        let reply = h
            .schedule(method, Some(&t.key), &[("ttr-url", TARGET)], b"")
            .await;
        reply.error(405, "MethodNotAllowed");
    }
}

#[tokio::test]
async fn times_are_read_on_the_service_clock() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    h.clock.advance(Duration::from_secs(3600));
    let body = h.schedule_ok(&t.key, &[]).await;
    assert_eq!(body["scheduledAt"], "2026-11-22T10:30:00.000Z");
    let body = h
        .schedule_ok(&t.key, &[("ttr-scheduled-at", "now | add 30m")])
        .await;
    assert_eq!(body["scheduledAt"], "2026-11-22T11:00:00.000Z");

    // A past time with ttr-run-missed false is recorded, not run.
    let body = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-scheduled-at", "2026-11-01T00:00:00Z"),
                ("ttr-run-missed", "false"),
            ],
        )
        .await;
    let id = JobId::new(body["triggerId"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &id).await.unwrap();
    assert_eq!(job.status, JobStatus::Skipped);
}

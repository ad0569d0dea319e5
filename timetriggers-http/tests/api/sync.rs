//! `POST /declare` and `POST /bulk` through the router.

use axum::body::Body;
use http::{Method, Request};
use serde_json::{json, Value};
use timetriggers_core::{JobId, JobStatus, MonthQuota};
use timetriggers_http::HttpConfig;

use crate::common::{Harness, Reply, TARGET};

async fn post(h: &Harness, path: &str, key: Option<&str>, body: &str) -> Reply {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("ttr-api-key", key);
    }
    h.send(req.body(Body::from(body.to_owned())).unwrap()).await
}

fn ops(v: &Value) -> Vec<&str> {
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operation"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn declare_adds_then_reports_unchanged_then_cancels() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let set = json!([
        {"customKey": "a", "url": TARGET, "scheduledAt": "2026-12-01T00:00:00Z", "method": "POST",
         "headers": {"X-Thing": "1"}, "body": {"_tag": "text", "value": "hello"}, "tags": ["x"]},
        {"customKey": "b", "url": TARGET, "scheduledAt": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        {"url": TARGET, "scheduledAt": "2026-12-02T00:00:00Z", "body": {"k": [1, 2]}}
    ]);
    let v = post(&h, "/declare", Some(&t.key), &set.to_string())
        .await
        .ok_json();
    assert_eq!(
        v["summary"],
        json!({"unchanged": 0, "added": 3, "skipped": 0, "updated": 0, "cancelled": 0})
    );
    assert_eq!(ops(&v), ["added", "added", "added"]);
    let first = &v["operations"][0];
    assert_eq!(first["customKey"], "a");
    assert_eq!(first["kind"], "job");
    assert!(first["changedFields"].is_null());
    assert_eq!(v["operations"][1]["kind"], "generator");
    assert!(v["operations"][2]["customKey"].is_null());

    let a = JobId::new(first["id"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &a).await.unwrap();
    assert_eq!(job.request.method, "POST");
    assert_eq!(job.request.body.as_ref(), b"hello");
    assert!(job
        .request
        .headers
        .contains(&("x-thing".into(), "1".into())));
    let c = JobId::new(v["operations"][2]["id"].as_str().unwrap());
    let job = h.service.get_job(&t.project, &c).await.unwrap();
    assert_eq!(job.request.body.as_ref(), br#"{"k":[1,2]}"#);
    assert!(job
        .request
        .headers
        .contains(&("content-type".into(), "application/json".into())));

    let v = post(
        &h,
        "/declare",
        Some(&t.key),
        &json!({"jobs": set, "runMissed": true}).to_string(),
    )
    .await
    .ok_json();
    assert_eq!(ops(&v), ["unchanged", "unchanged", "unchanged"]);

    let changed = json!([{"customKey": "a", "url": "http://127.0.0.1:9/other", "scheduledAt": "2026-12-01T00:00:00Z"}]);
    let v = post(&h, "/declare", Some(&t.key), &changed.to_string())
        .await
        .ok_json();
    assert_eq!(ops(&v), ["updated", "cancelled", "cancelled"]);
    let fields: Vec<&str> = v["operations"][0]["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "method", "headers", "body", "tags"]);
    assert_eq!(v["summary"]["cancelled"], 2);
    assert_eq!(
        h.service.get_job(&t.project, &c).await.unwrap().status,
        JobStatus::Cancelled
    );
}

#[tokio::test]
async fn declare_past_one_off_with_run_missed_false_is_skipped() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let body = json!({"jobs": [{"customKey": "old", "url": TARGET, "scheduledAt": "2020-01-01T00:00:00Z"}], "runMissed": false});
    let v = post(&h, "/declare", Some(&t.key), &body.to_string())
        .await
        .ok_json();
    assert_eq!(ops(&v), ["skipped"]);
    let id = JobId::new(v["operations"][0]["id"].as_str().unwrap());
    assert_eq!(
        h.service.get_job(&t.project, &id).await.unwrap().status,
        JobStatus::Skipped
    );
}

#[tokio::test]
async fn declare_refuses_bad_input_naming_the_item() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for (body, needle) in [
        (
            json!([{"customKey": "k", "url": TARGET}, {"customKey": "k", "url": TARGET}])
                .to_string(),
            "duplicate",
        ),
        (
            json!([{"url": TARGET}, {"title": "no url"}]).to_string(),
            "jobs[1]",
        ),
        (json!([{"url": "ftp://x"}]).to_string(), "jobs[0]"),
        (
            json!([{"url": TARGET, "scheduledAt": "whenever"}]).to_string(),
            "jobs[0]",
        ),
        (
            json!([{"url": TARGET, "body": {"_tag": "base64", "value": "%%%"}}]).to_string(),
            "base64",
        ),
        (
            json!([{"url": TARGET, "headers": {"x": 1}}]).to_string(),
            "headers",
        ),
        (
            json!([{"url": TARGET, "maxAttempts": 11}]).to_string(),
            "max-attempts",
        ),
        (json!([{"url": TARGET, "bogus": 1}]).to_string(), "bogus"),
        (
            json!({"jobs": [], "runMissed": "yes"}).to_string(),
            "runMissed",
        ),
        (json!({"jobz": []}).to_string(), "jobz"),
        (json!("nope").to_string(), "array"),
        ("{not json".to_string(), "JSON"),
    ] {
        let message = post(&h, "/declare", Some(&t.key), &body)
            .await
            .error(400, "BadRequest");
        assert!(message.contains(needle), "{body}: {message}");
    }
    post(&h, "/declare", None, "[]")
        .await
        .error(400, "BadRequest");
    post(&h, "/declare", Some("ttr_nope"), "[]")
        .await
        .error(401, "Unauthorized");
}

#[tokio::test]
async fn declare_beyond_the_quota_is_402_and_changes_nothing() {
    let h = Harness::with(MonthQuota::Limited(2), HttpConfig::default()).await;
    let t = h.tenant("acme").await;
    let body = json!([
        {"customKey": "a", "url": TARGET}, {"customKey": "b", "url": TARGET}, {"customKey": "c", "url": TARGET}
    ]);
    post(&h, "/declare", Some(&t.key), &body.to_string())
        .await
        .error(402, "QuotaExceeded");
    let v = post(&h, "/declare", Some(&t.key), "[]").await.ok_json();
    assert_eq!(v["summary"]["cancelled"], 0, "nothing had been created");
}

#[tokio::test]
async fn bulk_cancels_by_every_selector_then_upserts() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let tagged = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-tags", "batch"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
        )
        .await;
    let keyed = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-custom-key", "k1"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
        )
        .await;
    let by_id = h
        .schedule_ok(&t.key, &[("ttr-scheduled-at", "2026-12-01T00:00:00Z")])
        .await;
    let body = json!({
        "cancels": [{"tag": "batch"}, "k1", {"id": by_id["triggerId"]}, {"customKey": "none"}],
        "upserts": [{"customKey": "k1", "url": TARGET, "scheduledAt": "2026-12-03T00:00:00Z"}]
    });
    let v = post(&h, "/bulk", Some(&t.key), &body.to_string())
        .await
        .ok_json();
    assert_eq!(ops(&v), ["cancelled", "cancelled", "cancelled", "added"]);
    let ids: Vec<&str> = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&tagged["triggerId"].as_str().unwrap()));
    assert!(ids.contains(&keyed["triggerId"].as_str().unwrap()));
    assert_eq!(v["operations"][1]["customKey"], "k1");
    assert_eq!(
        v["summary"],
        json!({"unchanged": 0, "added": 1, "skipped": 0, "updated": 0, "cancelled": 3})
    );
    // Upsert again by the same key: in place.
    let body = json!({"upserts": [{"customKey": "k1", "url": TARGET, "scheduledAt": "2026-12-04T00:00:00Z"}]});
    let v2 = post(&h, "/bulk", Some(&t.key), &body.to_string())
        .await
        .ok_json();
    assert_eq!(ops(&v2), ["updated"]);
    assert_eq!(v2["operations"][0]["id"], v["operations"][3]["id"]);
    assert_eq!(v2["operations"][0]["changedFields"], json!(["scheduledAt"]));

    for bad in [
        json!({"cancels": [1]}),
        json!({"cancels": [{"name": "x"}]}),
        json!({"cancels": "x"}),
        json!({"upserts": [{"nourl": true}]}),
        json!({"extra": 1}),
        json!([]),
    ] {
        post(&h, "/bulk", Some(&t.key), &bad.to_string())
            .await
            .error(400, "BadRequest");
    }
}

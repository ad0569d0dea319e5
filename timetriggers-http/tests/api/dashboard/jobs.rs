//! `/jobs`, `/jobs/{id}/executions` (list and replay) and `/executions`.

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};
use timetriggers_core::{DispatchOutcome, MonthQuota};
use timetriggers_http::HttpConfig;

use super::{
    answer, assert_fields, target, Auth, DASHBOARD_EXECUTION_FIELDS, DASHBOARD_JOB_FIELDS,
    EXECUTION_FIELDS,
};
use crate::common::{Harness, NOW};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A signed-up user with an API key.
async fn setup(h: &Harness) -> (Auth, String, super::Account) {
    let account = h.signup("jobs@example.com").await;
    let key = h.new_key(&account.auth(), "k").await;
    (
        account.auth(),
        key["keyValue"].as_str().unwrap().to_owned(),
        account,
    )
}

#[tokio::test]
async fn jobs_carry_every_field_of_the_reference() {
    let h = Harness::new().await;
    let (auth, key, account) = setup(&h).await;
    let id = h
        .job(
            &key,
            &[
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
                ("ttr-custom-key", "nightly"),
                ("ttr-title", "Nightly"),
                ("ttr-tags", "a,b"),
                ("x-one", "1"),
                ("accept", "text/html"),
            ],
        )
        .await;
    let page = h.get("/jobs", &auth).await.ok_json();
    assert_fields(&page, &["jobs", "total", "limit", "offset"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(1), json!(50), json!(0))
    );
    let job = &page["jobs"][0];
    assert_fields(job, DASHBOARD_JOB_FIELDS);
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["projectId"], account.project_id());
    assert_eq!(job["projectSlug"], account.project["slug"]);
    assert_eq!(job["customKey"], "nightly");
    assert_eq!(job["title"], "Nightly");
    assert_eq!(job["status"], "registered");
    assert_eq!(job["scheduledAt"], "2026-12-01T00:00:00.000Z");
    assert_eq!(job["httpUrl"], target());
    assert_eq!(job["httpMethod"], "POST");
    assert_eq!(job["httpHeaders"]["x-one"], "1");
    assert_eq!(job["httpHeaders"]["accept"], "text/html");
    assert!(job["httpHeaders"].get("ttr-api-key").is_none());
    assert_eq!(job["registeredAt"], NOW);
    for empty in [
        "cancelledAt",
        "queuedAt",
        "startedAt",
        "completedAt",
        "responseStatus",
        "errorMessage",
        "rateLimitedAt",
        "rateLimitedUntil",
        "attemptNumber",
        "generatorId",
        "generatorCustomKey",
        "generatorStatus",
    ] {
        assert!(job[empty].is_null(), "{empty}: {job}");
    }
    assert_eq!(job["rateLimitedTags"], json!([]));
    assert_eq!(job["tags"], json!(["a", "b"]));

    // The same job by id.
    let one = h.get(&format!("/jobs/{id}"), &auth).await.ok_json();
    assert_eq!(&one, job);
    h.get("/jobs/job_nope", &auth).await.error(404, "NotFound");

    // Delivered: the latest outcome shows on the job.
    h.clock
        .set(timetriggers_core::Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap());
    h.deliver_due(answer(503)).await;
    // Nine days on, the session has expired; the API key still works.
    let auth = Auth::key(&key);
    let job = &h.get("/jobs", &auth).await.ok_json()["jobs"][0];
    assert_eq!(job["status"], "completed");
    assert_eq!(job["responseStatus"], 503);
    assert_eq!(job["attemptNumber"], 1);
    assert_eq!(job["completedAt"], "2026-12-01T00:00:00.000Z");
    assert_eq!(job["queuedAt"], "2026-12-01T00:00:00.000Z");

    // A generator's occurrence names its generator.
    let generator = h
        .job(
            &key,
            &[
                ("ttr-scheduled-at", "*/5 * * * *"),
                ("ttr-custom-key", "every5"),
            ],
        )
        .await;
    let listed = h
        .get(&format!("/jobs?id={generator}"), &auth)
        .await
        .ok_json();
    assert_eq!(listed["total"], 1);
    let occurrence = &listed["jobs"][0];
    assert_eq!(occurrence["generatorId"], generator.as_str());
    assert_eq!(occurrence["generatorCustomKey"], "every5");
    assert_eq!(occurrence["generatorStatus"], "active");
}

#[tokio::test]
async fn jobs_are_filtered_paged_and_counted() {
    let h = Harness::new().await;
    let (auth, key, _) = setup(&h).await;
    let mut all = Vec::new();
    for day in 1..=5 {
        all.push(
            h.job(
                &key,
                &[("ttr-scheduled-at", &format!("2026-12-0{day}T00:00:00Z"))],
            )
            .await,
        );
    }
    let now_job = h.job(&key, &[]).await;
    h.deliver_due(answer(200)).await;
    let cancelled = all[0].clone();
    assert_eq!(
        h.cancel(
            Method::DELETE,
            &[("ttr-api-key", &key), ("ttr-trigger-id", &cancelled)]
        )
        .await
        .status,
        204
    );
    // Newest scheduledAt first: day 5 … day 1, then the job due now.
    let mut expected: Vec<String> = all.iter().rev().cloned().collect();
    expected.push(now_job.clone());

    let page = h.get("/jobs", &auth).await.ok_json();
    assert_eq!(ids(&page["jobs"]), expected);
    assert_eq!(page["total"], 6);

    let page = h.get("/jobs?limit=2&offset=1", &auth).await.ok_json();
    assert_eq!(ids(&page["jobs"]), expected[1..3].to_vec());
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(6), json!(2), json!(1))
    );
    let page = h.get("/jobs?limit=500&offset=5", &auth).await.ok_json();
    assert_eq!(ids(&page["jobs"]), vec![now_job.clone()]);
    let page = h.get("/jobs?offset=6", &auth).await.ok_json();
    assert_eq!(page["jobs"], json!([]));
    assert_eq!(page["total"], 6);
    let page = h.get("/jobs?limit=1", &auth).await.ok_json();
    assert_eq!(ids(&page["jobs"]), vec![expected[0].clone()]);

    let page = h
        .get("/jobs?status=completed,cancelled", &auth)
        .await
        .ok_json();
    assert_eq!(ids(&page["jobs"]), vec![cancelled.clone(), now_job.clone()]);
    assert_eq!(page["total"], 2);
    let page = h
        .get("/jobs?status=registered&limit=1", &auth)
        .await
        .ok_json();
    assert_eq!(page["total"], 4);
    let page = h.get("/jobs?status=running", &auth).await.ok_json();
    assert_eq!(
        (page["jobs"].clone(), page["total"].clone()),
        (json!([]), json!(0))
    );
    let page = h.get(&format!("/jobs?id={now_job}"), &auth).await.ok_json();
    assert_eq!(ids(&page["jobs"]), vec![now_job.clone()]);
    let page = h.get("/jobs?id=job_nope", &auth).await.ok_json();
    assert_eq!(page["total"], 0);

    // Bad values: 400 naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=ten", "limit"),
        ("limit=NaN", "limit"),
        ("offset=-1", "offset"),
        ("offset=0.5", "offset"),
        ("offset=x", "offset"),
        ("offset=Infinity", "offset"),
        ("status=done", "status"),
        ("status=completed,nope", "status"),
        ("limit=1&limit=2", "limit"),
    ] {
        let message = h
            .get(&format!("/jobs?{query}"), &auth)
            .await
            .error(400, "BadRequest");
        assert!(message.starts_with(field), "{query}: {message}");
    }
    h.get("/jobs?projectId=prj_other", &auth)
        .await
        .error(404, "NotFound");
    h.get("/jobs", &Auth::None).await.error(401, "Unauthorized");
    h.dash(Method::DELETE, "/jobs", &auth, None)
        .await
        .error(405, "MethodNotAllowed");
}

#[tokio::test]
async fn a_jobs_executions_carry_the_response() {
    let h = Harness::new().await;
    let (auth, key, _) = setup(&h).await;
    let id = h.job(&key, &[]).await;
    let uri = format!("/jobs/{id}/executions");

    let planned = h.get(&uri, &auth).await.ok_json();
    let planned = planned.as_array().unwrap();
    assert_eq!(planned.len(), 1);
    assert_fields(&planned[0], EXECUTION_FIELDS);
    assert_eq!(planned[0]["jobId"], id.as_str());
    assert_eq!(planned[0]["attemptNumber"], 1);
    assert_eq!(planned[0]["triggeredBy"], "scheduler");
    assert_eq!(planned[0]["status"], "planned");
    assert_eq!(planned[0]["plannedAt"], NOW);
    for empty in [
        "startedAt",
        "completedAt",
        "responseStatus",
        "responseHeaders",
        "responseBody",
        "responseSize",
        "errorMessage",
        "rateLimitedAt",
        "rateLimitedUntil",
    ] {
        assert!(planned[0][empty].is_null(), "{empty}");
    }
    assert_eq!(planned[0]["rateLimitedTags"], json!([]));

    h.deliver_due(answer(201)).await;
    let done = h.get(&uri, &auth).await.ok_json();
    let e = &done[0];
    assert_eq!(e["status"], "complete");
    assert_eq!(e["responseStatus"], 201);
    assert_eq!(
        e["responseHeaders"],
        json!({"content-type": "text/plain", "set-cookie": "a=1, b=2"})
    );
    assert_eq!(e["responseBody"], "answered 201");
    assert_eq!(e["responseSize"], 12);
    assert_eq!(e["startedAt"], NOW);
    assert_eq!(e["completedAt"], NOW);

    // A failed delivery: no response, an error.
    let failing = h.job(&key, &[]).await;
    h.deliver_due(DispatchOutcome::Failed("connection refused".into()))
        .await;
    let e = &h
        .get(&format!("/jobs/{failing}/executions"), &auth)
        .await
        .ok_json()[0];
    assert!(e["responseStatus"].is_null() && e["responseHeaders"].is_null());
    assert_eq!(e["errorMessage"], "connection refused");

    h.get("/jobs/job_nope/executions", &auth)
        .await
        .error(404, "NotFound");
    h.get(&uri, &Auth::None).await.error(401, "Unauthorized");
}

#[tokio::test]
async fn replay_runs_a_finished_job_again() {
    let h = Harness::new().await;
    let (auth, key, _) = setup(&h).await;
    let id = h.job(&key, &[("ttr-custom-key", "again")]).await;
    let uri = format!("/jobs/{id}/executions");

    // Not finished yet: 400.
    let message = h
        .post(&uri, &auth, json!({}))
        .await
        .error(400, "BadRequest");
    assert!(message.contains("registered"), "{message}");

    h.deliver_due(answer(500)).await;
    h.clock.advance(Duration::from_secs(60));
    let reply = h.post(&uri, &auth, json!({})).await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
    let job = h.get(&format!("/jobs/{id}"), &auth).await.ok_json();
    assert_eq!(job["status"], "queued");
    let execs = h.get(&uri, &auth).await.ok_json();
    assert_eq!(execs.as_array().unwrap().len(), 2);
    assert_eq!(execs[0]["attemptNumber"], 2);
    assert_eq!(execs[0]["triggeredBy"], "replay");
    assert_eq!(execs[0]["status"], "planned");
    assert_eq!(execs[0]["plannedAt"], "2026-11-22T09:31:00.000Z");
    // Queued: not again until it has run.
    h.post(&uri, &auth, json!({}))
        .await
        .error(400, "BadRequest");

    let ran = h.deliver_due(answer(200)).await;
    assert_eq!(ran.len(), 1);
    let job = h.get(&format!("/jobs/{id}"), &auth).await.ok_json();
    assert_eq!(
        (
            job["status"].clone(),
            job["attemptNumber"].clone(),
            job["responseStatus"].clone()
        ),
        (json!("completed"), json!(2), json!(200))
    );

    // A retry, by an API key, without a body at all.
    let reply = h.dash(Method::POST, &uri, &Auth::key(&key), None).await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
    h.deliver_due(answer(200)).await;
    let reply = h.post(&uri, &auth, json!({"triggeredBy": "retry"})).await;
    reply.ok_json();
    let reply = h.post(&uri, &auth, json!({"triggeredBy": null})).await;
    reply.error(400, "BadRequest"); // queued again
    let execs = h.get(&uri, &auth).await.ok_json();
    assert_eq!(execs[0]["attemptNumber"], 4);
    assert_eq!(execs[0]["triggeredBy"], "retry");
    assert_eq!(execs[1]["triggeredBy"], "replay");

    // Bad bodies and unknown jobs.
    h.deliver_due(answer(200)).await;
    for body in [
        json!({"triggeredBy": "scheduler"}),
        json!({"triggeredBy": 1}),
        json!("replay"),
    ] {
        h.post(&uri, &auth, body).await.error(400, "BadRequest");
    }
    // A JSON `null` is no body: a replay.
    h.post(&uri, &auth, Value::Null).await.ok_json();
    h.post("/jobs/job_nope/executions", &auth, json!({}))
        .await
        .error(404, "NotFound");
    h.post(&uri, &Auth::None, json!({}))
        .await
        .error(401, "Unauthorized");

    // A cancelled job replays too; its custom key must be free.
    let later = h
        .job(
            &key,
            &[
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
                ("ttr-custom-key", "later"),
            ],
        )
        .await;
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &key), ("ttr-trigger-id", &later)],
    )
    .await;
    h.job(
        &key,
        &[
            ("ttr-scheduled-at", "2026-12-02T00:00:00Z"),
            ("ttr-custom-key", "later"),
        ],
    )
    .await;
    let message = h
        .post(&format!("/jobs/{later}/executions"), &auth, json!({}))
        .await
        .error(400, "BadRequest");
    assert!(message.contains("custom key"), "{message}");
}

#[tokio::test]
async fn replay_costs_a_quota_unit() {
    let h = Harness::with(MonthQuota::Limited(2), HttpConfig::default()).await;
    let (auth, key, _) = setup(&h).await;
    let id = h.job(&key, &[]).await;
    h.deliver_due(answer(200)).await;
    let uri = format!("/jobs/{id}/executions");
    h.post(&uri, &auth, json!({})).await.ok_json();
    h.deliver_due(answer(200)).await;
    // Both units used: the replay is a 400 (API.md §5), /schedule a 402.
    let message = h
        .post(&uri, &auth, json!({}))
        .await
        .error(400, "BadRequest");
    assert!(message.contains("quota"), "{message}");
    h.schedule(Method::POST, Some(&key), &[("ttr-url", target())], b"")
        .await
        .error(402, "QuotaExceeded");
}

#[tokio::test]
async fn executions_are_listed_with_every_filter() {
    let h = Harness::new().await;
    let (auth, key, account) = setup(&h).await;
    let ok = h
        .job(&key, &[("ttr-custom-key", "ok"), ("ttr-title", "OK")])
        .await;
    h.deliver_due(answer(200)).await;
    h.clock.advance(Duration::from_secs(1));
    let unavailable = h.job(&key, &[("ttr-custom-key", "bad")]).await;
    h.deliver_due(answer(503)).await;
    h.clock.advance(Duration::from_secs(1));
    let missing = h.job(&key, &[]).await;
    h.deliver_due(answer(404)).await;
    let pending = h
        .job(&key, &[("ttr-scheduled-at", "2026-12-01T00:00:00Z")])
        .await;

    let page = h.get("/executions", &auth).await.ok_json();
    assert_fields(&page, &["executions", "total", "limit", "offset"]);
    assert_eq!(page["total"], 4);
    let order: Vec<_> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jobId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        vec![
            pending.clone(),
            missing.clone(),
            unavailable.clone(),
            ok.clone()
        ]
    );
    let e = &page["executions"][3];
    assert_fields(e, DASHBOARD_EXECUTION_FIELDS);
    assert_eq!(e["jobCustomKey"], "ok");
    assert_eq!(e["jobTitle"], "OK");
    assert_eq!(e["jobStatus"], "completed");
    assert_eq!(e["jobHttpUrl"], target());
    assert_eq!(e["jobHttpMethod"], "POST");
    assert_eq!(e["projectSlug"], account.project["slug"]);
    assert_eq!(e["responseStatus"], 200);
    assert_eq!(e["responseSize"], 12);
    assert_eq!(e["triggeredBy"], "scheduler");

    let job_ids = |v: Value| -> Vec<String> {
        v["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["jobId"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        (format!("jobId={ok}"), vec![ok.clone()]),
        ("customKey=bad".to_owned(), vec![unavailable.clone()]),
        ("jobStatus=registered".to_owned(), vec![pending.clone()]),
        (
            "executionStatus=complete".to_owned(),
            vec![missing.clone(), unavailable.clone(), ok.clone()],
        ),
        (
            "executionStatus=planned,cancelled".to_owned(),
            vec![pending.clone()],
        ),
        ("httpStatus=503".to_owned(), vec![unavailable.clone()]),
        ("httpStatus=5xx".to_owned(), vec![unavailable.clone()]),
        ("httpStatus=4XX".to_owned(), vec![missing.clone()]),
        ("httpStatus=2xx&customKey=ok".to_owned(), vec![ok.clone()]),
        ("httpStatus=2xx&customKey=bad".to_owned(), vec![]),
        (
            "limit=2&offset=1".to_owned(),
            vec![missing.clone(), unavailable.clone()],
        ),
        ("offset=10".to_owned(), vec![]),
    ] {
        let page = h
            .get(&format!("/executions?{query}"), &auth)
            .await
            .ok_json();
        assert_eq!(job_ids(page), expected, "{query}");
    }
    let page = h.get("/executions?limit=1", &auth).await.ok_json();
    assert_eq!(
        (page["total"].clone(), page["limit"].clone()),
        (json!(4), json!(1))
    );

    for (query, field) in [
        ("httpStatus=5x", "httpStatus"),
        ("httpStatus=600", "httpStatus"),
        ("httpStatus=abc", "httpStatus"),
        ("jobStatus=complete", "jobStatus"),
        ("executionStatus=completed", "executionStatus"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-5", "offset"),
        ("limit=2.0", "limit"),
    ] {
        let message = h
            .get(&format!("/executions?{query}"), &auth)
            .await
            .error(400, "BadRequest");
        assert!(message.starts_with(field), "{query}: {message}");
    }
    h.get("/executions?projectId=prj_other", &auth)
        .await
        .error(404, "NotFound");
    h.get("/executions", &Auth::None)
        .await
        .error(401, "Unauthorized");
}

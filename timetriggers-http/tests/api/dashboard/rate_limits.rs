//! `/rate-limits`: create, list, update (null clears, absent keeps), delete; validation;
//! scoping to the caller's projects; a rule holding a job back shows on `GET /jobs`.

use http::Method;
use serde_json::{json, Value};

use super::{assert_fields, Auth};
use crate::common::{Harness, NOW};

const RATE_LIMIT_FIELDS: &[&str] = &[
    "id",
    "projectId",
    "tag",
    "maxPerSecond",
    "maxPerMinute",
    "maxPerHour",
    "maxPerDay",
    "maxPerWeek",
    "maxPerMonth",
    "createdAt",
    "updatedAt",
];

#[tokio::test]
async fn rules_are_created_listed_updated_and_deleted() {
    let h = Harness::new().await;
    let account = h.signup("limits@example.com").await;
    let auth = account.auth();

    let created = h
        .post(
            "/rate-limits",
            &auth,
            json!({"tag": "partner", "maxPerSecond": 2, "maxPerDay": 1000, "maxPerHour": null}),
        )
        .await
        .ok_json();
    assert_fields(&created, RATE_LIMIT_FIELDS);
    assert_eq!(created["tag"], "partner");
    assert_eq!(created["projectId"], account.project_id());
    assert_eq!(created["maxPerSecond"], 2);
    assert_eq!(created["maxPerDay"], 1000);
    assert_eq!(created["maxPerMinute"], Value::Null);
    assert_eq!(created["maxPerHour"], Value::Null);
    assert_eq!(created["createdAt"], NOW);
    assert_eq!(created["updatedAt"], NOW);

    let listed = h.get("/rate-limits", &auth).await.ok_json();
    assert_eq!(listed, json!([created.clone()]));

    // A tag that already has a rule is a 400, as is every invalid value.
    h.post("/rate-limits", &auth, json!({"tag": "partner"}))
        .await
        .error(400, "BadRequest");
    for body in [
        json!({}),
        json!({"tag": ""}),
        json!({"tag": "has space"}),
        json!({"tag": "x", "maxPerSecond": -1}),
        json!({"tag": "x", "maxPerSecond": 1.5}),
        json!({"tag": "x", "maxPerMinute": "NaN"}),
        json!({"tag": "x", "maxPerHour": "Infinity"}),
        json!({"tag": "x", "maxPerDay": "-Infinity"}),
        json!({"tag": "x", "maxPerWeek": "3"}),
    ] {
        h.post("/rate-limits", &auth, body.clone())
            .await
            .error(400, "BadRequest");
    }
    assert_eq!(
        h.get("/rate-limits", &auth)
            .await
            .ok_json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // PUT: null clears, absent keeps, the tag may change.
    let uri = format!("/rate-limits/{}", created["id"].as_str().unwrap());
    let updated = h
        .dash(
            Method::PUT,
            &uri,
            &auth,
            Some(json!({"tag": "partner-v2", "maxPerSecond": null, "maxPerMinute": 0})),
        )
        .await
        .ok_json();
    assert_fields(&updated, RATE_LIMIT_FIELDS);
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["tag"], "partner-v2");
    assert_eq!(updated["maxPerSecond"], Value::Null);
    assert_eq!(updated["maxPerMinute"], 0);
    assert_eq!(updated["maxPerDay"], 1000);
    h.dash(Method::PUT, &uri, &auth, Some(json!({"maxPerDay": 2.5})))
        .await
        .error(400, "BadRequest");
    h.dash(
        Method::PUT,
        "/rate-limits/rl_unknown",
        &auth,
        Some(json!({})),
    )
    .await
    .error(404, "NotFound");

    // A second rule cannot take the first one's tag by PUT either.
    let other = h
        .post("/rate-limits", &auth, json!({"tag": "mail"}))
        .await
        .ok_json();
    let other_uri = format!("/rate-limits/{}", other["id"].as_str().unwrap());
    h.dash(
        Method::PUT,
        &other_uri,
        &auth,
        Some(json!({"tag": "partner-v2"})),
    )
    .await
    .error(400, "BadRequest");

    let reply = h.dash(Method::DELETE, &uri, &auth, Some(json!({}))).await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
    h.dash(Method::DELETE, &uri, &auth, Some(json!({})))
        .await
        .error(404, "NotFound");
    let listed = h.get("/rate-limits", &auth).await.ok_json();
    assert_eq!(listed, json!([other]));
}

#[tokio::test]
async fn rules_are_scoped_to_the_callers_projects() {
    let h = Harness::new().await;
    let alice = h.signup("alice-rl@example.com").await;
    let bob = h.signup("bob-rl@example.com").await;
    let rule = h
        .post(
            "/rate-limits",
            &alice.auth(),
            json!({"tag": "api", "maxPerSecond": 1}),
        )
        .await
        .ok_json();
    let uri = format!("/rate-limits/{}", rule["id"].as_str().unwrap());

    // Bob sees nothing and can touch nothing; he may use the same tag in his project.
    assert_eq!(
        h.get("/rate-limits", &bob.auth()).await.ok_json(),
        json!([])
    );
    h.dash(
        Method::PUT,
        &uri,
        &bob.auth(),
        Some(json!({"maxPerSecond": 9})),
    )
    .await
    .error(404, "NotFound");
    h.dash(Method::DELETE, &uri, &bob.auth(), Some(json!({})))
        .await
        .error(404, "NotFound");
    h.post(
        "/rate-limits",
        &bob.auth(),
        json!({"tag": "x", "projectId": alice.project_id()}),
    )
    .await
    .error(404, "NotFound");
    h.post("/rate-limits", &bob.auth(), json!({"tag": "api"}))
        .await
        .ok_json();
    h.get(
        &format!("/rate-limits?projectId={}", alice.project_id()),
        &bob.auth(),
    )
    .await
    .error(404, "NotFound");

    // An API key of Alice's project acts for that project; no credentials is a 401.
    let key = h.new_key(&alice.auth(), "ci").await;
    let key = Auth::key(key["keyValue"].as_str().unwrap());
    let listed = h.get("/rate-limits", &key).await.ok_json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], rule["id"]);
    h.get("/rate-limits", &Auth::None)
        .await
        .error(401, "Unauthorized");
}

#[tokio::test]
async fn a_held_back_job_shows_its_rate_limit_on_the_dashboard() {
    let h = Harness::new().await;
    let account = h.signup("held@example.com").await;
    let key = h.new_key(&account.auth(), "ci").await;
    let secret = key["keyValue"].as_str().unwrap().to_owned();
    h.post(
        "/rate-limits",
        &Auth::key(&secret),
        json!({"tag": "slow", "maxPerMinute": 1}),
    )
    .await
    .ok_json();
    let first = h.job(&secret, &[("ttr-tags", "slow")]).await;
    let second = h.job(&secret, &[("ttr-tags", "slow,other")]).await;
    let delivered = h.deliver_due(super::answer(200)).await;
    assert_eq!(
        delivered.iter().map(|j| j.as_str()).collect::<Vec<_>>(),
        vec![first.as_str()]
    );

    let jobs = h
        .get(&format!("/jobs?id={second}"), &Auth::key(&secret))
        .await
        .ok_json();
    let job = &jobs["jobs"][0];
    assert_eq!(job["status"], "registered");
    assert_eq!(job["rateLimitedAt"], NOW);
    assert_eq!(job["rateLimitedUntil"], "2026-11-22T09:31:00.000Z");
    assert_eq!(job["rateLimitedTags"], json!(["slow"]));
    let executions = h
        .get(&format!("/jobs/{second}/executions"), &Auth::key(&secret))
        .await
        .ok_json();
    assert_eq!(executions[0]["status"], "planned");
    assert_eq!(
        executions[0]["rateLimitedUntil"],
        "2026-11-22T09:31:00.000Z"
    );
    assert_eq!(executions[0]["rateLimitedTags"], json!(["slow"]));
}

//! Two users, two projects: neither can list, read, replay, cancel or delete the other's jobs,
//! executions or keys, by cookie or by API key.

use http::Method;
use serde_json::json;

use super::{answer, Auth};
use crate::common::Harness;

#[tokio::test]
async fn users_never_see_or_touch_each_others_items() {
    let h = Harness::new().await;
    let alice = h.signup("alice@example.com").await;
    let bob = h.signup("bob@example.com").await;
    let alice_key = h.new_key(&alice.auth(), "alice-key").await;
    let bob_key = h.new_key(&bob.auth(), "bob-key").await;
    let alice_secret = alice_key["keyValue"].as_str().unwrap().to_owned();
    let bob_secret = bob_key["keyValue"].as_str().unwrap().to_owned();

    // Alice has a finished job (with an execution) and a pending one.
    let done = h
        .job(&alice_secret, &[("ttr-custom-key", "alice-done")])
        .await;
    h.deliver_due(answer(200)).await;
    let pending = h
        .job(
            &alice_secret,
            &[
                ("ttr-custom-key", "alice-pending"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
        )
        .await;
    // Bob has one of his own.
    let bobs = h.job(&bob_secret, &[("ttr-custom-key", "bob-job")]).await;

    for (who, auth) in [
        ("bob's cookie", bob.auth()),
        ("bob's key", Auth::key(&bob_secret)),
    ] {
        // Lists show only Bob's items.
        let jobs = h.get("/jobs", &auth).await.ok_json();
        assert_eq!(jobs["total"], 1, "{who}");
        assert_eq!(jobs["jobs"][0]["id"], bobs.as_str(), "{who}");
        for id in [&done, &pending] {
            let by_id = h.get(&format!("/jobs?id={id}"), &auth).await.ok_json();
            assert_eq!(by_id["total"], 0, "{who}");
            let listed = h
                .get(&format!("/executions?jobId={id}"), &auth)
                .await
                .ok_json();
            assert_eq!(listed["total"], 0, "{who}");
            // Reading, replaying: 404.
            h.get(&format!("/jobs/{id}"), &auth)
                .await
                .error(404, "NotFound");
            h.get(&format!("/jobs/{id}/executions"), &auth)
                .await
                .error(404, "NotFound");
            h.post(&format!("/jobs/{id}/executions"), &auth, json!({}))
                .await
                .error(404, "NotFound");
        }
        let executions = h.get("/executions", &auth).await.ok_json();
        assert!(executions["executions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["jobId"] == bobs.as_str()));
        let by_key = h
            .get("/executions?customKey=alice-done", &auth)
            .await
            .ok_json();
        assert_eq!(by_key["total"], 0, "{who}");

        // Alice's project: 404 wherever named.
        let alice_project = alice.project_id();
        for uri in [
            format!("/jobs?projectId={alice_project}"),
            format!("/executions?projectId={alice_project}"),
            format!("/keys?projectId={alice_project}"),
        ] {
            h.get(&uri, &auth).await.error(404, "NotFound");
        }
        h.post(
            "/keys",
            &auth,
            json!({"name": "sneaky", "projectId": alice_project}),
        )
        .await
        .error(404, "NotFound");

        // Keys: Alice's never listed, never deletable.
        let keys = h.get("/keys", &auth).await.ok_json();
        assert!(keys
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["projectId"] == bob.project_id()));
        h.dash(
            Method::DELETE,
            &format!("/keys/{}", alice_key["id"].as_str().unwrap()),
            &auth,
            Some(json!({})),
        )
        .await
        .error(404, "NotFound");

        // Projects.
        let projects = h.get("/projects", &auth).await.ok_json();
        assert_eq!(projects, json!([bob.project]), "{who}");
    }

    // Cancel with Bob's key: Alice's job is not found, by id or by key.
    h.cancel(
        Method::DELETE,
        &[("ttr-api-key", &bob_secret), ("ttr-trigger-id", &pending)],
    )
    .await
    .error(404, "NotFound");
    h.cancel(
        Method::DELETE,
        &[
            ("ttr-api-key", &bob_secret),
            ("ttr-custom-key", "alice-pending"),
        ],
    )
    .await
    .error(404, "NotFound");
    // Rescheduling Alice's job by id with Bob's key: 404 too.
    h.schedule(
        Method::POST,
        Some(&bob_secret),
        &[
            ("ttr-url", crate::common::TARGET),
            ("ttr-trigger-id", &pending),
        ],
        b"",
    )
    .await
    .error(404, "NotFound");

    // Everything of Alice's is intact.
    let auth = alice.auth();
    let jobs = h.get("/jobs", &auth).await.ok_json();
    assert_eq!(jobs["total"], 2);
    let job = h.get(&format!("/jobs/{pending}"), &auth).await.ok_json();
    assert_eq!(job["status"], "registered");
    let execs = h
        .get(&format!("/jobs/{done}/executions"), &auth)
        .await
        .ok_json();
    assert_eq!(execs.as_array().unwrap().len(), 1);
    assert_eq!(
        h.get("/keys", &auth)
            .await
            .ok_json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    h.schedule_ok(&alice_secret, &[]).await;
    // And Alice can replay her finished job, which Bob could not.
    h.post(&format!("/jobs/{done}/executions"), &auth, json!({}))
        .await
        .ok_json();
}

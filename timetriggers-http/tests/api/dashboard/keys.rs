//! `/keys`: create (the only time the secret is shown), list (masked), delete (refused at once).

use http::Method;
use serde_json::json;

use super::{assert_fields, target, Auth};
use crate::common::{Harness, NOW};

#[tokio::test]
async fn keys_are_shown_once_listed_masked_and_refused_once_deleted() {
    let h = Harness::new().await;
    let account = h.signup("keys@example.com").await;
    let auth = account.auth();

    let created = h.new_key(&auth, "  ci  ").await;
    assert_fields(
        &created,
        &["id", "projectId", "name", "keyValue", "createdAt"],
    );
    assert_eq!(created["name"], "ci");
    assert_eq!(created["projectId"], account.project_id());
    assert_eq!(created["createdAt"], NOW);
    let secret = created["keyValue"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ttr_") && secret.len() > 30, "{secret}");

    // The key works on the trigger API and the dashboard.
    h.schedule_ok(&secret, &[]).await;
    h.get("/jobs", &Auth::key(&secret)).await.ok_json();

    let second = h.new_key(&auth, "deploy").await;
    let listed = h.get("/keys", &auth).await.ok_json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for key in listed {
        assert_fields(key, &["id", "projectId", "name", "keyValue", "createdAt"]);
        let masked = key["keyValue"].as_str().unwrap();
        assert_eq!(masked.chars().count(), 7, "{masked}");
        assert!(masked.ends_with('…'));
        assert!(masked.starts_with("ttr_"));
    }
    let ids: Vec<_> = listed.iter().map(|k| k["id"].clone()).collect();
    assert!(ids.contains(&created["id"]) && ids.contains(&second["id"]));
    let masked = &listed.iter().find(|k| k["id"] == created["id"]).unwrap()["keyValue"];
    assert_eq!(
        masked.as_str().unwrap(),
        format!("{}…", &secret[..6]),
        "the first 6 characters and …"
    );

    // Delete: {ok: true}, then the key is refused at once everywhere, and deleting again is 404.
    let uri = format!("/keys/{}", created["id"].as_str().unwrap());
    let reply = h.dash(Method::DELETE, &uri, &auth, Some(json!({}))).await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
    h.schedule(Method::POST, Some(&secret), &[("ttr-url", target())], b"")
        .await
        .error(401, "Unauthorized");
    h.get("/jobs", &Auth::key(&secret))
        .await
        .error(401, "Unauthorized");
    h.dash(Method::DELETE, &uri, &auth, Some(json!({})))
        .await
        .error(404, "NotFound");
    h.dash(Method::DELETE, "/keys/key_nope", &auth, Some(json!({})))
        .await
        .error(404, "NotFound");
    assert_eq!(
        h.get("/keys", &auth)
            .await
            .ok_json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn keys_follow_the_project_selection_rules() {
    let h = Harness::new().await;
    let account = h.signup("multi@example.com").await;
    let auth = account.auth();
    let second = h
        .post("/projects", &auth, json!({"slug": "second"}))
        .await
        .ok_json();
    let second_id = second["id"].as_str().unwrap();

    // Default: the first project; or the one named in the body or the query.
    let a = h.new_key(&auth, "a").await;
    assert_eq!(a["projectId"], account.project_id());
    let b = h
        .post("/keys", &auth, json!({"name": "b", "projectId": second_id}))
        .await
        .ok_json();
    assert_eq!(b["projectId"], second_id);
    let c = h
        .post(
            &format!("/keys?projectId={second_id}"),
            &auth,
            json!({"name": "c"}),
        )
        .await
        .ok_json();
    assert_eq!(c["projectId"], second_id);
    h.post(
        &format!("/keys?projectId={second_id}"),
        &auth,
        json!({"name": "d", "projectId": account.project_id()}),
    )
    .await
    .error(400, "BadRequest");

    // Listing covers every project, or the one asked for.
    assert_eq!(
        h.get("/keys", &auth)
            .await
            .ok_json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let only = h
        .get(&format!("/keys?projectId={second_id}"), &auth)
        .await
        .ok_json();
    assert_eq!(only.as_array().unwrap().len(), 2);
    h.get("/keys?projectId=prj_not_mine", &auth)
        .await
        .error(404, "NotFound");
    h.post(
        "/keys",
        &auth,
        json!({"name": "x", "projectId": "prj_not_mine"}),
    )
    .await
    .error(404, "NotFound");

    // A key acts for its own project: it lists and creates keys there only.
    let key_auth = Auth::key(b["keyValue"].as_str().unwrap());
    let seen = h.get("/keys", &key_auth).await.ok_json();
    assert!(seen
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["projectId"] == second_id));
    let made = h.new_key(&key_auth, "from a key").await;
    assert_eq!(made["projectId"], second_id);
    h.post(
        "/keys",
        &key_auth,
        json!({"name": "x", "projectId": account.project_id()}),
    )
    .await
    .error(404, "NotFound");
    h.dash(
        Method::DELETE,
        &format!("/keys/{}", a["id"].as_str().unwrap()),
        &key_auth,
        None,
    )
    .await
    .error(404, "NotFound");
}

#[tokio::test]
async fn key_requests_are_checked() {
    let h = Harness::new().await;
    let account = h.signup("bad@example.com").await;
    let auth = account.auth();
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": 3}),
        json!({"name": "x".repeat(101)}),
    ] {
        let message = h
            .post("/keys", &auth, body.clone())
            .await
            .error(400, "BadRequest");
        assert!(message.contains("name"), "{body}: {message}");
    }
    h.get("/keys", &Auth::None).await.error(401, "Unauthorized");
    h.post("/keys", &Auth::None, json!({"name": "x"}))
        .await
        .error(401, "Unauthorized");
    h.dash(Method::DELETE, "/keys/key_x", &Auth::None, None)
        .await
        .error(401, "Unauthorized");
    h.get("/keys", &Auth::key("ttr_unknown"))
        .await
        .error(401, "Unauthorized");
    h.dash(Method::PUT, "/keys", &auth, Some(json!({})))
        .await
        .error(405, "MethodNotAllowed");
    h.dash(Method::GET, "/keys/key_x", &auth, None)
        .await
        .error(405, "MethodNotAllowed");
}

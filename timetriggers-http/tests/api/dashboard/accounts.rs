//! `/auth/*` and `/projects`: sign-up, sign-in, sessions, the cookie, the CSRF rule.

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request};
use serde_json::json;
use timetriggers_core::MonthQuota;
use timetriggers_http::HttpConfig;

use super::{assert_fields, cookie_token, Auth};
use crate::common::{Harness, NOW};

#[tokio::test]
async fn signup_creates_the_user_a_default_project_and_a_session() {
    let h = Harness::new().await;
    let reply = h
        .post(
            "/auth/signup",
            &Auth::None,
            json!({"email": "  Ada.Lovelace@Example.COM ", "password": "correct horse"}),
        )
        .await;
    let body = reply.ok_json();
    assert_fields(&body, &["user", "project"]);
    assert_fields(&body["user"], &["id", "email", "createdAt"]);
    assert_eq!(body["user"]["email"], "ada.lovelace@example.com");
    assert_eq!(body["user"]["createdAt"], NOW);
    assert!(body["user"]["id"].as_str().unwrap().starts_with("usr_"));
    assert_fields(&body["project"], &["id", "slug", "monthQuota", "createdAt"]);
    assert_eq!(body["project"]["slug"], "ada-lovelace");
    assert_eq!(body["project"]["monthQuota"], "Infinity");
    assert_eq!(body["project"]["createdAt"], NOW);

    // The cookie: opaque, ≥ 128 bits, with the contract's attributes.
    let set = reply.header("set-cookie").unwrap();
    let token = cookie_token(&reply);
    assert!(token.len() >= 32, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    for attribute in ["Path=/", "Max-Age=432000", "HttpOnly", "SameSite=Lax"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains("Secure"), "{set}");

    // The session works.
    let me = h.get("/auth/me", &Auth::cookie(&token)).await.ok_json();
    assert_fields(&me, &["user", "projects"]);
    assert_eq!(me["user"], body["user"]);
    assert_eq!(me["projects"], json!([body["project"]]));

    // The same local part elsewhere gets a unique slug.
    let other = h.signup("ada.lovelace@elsewhere.org").await;
    let slug = other.project["slug"].as_str().unwrap();
    assert!(slug.starts_with("ada-lovelace-"), "{slug}");
    assert!(slug.len() <= 40);
}

#[tokio::test]
async fn new_projects_get_the_default_quota() {
    let h = Harness::with(MonthQuota::Limited(25), HttpConfig::default()).await;
    let a = h.signup("q@example.com").await;
    assert_eq!(a.project["monthQuota"], 25);
}

#[tokio::test]
async fn signup_refusals() {
    let h = Harness::new().await;
    h.signup("taken@example.com").await;
    for (body, needle) in [
        (
            json!({"email": "TAKEN@example.com", "password": "12345678"}),
            "already",
        ),
        (
            json!({"email": "no-at-sign", "password": "12345678"}),
            "email",
        ),
        (json!({"email": "a@b.c", "password": "1234567"}), "password"),
        (json!({"password": "12345678"}), "email"),
        (json!({"email": "a@b.c"}), "password"),
        (json!({"email": 5, "password": "12345678"}), "email"),
    ] {
        let reply = h.post("/auth/signup", &Auth::None, body.clone()).await;
        let (status, tag) = if needle == "already" {
            (409, "Conflict")
        } else {
            (400, "BadRequest")
        };
        let message = reply.error(status, tag);
        assert!(message.contains(needle), "{body}: {message}");
        assert!(reply.header("set-cookie").is_none());
    }
    // Not JSON.
    let reply = h
        .send(
            Request::post("/auth/signup")
                .header("content-type", "text/plain")
                .body(Body::from(r#"{"email":"x@y.z","password":"12345678"}"#))
                .unwrap(),
        )
        .await;
    reply.error(400, "BadRequest");
}

#[tokio::test]
async fn signup_can_be_disabled_and_cookies_made_secure() {
    let closed = HttpConfig {
        allow_signup: false,
        ..HttpConfig::default()
    };
    let h = Harness::with(MonthQuota::Unlimited, closed).await;
    let reply = h
        .post(
            "/auth/signup",
            &Auth::None,
            json!({"email": "a@b.c", "password": "12345678"}),
        )
        .await;
    reply.error(403, "Forbidden");

    let secure = HttpConfig {
        secure_cookies: true,
        ..HttpConfig::default()
    };
    let h = Harness::with(MonthQuota::Unlimited, secure).await;
    let reply = h
        .post(
            "/auth/signup",
            &Auth::None,
            json!({"email": "a@b.c", "password": "12345678"}),
        )
        .await;
    reply.ok_json();
    assert!(reply.header("set-cookie").unwrap().ends_with("; Secure"));
    let reply = h
        .post(
            "/auth/login",
            &Auth::None,
            json!({"email": "a@b.c", "password": "12345678"}),
        )
        .await;
    assert!(reply.header("set-cookie").unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn login_answers_the_same_for_unknown_emails_and_wrong_passwords() {
    let h = Harness::new().await;
    let account = h.signup("grace@example.com").await;
    let reply = h
        .post(
            "/auth/login",
            &Auth::None,
            json!({"email": "GRACE@example.com ", "password": "correct horse"}),
        )
        .await;
    let body = reply.ok_json();
    assert_fields(&body, &["user"]);
    assert_eq!(body["user"], account.user);
    let token = cookie_token(&reply);
    assert_ne!(token, account.token, "a new session");
    h.get("/auth/me", &Auth::cookie(&token)).await.ok_json();

    let wrong = h
        .post(
            "/auth/login",
            &Auth::None,
            json!({"email": "grace@example.com", "password": "wrong horse"}),
        )
        .await;
    let unknown = h
        .post(
            "/auth/login",
            &Auth::None,
            json!({"email": "nobody@example.com", "password": "correct horse"}),
        )
        .await;
    let empty = h
        .post(
            "/auth/login",
            &Auth::None,
            json!({"email": "", "password": ""}),
        )
        .await;
    let m1 = wrong.error(401, "Unauthorized");
    let m2 = unknown.error(401, "Unauthorized");
    let m3 = empty.error(401, "Unauthorized");
    assert_eq!(m1, m2);
    assert_eq!(m2, m3);
    assert!(wrong.header("set-cookie").is_none());
    h.post("/auth/login", &Auth::None, json!({"email": "x"}))
        .await
        .error(400, "BadRequest");
}

#[tokio::test]
async fn sessions_need_to_be_live() {
    let h = Harness::new().await;
    h.get("/auth/me", &Auth::None)
        .await
        .error(401, "Unauthorized");
    h.get("/auth/me", &Auth::cookie("0123456789abcdef"))
        .await
        .error(401, "Unauthorized");
    let account = h.signup("time@example.com").await;
    let key = h.new_key(&account.auth(), "k").await;
    // An API key is not a session.
    h.get("/auth/me", &Auth::key(key["keyValue"].as_str().unwrap()))
        .await
        .error(401, "Unauthorized");

    // Five days later the session has expired.
    h.clock.advance(Duration::from_secs(5 * 24 * 3600 - 1));
    h.get("/auth/me", &account.auth()).await.ok_json();
    h.clock.advance(Duration::from_secs(1));
    h.get("/auth/me", &account.auth())
        .await
        .error(401, "Unauthorized");
    h.get("/jobs", &account.auth())
        .await
        .error(401, "Unauthorized");
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let h = Harness::new().await;
    let account = h.signup("bye@example.com").await;
    let second = cookie_token(
        &h.post(
            "/auth/login",
            &Auth::None,
            json!({"email": "bye@example.com", "password": "correct horse"}),
        )
        .await,
    );

    // The CSRF rule applies: a cookie and no JSON content type.
    let forged = h
        .send(
            Request::post("/auth/logout")
                .header("cookie", format!("ttr_session={}", account.token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("x=1"))
                .unwrap(),
        )
        .await;
    forged.error(403, "Forbidden");
    h.get("/auth/me", &account.auth()).await.ok_json();

    let reply = h.post("/auth/logout", &account.auth(), json!({})).await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
    let set = reply.header("set-cookie").unwrap();
    assert!(set.starts_with("ttr_session=;"), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
    h.get("/auth/me", &account.auth())
        .await
        .error(401, "Unauthorized");
    // Other sessions of the user live on.
    h.get("/auth/me", &Auth::cookie(&second)).await.ok_json();
    // Logging out again, or without a cookie, is fine.
    let again = h.post("/auth/logout", &account.auth(), json!({})).await;
    assert_eq!(again.ok_json(), json!({"ok": true}));
    let anonymous = h
        .dash(Method::POST, "/auth/logout", &Auth::None, None)
        .await;
    assert_eq!(anonymous.ok_json(), json!({"ok": true}));
}

#[tokio::test]
async fn projects_are_listed_and_created_by_users() {
    let h = Harness::new().await;
    let account = h.signup("owner@example.com").await;
    let auth = account.auth();
    let listed = h.get("/projects", &auth).await.ok_json();
    assert_eq!(listed, json!([account.project]));

    let created = h
        .post("/projects", &auth, json!({"slug": "second_app-2"}))
        .await
        .ok_json();
    assert_fields(&created, &["id", "slug", "monthQuota", "createdAt"]);
    assert_eq!(created["slug"], "second_app-2");
    let listed = h.get("/projects", &auth).await.ok_json();
    assert_eq!(listed, json!([account.project, created]));
    let me = h.get("/auth/me", &auth).await.ok_json();
    assert_eq!(me["projects"].as_array().unwrap().len(), 2);

    for slug in ["ab", "Upper", "a b", &"x".repeat(41)] {
        h.post("/projects", &auth, json!({ "slug": slug }))
            .await
            .error(400, "BadRequest");
    }
    h.post("/projects", &auth, json!({}))
        .await
        .error(400, "BadRequest");
    let taken = h
        .post("/projects", &auth, json!({"slug": "second_app-2"}))
        .await
        .error(409, "Conflict");
    assert!(taken.contains("second_app-2"), "{taken}");

    // An API key sees its own project only and cannot create projects.
    let key = h.new_key(&auth, "k").await;
    let key_auth = Auth::key(key["keyValue"].as_str().unwrap());
    assert_eq!(
        h.get("/projects", &key_auth).await.ok_json(),
        json!([account.project])
    );
    h.post("/projects", &key_auth, json!({"slug": "from-a-key"}))
        .await
        .error(403, "Forbidden");

    // No credentials.
    h.get("/projects", &Auth::None)
        .await
        .error(401, "Unauthorized");
    h.post("/projects", &Auth::None, json!({"slug": "anon"}))
        .await
        .error(401, "Unauthorized");
    // Wrong method.
    h.dash(Method::DELETE, "/projects", &auth, None)
        .await
        .error(405, "MethodNotAllowed");
}

#[tokio::test]
async fn cookie_mutations_need_a_json_content_type() {
    let h = Harness::new().await;
    let account = h.signup("csrf@example.com").await;
    let cookie = format!("ttr_session={}", account.token);
    let key = h.new_key(&account.auth(), "victim").await;
    let key_id = key["id"].as_str().unwrap();

    // A cross-site form post: refused before anything is read or changed.
    for (method, uri, content_type) in [
        ("POST", "/keys", Some("application/x-www-form-urlencoded")),
        ("POST", "/keys", Some("text/plain")),
        ("POST", "/keys", None),
        ("POST", "/projects", Some("multipart/form-data; boundary=x")),
        ("DELETE", &format!("/keys/{key_id}"), None),
        ("POST", "/jobs/job_x/executions", None),
    ] {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("cookie", &cookie);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = h
            .send(req.body(Body::from(r#"{"name":"x"}"#)).unwrap())
            .await;
        let message = reply.error(403, "Forbidden");
        assert!(message.contains("application/json"), "{message}");
    }
    assert_eq!(
        h.get("/keys", &account.auth())
            .await
            .ok_json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Reads need no content type; JSON with parameters passes.
    let reply = h
        .send(
            Request::get("/keys")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.ok_json();
    let reply = h
        .send(
            Request::post("/keys")
                .header("cookie", &cookie)
                .header("content-type", "application/json; charset=utf-8")
                .body(Body::from(r#"{"name":"ok"}"#))
                .unwrap(),
        )
        .await;
    reply.ok_json();

    // API keys are not cookies: a DELETE without a body needs no content type.
    let reply = h
        .send(
            Request::delete(format!("/keys/{key_id}"))
                .header("ttr-api-key", key["keyValue"].as_str().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"ok": true}));
}

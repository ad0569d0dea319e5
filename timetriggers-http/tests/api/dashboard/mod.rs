//! The dashboard API through the router: accounts, sessions, projects, keys, jobs,
//! executions, replay, and isolation between users.

mod accounts;
mod isolation;
mod jobs;
mod keys;
mod rate_limits;

use axum::body::Body;
use http::{Method, Request};
use serde_json::{json, Value};
use timetriggers_core::{Claim, CompletedExecution, DispatchOutcome, JobId, ResponseSummary};

use crate::common::{Harness, Reply, TARGET};

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Cookie(String),
    Key(String),
}

impl Auth {
    pub fn cookie(token: &str) -> Auth {
        Auth::Cookie(token.to_owned())
    }

    pub fn key(secret: &str) -> Auth {
        Auth::Key(secret.to_owned())
    }
}

/// A signed-up user: the `/auth/signup` answer and the session token.
pub struct Account {
    pub user: Value,
    pub project: Value,
    pub token: String,
}

impl Account {
    pub fn auth(&self) -> Auth {
        Auth::cookie(&self.token)
    }

    pub fn project_id(&self) -> &str {
        self.project["id"].as_str().unwrap()
    }
}

/// The value of `ttr_session` in a `Set-Cookie` answer.
pub fn cookie_token(reply: &Reply) -> String {
    let set = reply.header("set-cookie").expect("a Set-Cookie header");
    let first = set.split(';').next().unwrap();
    first.strip_prefix("ttr_session=").unwrap().to_owned()
}

impl Harness {
    /// A dashboard request: JSON body (with `content-type: application/json`) if any.
    pub async fn dash(&self, method: Method, uri: &str, auth: &Auth, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Cookie(token) => req = req.header("cookie", format!("ttr_session={token}")),
            Auth::Key(secret) => req = req.header("ttr-api-key", secret),
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str, auth: &Auth) -> Reply {
        self.dash(Method::GET, uri, auth, None).await
    }

    pub async fn post(&self, uri: &str, auth: &Auth, body: Value) -> Reply {
        self.dash(Method::POST, uri, auth, Some(body)).await
    }

    pub async fn signup(&self, email: &str) -> Account {
        let reply = self
            .post(
                "/auth/signup",
                &Auth::None,
                json!({"email": email, "password": "correct horse"}),
            )
            .await;
        let body = reply.ok_json();
        Account {
            user: body["user"].clone(),
            project: body["project"].clone(),
            token: cookie_token(&reply),
        }
    }

    /// Creates an API key through the dashboard; returns the create answer.
    pub async fn new_key(&self, auth: &Auth, name: &str) -> Value {
        self.post("/keys", auth, json!({ "name": name }))
            .await
            .ok_json()
    }

    /// Schedules a job to [`TARGET`] with this key; returns its id.
    pub async fn job(&self, key: &str, headers: &[(&str, &str)]) -> String {
        let done = self.schedule_ok(key, headers).await;
        done["triggerId"].as_str().unwrap().to_owned()
    }

    /// Claims everything due now and completes each with `outcome`.
    pub async fn deliver_due(&self, outcome: DispatchOutcome) -> Vec<JobId> {
        let now = self.clock_now();
        let claimed = self
            .store
            .claim_due(Claim {
                now,
                due_by: now,
                limit: 1000,
                lease_margin: std::time::Duration::from_secs(30),
                worker: "test".into(),
            })
            .await
            .unwrap();
        let done: Vec<_> = claimed
            .iter()
            .map(|c| CompletedExecution {
                execution_id: c.execution_id.clone(),
                job_id: c.job_id.clone(),
                attempt_number: c.attempt_number,
                completed_at: now,
                outcome: outcome.clone(),
                retry: None,
            })
            .collect();
        self.store.complete_executions(&done).await.unwrap();
        claimed.into_iter().map(|c| c.job_id).collect()
    }

    pub fn clock_now(&self) -> timetriggers_core::Timestamp {
        use timetriggers_core::Clock;
        self.clock.now()
    }
}

/// A response with a repeated header, a body and a status.
pub fn answer(status: u16) -> DispatchOutcome {
    DispatchOutcome::Response(ResponseSummary {
        status,
        headers: vec![
            ("content-type".into(), "text/plain".into()),
            ("set-cookie".into(), "a=1".into()),
            ("set-cookie".into(), "b=2".into()),
        ],
        body: format!("answered {status}"),
        size: 12,
    })
}

/// Asserts that `value` is an object with exactly these keys.
pub fn assert_fields(value: &Value, fields: &[&str]) {
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = fields.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{value}");
}

/// `DashboardJob`'s fields, as the reference names them.
pub const DASHBOARD_JOB_FIELDS: &[&str] = &[
    "id",
    "projectId",
    "projectSlug",
    "customKey",
    "title",
    "status",
    "scheduledAt",
    "httpUrl",
    "httpMethod",
    "httpHeaders",
    "registeredAt",
    "cancelledAt",
    "queuedAt",
    "startedAt",
    "completedAt",
    "responseStatus",
    "errorMessage",
    "rateLimitedAt",
    "rateLimitedUntil",
    "rateLimitedTags",
    "attemptNumber",
    "generatorId",
    "generatorCustomKey",
    "generatorStatus",
    "tags",
];

/// `Execution`'s fields.
pub const EXECUTION_FIELDS: &[&str] = &[
    "id",
    "jobId",
    "attemptNumber",
    "triggeredBy",
    "status",
    "plannedAt",
    "startedAt",
    "completedAt",
    "responseStatus",
    "responseHeaders",
    "responseBody",
    "responseSize",
    "errorMessage",
    "rateLimitedAt",
    "rateLimitedUntil",
    "rateLimitedTags",
];

/// `DashboardExecution`'s fields.
pub const DASHBOARD_EXECUTION_FIELDS: &[&str] = &[
    "id",
    "jobId",
    "attemptNumber",
    "triggeredBy",
    "status",
    "plannedAt",
    "startedAt",
    "completedAt",
    "responseStatus",
    "responseSize",
    "errorMessage",
    "rateLimitedAt",
    "rateLimitedUntil",
    "rateLimitedTags",
    "jobCustomKey",
    "jobTitle",
    "jobStatus",
    "jobHttpUrl",
    "jobHttpMethod",
    "projectSlug",
];

/// A target URL for jobs.
pub fn target() -> &'static str {
    TARGET
}

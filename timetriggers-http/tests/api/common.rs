//! A router over the real SQLite store, a manual clock, and helpers to call it and check the
//! contract's response shapes.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use timetriggers_core::{
    EngineSignal, ManualClock, MonthQuota, ProjectId, ServiceConfig, Store, TimeTriggers, Timestamp,
};
use timetriggers_http::{router, AppState, HttpConfig};
use timetriggers_store_sqlite::SqliteStore;
use tower::ServiceExt;

/// Where the manual clock stands.
pub const NOW: &str = "2026-11-22T09:30:00.000Z";

/// A target the service accepts (private targets are allowed in tests).
pub const TARGET: &str = "http://127.0.0.1:9/hook";

pub struct Harness {
    _dir: TempDir,
    pub sqlite: SqliteStore,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub service: TimeTriggers,
    pub app: Router,
}

/// A project and the secret of one of its API keys.
pub struct Tenant {
    pub project: ProjectId,
    pub key: String,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(MonthQuota::Unlimited, HttpConfig::default()).await
    }

    pub async fn with(quota: MonthQuota, http: HttpConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("tt.db")).await.unwrap();
        let sqlite = store.clone();
        let store: Arc<dyn Store> = Arc::new(store);
        let clock = Arc::new(ManualClock::new(Timestamp::parse_rfc3339(NOW).unwrap()));
        let service = TimeTriggers::new(
            store.clone(),
            clock.clone(),
            Arc::new(EngineSignal::new()),
            ServiceConfig {
                allow_private_targets: true,
                default_month_quota: quota,
            },
        );
        let app = router(AppState::new(service.clone(), http));
        Harness {
            _dir: dir,
            sqlite,
            store,
            clock,
            service,
            app,
        }
    }

    pub async fn tenant(&self, slug: &str) -> Tenant {
        let project = self.service.create_project(slug).await.unwrap();
        let key = self
            .service
            .create_api_key(&project.id, "test")
            .await
            .unwrap();
        Tenant {
            project: project.id,
            key: key.secret,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(request).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method /schedule` with these headers (the key first, if any) and body.
    pub async fn schedule(
        &self,
        method: Method,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri("/schedule");
        if let Some(key) = key {
            req = req.header("ttr-api-key", key);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    /// A POST /schedule of [`TARGET`] with extra headers, expected to succeed.
    pub async fn schedule_ok(&self, key: &str, headers: &[(&str, &str)]) -> Value {
        let mut all = vec![("ttr-url", TARGET)];
        all.extend_from_slice(headers);
        let reply = self.schedule(Method::POST, Some(key), &all, b"").await;
        reply.ok_json()
    }

    pub async fn cancel(&self, method: Method, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(method).uri("/cancel");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a 200 JSON answer and returns its body.
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert!(self.header("ttr-error").is_none());
        self.json()
    }

    /// Asserts the contract's error shape with this status and tag; returns the message.
    pub fn error(&self, status: u16, tag: &str) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.any_error(tag)
    }

    /// Asserts the error shape whatever the status; returns the message.
    pub fn any_error(&self, tag: &str) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        let obj = body.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 2, "exactly _tag and message: {body}");
        assert_eq!(body["_tag"], tag, "{body}");
        let message = body["message"]
            .as_str()
            .expect("message is a string")
            .to_owned();
        assert!(!message.is_empty());
        let header = self
            .headers
            .get("ttr-error")
            .expect("errors carry ttr-error")
            .as_bytes();
        assert!(header.len() <= 200, "ttr-error is short");
        assert!(
            header.iter().all(|b| (b' '..=b'~').contains(b)),
            "ttr-error is printable ASCII"
        );
        if message.len() <= 200 && message.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            assert_eq!(header, message.trim().as_bytes());
        }
        message
    }
}

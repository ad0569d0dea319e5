//! # TimeTriggers HTTP
//!
//! The axum router serving the TimeTriggers HTTP API: a thin translation of HTTP requests onto
//! [`timetriggers_core::TimeTriggers`], with the contract's error shape
//! (`{"_tag": "<Tag>", "message": "…"}` plus a `ttr-error` header) for every failure.
//!
//! [`router`] returns an `axum::Router` with its state applied, so an application can mount
//! it under any prefix and wrap it in its own layers. Here on a SQLite store in a temporary
//! directory, called in process:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use axum::body::Body;
//! use http::Request;
//! use timetriggers_core::{EngineSignal, ServiceConfig, SystemClock, TimeTriggers};
//! use timetriggers_http::{AppState, HttpConfig};
//! use timetriggers_store_sqlite::SqliteStore;
//! use tower::ServiceExt;
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("timetriggers.db")).await?;
//! let service = TimeTriggers::new(
//!     Arc::new(store),
//!     Arc::new(SystemClock),
//!     Arc::new(EngineSignal::new()),
//!     ServiceConfig::default(),
//! );
//! let config = HttpConfig {
//!     max_body_bytes: 256 * 1024,
//!     ..HttpConfig::default()
//! };
//! let app = axum::Router::new()
//!     .nest("/triggers", timetriggers_http::router(AppState::new(service, config)))
//!     .route("/", axum::routing::get(|| async { "my app" }));
//!
//! let health = Request::get("/triggers/health").body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(health).await?.status(), 200);
//!
//! let doc = Request::get("/triggers/openapi.json").body(Body::empty())?;
//! let res = app.oneshot(doc).await?;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # Ok(()) }
//! ```
//!
//! To serve it, hand `app` to `axum::serve` with a `tokio::net::TcpListener`. The router's
//! state is already applied (it is a `Router<()>`); an application whose own router carries a
//! state mounts it with `Router::nest_service` instead.
//!
//! ## Routes
//!
//! | route | answer |
//! |---|---|
//! | `GET, POST, PUT, PATCH, DELETE, HEAD /schedule` | 200 `ScheduleResult` and `ttr-trigger-id`, `ttr-scheduled-at`, `ttr-month-quota-remaining` headers |
//! | `DELETE, GET, POST /cancel` (and `HEAD`, which axum serves as `GET`) | 204 |
//! | `GET /health` | 200 `{"ok":true}`, or 503 when the store is unreachable |
//! | `GET /openapi.json` | 200: the OpenAPI 3.1 document of every route here (see [`openapi`]) |
//! | `POST /declare` | 200 `{summary, operations}`: the declare-managed items made exactly the declared set |
//! | `POST /bulk` | 200 `{summary, operations}`: cancels, then create-or-reschedule by key |
//! | `GET /cron/next?expression&timezone&from&count` | 200 `{"times": [...]}`: the next fire times, as a generator fires them |
//! | `POST /auth/signup`, `/auth/login`, `/auth/logout`; `GET /auth/me` | accounts and the `ttr_session` cookie |
//! | `GET, POST /projects`; `GET, POST /keys`; `DELETE /keys/{id}` | the caller's projects and API keys |
//! | `GET /jobs`, `GET /jobs/{id}`, `GET, POST /jobs/{id}/executions`, `GET /executions` | jobs, executions, replay |
//! | `GET, POST /rate-limits`; `PUT, DELETE /rate-limits/{id}` | per-tag rate-limit rules |
//!
//! Dashboard routes take the session cookie or a `ttr-api-key` header (scoped to the key's
//! project); see `docs/dashboard-api.md`.
//!
//! Unknown routes answer a JSON 404, a known route called with another method a JSON 405, and
//! a handler panic a JSON 500. A body over [`HttpConfig::max_body_bytes`] is a 413, checked
//! from `content-length` before anything else and while reading a chunked body.
//!
//! Every route is mounted from its `#[utoipa::path]` annotation, so the router and the OpenAPI
//! document ([`openapi`], served at `/openapi.json`) list the same routes.
//!
//! Handlers that take JSON bodies use [`ApiJson`], whose rejections are 400 `BadRequest` (or
//! 413) in the same shape. [`ErrorTag::of`] is the one table from core errors to statuses.

#![warn(missing_docs)]

mod cron;
mod dashboard;
mod error;
mod extract;
mod openapi;
mod rate_limits;
mod router;
mod state;
mod sync;
mod triggers;

pub use error::{ApiError, ErrorTag};
pub use extract::ApiJson;
pub use router::{openapi, router};
pub use state::{AppState, HttpConfig};

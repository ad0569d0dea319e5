//! # TimeTriggers HTTP
//!
//! The axum router serving the TimeTriggers HTTP API: a thin translation of HTTP requests onto
//! [`timetriggers_core::TimeTriggers`], with the contract's error shape
//! (`{"_tag": "<Tag>", "message": "…"}` plus a `ttr-error` header) for every failure.
//!
//! [`router`] returns an `axum::Router` with its state applied, so an application can mount
//! it under any prefix and wrap it in its own layers:
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn timetriggers_core::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use timetriggers_core::{EngineSignal, ServiceConfig, SystemClock, TimeTriggers};
//! use timetriggers_http::{AppState, HttpConfig};
//!
//! let service = TimeTriggers::new(
//!     store,
//!     Arc::new(SystemClock),
//!     Arc::new(EngineSignal::new()),
//!     ServiceConfig::default(),
//! );
//! let config = HttpConfig {
//!     max_body_bytes: 256 * 1024,
//!     ..HttpConfig::default()
//! };
//! let state = AppState::new(service, config);
//! let app = axum::Router::new()
//!     .nest("/triggers", timetriggers_http::router(state))
//!     .route("/", axum::routing::get(|| async { "my app" }));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The router's state is already applied (it is a `Router<()>`); an application whose own
//! router carries a state mounts it with `Router::nest_service` instead.
//!
//! ## Routes
//!
//! | route | answer |
//! |---|---|
//! | `GET, POST, PUT, PATCH, DELETE, HEAD /schedule` | 200 `ScheduleResult` and `ttr-trigger-id`, `ttr-scheduled-at`, `ttr-month-quota-remaining` headers |
//! | `DELETE, GET, POST /cancel` (and `HEAD`, which axum serves as `GET`) | 204 |
//! | `GET /health` | 200 `{"ok":true}`, or 503 when the store is unreachable |
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
//! Handlers that take JSON bodies use [`ApiJson`], whose rejections are 400 `BadRequest` (or
//! 413) in the same shape. [`ErrorTag::of`] is the one table from core errors to statuses.

#![warn(missing_docs)]

mod cron;
mod dashboard;
mod error;
mod extract;
mod rate_limits;
mod router;
mod state;
mod sync;
mod triggers;

pub use error::{ApiError, ErrorTag};
pub use extract::ApiJson;
pub use router::router;
pub use state::{AppState, HttpConfig};

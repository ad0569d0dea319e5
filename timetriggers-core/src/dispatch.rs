//! The [`Dispatcher`] trait and [`HttpDispatcher`], the reqwest implementation that sends jobs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ids::{ExecutionId, JobId};
use crate::rules::target::is_forbidden_ip;

/// At most this much of a response body is kept.
pub const RESPONSE_BODY_KEEP: usize = 64 * 1024;
/// Reading a response body stops after this many bytes.
pub const RESPONSE_BODY_READ_LIMIT: u64 = 10 * 1024 * 1024;

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRequest {
    /// The execution being delivered.
    pub execution_id: ExecutionId,
    /// Its job (sent as `x-callback-id`).
    pub job_id: JobId,
    /// Sent as `ttr-attempt`.
    pub attempt_number: u32,
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers to forward.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Bytes,
    /// How long the target has to answer (headers and body).
    pub timeout: Duration,
}

/// What the target answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSummary {
    /// Status code.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// At most [`RESPONSE_BODY_KEEP`] bytes of the body, as UTF-8 with invalid bytes replaced.
    pub body: String,
    /// Full number of body bytes read (reading stops at [`RESPONSE_BODY_READ_LIMIT`]).
    pub size: u64,
}

/// The result of a delivery. A non-2xx answer is a response, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// The target answered.
    Response(ResponseSummary),
    /// No answer: connection error, timeout, refused target, interruption.
    Failed(String),
}

impl DispatchOutcome {
    /// The status code, if the target answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DispatchOutcome::Response(r) => Some(r.status),
            DispatchOutcome::Failed(_) => None,
        }
    }

    /// The error message, if the delivery failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            DispatchOutcome::Response(_) => None,
            DispatchOutcome::Failed(e) => Some(e),
        }
    }
}

/// Sends one delivery. Implementations never fail: every problem is an outcome.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Dispatcher: Send + Sync + fmt::Debug {
    /// Delivers `req` and reports what happened.
    async fn dispatch(&self, req: &DispatchRequest) -> DispatchOutcome;
}

/// Settings of [`HttpDispatcher`].
#[derive(Debug, Clone)]
pub struct HttpDispatcherConfig {
    /// Allow targets on loopback, private, link-local and similar addresses.
    pub allow_private_targets: bool,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// `user-agent` sent when the job does not set one.
    pub user_agent: String,
}

impl Default for HttpDispatcherConfig {
    fn default() -> Self {
        HttpDispatcherConfig {
            allow_private_targets: false,
            pool_max_idle_per_host: 512,
            user_agent: concat!("timetriggers/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The reqwest dispatcher: connection reuse, no redirects, a per-delivery timeout, and (unless
/// allowed) a guard that refuses private targets at resolution time, so there is no window
/// between the check and the connect.
#[derive(Debug, Clone)]
pub struct HttpDispatcher {
    client: reqwest::Client,
    allow_private_targets: bool,
}

impl HttpDispatcher {
    /// Builds the client.
    pub fn new(config: HttpDispatcherConfig) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .user_agent(config.user_agent);
        if !config.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(HttpDispatcher {
            client: builder.build()?,
            allow_private_targets: config.allow_private_targets,
        })
    }

    async fn send(&self, req: &DispatchRequest) -> Result<ResponseSummary, String> {
        let url = reqwest::Url::parse(&req.url).map_err(|e| format!("invalid url: {e}"))?;
        if !self.allow_private_targets {
            if let Some(ip) = literal_ip(&url) {
                if is_forbidden_ip(ip) {
                    return Err(format!("target address {ip} is not allowed"));
                }
            }
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        let mut builder = self.client.request(method, url).timeout(req.timeout);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = builder
            .header("x-callback-id", req.job_id.as_str())
            .header("ttr-attempt", req.attempt_number.to_string());
        if !req.body.is_empty() {
            builder = builder.body(req.body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| describe(&e, req.timeout))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut kept: Vec<u8> = Vec::new();
        let mut size: u64 = 0;
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| describe(&e, req.timeout))?
        {
            let room = RESPONSE_BODY_KEEP.saturating_sub(kept.len());
            kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            size = size.saturating_add(chunk.len() as u64);
            if size >= RESPONSE_BODY_READ_LIMIT {
                break;
            }
        }
        Ok(ResponseSummary {
            status,
            headers,
            body: String::from_utf8_lossy(&kept).into_owned(),
            size,
        })
    }
}

#[async_trait]
impl Dispatcher for HttpDispatcher {
    async fn dispatch(&self, req: &DispatchRequest) -> DispatchOutcome {
        match self.send(req).await {
            Ok(r) => DispatchOutcome::Response(r),
            Err(e) => DispatchOutcome::Failed(e),
        }
    }
}

fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timeout after {} ms", timeout.as_millis());
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Resolves names with the system resolver and drops every forbidden address; a name with no
/// public address fails to resolve, so the connection is never made.
#[derive(Debug)]
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no allowed (public) address").into());
            }
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

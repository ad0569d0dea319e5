//! The [`Dispatcher`] trait and [`HttpDispatcher`], the hyper implementation that sends jobs.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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

/// The connector: plain TCP or TLS (rustls, Mozilla roots, HTTP/1.1 or HTTP/2 by ALPN) over
/// a resolver that can refuse private addresses.
type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// Why [`HttpDispatcher::new`] failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP dispatcher: {0}")]
pub struct DispatcherBuildError(String);

/// The HTTP dispatcher (hyper's pooled client): connection reuse, no redirects, a
/// per-delivery timeout, and (unless allowed) a guard that refuses private targets at
/// resolution time, so there is no window between the check and the connect.
///
/// It builds each request straight from the job (method, URL, headers, body) and reads the
/// answer with the limits of [`RESPONSE_BODY_KEEP`] and [`RESPONSE_BODY_READ_LIMIT`]. Sent
/// headers besides the job's own: `x-callback-id`, `ttr-attempt`, and `user-agent` and
/// `accept: */*` unless the job sets them.
#[derive(Debug, Clone)]
pub struct HttpDispatcher {
    client: Client<Connector, Full<Bytes>>,
    allow_private_targets: bool,
    user_agent: HeaderValue,
}

impl HttpDispatcher {
    /// Builds the client.
    pub fn new(config: HttpDispatcherConfig) -> Result<Self, DispatcherBuildError> {
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            DispatcherBuildError(format!("invalid user agent {:?}", config.user_agent))
        })?;
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            allow_private_targets: config.allow_private_targets,
        });
        // The TLS layer takes https:// URLs; plain TCP carries both.
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| DispatcherBuildError(e.to_string()))?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        Ok(HttpDispatcher {
            client,
            allow_private_targets: config.allow_private_targets,
            user_agent,
        })
    }

    /// The request for `req`, or why it cannot be sent.
    fn request(&self, req: &DispatchRequest) -> Result<Request<Full<Bytes>>, String> {
        // Parsed as a browser would (IDNA, percent-encoding), then handed on as a URI.
        let url = url::Url::parse(&req.url).map_err(|e| format!("invalid url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported url scheme {:?}", url.scheme()));
        }
        if !self.allow_private_targets {
            if let Some(ip) = literal_ip(&url) {
                if is_forbidden_ip(ip) {
                    return Err(format!("target address {ip} is not allowed"));
                }
            }
        }
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| format!("invalid url: {e}"))?;
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        let mut request = Request::new(Full::new(req.body.clone()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            headers.append(name, value);
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, self.user_agent.clone());
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let callback = HeaderValue::from_str(req.job_id.as_str())
            .map_err(|_| format!("invalid job id {:?}", req.job_id.as_str()))?;
        headers.append(HeaderName::from_static("x-callback-id"), callback);
        headers.append(
            HeaderName::from_static("ttr-attempt"),
            HeaderValue::from(req.attempt_number),
        );
        Ok(request)
    }

    async fn send(&self, req: &DispatchRequest) -> Result<ResponseSummary, String> {
        let request = self.request(req)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let (parts, mut body) = response.into_parts();
            let headers = parts
                .headers
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
            while let Some(frame) = body.frame().await {
                let Ok(chunk) = frame.map_err(describe)?.into_data() else {
                    continue; // trailers
                };
                let room = RESPONSE_BODY_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                size = size.saturating_add(chunk.len() as u64);
                if size >= RESPONSE_BODY_READ_LIMIT {
                    break;
                }
            }
            Ok(ResponseSummary {
                status: parts.status.as_u16(),
                headers,
                body: String::from_utf8_lossy(&kept).into_owned(),
                size,
            })
        };
        tokio::time::timeout(req.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("timeout after {} ms", req.timeout.as_millis())))
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

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// An error and its sources, one after the other.
fn describe(e: impl std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Resolves names with the system resolver; unless private targets are allowed, drops every
/// forbidden address, so that a name with no public address fails to resolve and the
/// connection is never made.
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow_private_targets: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private_targets;
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|a| allow_private || !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no allowed (public) address").into());
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn dispatcher(allow_private_targets: bool) -> HttpDispatcher {
        HttpDispatcher::new(HttpDispatcherConfig {
            allow_private_targets,
            ..HttpDispatcherConfig::default()
        })
        .unwrap()
    }

    fn delivery(url: &str, headers: &[(&str, &str)]) -> DispatchRequest {
        DispatchRequest {
            execution_id: ExecutionId::generate(),
            job_id: JobId::generate(),
            attempt_number: 2,
            method: "POST".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn requests_carry_the_job_headers_and_the_defaults_it_does_not_set() {
        let d = dispatcher(false);
        let req = delivery(
            "https://bücher.example/a?b=c d",
            &[("X-Thing", "1"), ("x-thing", "2"), ("accept", "text/plain")],
        );
        let built = d.request(&req).unwrap();
        assert_eq!(built.method(), Method::POST);
        assert_eq!(
            built.uri().to_string(),
            "https://xn--bcher-kva.example/a?b=c%20d"
        );
        let h = built.headers();
        let things: Vec<_> = h.get_all("x-thing").iter().collect();
        assert_eq!(things, ["1", "2"]);
        assert_eq!(h["accept"], "text/plain", "the job's own accept is kept");
        assert!(h["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("timetriggers/"));
        assert_eq!(h["x-callback-id"], req.job_id.as_str());
        assert_eq!(h["ttr-attempt"], "2");

        let own_agent = delivery("http://example.com/", &[("User-Agent", "mine")]);
        let built = d.request(&own_agent).unwrap();
        assert_eq!(built.headers().get_all("user-agent").iter().count(), 1);
        assert_eq!(built.headers()["user-agent"], "mine");
        assert_eq!(built.headers()["accept"], "*/*");
    }

    #[test]
    fn what_cannot_be_sent_is_an_error_before_any_connection() {
        let d = dispatcher(false);
        let err =
            |url: &str, headers: &[(&str, &str)]| d.request(&delivery(url, headers)).unwrap_err();
        assert!(err("ftp://example.com/", &[]).contains("unsupported url scheme"));
        assert!(err("not a url", &[]).contains("invalid url"));
        assert!(err("http://example.com/", &[("bad name", "x")]).contains("invalid header name"));
        assert!(err("http://example.com/", &[("x", "a\nb")]).contains("invalid value"));
        assert!(err("http://127.0.0.1:9/", &[]).contains("is not allowed"));
        assert!(err("http://[::1]:9/", &[]).contains("is not allowed"));
        let mut bad_method = delivery("http://example.com/", &[]);
        bad_method.method = "GE T".into();
        assert!(d
            .request(&bad_method)
            .unwrap_err()
            .contains("invalid method"));
        assert!(dispatcher(true)
            .request(&delivery("http://127.0.0.1:9/", &[]))
            .is_ok());
    }

    /// A one-connection server that reads a request head and answers with `answer` (or never,
    /// when `None`).
    async fn serve_once(answer: Option<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).await.unwrap();
                if n == 0 {
                    return;
                }
                got.extend_from_slice(&b[..n]);
            }
            match answer {
                Some(a) => {
                    let _ = s.write_all(&a).await;
                }
                None => {
                    // Hold the connection open without answering.
                    let _ = s.read(&mut [0u8; 1]).await;
                }
            }
        });
        format!("http://{addr}/hook")
    }

    #[tokio::test]
    async fn a_long_body_is_kept_up_to_the_limit_and_counted_in_full() {
        let total = RESPONSE_BODY_KEEP + 1000;
        let mut answer =
            format!("HTTP/1.1 201 Created\r\ncontent-length: {total}\r\nx-reply: yes\r\n\r\n")
                .into_bytes();
        answer.extend(std::iter::repeat_n(b'a', total));
        let url = serve_once(Some(answer)).await;
        let outcome = dispatcher(true).dispatch(&delivery(&url, &[])).await;
        let DispatchOutcome::Response(r) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(r.status, 201);
        assert_eq!(r.size, total as u64);
        assert_eq!(r.body.len(), RESPONSE_BODY_KEEP);
        assert!(r
            .headers
            .contains(&("x-reply".to_owned(), "yes".to_owned())));
    }

    #[tokio::test]
    async fn no_answer_within_the_timeout_and_a_refused_connection_are_failures() {
        let url = serve_once(None).await;
        let mut req = delivery(&url, &[]);
        req.timeout = Duration::from_millis(200);
        let outcome = dispatcher(true).dispatch(&req).await;
        assert_eq!(outcome.error(), Some("timeout after 200 ms"));

        // A port nobody listens on: bind one, then let it go.
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let outcome = dispatcher(true)
            .dispatch(&delivery(&format!("http://127.0.0.1:{port}/"), &[]))
            .await;
        let error = outcome.error().unwrap_or_default().to_owned();
        assert!(error.contains("onnect"), "{error}");
    }
}

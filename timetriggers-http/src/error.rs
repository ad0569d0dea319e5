//! [`ApiError`]: the one place where failures become HTTP responses. [`ErrorTag::of`] is the
//! single table from core [`Error`] to the contract's tags; [`ErrorTag::status`] gives each
//! tag its status.

use std::any::Any;
use std::fmt;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use timetriggers_core::Error;
use utoipa::ToSchema;

/// The `ttr-error` response header: the error message, for callers that only read headers.
pub(crate) const TTR_ERROR: HeaderName = HeaderName::from_static("ttr-error");

/// Longest `ttr-error` header value, in bytes (the message is cut there).
const MAX_ERROR_HEADER_LEN: usize = 200;

pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The `_tag` of an error body (API.md §1), each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ToSchema)]
#[non_exhaustive]
pub enum ErrorTag {
    /// 400: the request cannot be decoded or a value is invalid.
    BadRequest,
    /// 401: missing, unknown or revoked credentials.
    Unauthorized,
    /// 402: the project's monthly quota is used up.
    QuotaExceeded,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 404: no such route or item.
    NotFound,
    /// 405: a known route, a method it does not serve.
    MethodNotAllowed,
    /// 409: a uniqueness rule was violated.
    Conflict,
    /// 410: the item is no longer in a state that allows this.
    Gone,
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 429: slow down.
    TooManyRequests,
    /// 500: a bug or an unexpected backend failure.
    InternalError,
    /// 503: the store is unreachable.
    Unavailable,
}

impl ErrorTag {
    /// The tag for a core error: the one table from core errors to the contract.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::BadRequest(_) => ErrorTag::BadRequest,
            Error::Unauthorized(_) => ErrorTag::Unauthorized,
            Error::QuotaExceeded(_) => ErrorTag::QuotaExceeded,
            Error::Forbidden(_) => ErrorTag::Forbidden,
            Error::NotFound(_) => ErrorTag::NotFound,
            Error::Conflict(_) => ErrorTag::Conflict,
            Error::Gone(_) => ErrorTag::Gone,
            Error::Unavailable(_) => ErrorTag::Unavailable,
            Error::Internal(_) => ErrorTag::InternalError,
            _ => ErrorTag::InternalError,
        }
    }

    /// The wire name (`"BadRequest"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorTag::BadRequest => "BadRequest",
            ErrorTag::Unauthorized => "Unauthorized",
            ErrorTag::QuotaExceeded => "QuotaExceeded",
            ErrorTag::Forbidden => "Forbidden",
            ErrorTag::NotFound => "NotFound",
            ErrorTag::MethodNotAllowed => "MethodNotAllowed",
            ErrorTag::Conflict => "Conflict",
            ErrorTag::Gone => "Gone",
            ErrorTag::PayloadTooLarge => "PayloadTooLarge",
            ErrorTag::TooManyRequests => "TooManyRequests",
            ErrorTag::InternalError => "InternalError",
            ErrorTag::Unavailable => "Unavailable",
        }
    }

    /// The status this tag answers with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorTag::BadRequest => StatusCode::BAD_REQUEST,
            ErrorTag::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorTag::QuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorTag::Forbidden => StatusCode::FORBIDDEN,
            ErrorTag::NotFound => StatusCode::NOT_FOUND,
            ErrorTag::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorTag::Conflict => StatusCode::CONFLICT,
            ErrorTag::Gone => StatusCode::GONE,
            ErrorTag::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorTag::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorTag::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorTag::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What a 5xx body says instead of the real error, which is logged.
    const fn generic_message(self) -> Option<&'static str> {
        match self {
            ErrorTag::InternalError => Some("internal server error"),
            ErrorTag::Unavailable => Some("the service is temporarily unavailable; retry later"),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered as `{"_tag": "<Tag>", "message": "…"}` with the tag's status,
/// `content-type: application/json` and a `ttr-error: <message>` header.
///
/// Built from a core [`Error`] (`?` in a handler does it) or with [`ApiError::new`]. A 5xx
/// shows a generic message; the real one and its source chain are logged with
/// `tracing::error!` when the response is made.
///
/// ```
/// use axum::response::IntoResponse;
/// use timetriggers_http::{ApiError, ErrorTag};
///
/// let err = ApiError::from(timetriggers_core::Error::Gone("job is running".into()));
/// assert_eq!(err.tag(), ErrorTag::Gone);
/// assert_eq!(err.into_response().status(), 410);
/// ```
#[derive(Debug)]
pub struct ApiError {
    tag: ErrorTag,
    message: String,
    source: Option<Error>,
}

impl ApiError {
    /// An error with this tag and message (for a 5xx, the message is logged, not shown).
    pub fn new(tag: ErrorTag, message: impl Into<String>) -> Self {
        ApiError {
            tag,
            message: message.into(),
            source: None,
        }
    }

    /// A 400 whose message names the problem.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorTag::BadRequest, message)
    }

    /// The 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorTag::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// The tag.
    pub fn tag(&self) -> ErrorTag {
        self.tag
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.tag.status()
    }

    /// The message as the caller sees it (generic for a 5xx).
    pub fn message(&self) -> &str {
        self.tag.generic_message().unwrap_or(&self.message)
    }

    fn log_server_error(&self) {
        let mut chain = self.message.clone();
        let mut next = self
            .source
            .as_ref()
            .and_then(|e| std::error::Error::source(e));
        while let Some(cause) = next {
            // thiserror messages often embed their source already; do not repeat it.
            let text = cause.to_string();
            if !chain.contains(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            next = cause.source();
        }
        if self.tag == ErrorTag::Unavailable {
            // An outage answers every request with 503: one line each, not an error storm.
            tracing::warn!(error = %chain, "store unavailable");
        } else {
            tracing::error!(tag = self.tag.as_str(), error = %chain, "request failed");
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.tag, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            tag: ErrorTag::of(&error),
            message: error.to_string(),
            source: Some(error),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::bad_request("expected a JSON body with content-type: application/json")
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorTag::PayloadTooLarge, other.body_text())
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

/// The body of every error: `{"_tag": "<Tag>", "message": "…"}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong; each tag has one status.
    #[serde(rename = "_tag")]
    #[schema(value_type = ErrorTag)]
    tag: &'static str,
    /// A human-readable explanation (generic for a 5xx).
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.tag.status().is_server_error() {
            self.log_server_error();
        }
        let message = self.message();
        let body = ErrorBody {
            tag: self.tag.as_str(),
            message,
        };
        let body = serde_json::to_vec(&body).unwrap_or_else(|_| {
            format!(r#"{{"_tag":"{}","message":"error"}}"#, self.tag.as_str()).into_bytes()
        });
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.tag.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, APPLICATION_JSON);
        headers.insert(TTR_ERROR, header_safe(message));
        response
    }
}

/// `message` as a header value: printable ASCII only (anything else becomes `?`, control
/// characters a space), cut to [`MAX_ERROR_HEADER_LEN`] bytes, trimmed.
pub(crate) fn header_safe(message: &str) -> HeaderValue {
    let mut out = Vec::with_capacity(message.len().min(MAX_ERROR_HEADER_LEN));
    for c in message.chars() {
        if out.len() >= MAX_ERROR_HEADER_LEN {
            break;
        }
        out.push(match c {
            ' '..='~' => c as u8,
            c if c.is_control() => b' ',
            _ => b'?',
        });
    }
    let start = out.iter().position(|b| *b != b' ').unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |i| i + 1);
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&out[start..end]))
        .unwrap_or(HeaderValue::from_static("error"))
}

/// The answer to a handler panic (for `CatchPanicLayer`): a JSON 500, the panic logged.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = if let Some(s) = panic.downcast_ref::<String>() {
        s.as_str()
    } else if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else {
        "non-string panic payload"
    };
    ApiError::new(
        ErrorTag::InternalError,
        format!("handler panicked: {detail}"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_maps_to_its_contract_status() {
        let cases = [
            (Error::BadRequest("b".into()), 400, "BadRequest"),
            (Error::Unauthorized("u".into()), 401, "Unauthorized"),
            (Error::QuotaExceeded("q".into()), 402, "QuotaExceeded"),
            (Error::Forbidden("f".into()), 403, "Forbidden"),
            (Error::NotFound("n".into()), 404, "NotFound"),
            (Error::Conflict("c".into()), 409, "Conflict"),
            (Error::Gone("g".into()), 410, "Gone"),
            (Error::Unavailable("down".into()), 503, "Unavailable"),
            (
                Error::Internal(timetriggers_core::StoreError::corrupt("bad row")),
                500,
                "InternalError",
            ),
        ];
        for (error, status, tag) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status(), status);
            assert_eq!(api.tag().as_str(), tag);
        }
    }

    #[test]
    fn server_errors_hide_their_message() {
        let api = ApiError::from(Error::Internal(timetriggers_core::StoreError::corrupt(
            "secret table name",
        )));
        assert_eq!(api.message(), "internal server error");
        let api = ApiError::from(Error::Unavailable("pool timed out".into()));
        assert!(!api.message().contains("pool"));
        let api = ApiError::bad_request("ttr-url is missing");
        assert_eq!(api.message(), "ttr-url is missing");
    }

    #[test]
    fn header_values_are_printable_ascii_and_short() {
        assert_eq!(header_safe("plain message"), "plain message");
        assert_eq!(header_safe("a\u{0}b\tc\u{7f}d\ne"), "a b c d e");
        assert_eq!(header_safe("héllo ☃"), "h?llo ?");
        assert_eq!(header_safe("  padded  "), "padded");
        assert_eq!(header_safe(&"x".repeat(10_000)).len(), MAX_ERROR_HEADER_LEN);
        assert_eq!(header_safe(""), "");
    }

    #[test]
    fn panic_payloads_become_json_500s() {
        let r = panic_response(Box::new("boom"));
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[TTR_ERROR], "internal server error");
        let r = panic_response(Box::new(42_u8));
        assert_eq!(r.status(), 500);
    }
}

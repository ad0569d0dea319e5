//! Request decoding shared by the handlers: the [`ApiJson`] extractor, header pairs, and
//! bodies read under a byte limit.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{FromRequest, Json, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ErrorTag, APPLICATION_JSON};

/// A JSON body (as an extractor) or a JSON response.
///
/// Like [`axum::Json`], but every rejection is an [`ApiError`] in the contract's shape: a
/// missing `content-type: application/json`, malformed JSON or a value of the wrong type is a
/// 400 `BadRequest` whose message names the problem (and the field, when there is one); a body
/// over the router's limit is a 413 `PayloadTooLarge`.
///
/// ```
/// use serde::Deserialize;
/// use timetriggers_http::{ApiError, ApiJson};
///
/// #[derive(Deserialize)]
/// struct NewKey {
///     name: String,
/// }
///
/// async fn create_key(ApiJson(body): ApiJson<NewKey>) -> Result<ApiJson<String>, ApiError> {
///     Ok(ApiJson(body.name))
/// }
/// # let _ = axum::Router::<()>::new().route("/keys", axum::routing::post(create_key));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request(
                "expected a JSON body with content-type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorTag::PayloadTooLarge, rejection.body_text())
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })?;
        reject_nul_escapes(&bytes)?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(CONTENT_TYPE, APPLICATION_JSON)], body).into_response(),
            Err(e) => ApiError::new(
                ErrorTag::InternalError,
                format!("failed to serialise the response: {e}"),
            )
            .into_response(),
        }
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 400 for a JSON text holding an escaped NUL character (`\u0000`): no stored text may
/// contain one (PostgreSQL refuses them), so it is refused at the door for every backend.
pub(crate) fn reject_nul_escapes(json: &[u8]) -> Result<(), ApiError> {
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if b == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return Err(ApiError::bad_request(
                    "strings must not contain NUL characters (\\u0000)",
                ));
            }
            // Skip the escaped character: an escaped backslash followed by `u0000` is text.
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Reads the whole body, refusing with 413 one over `limit` bytes: up front from
/// `content-length` when present, and while reading otherwise (chunked bodies).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::payload_too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// Every header as a (lower-case name, value) pair, values as lossy UTF-8. Repeated names keep
/// their values' order (the header map groups the values of one name together).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        pairs.push((
            name.as_str().to_owned(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    pairs
}

/// The first value of `name`, trimmed, as lossy UTF-8; `None` when absent or blank.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    let value = headers.get(name)?;
    let text: Cow<'a, str> = match String::from_utf8_lossy(value.as_bytes()) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    };
    Some(text).filter(|s| !s.is_empty())
}

/// [`header_text`], or a 400 naming the missing header.
pub(crate) fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Cow<'a, str>, ApiError> {
    header_text(headers, name)
        .ok_or_else(|| ApiError::bad_request(format!("missing required header {name}")))
}

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use axum::Router;
    use http::{HeaderValue, StatusCode};
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;
    use crate::error::TTR_ERROR;

    #[derive(Debug, Deserialize, Serialize)]
    struct Payload {
        name: String,
        count: u32,
    }

    fn app() -> Router {
        async fn echo(ApiJson(p): ApiJson<Payload>) -> ApiJson<Payload> {
            ApiJson(p)
        }
        crate::router::with_contract_layers(Router::new().route("/echo", post(echo)), 64)
    }

    async fn call(content_type: Option<&str>, body: &str) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::post("/echo");
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let res = app()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn error_body(body: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        (
            v["_tag"].as_str().unwrap().to_owned(),
            v["message"].as_str().unwrap().to_owned(),
        )
    }

    #[tokio::test]
    async fn api_json_accepts_and_answers_json() {
        let (status, headers, body) =
            call(Some("application/json"), r#"{"name":"a","count":2}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(body, r#"{"name":"a","count":2}"#);
    }

    #[tokio::test]
    async fn api_json_rejections_are_contract_errors_naming_the_problem() {
        for (ct, body, needle) in [
            (
                Some("application/json"),
                r#"{"name":"a","count":"x"}"#,
                "count",
            ),
            (Some("application/json"), r#"{"name":"a"}"#, "count"),
            (
                Some("application/json"),
                r#"{"name":"a","count":-1}"#,
                "count",
            ),
            (Some("application/json"), "{not json", "JSON"),
            (
                Some("text/plain"),
                r#"{"name":"a","count":1}"#,
                "content-type",
            ),
            (None, r#"{"name":"a","count":1}"#, "content-type"),
        ] {
            let (status, headers, text) = call(ct, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            let (tag, message) = error_body(&text);
            assert_eq!(tag, "BadRequest");
            assert!(message.contains(needle), "{message:?} should name {needle}");
            assert!(headers.contains_key(TTR_ERROR));
        }
    }

    #[tokio::test]
    async fn api_json_over_the_limit_is_413() {
        let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(100));
        let (status, _, text) = call(Some("application/json"), &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_body(&text).0, "PayloadTooLarge");
    }

    #[tokio::test]
    async fn bodies_are_limited_by_length_and_while_streaming() {
        let mut headers = HeaderMap::new();
        let ok = read_body(&headers, Body::from("12345"), 5).await.unwrap();
        assert_eq!(&ok[..], b"12345");
        let err = read_body(&headers, Body::from("123456"), 5)
            .await
            .unwrap_err();
        assert_eq!(err.tag(), ErrorTag::PayloadTooLarge);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let err = read_body(&headers, Body::empty(), 5).await.unwrap_err();
        assert_eq!(err.tag(), ErrorTag::PayloadTooLarge);
    }

    #[test]
    fn escaped_nul_characters_are_refused_but_escaped_backslashes_are_not() {
        assert!(reject_nul_escapes(br#"{"a":"x\u0000y"}"#).is_err());
        assert!(reject_nul_escapes(br#"{"a\u0000":1}"#).is_err());
        assert!(reject_nul_escapes(br#"{"a":"x\\u0000y"}"#).is_ok());
        assert!(reject_nul_escapes(br#"{"a":"x\u0001y\\"}"#).is_ok());
        assert!(reject_nul_escapes(br#"{"a":"\\\u0000"}"#).is_err());
    }

    #[test]
    fn header_text_trims_and_treats_blank_as_absent() {
        let mut headers = HeaderMap::new();
        headers.insert("a", HeaderValue::from_static("  v  "));
        headers.insert("b", HeaderValue::from_static(""));
        headers.insert("c", HeaderValue::from_bytes(b"x\xffy").unwrap());
        assert_eq!(header_text(&headers, "a").as_deref(), Some("v"));
        assert_eq!(header_text(&headers, "b"), None);
        assert_eq!(header_text(&headers, "c").as_deref(), Some("x\u{fffd}y"));
        assert_eq!(header_text(&headers, "d"), None);
        let err = required_header(&headers, "b").unwrap_err();
        assert_eq!(err.message(), "missing required header b");
    }
}

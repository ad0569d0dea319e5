//! Dashboard authentication: the [`Authed`] extractor (an API key, or the session cookie plus
//! the CSRF rule), the session cookie, and `/auth/*`.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use timetriggers_core::accounts::{csrf_allows, SESSION_COOKIE, SESSION_TTL};
use timetriggers_core::{Caller, Error};
use utoipa::ToSchema;

use crate::dashboard::dto::{OkResponse, ProjectDto, UserDto, OK};
use crate::error::{ApiError, ErrorBody, ErrorTag};
use crate::extract::header_text;
use crate::state::AppState;
use crate::ApiJson;

/// The 403 of a cookie-authenticated state change without `content-type: application/json`.
const CSRF_REFUSAL: &str = "requests that change something and are authenticated by the session \
     cookie must send content-type: application/json";

/// An authenticated dashboard caller: by the `ttr-api-key` header when present (scoped to the
/// key's project), else by the `ttr_session` cookie. A cookie-authenticated request with an
/// unsafe method must carry `content-type: application/json` (403 otherwise). No credentials,
/// or unknown ones: 401.
#[derive(Debug)]
pub(crate) struct Authed(pub(crate) Caller);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let service = &state.service;
        if let Some(key) = header_text(&parts.headers, "ttr-api-key") {
            return Ok(Authed(service.api_key_caller(&key).await?));
        }
        let Some(token) = session_cookie(&parts.headers) else {
            return Err(ApiError::new(
                ErrorTag::Unauthorized,
                "sign in (the ttr_session cookie) or send a ttr-api-key header",
            ));
        };
        let caller = service.session_caller(&token).await?;
        check_csrf(parts)?;
        Ok(Authed(caller))
    }
}

fn check_csrf(parts: &Parts) -> Result<(), ApiError> {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if csrf_allows(parts.method.as_str(), content_type) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorTag::Forbidden, CSRF_REFUSAL))
    }
}

/// The value of the `ttr_session` cookie, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.trim().is_empty())
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
}

/// `Set-Cookie` for a new session, or (`token = None`) one that clears the cookie.
pub(crate) fn set_cookie(token: Option<&str>, secure: bool) -> HeaderValue {
    let (value, max_age) = match token {
        Some(t) => (t, SESSION_TTL.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    );
    // Tokens are hex, so the value is always a valid header.
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("ttr_session=; Max-Age=0"))
}

fn with_cookie(response: impl IntoResponse, cookie: HeaderValue) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
}

/// The body of `POST /auth/signup` and `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[schema(as = Credentials)]
pub(crate) struct CredentialsBody {
    /// An email address.
    email: String,
    /// At least 8 characters (on sign-up).
    #[schema(format = Password)]
    password: String,
}

/// The answer of `POST /auth/signup`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignupResponse {
    user: UserDto,
    /// The user's default project.
    project: ProjectDto,
}

/// The answer of `POST /auth/login`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    user: UserDto,
}

/// The answer of `GET /auth/me`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MeResponse {
    user: UserDto,
    projects: Vec<ProjectDto>,
}

/// Create an account, its default project and a session.
///
/// 403 when sign-up is closed, 400 bad input, 409 email taken; 200 `{user, project}` and the
/// session cookie.
#[utoipa::path(
    post,
    path = "/auth/signup",
    request_body = CredentialsBody,
    responses(
        (status = 200, description = "Signed up and signed in.", body = SignupResponse,
            headers(("set-cookie" = String, description = "The `ttr_session` cookie."))),
        (status = 400, description = "`BadRequest`: a body that does not decode, an invalid \
            email or a password under 8 characters.", body = ErrorBody),
        (status = 403, description = "`Forbidden`: sign-up is disabled on this server.", body = ErrorBody),
        (status = 409, description = "`Conflict`: the email is already registered.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn signup(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    if !state.config.allow_signup {
        return Err(ApiError::new(
            ErrorTag::Forbidden,
            "sign-up is disabled on this server",
        ));
    }
    let ApiJson(body) = ApiJson::<CredentialsBody>::from_request(request, &()).await?;
    let done = state.service.signup(&body.email, &body.password).await?;
    let cookie = set_cookie(Some(&done.session.token), state.config.secure_cookies);
    let body = SignupResponse {
        user: UserDto::from(&done.user),
        project: ProjectDto::from(&done.project),
    };
    Ok(with_cookie(ApiJson(body), cookie))
}

/// Sign in.
///
/// 200 `{user}` and the session cookie; 401 for an unknown email or a wrong password alike.
#[utoipa::path(
    post,
    path = "/auth/login",
    request_body = CredentialsBody,
    responses(
        (status = 200, description = "Signed in.", body = LoginResponse,
            headers(("set-cookie" = String, description = "The `ttr_session` cookie."))),
        (status = 400, description = "`BadRequest`: a body that does not decode.", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: bad credentials.", body = ErrorBody),
        (status = 413, description = "`PayloadTooLarge`: the body is over the limit.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<CredentialsBody>,
) -> Result<Response, ApiError> {
    let done = state.service.login(&body.email, &body.password).await?;
    let cookie = set_cookie(Some(&done.session.token), state.config.secure_cookies);
    Ok(with_cookie(
        ApiJson(LoginResponse {
            user: UserDto::from(&done.user),
        }),
        cookie,
    ))
}

/// Sign out.
///
/// Revokes the cookie's session (if any) and clears the cookie; always 200 `{ok: true}`,
/// except a cookie-carrying request without `content-type: application/json` (403, the CSRF
/// rule).
#[utoipa::path(
    post,
    path = "/auth/logout",
    responses(
        (status = 200, description = "Signed out.", body = OkResponse,
            headers(("set-cookie" = String, description = "Clears the `ttr_session` cookie."))),
        (status = 403, description = "`Forbidden`: a cookie request without \
            `content-type: application/json`.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    if let Some(token) = session_cookie(&parts.headers) {
        check_csrf(&parts)?;
        state.service.logout(&token).await?;
    }
    Ok(with_cookie(
        ApiJson(OK),
        set_cookie(None, state.config.secure_cookies),
    ))
}

/// The signed-in user and their projects.
///
/// 200 `{user, projects}` for a live session; 401 otherwise (an API key is not a session).
#[utoipa::path(
    get,
    path = "/auth/me",
    security(("session" = [])),
    responses(
        (status = 200, description = "The session's user.", body = MeResponse),
        (status = 401, description = "`Unauthorized`: no live session.", body = ErrorBody),
        (status = 503, description = "`Unavailable`: the store is unreachable.", body = ErrorBody),
    )
)]
pub(crate) async fn me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<ApiJson<MeResponse>, ApiError> {
    let token = session_cookie(&headers)
        .ok_or_else(|| Error::Unauthorized("not signed in (no ttr_session cookie)".into()))?;
    let caller = state.service.session_caller(&token).await?;
    let user = caller
        .user()
        .ok_or_else(|| Error::Unauthorized("not signed in".into()))?;
    Ok(ApiJson(MeResponse {
        user: UserDto::from(user),
        projects: caller.projects().iter().map(ProjectDto::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(session_cookie(&h), None);
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; ttr_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        h.append(COOKIE, HeaderValue::from_static("ttr_session=\"xyz\""));
        assert_eq!(session_cookie(&h).as_deref(), Some("xyz"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("ttr_session=; other=1"));
        assert_eq!(session_cookie(&h), None);
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("xttr_session=1"));
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn cookies_carry_the_contract_attributes() {
        assert_eq!(
            set_cookie(Some("t0k"), false),
            "ttr_session=t0k; Path=/; Max-Age=432000; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            set_cookie(Some("t0k"), true),
            "ttr_session=t0k; Path=/; Max-Age=432000; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            set_cookie(None, false),
            "ttr_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }
}

//! What the router needs: the service and the HTTP settings.

use timetriggers_core::TimeTriggers;

/// HTTP-level settings. Build it from [`HttpConfig::default`] and set what differs
/// (`HttpConfig { max_body_bytes: 16 * 1024, ..HttpConfig::default() }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes (413 above). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Whether `POST /auth/signup` is open (403 `Forbidden` when not). Default `true`.
    pub allow_signup: bool,
    /// Mark the session cookie `Secure` (send it over https only). Set it when the server is
    /// reached over https. Default `false`.
    pub secure_cookies: bool,
}

impl HttpConfig {
    /// The default body limit: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            allow_signup: true,
            secure_cookies: false,
        }
    }
}

/// The router's state: the service every handler translates onto, and the HTTP settings.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The typed service.
    pub service: TimeTriggers,
    /// HTTP settings.
    pub config: HttpConfig,
}

impl AppState {
    /// State over `service` with `config`.
    pub fn new(service: TimeTriggers, config: HttpConfig) -> Self {
        AppState { service, config }
    }
}

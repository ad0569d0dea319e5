//! Settings of a [`crate::PgStore`] and the connection options derived from them.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use timetriggers_core::StoreResult;

use crate::error::config;

/// The schema the store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "timetriggers";

/// How a [`crate::PgStore`] connects and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgStoreOptions {
    /// The schema holding every table of the store (and sqlx's migration table); created if
    /// missing. Lower-case letters, digits and `_`, starting with a letter or `_`, at most 50
    /// characters. Default [`DEFAULT_SCHEMA`].
    pub schema: String,
    /// Most pooled connections (default 16; the URL parameter `max_connections` overrides it).
    /// The LISTEN connection is extra, and so are the engine's own (at most 4, for claims,
    /// outcomes and lease recovery, with the planner held to index scans).
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before it fails with
    /// [`timetriggers_core::StoreError::Unavailable`] (default 3 s; the URL parameter
    /// `acquire_timeout`, in seconds, overrides it): while the database is down, the API
    /// answers 503 after at most this long.
    pub acquire_timeout: Duration,
    /// A job (or retry) due sooner than this after it is scheduled is announced to the other
    /// instances with a NOTIFY; later ones are found by their regular look at the next due
    /// time. Keep it equal to the engine's idle poll (default 1 s).
    pub notify_horizon: Duration,
    /// The shortest gap between two NOTIFYs sent by this store (default 5 ms): due times
    /// scheduled within one gap are announced together, by the earliest of them.
    pub notify_min_gap: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            notify_horizon: Duration::from_secs(1),
            notify_min_gap: Duration::from_millis(5),
        }
    }
}

impl PgStoreOptions {
    /// The defaults with another schema.
    pub fn with_schema(schema: impl Into<String>) -> Self {
        PgStoreOptions {
            schema: schema.into(),
            ..PgStoreOptions::default()
        }
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets the acquire timeout.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets the notify horizon.
    pub fn notify_horizon(mut self, horizon: Duration) -> Self {
        self.notify_horizon = horizon;
        self
    }

    /// The LISTEN/NOTIFY channel of this schema: `<schema>_due`.
    pub(crate) fn channel(&self) -> String {
        format!("{}_due", self.schema)
    }
}

/// Checks a schema name: `^[a-z_][a-z0-9_]{0,49}$`, so that it never needs quoting and its
/// channel name fits PostgreSQL's 63-byte identifiers.
pub(crate) fn check_schema(schema: &str) -> StoreResult<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 50 && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err(config(format!(
            "invalid PostgreSQL schema name {schema:?}: use lower-case letters, digits and _, \
             starting with a letter or _, at most 50 characters, not starting with pg_"
        )))
    }
}

/// The store's own URL parameters, taken off the URL before sqlx parses it: `max_connections`
/// (pool size) and `acquire_timeout` (seconds, may be fractional). They override `options`.
/// Returns the URL without them.
pub(crate) fn take_store_params(url: &str, options: &mut PgStoreOptions) -> StoreResult<String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "max_connections" => {
                let n: u32 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    config(format!(
                        "max_connections={value:?} in the PostgreSQL URL: expected a whole number \
                         of at least 1"
                    ))
                })?;
                options.max_connections = n;
            }
            "acquire_timeout" => {
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| {
                        config(format!(
                            "acquire_timeout={value:?} in the PostgreSQL URL: expected seconds, \
                             more than 0 and at most 3600"
                        ))
                    })?;
                options.acquire_timeout = Duration::from_secs_f64(secs);
            }
            _ => kept.push(pair),
        }
    }
    Ok(if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Parses a `postgres://` / `postgresql://` URL and puts `schema` alone on the search path of
/// every connection (a startup parameter: no extra round trip).
pub(crate) fn connect_options(url: &str, schema: &str) -> StoreResult<PgConnectOptions> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(config(format!(
            "not a PostgreSQL URL: {}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact(url)
        )));
    }
    check_schema(schema)?;
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        config(format!(
            "invalid PostgreSQL URL {}: {e}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact(url)
        ))
    })?;
    Ok(options
        .options([("search_path", schema)])
        .application_name("timetriggers")
        .statement_cache_capacity(256))
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["timetriggers", "tt_test_01", "_x", "a"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Timetriggers",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "pg_catalog",
            &"x".repeat(51),
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_postgres_and_passwords_stay_out_of_messages() {
        assert!(connect_options("postgres://u:p@localhost:5432/db", "timetriggers").is_ok());
        assert!(connect_options("postgresql://localhost/db", "timetriggers").is_ok());
        let err = connect_options("sqlite://x.db", "timetriggers")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://"), "{err}");
        let err = connect_options("postgres://u:secret@localhost/db", "Bad")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(
            redact("postgres://u:secret@h:1/d"),
            "postgres://…@h:1/d".to_owned()
        );
    }

    #[test]
    fn pool_settings_come_off_the_url() {
        let mut o = PgStoreOptions::default();
        let url = take_store_params(
            "postgres://h/db?sslmode=disable&max_connections=32&acquire_timeout=1.5",
            &mut o,
        )
        .unwrap();
        assert_eq!(url, "postgres://h/db?sslmode=disable");
        assert_eq!(o.max_connections, 32);
        assert_eq!(o.acquire_timeout, Duration::from_millis(1_500));
        let mut o = PgStoreOptions::default();
        assert_eq!(
            take_store_params("postgres://h/db?max_connections=4", &mut o).unwrap(),
            "postgres://h/db"
        );
        assert_eq!(
            take_store_params("postgres://h/db", &mut o).unwrap(),
            "postgres://h/db"
        );
        for bad in [
            "max_connections=0",
            "max_connections=x",
            "acquire_timeout=-1",
        ] {
            let err = take_store_params(&format!("postgres://u:secret@h/db?{bad}"), &mut o)
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn channel_is_per_schema() {
        assert_eq!(PgStoreOptions::default().channel(), "timetriggers_due");
        assert_eq!(PgStoreOptions::with_schema("t1").channel(), "t1_due");
    }
}

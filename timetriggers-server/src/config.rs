//! Settings: command-line flags, `TIMETRIGGERS_*` environment variables and an optional TOML
//! file (`--config`), in that order of precedence, over the defaults of API.md §6.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

/// The TimeTriggers reference server: the HTTP API and the delivery engine in one process.
#[derive(Debug, Parser, Default)]
#[command(name = "timetriggers-server", version, about)]
pub struct Cli {
    /// TOML file with any of the settings below (snake_case keys, e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, env = "TIMETRIGGERS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve the API on [default: 127.0.0.1:8080].
    #[arg(long, env = "TIMETRIGGERS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://PATH` (created if missing) or `postgres://…` [default: sqlite://timetriggers.db].
    #[arg(long, env = "TIMETRIGGERS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// If set, a project `default` holding this API key exists after start.
    #[arg(long, env = "TIMETRIGGERS_BOOTSTRAP_API_KEY")]
    pub bootstrap_api_key: Option<String>,
    /// Allow targets on loopback, private, link-local and unspecified addresses [default: false].
    #[arg(long, env = "TIMETRIGGERS_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: Option<bool>,
    /// `monthQuota` of new projects [default: unlimited].
    #[arg(long, env = "TIMETRIGGERS_DEFAULT_MONTH_QUOTA")]
    pub default_month_quota: Option<u64>,
    /// Whether `POST /auth/signup` is open [default: true].
    #[arg(long, env = "TIMETRIGGERS_ALLOW_SIGNUP")]
    pub allow_signup: Option<bool>,
    /// Mark the session cookie `Secure` (https only); set it when clients reach the server over
    /// https [default: false].
    #[arg(long, env = "TIMETRIGGERS_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Largest accepted request body in bytes (413 above) [default: 1048576].
    #[arg(long, env = "TIMETRIGGERS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most deliveries in flight at once [default: 512].
    #[arg(long, env = "TIMETRIGGERS_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Seconds shutdown waits for in-flight deliveries [default: 30].
    #[arg(long, env = "TIMETRIGGERS_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds beyond a delivery's timeout before another instance treats it as interrupted
    /// [default: 30].
    #[arg(long, env = "TIMETRIGGERS_LEASE_MARGIN_SECS")]
    pub lease_margin_secs: Option<u64>,
    /// Milliseconds a generator occurrence may be late before it counts as missed
    /// [default: 60000, as API.md §5 specifies; lower it only for tests].
    #[arg(long, env = "TIMETRIGGERS_MISSED_AFTER_MS")]
    pub missed_after_ms: Option<u64>,
}

/// The same settings, as read from the TOML file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    bootstrap_api_key: Option<String>,
    allow_private_targets: Option<bool>,
    default_month_quota: Option<u64>,
    allow_signup: Option<bool>,
    secure_cookies: Option<bool>,
    max_body_bytes: Option<usize>,
    max_in_flight: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    lease_margin_secs: Option<u64>,
    missed_after_ms: Option<u64>,
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub bootstrap_api_key: Option<String>,
    pub allow_private_targets: bool,
    pub default_month_quota: Option<u64>,
    pub allow_signup: bool,
    pub secure_cookies: bool,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub shutdown_grace_secs: u64,
    pub lease_margin_secs: u64,
    pub missed_after_ms: u64,
}

impl Settings {
    /// Resolves flags and environment over the file over the defaults.
    pub fn resolve(cli: Cli) -> anyhow::Result<Settings> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        Ok(Settings {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: cli
                .database_url
                .or(file.database_url)
                .unwrap_or_else(|| "sqlite://timetriggers.db".to_owned()),
            bootstrap_api_key: cli
                .bootstrap_api_key
                .or(file.bootstrap_api_key)
                .filter(|k| !k.is_empty()),
            allow_private_targets: cli
                .allow_private_targets
                .or(file.allow_private_targets)
                .unwrap_or(false),
            default_month_quota: cli.default_month_quota.or(file.default_month_quota),
            allow_signup: cli.allow_signup.or(file.allow_signup).unwrap_or(true),
            secure_cookies: cli.secure_cookies.or(file.secure_cookies).unwrap_or(false),
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(1_048_576),
            max_in_flight: cli
                .max_in_flight
                .or(file.max_in_flight)
                .unwrap_or(512)
                .max(1),
            shutdown_grace_secs: cli
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(30),
            lease_margin_secs: cli
                .lease_margin_secs
                .or(file.lease_margin_secs)
                .unwrap_or(30),
            missed_after_ms: cli
                .missed_after_ms
                .or(file.missed_after_ms)
                .unwrap_or(60_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::resolve(Cli::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.database_url, "sqlite://timetriggers.db");
        assert_eq!(s.bootstrap_api_key, None);
        assert!(!s.allow_private_targets);
        assert_eq!(s.default_month_quota, None);
        assert!(s.allow_signup);
        assert!(!s.secure_cookies);
        assert_eq!(s.max_body_bytes, 1_048_576);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tt.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 10\nallow_signup = false\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            max_body_bytes: Some(20),
            ..Cli::default()
        };
        let s = Settings::resolve(cli).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.max_body_bytes, 20);
        assert!(!s.allow_signup);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tt.toml");
        std::fs::write(&path, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        assert!(Settings::resolve(cli).is_err());
    }
}

//! Spawning `timetriggers-server` instances and reading their peak RSS.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a spawned server may take to print its address (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process this tool started; killed on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// `http://IP:PORT`, from the server's `listening on` line.
    pub base: String,
    /// The process id, for `/proc/PID/status`.
    pub pid: Option<u32>,
}

impl Spawned {
    /// Starts `bin` on `database_url` with `api_key` bootstrapped, and waits for its address.
    pub async fn start(bin: &Path, database_url: &str, api_key: &str) -> anyhow::Result<Spawned> {
        let mut child = Command::new(bin)
            .env("TIMETRIGGERS_LISTEN", "127.0.0.1:0")
            .env("TIMETRIGGERS_DATABASE_URL", database_url)
            .env("TIMETRIGGERS_BOOTSTRAP_API_KEY", api_key)
            .env("TIMETRIGGERS_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout was not captured")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    return Ok(Some(rest.trim().trim_end_matches('/').to_owned()));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let base = match found {
            Ok(Ok(Some(base))) => base,
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                bail!(
                    "{} exited ({}) before printing `listening on http://…`; its stderr is above",
                    bin.display(),
                    status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
                );
            }
            Ok(Err(e)) => return Err(e).context("reading the server's stdout"),
            Err(_) => bail!(
                "{} did not print `listening on http://…` within {START_TIMEOUT:?}",
                bin.display()
            ),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id();
        Ok(Spawned { child, base, pid })
    }

    /// Kills the process and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// `timetriggers-server` next to this executable (the same `target/<profile>` directory).
pub fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe
        .parent()
        .context("this executable has no parent directory")?;
    Ok(dir.join(format!(
        "timetriggers-server{}",
        std::env::consts::EXE_SUFFIX
    )))
}

/// Fails with a build hint when the server binary is missing.
pub fn check_server_bin(bin: &Path) -> anyhow::Result<()> {
    if bin.is_file() {
        return Ok(());
    }
    bail!(
        "server binary {} not found. Build it first:\n  cargo build --release -p timetriggers-server\n\
         (or pass --server-bin PATH, e.g. target/debug/timetriggers-server, or --server URL --api-key KEY \
         for a server that is already running)",
        bin.display()
    )
}

/// A random API key for the bootstrapped project.
pub fn random_api_key() -> String {
    let a = RandomState::new().build_hasher().finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(a);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("ttr_loadtest_{a:016x}{:016x}", h.finish())
}

/// Peak resident set size of `pid` in MB (VmHWM), if /proc has it.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm_kb(&status).map(|kb| kb as f64 / 1024.0)
}

/// The `VmHWM:` line of a /proc status file, in kB.
pub fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Clock ticks per second of the `utime` and `stime` fields of /proc (`USER_HZ`, 100 on every
/// Linux port).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system, every thread) that process `pid` has used so far, in ms, if /proc
/// has it. Resolution: 10 ms.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    stat_cpu_ms(&format!("/proc/{pid}/stat"))
}

/// [`cpu_ms`] of this process.
pub fn own_cpu_ms() -> Option<f64> {
    stat_cpu_ms("/proc/self/stat")
}

fn stat_cpu_ms(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 * 1000.0 / USER_HZ)
}

/// `utime` + `stime` (fields 14 and 15) of a /proc stat line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts with field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `sqlite` or `postgres` (or whatever precedes `:`).
pub fn database_kind(url: &str) -> &str {
    match url.split(':').next().unwrap_or_default() {
        "postgresql" => "postgres",
        kind => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm() {
        let status =
            "Name:\ttimetriggers-se\nVmPeak:\t  100 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(20480));
        assert_eq!(parse_vm_hwm_kb("Name: x\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_odd_command_names() {
        let stat = "4242 (tt (a) b) S 1 4242 4242 0 -1 4194560 915 0 0 0 123 45 0 0 20 0 5 0";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_cpu_ticks("no name at all"), None);
        assert!(own_cpu_ms().is_some(), "this test runs on Linux with /proc");
    }

    #[test]
    fn kinds() {
        assert_eq!(database_kind("sqlite:///tmp/x.db"), "sqlite");
        assert_eq!(database_kind("postgresql://u@h/db"), "postgres");
        assert_eq!(database_kind("postgres://u@h/db"), "postgres");
    }

    #[test]
    fn keys_differ() {
        assert_ne!(random_api_key(), random_api_key());
    }
}

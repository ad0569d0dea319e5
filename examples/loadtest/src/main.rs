//! Run with: cargo run --release -p example-loadtest -- --help
//!
//! A load tool for `timetriggers-server`, through the public HTTP API only. It spawns the
//! server on a fresh SQLite file (or uses running ones), serves its own local HTTP target,
//! schedules jobs with concurrent `POST /schedule` callers, and measures the schedule rate,
//! the delivery rate, the lag (arrival − due) and exactly-once delivery.
//!
//! ```text
//! cargo build --release -p timetriggers-server -p example-loadtest
//! ./target/release/example-loadtest                          # W1: 20,000 jobs due at one instant
//! ./target/release/example-loadtest --workload w2            # W2: 500/s over 30 s
//! ./target/release/example-loadtest --workload w3            # W3: W2 over a 1,000,000-job backlog
//! ./target/debug/example-loadtest --smoke --server-bin target/debug/timetriggers-server
//! ```
//!
//! Output: one table per workload, then one JSON line (starting with `{`). Exit code 1 when
//! a delivery is missing, duplicated, unexpected or early, or a `/schedule` call failed;
//! 2 when the run itself could not be carried out (no server binary, server did not start).

mod http1;
mod report;
mod schedule;
mod server;
mod target;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

use crate::report::RunReport;
use crate::schedule::Scheduler;
use crate::server::Spawned;
use crate::target::Target;
use crate::workload::{Ctx, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// --jobs one-off triggers all due at one instant
    W1,
    /// --rate triggers/s due evenly over --duration-secs
    W2,
    /// W2 while --backlog triggers are pending 30 days ahead
    W3,
}

/// Drives a timetriggers-server through its public HTTP API and measures schedule rate,
/// delivery rate, lag (arrival − due), duplicates, missing deliveries and peak RSS.
///
/// By default it spawns the server binary on a temporary SQLite file. Prints one table per
/// workload and then one JSON line. Exit code 1 when a delivery is missing, duplicated,
/// unexpected or early, or a /schedule call failed; 2 when the run could not be carried out.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Workload to run.
    #[arg(long, value_enum, default_value = "w1")]
    workload: WorkloadArg,
    /// W1: number of one-off triggers.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Concurrent /schedule callers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    callers: u16,
    /// Fixed lead (ms) from the start of scheduling to the first due time; default: adaptive
    /// (probed schedule rate × 1.25 + 1 s, at least 3 s).
    #[arg(long)]
    lead_ms: Option<u64>,
    /// W2/W3: triggers per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// W2/W3: seconds over which the triggers are due.
    #[arg(long, default_value_t = 30)]
    duration_secs: u32,
    /// W3: triggers pending far in the future.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// Seconds to wait for deliveries after the last due time.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// Milliseconds to keep listening for duplicates once every job arrived.
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// Tiny fast run for CI: W1 with 300 jobs, then W2 at 50/s for 2 s.
    #[arg(long)]
    smoke: bool,
    /// Server binary to spawn [default: timetriggers-server next to this executable].
    #[arg(long, conflicts_with = "server")]
    server_bin: Option<PathBuf>,
    /// Database URL for spawned servers [default: a fresh temporary SQLite file].
    #[arg(long, conflicts_with = "server")]
    database_url: Option<String>,
    /// Number of server instances to spawn, all on --database-url.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..), conflicts_with = "server")]
    instances: u16,
    /// Base URL of an already running server (repeat for several instances; calls go
    /// round-robin). Requires --api-key.
    #[arg(long = "server", requires = "api_key")]
    server: Vec<String>,
    /// API key for --server.
    #[arg(long, env = "TTR_API_KEY")]
    api_key: Option<String>,
    /// PID of a --server process, to report its peak RSS (repeatable).
    #[arg(long = "server-pid")]
    server_pid: Vec<u32>,
}

impl Cli {
    fn workloads(&self) -> Vec<Workload> {
        if self.smoke {
            return vec![
                Workload::W1 { jobs: 300 },
                Workload::W2 {
                    rate: 50,
                    duration_secs: 2,
                },
            ];
        }
        vec![match self.workload {
            WorkloadArg::W1 => Workload::W1 { jobs: self.jobs },
            WorkloadArg::W2 => Workload::W2 {
                rate: self.rate,
                duration_secs: self.duration_secs,
            },
            WorkloadArg::W3 => Workload::W3 {
                backlog: self.backlog,
                rate: self.rate,
                duration_secs: self.duration_secs,
            },
        }]
    }
}

/// The servers under test.
struct Servers {
    endpoints: Vec<String>,
    api_key: String,
    database: String,
    spawned: Vec<Spawned>,
    pids: Vec<u32>,
    /// Holds the temporary SQLite file until the servers are stopped.
    _dir: Option<tempfile::TempDir>,
}

async fn servers(cli: &Cli) -> anyhow::Result<Servers> {
    if !cli.server.is_empty() {
        let Some(api_key) = cli.api_key.clone() else {
            bail!("--server needs --api-key");
        };
        return Ok(Servers {
            endpoints: cli
                .server
                .iter()
                .map(|s| s.trim_end_matches('/').to_owned())
                .collect(),
            api_key,
            database: "unknown".to_owned(),
            spawned: Vec::new(),
            pids: cli.server_pid.clone(),
            _dir: None,
        });
    }
    let bin = match &cli.server_bin {
        Some(bin) => bin.clone(),
        None => server::default_server_bin()?,
    };
    server::check_server_bin(&bin)?;
    let (database_url, dir) = match &cli.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = tempfile::Builder::new().prefix("ttr-loadtest-").tempdir()?;
            (
                format!("sqlite://{}", dir.path().join("lt.db").display()),
                Some(dir),
            )
        }
    };
    let kind = server::database_kind(&database_url).to_owned();
    if kind == "sqlite" && cli.instances > 1 {
        bail!(
            "--instances {}: a SQLite file serves one server process (the store locks it); \
             pass --database-url postgres://… for several instances",
            cli.instances
        );
    }
    let api_key = server::random_api_key();
    let mut spawned = Vec::new();
    // One after the other, so the first one runs the migrations alone.
    for _ in 0..cli.instances {
        let s = Spawned::start(&bin, &database_url, &api_key).await?;
        let pid = s.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        eprintln!("started {} (pid {pid}) on {kind}", s.base);
        spawned.push(s);
    }
    Ok(Servers {
        endpoints: spawned.iter().map(|s| s.base.clone()).collect(),
        api_key,
        database: kind,
        pids: spawned.iter().filter_map(|s| s.pid).collect(),
        spawned,
        _dir: dir,
    })
}

/// mimalloc: under load the system allocator cost ~18 % of the workers' time (fragmented
/// free lists) and held on to freed memory; see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the workloads and prints the report; `Ok(false)` when a check failed.
async fn run(cli: &Cli) -> anyhow::Result<bool> {
    let servers = servers(cli).await?;
    let target = Target::start().await?;
    let callers = usize::from(cli.callers);
    let ctx = Ctx {
        scheduler: Scheduler::new(servers.endpoints.clone(), servers.api_key.clone(), callers)?,
        target: &target,
        wait: Duration::from_secs(if cli.smoke {
            cli.wait_secs.min(30)
        } else {
            cli.wait_secs
        }),
        settle: Duration::from_millis(cli.settle_ms),
        lead_ms: cli.lead_ms,
        server_pids: servers.pids.clone(),
    };

    let mut reports = Vec::new();
    for w in cli.workloads() {
        let r = workload::run(&ctx, w).await?;
        print!("{}", report::table(&r));
        reports.push(r);
    }

    let rss = servers
        .pids
        .iter()
        .map(|pid| server::peak_rss_mb(*pid))
        .collect();
    for s in servers.spawned {
        s.stop().await;
    }
    let mut failures: Vec<String> = reports.iter().flat_map(|r| r.failures()).collect();
    if target.backlog_hits() > 0 {
        failures.push(format!(
            "{} deliveries of backlog jobs due in 30 days",
            target.backlog_hits()
        ));
    }
    let run = RunReport {
        tool: "example-loadtest",
        database: servers.database,
        instances: servers.endpoints.len(),
        spawned: cli.server.is_empty(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        workloads: reports,
        server_peak_rss_mb: rss,
        backlog_hits: target.backlog_hits(),
        stray_requests: target.strays(),
        ok: failures.is_empty(),
    };
    print!("{}", report::run_table(&run));
    println!("{}", serde_json::to_string(&run)?);
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    Ok(failures.is_empty())
}

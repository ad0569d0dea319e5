//! Helpers for end-to-end tests: the real server binary on a temporary database, and a real
//! HTTP target on 127.0.0.1 that records every request it receives.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use tokio::sync::Notify;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// RFC 3339 (UTC, ms) for `ms`.
pub fn rfc3339(ms: i64) -> String {
    chrono_like(ms)
}

fn chrono_like(ms: i64) -> String {
    // Avoid a chrono dev-dependency: format by hand via the days-from-civil algorithm.
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at_ms: i64,
}

impl Arrival {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct TargetState {
    arrivals: Mutex<Vec<Arrival>>,
    notify: Notify,
    /// Scripted statuses per path, consumed in order; 200 when exhausted.
    scripts: Mutex<HashMap<String, Vec<u16>>>,
    /// How long requests to a path wait (after being recorded) before they are answered.
    delays: Mutex<HashMap<String, Duration>>,
}

/// A local HTTP target recording every request.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    state: Arc<TargetState>,
}

impl Target {
    pub async fn start() -> Target {
        let state = Arc::new(TargetState::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests to `path` with these statuses.
    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(path.to_owned(), statuses.to_vec());
    }

    /// Answers requests to `path` only after `delay` (they are recorded on arrival), so that
    /// deliveries are still in flight when something happens.
    pub fn delay(&self, path: &str, delay: Duration) {
        self.state
            .delays
            .lock()
            .unwrap()
            .insert(path.to_owned(), delay);
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().unwrap().clone()
    }

    pub fn arrivals_at(&self, path: &str) -> Vec<Arrival> {
        self.arrivals()
            .into_iter()
            .filter(|a| a.path == path)
            .collect()
    }

    /// Waits until `pred` holds over the arrivals, or panics after `deadline`.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&[Arrival]) -> bool,
    ) -> Vec<Arrival> {
        let end = Instant::now() + deadline;
        loop {
            let notified = self.state.notify.notified();
            {
                let arrivals = self.state.arrivals.lock().unwrap();
                if pred(&arrivals) {
                    return arrivals.clone();
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out after {deadline:?} waiting for {what}; arrivals: {:?}",
                    self.arrivals()
                        .iter()
                        .map(|a| (&a.path, a.at_ms))
                        .collect::<Vec<_>>()
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Waits for `n` arrivals at `path`.
    pub async fn wait_for_path(&self, path: &str, n: usize, deadline: Duration) -> Vec<Arrival> {
        self.wait_until(deadline, path, |a| {
            a.iter().filter(|x| x.path == path).count() >= n
        })
        .await
        .into_iter()
        .filter(|a| a.path == path)
        .collect()
    }
}

async fn record(State(state): State<Arc<TargetState>>, req: Request) -> (StatusCode, &'static str) {
    let at_ms = now_ms();
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
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
    let status = {
        let mut scripts = state.scripts.lock().unwrap();
        scripts
            .get_mut(parts.uri.path())
            .and_then(|s| {
                if s.is_empty() {
                    None
                } else {
                    Some(s.remove(0))
                }
            })
            .unwrap_or(200)
    };
    state.arrivals.lock().unwrap().push(Arrival {
        method: parts.method.to_string(),
        path,
        headers,
        body: body.to_vec(),
        at_ms,
    });
    state.notify.notify_waiters();
    let delay = state.delays.lock().unwrap().get(parts.uri.path()).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    (StatusCode::from_u16(status).unwrap(), "ok")
}

pub const API_KEY: &str = "ttr_e2e_test_key_0123456789abcdef";

/// The real server binary, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub db: PathBuf,
}

impl Server {
    pub fn start(db: &Path) -> Server {
        Self::start_with(db, &[])
    }

    pub fn start_with(db: &Path, env: &[(&str, &str)]) -> Server {
        Self::launch(&format!("sqlite://{}", db.display()), db, env)
    }

    /// The real server binary on a database URL (e.g. `postgres://…`); `db` is left empty.
    pub fn start_on(database_url: &str, env: &[(&str, &str)]) -> Server {
        Self::launch(database_url, Path::new(""), env)
    }

    fn launch(database_url: &str, db: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_timetriggers-server"));
        cmd.env("TIMETRIGGERS_LISTEN", "127.0.0.1:0")
            .env("TIMETRIGGERS_DATABASE_URL", database_url)
            .env("TIMETRIGGERS_BOOTSTRAP_API_KEY", API_KEY)
            .env("TIMETRIGGERS_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start server binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        let _ = tx.send(rest.trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not print its address");
        Server {
            child,
            base,
            db: db.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().ok()?;
        status.code()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client for the server's API.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// POST /schedule with the given ttr headers; returns (status, JSON body).
pub async fn schedule(
    server: &Server,
    target_url: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = client()
        .post(server.url("/schedule"))
        .header("ttr-api-key", API_KEY)
        .header("ttr-url", target_url)
        .body(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A PostgreSQL server of the test's own, started with `scripts/pg.sh` (state in a temporary
/// directory), for tests that stop and restart the database. Stopped and deleted on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub url: String,
}

impl PgServer {
    fn script(dir: &Path, verb: &str) -> std::process::Output {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh"))
            .arg(verb)
            .env("TIMETRIGGERS_PG_STATE", dir.join("pg.state"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/pg.sh {verb}: {e}"))
    }

    fn run(&self, verb: &str) {
        let out = Self::script(self.dir.path(), verb);
        assert!(out.status.success(), "scripts/pg.sh {verb} failed");
    }

    /// Starts a fresh server.
    pub fn start() -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        let out = Self::script(dir.path(), "start");
        assert!(out.status.success(), "scripts/pg.sh start failed");
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        PgServer { dir, url }
    }

    /// Stops the server (fast shutdown: sessions are terminated), keeping its data.
    pub fn down(&self) {
        self.run("down");
    }

    /// Starts it again after [`PgServer::down`], same port, same data.
    pub fn up(&self) {
        self.run("up");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Self::script(self.dir.path(), "stop");
    }
}

/// One `/schedule` call of a load run.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status; `None` when the request itself failed (server gone, timeout).
    pub status: Option<u16>,
    /// The trigger id of an accepted (200) call.
    pub id: Option<String>,
    /// The `_tag` of an error body.
    pub tag: Option<String>,
    /// How long the call took.
    pub elapsed: Duration,
}

/// POST /schedule once with `headers`, with a 30 s client timeout (a hang is a failure).
pub async fn schedule_once(
    client: &reqwest::Client,
    base: &str,
    target_url: &str,
    headers: &[(String, String)],
) -> Attempt {
    let started = Instant::now();
    let mut req = client
        .post(format!("{base}/schedule"))
        .timeout(Duration::from_secs(30))
        .header("ttr-api-key", API_KEY)
        .header("ttr-url", target_url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Err(_) => Attempt {
            status: None,
            id: None,
            tag: None,
            elapsed: started.elapsed(),
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let json: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
            Attempt {
                status: Some(status),
                id: (status == 200)
                    .then(|| json["triggerId"].as_str().map(str::to_owned))
                    .flatten(),
                tag: json["_tag"].as_str().map(str::to_owned),
                elapsed: started.elapsed(),
            }
        }
    }
}

/// Schedules `n` jobs with at most `concurrency` calls in flight, round-robin over `bases`.
/// A call that gets no HTTP answer at all (its instance is gone) is made again on the next
/// instance, as a client of a cluster would; the first attempt is then not reported.
pub async fn schedule_many(
    bases: &[String],
    target_url: &str,
    n: usize,
    concurrency: usize,
    headers: &[(&str, &str)],
) -> Vec<Attempt> {
    let bases: Arc<Vec<String>> = Arc::new(bases.to_vec());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let headers: Arc<Vec<(String, String)>> = Arc::new(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let (client, headers) = (client.clone(), headers.clone());
        let bases = bases.clone();
        let target_url = target_url.to_owned();
        tasks.spawn(async move {
            let mut a =
                schedule_once(&client, &bases[i % bases.len()], &target_url, &headers).await;
            for other in 1..bases.len() {
                if a.status.is_some() {
                    break;
                }
                let base = &bases[(i + other) % bases.len()];
                a = schedule_once(&client, base, &target_url, &headers).await;
            }
            drop(permit);
            a
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        out.push(done.unwrap());
    }
    out
}

/// How many times each `x-callback-id` arrived.
pub fn deliveries_by_id(arrivals: &[Arrival]) -> HashMap<String, usize> {
    let mut by_id = HashMap::new();
    for a in arrivals {
        if let Some(id) = a.header("x-callback-id") {
            *by_id.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    by_id
}

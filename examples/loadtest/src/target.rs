//! The local HTTP target the server delivers to.
//!
//! Every measured job points at `/p/<phase>/<seq>`; the handler stamps the arrival time first,
//! then records `x-callback-id` and `x-due-ms` into the phase's buffer. A per-job atomic
//! counter tells the waiting workload, through a [`Notify`], when every expected job has
//! arrived, so nothing polls. Backlog jobs point at `/never` and must never arrive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Microseconds since the Unix epoch, from the wall clock (the server's clock too).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (now_us() / 1000) as i64
}

/// One delivery as the target saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Wall-clock arrival, µs since the epoch.
    pub at_us: u64,
    /// The `x-callback-id` header (the server's trigger id).
    pub callback_id: Option<String>,
    /// The `x-due-ms` header the tool put on the job.
    pub due_ms: Option<i64>,
}

/// The deliveries expected by one measured step (a probe, a workload).
#[derive(Debug)]
pub struct Phase {
    id: usize,
    base: String,
    seen: Vec<AtomicU32>,
    unique: AtomicUsize,
    expected: AtomicUsize,
    notify: Notify,
    arrivals: Mutex<Vec<Arrival>>,
}

impl Phase {
    /// The URL job `seq` of this phase is scheduled to.
    pub fn url(&self, seq: usize) -> String {
        format!("{}/p/{}/{}", self.base, self.id, seq)
    }

    /// How many of the phase's jobs must arrive before [`Phase::wait_all`] returns.
    pub fn set_expected(&self, n: usize) {
        self.expected.store(n, Ordering::SeqCst);
        if self.unique.load(Ordering::SeqCst) >= n {
            self.notify.notify_one();
        }
    }

    /// Distinct jobs of this phase that arrived so far.
    pub fn unique(&self) -> usize {
        self.unique.load(Ordering::SeqCst)
    }

    /// Waits until every expected job arrived (true) or the deadline passed (false).
    pub async fn wait_all(&self, deadline: Instant) -> bool {
        loop {
            if self.unique() >= self.expected.load(Ordering::SeqCst) {
                return true;
            }
            tokio::select! {
                () = self.notify.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return self.unique() >= self.expected.load(Ordering::SeqCst);
                }
            }
        }
    }

    /// Everything recorded so far (later arrivals keep being recorded).
    pub fn take_arrivals(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn record(&self, seq: usize, arrival: Arrival) {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(arrival);
        let first = self
            .seen
            .get(seq)
            .is_some_and(|c| c.fetch_add(1, Ordering::Relaxed) == 0);
        if first {
            let unique = self.unique.fetch_add(1, Ordering::SeqCst) + 1;
            if unique >= self.expected.load(Ordering::SeqCst) {
                self.notify.notify_one();
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    phases: RwLock<Vec<Arc<Phase>>>,
    backlog_hits: AtomicU64,
    strays: AtomicU64,
}

/// The running target server (stopped on drop).
#[derive(Debug)]
pub struct Target {
    base: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Target {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> anyhow::Result<Target> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the local target")?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(hit).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("local target stopped: {e}");
            }
        });
        Ok(Target {
            base: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// A new phase expecting at most `capacity` jobs (sequence numbers `0..capacity`).
    pub fn phase(&self, capacity: usize) -> Arc<Phase> {
        let mut phases = self
            .shared
            .phases
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let phase = Arc::new(Phase {
            id: phases.len(),
            base: self.base.clone(),
            seen: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            unique: AtomicUsize::new(0),
            expected: AtomicUsize::new(usize::MAX),
            notify: Notify::new(),
            arrivals: Mutex::new(Vec::with_capacity(capacity)),
        });
        phases.push(phase.clone());
        phase
    }

    /// The URL backlog jobs are scheduled to; any request to it is counted as a failure.
    pub fn never_url(&self) -> String {
        format!("{}/never", self.base)
    }

    /// Requests to [`Target::never_url`].
    pub fn backlog_hits(&self) -> u64 {
        self.shared.backlog_hits.load(Ordering::SeqCst)
    }

    /// Requests to any other unknown path or phase.
    pub fn strays(&self) -> u64 {
        self.shared.strays.load(Ordering::SeqCst)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Route {
    Hit { phase: usize, seq: usize },
    Never,
    Unknown,
}

fn route(path: &str) -> Route {
    if path == "/never" {
        return Route::Never;
    }
    let mut parts = path.strip_prefix("/p/").unwrap_or_default().split('/');
    match (
        parts.next().and_then(|p| p.parse().ok()),
        parts.next().and_then(|s| s.parse().ok()),
        parts.next(),
    ) {
        (Some(phase), Some(seq), None) => Route::Hit { phase, seq },
        _ => Route::Unknown,
    }
}

async fn hit(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let at_us = now_us();
    match route(uri.path()) {
        Route::Hit { phase, seq } => {
            let phase = shared
                .phases
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(phase)
                .cloned();
            match phase {
                Some(phase) => phase.record(
                    seq,
                    Arrival {
                        at_us,
                        callback_id: header(&headers, "x-callback-id").map(str::to_owned),
                        due_ms: header(&headers, "x-due-ms").and_then(|v| v.parse().ok()),
                    },
                ),
                None => {
                    shared.strays.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Route::Never => {
            shared.backlog_hits.fetch_add(1, Ordering::Relaxed);
        }
        Route::Unknown => {
            shared.strays.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::OK
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/p/3/17"), Route::Hit { phase: 3, seq: 17 }));
        assert!(matches!(route("/never"), Route::Never));
        assert!(matches!(route("/p/3/17/x"), Route::Unknown));
        assert!(matches!(route("/p/x/1"), Route::Unknown));
        assert!(matches!(route("/"), Route::Unknown));
    }

    #[tokio::test]
    async fn wait_all_wakes_on_last_arrival() {
        let target = Target::start().await.unwrap();
        let phase = target.phase(2);
        phase.set_expected(2);
        let client = reqwest::Client::new();
        for seq in [0, 1, 1] {
            client.post(phase.url(seq)).send().await.unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert!(phase.wait_all(deadline).await);
        assert_eq!(phase.take_arrivals().len(), 3);
        assert_eq!(target.strays(), 0);
    }

    /// How many deliveries/s the target takes on loopback (client in the same process):
    /// `cargo test --release -p example-loadtest -- --ignored --nocapture target_throughput`
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a measurement, not a check"]
    async fn target_throughput() {
        let target = Target::start().await.unwrap();
        let n = 100_000;
        let phase = target.phase(n);
        phase.set_expected(n);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (client, next, phase) = (client.clone(), next.clone(), phase.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        client
                            .post(phase.url(i))
                            .header("x-callback-id", i.to_string())
                            .header("x-due-ms", "1")
                            .send()
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        assert!(phase.wait_all(Instant::now()).await);
        println!("{n} requests in {secs:.2} s = {:.0}/s", n as f64 / secs);
    }
}

//! The local HTTP target the server delivers to.
//!
//! Every measured job points at `/p/<phase>/<seq>`; the handler stamps the arrival time first,
//! then records `x-callback-id` and `x-due-ms` into the phase's buffer. A per-job atomic
//! counter tells the waiting workload, through a [`Notify`], when every expected job has
//! arrived, so nothing polls. Backlog jobs point at `/never` and must never arrive.
//!
//! The server is a minimal HTTP/1.1 keep-alive loop (`httparse`, one task per connection),
//! because it shares the machine with the server being measured: a framework would take CPU
//! the measured server could use. It answers every request `200` with an empty body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the local target")?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        connections.spawn(serve(stream, accepting.clone()));
                    }
                    Err(e) => {
                        eprintln!("local target: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
                while connections.try_join_next().is_some() {}
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

/// Largest request head plus body the target reads.
const MAX_REQUEST: usize = 1 << 20;

/// What the target needs of one request.
struct Request<'a> {
    path: &'a str,
    callback_id: Option<&'a str>,
    due_ms: Option<i64>,
    body_len: usize,
    close: bool,
}

/// Serves one connection until the peer closes it or sends something the target cannot read
/// (then it answers `400` and closes). Requests may be pipelined.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut date = HttpDate::default();
    loop {
        // Answer every complete request already buffered, then write the answers at once.
        out.clear();
        let mut close = false;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let (consumed, keep_open) = match parse(&buf, &mut headers) {
                Ok(Some((head_len, req))) if buf.len() >= head_len + req.body_len => {
                    hit(&shared, &req, now_us());
                    (head_len + req.body_len, !req.close)
                }
                Ok(_) => break,
                Err(()) => {
                    shared.strays.fetch_add(1, Ordering::Relaxed);
                    out.extend_from_slice(
                        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    close = true;
                    break;
                }
            };
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: ");
            out.extend_from_slice(date.now().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            buf.drain(..consumed);
            if !keep_open {
                close = true;
                break;
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if close || buf.len() > MAX_REQUEST {
            return;
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The head length and the request once its head is complete; `Err` for what the target
/// cannot read (not HTTP, chunked bodies, a body above [`MAX_REQUEST`]).
fn parse<'b>(
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<(usize, Request<'b>)>, ()> {
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let mut out = Request {
        path: req.path.unwrap_or_default(),
        callback_id: None,
        due_ms: None,
        body_len: 0,
        close: false,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok();
        match h.name.to_ascii_lowercase().as_str() {
            "x-callback-id" => out.callback_id = value,
            "x-due-ms" => out.due_ms = value.and_then(|v| v.parse().ok()),
            "content-length" => {
                out.body_len = value.and_then(|v| v.trim().parse().ok()).ok_or(())?;
            }
            "transfer-encoding" => return Err(()),
            "connection" => out.close = value.is_some_and(|v| v.eq_ignore_ascii_case("close")),
            _ => {}
        }
    }
    if out.body_len > MAX_REQUEST {
        return Err(());
    }
    Ok(Some((head_len, out)))
}

/// The `date` header, formatted once a second.
#[derive(Default)]
struct HttpDate {
    second: i64,
    text: String,
}

impl HttpDate {
    fn now(&mut self) -> &str {
        let now = chrono::Utc::now();
        if now.timestamp() != self.second || self.text.is_empty() {
            self.second = now.timestamp();
            self.text = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        }
        &self.text
    }
}

fn hit(shared: &Shared, req: &Request<'_>, at_us: u64) {
    match route(req.path) {
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
                        callback_id: req.callback_id.map(str::to_owned),
                        due_ms: req.due_ms,
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

    /// Pipelined requests with bodies are each answered and recorded; a chunked body is
    /// answered 400, counted as a stray, and the connection closed.
    #[tokio::test]
    async fn answers_pipelined_requests_and_refuses_what_it_cannot_read() {
        let target = Target::start().await.unwrap();
        let phase = target.phase(2);
        let authority = target.base.strip_prefix("http://").unwrap().to_owned();
        let mut s = TcpStream::connect(&authority).await.unwrap();
        let two = format!(
            "POST /p/{id}/0 HTTP/1.1\r\nhost: t\r\nX-Callback-Id: a\r\ncontent-length: 3\r\n\r\nabc\
             POST /p/{id}/1 HTTP/1.1\r\nhost: t\r\nx-due-ms: 42\r\ncontent-length: 0\r\n\r\n",
            id = phase.id
        );
        s.write_all(two.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
            assert!(s.read_buf(&mut got).await.unwrap() > 0, "closed early");
        }
        assert_eq!(got.windows(6).filter(|w| w == b"200 OK").count(), 2);
        let mut arrivals = phase.take_arrivals();
        arrivals.sort_by_key(|a| a.due_ms);
        assert_eq!(arrivals.len(), 2);
        assert_eq!(arrivals[0].callback_id.as_deref(), Some("a"));
        assert_eq!(arrivals[1].due_ms, Some(42));
        assert_eq!(phase.unique(), 2);

        s.write_all(b"POST /p/0/0 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(
            rest.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(target.strays(), 1);
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

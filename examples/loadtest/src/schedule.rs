//! The callers: `C` concurrent tasks that POST `/schedule` until the jobs run out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::io::Write as _;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use tokio::time::Instant;

use crate::http1::Conn;

/// How long one call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Batches at least this big print their progress on stderr.
const PROGRESS_ABOVE: usize = 100_000;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What job `i` is: the target URL and its due time (ms since the epoch).
pub type JobFn = Arc<dyn Fn(usize) -> (String, i64) + Send + Sync>;

/// Schedules jobs on one or more server instances (round-robin by job index), each caller on
/// keep-alive connections of its own ([`crate::http1`]).
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// `host:port` of each instance.
    authorities: Arc<[String]>,
    api_key: Arc<str>,
    callers: usize,
}

/// The outcome of scheduling a batch.
#[derive(Debug, Default)]
pub struct Batch {
    /// Trigger ids of the accepted (200) calls, when asked for.
    pub ids: Vec<String>,
    /// Accepted (200) calls.
    pub accepted: usize,
    /// Calls that did not answer 200 (transport errors included).
    pub failed: usize,
    /// The first failure: status and body, or the transport error.
    pub first_error: Option<String>,
    /// From the first call sent to the last answer received.
    pub wall: Duration,
    /// Offsets from the start at which each accepted call completed, sorted.
    pub completions: Vec<Duration>,
    /// Latency of each accepted call, sorted.
    pub latencies: Vec<Duration>,
}

impl Batch {
    /// Accepted calls per second over the batch's wall time.
    pub fn rate(&self) -> f64 {
        per_second(self.accepted, self.wall)
    }
}

/// `n` events over `d`, per second (0 when `d` is zero).
pub fn per_second(n: usize, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleResult {
    trigger_id: String,
}

impl Scheduler {
    /// `endpoints` are server base URLs (`http://IP:PORT`).
    pub fn new(endpoints: Vec<String>, api_key: String, callers: usize) -> anyhow::Result<Self> {
        let authorities = endpoints
            .iter()
            .map(|e| {
                e.strip_prefix("http://")
                    .map(|a| a.trim_end_matches('/').to_owned())
                    .with_context(|| format!("endpoint {e} is not http://HOST:PORT"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Scheduler {
            authorities: authorities.into(),
            api_key: api_key.into(),
            callers: callers.max(1),
        })
    }

    /// Number of concurrent callers.
    pub fn callers(&self) -> usize {
        self.callers
    }

    /// Schedules jobs `0..n` described by `job`; keeps the trigger ids when `keep_ids`.
    pub async fn run(&self, n: usize, job: JobFn, keep_ids: bool) -> Batch {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let progress = (n >= PROGRESS_ABOVE).then(|| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let sent = next.load(Ordering::Relaxed).min(n);
                    eprintln!(
                        "  … {sent}/{n} calls sent after {:.0} s",
                        start.elapsed().as_secs_f64()
                    );
                }
            })
        });
        let mut tasks = Vec::with_capacity(self.callers);
        for _ in 0..self.callers {
            let this = self.clone();
            let next = next.clone();
            let job = job.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Batch::default();
                let mut caller = Caller {
                    conns: (0..this.authorities.len()).map(|_| None).collect(),
                    request: Vec::with_capacity(512),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let (url, due_ms) = job(i);
                    let sent = Instant::now();
                    match this.call(&mut caller, i, &url, due_ms, keep_ids).await {
                        Ok(id) => {
                            let done = Instant::now();
                            out.accepted += 1;
                            out.completions.push(done - start);
                            out.latencies.push(done - sent);
                            if let Some(id) = id {
                                out.ids.push(id);
                            }
                        }
                        Err(e) => {
                            out.failed += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                out
            }));
        }
        let mut batch = Batch::default();
        for task in tasks {
            match task.await {
                Ok(part) => {
                    batch.ids.extend(part.ids);
                    batch.accepted += part.accepted;
                    batch.failed += part.failed;
                    if batch.first_error.is_none() {
                        batch.first_error = part.first_error;
                    }
                    batch.completions.extend(part.completions);
                    batch.latencies.extend(part.latencies);
                }
                Err(e) => {
                    batch
                        .first_error
                        .get_or_insert(format!("caller task failed: {e}"));
                }
            }
        }
        batch.wall = start.elapsed();
        if let Some(progress) = progress {
            progress.abort();
        }
        batch.completions.sort_unstable();
        batch.latencies.sort_unstable();
        batch
    }

    /// One POST /schedule; the trigger id on 200 (when asked for), the error text otherwise.
    async fn call(
        &self,
        caller: &mut Caller,
        i: usize,
        url: &str,
        due_ms: i64,
        keep_id: bool,
    ) -> Result<Option<String>, String> {
        let which = i % self.authorities.len();
        let authority = &self.authorities[which];
        let request = &mut caller.request;
        request.clear();
        write!(
            request,
            "POST /schedule HTTP/1.1\r\nhost: {authority}\r\nttr-api-key: {}\r\n\
             ttr-url: {url}\r\nttr-scheduled-at: {}\r\nx-due-ms: {due_ms}\r\n\
             content-length: 0\r\n\r\n",
            self.api_key,
            rfc3339_ms(due_ms)
        )
        .map_err(|e| format!("building the request: {e}"))?;
        let slot = &mut caller.conns[which];
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(Conn::connect(authority).await?),
            };
            conn.send(request).await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 60 s")));
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                // The connection is in an unknown state: the next call opens a new one.
                *slot = None;
                return Err(format!("transport error from http://{authority}: {e}"));
            }
        };
        let body = answer.body;
        if answer.status != 200 {
            return Err(format!(
                "HTTP {} from http://{authority}: {}",
                answer.status,
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        if !keep_id {
            return Ok(None);
        }
        serde_json::from_slice::<ScheduleResult>(&body)
            .map(|r| Some(r.trigger_id))
            .map_err(|e| {
                format!(
                    "HTTP 200 without a triggerId ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(500)])
                )
            })
    }
}

/// What one caller task keeps between calls: a connection per instance, a request buffer.
struct Caller {
    conns: Vec<Option<Conn>>,
    request: Vec<u8>,
}

/// `2026-11-22T09:30:00.123Z` for a time in ms since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "now".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }
}

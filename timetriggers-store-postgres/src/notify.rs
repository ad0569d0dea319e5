//! Cross-instance wake-up with LISTEN/NOTIFY on the channel `<schema>_due`.
//!
//! **Sending.** A NOTIFY inside a transaction makes PostgreSQL take a database-wide lock from
//! the pre-commit step until the commit is flushed, so writers that notify on every insert
//! commit one at a time (a few hundred a second). The store therefore never notifies inside its
//! transactions. After an upsert (or a retry) commits, it hands the due time to [`Notifier`],
//! which keeps only the earliest pending due time and lets one background task send it with
//! `SELECT pg_notify(channel, due_ms)` in its own tiny transaction, at most once per
//! `notify_min_gap`. And only due times within `notify_horizon` of now are announced at all:
//! every engine looks at the next due time at least once per idle poll, so anything due later
//! is found by that look before it is due. A burst of immediate jobs therefore costs at most
//! one NOTIFY per gap per instance, and a backlog scheduled for later costs none.
//!
//! **Receiving.** [`spawn_listener`] keeps one dedicated connection LISTENing. A notification's
//! payload is a due time; it goes to [`EngineSignal::due_at`], which wakes the engine only if it
//! planned to sleep past that time. After every (re)connection the engine is woken once,
//! since notifications sent while the connection was down are lost. Losing a notification only
//! costs latency: the engine's idle poll remains the safety net.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use timetriggers_core::{EngineSignal, Timestamp};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// "Nothing to announce".
const NONE: i64 = i64::MAX;

/// The sending side: coalesces due times into at most one NOTIFY per gap.
#[derive(Debug)]
pub(crate) struct Notifier {
    channel: String,
    horizon: Duration,
    min_gap: Duration,
    /// The earliest due time (ms) not yet announced, or [`NONE`].
    pending: AtomicI64,
    wake: Notify,
    closed: AtomicBool,
}

impl Notifier {
    pub(crate) fn new(channel: String, horizon: Duration, min_gap: Duration) -> Arc<Notifier> {
        Arc::new(Notifier {
            channel,
            horizon,
            min_gap,
            pending: AtomicI64::new(NONE),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Something committed is due at `at`: announce it if it is due within the horizon.
    pub(crate) fn due(&self, at: Timestamp, now: Timestamp) {
        if at >= now.saturating_add(self.horizon) {
            return;
        }
        let previous = self.pending.fetch_min(at.as_millis(), Ordering::SeqCst);
        if previous == NONE {
            self.wake.notify_one();
        }
    }

    /// Whether a due time is waiting to be sent (for tests).
    #[cfg(test)]
    fn pending(&self) -> Option<i64> {
        Some(self.pending.load(Ordering::SeqCst)).filter(|&v| v != NONE)
    }

    /// Stops the sending task.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Starts the task that sends the NOTIFYs on `pool`.
    pub(crate) fn spawn(self: &Arc<Self>, pool: PgPool) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run(pool).await })
    }

    async fn run(&self, pool: PgPool) {
        loop {
            self.wake.notified().await;
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let due = self.pending.swap(NONE, Ordering::SeqCst);
            if due == NONE {
                continue;
            }
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.channel)
                .bind(due.to_string())
                .execute(&pool)
                .await;
            if let Err(e) = sent {
                // Only latency is lost: every engine still polls.
                tracing::debug!(error = %e, "could not send a wake-up NOTIFY");
            }
            // Whatever became due meanwhile is sent together, after the gap.
            tokio::time::sleep(self.min_gap).await;
            if self.pending.load(Ordering::SeqCst) != NONE {
                self.wake.notify_one();
            }
        }
    }
}

/// A running listener; dropping it (or calling [`ListenerHandle::stop`]) stops it.
#[derive(Debug)]
pub struct ListenerHandle {
    task: JoinHandle<()>,
}

impl ListenerHandle {
    /// Stops listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `channel` over `pool` (a dedicated one-connection pool) and feeds `signal`,
/// reconnecting with backoff (100 ms doubling to 5 s) when the connection is lost.
pub(crate) fn spawn_listener(
    pool: PgPool,
    channel: String,
    signal: Arc<EngineSignal>,
) -> ListenerHandle {
    let task = tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            match listen(&pool, &channel, &signal).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::debug!(error = %e, retry_in_ms = pause.as_millis() as u64, "wake-up listener lost its connection");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    });
    ListenerHandle { task }
}

/// One connection's life: LISTEN, wake the engine (anything sent before is lost), then relay
/// notifications until the connection is lost (`Ok`) or fails (`Err`).
async fn listen(pool: &PgPool, channel: &str, signal: &EngineSignal) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnect explicitly (here), not inside try_recv, so that each reconnection wakes the
    // engine.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    tracing::debug!(channel, "listening for wake-ups");
    signal.wake();
    loop {
        match listener.try_recv().await? {
            Some(notification) => match notification.payload().parse::<i64>() {
                Ok(ms) => signal.due_at(Timestamp::from_millis(ms)),
                Err(_) => signal.wake(),
            },
            None => return Ok(()),
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_due_times_within_the_horizon_are_announced_and_the_earliest_wins() {
        let n = Notifier::new("c".into(), Duration::from_secs(1), Duration::from_millis(5));
        let now = Timestamp::from_millis(10_000);
        n.due(Timestamp::from_millis(11_000), now);
        assert_eq!(n.pending(), None, "one horizon away: the poll finds it");
        n.due(Timestamp::from_millis(10_900), now);
        assert_eq!(n.pending(), Some(10_900));
        n.due(Timestamp::from_millis(10_950), now);
        assert_eq!(n.pending(), Some(10_900), "coalesced into the earliest");
        n.due(Timestamp::from_millis(9_000), now);
        assert_eq!(n.pending(), Some(9_000), "an overdue job is announced too");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }
}

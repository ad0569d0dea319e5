//! Time: the millisecond [`Timestamp`], the [`Clock`] trait, and its two implementations.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use tokio::sync::watch;

/// An instant in UTC, truncated to whole milliseconds so that every backend round-trips it
/// exactly. Stored as milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// The largest representable instant (year 9999), used as "never".
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// From a chrono instant, truncating sub-millisecond precision.
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_millis())
    }

    /// As a chrono instant.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T09:30:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses RFC 3339 (any offset), truncating to milliseconds.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| Self::from_datetime(t.with_timezone(&Utc)))
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms).min(Self::MAX.0))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms).max(0))
    }

    /// How long from `earlier` to `self` (zero if `earlier` is later).
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// The calendar month `YYYY-MM` (UTC) this instant falls in: the quota period.
    pub fn month_key(self) -> String {
        self.to_datetime().format("%Y-%m").to_string()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self::from_datetime(t)
    }
}

/// The source of "now" and of waiting, so that tests can drive time by hand.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// Returns once [`Clock::now`] is at or after `deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}

/// The real clock: wall time, with tokio timers for waiting.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        // Timers run on the monotonic clock; re-check the wall clock after each wake so that a
        // wake a hair early (clock adjustments, rounding) never lets a caller act before time.
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline.duration_since(now)).await;
        }
    }
}

/// A clock that only moves when told to. Sleepers wake when [`ManualClock::advance`] or
/// [`ManualClock::set`] moves time past their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    tx: watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        let (tx, _rx) = watch::channel(start);
        ManualClock {
            now: Mutex::new(start),
            tx,
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let next = self.now().saturating_add(d);
        self.set(next);
    }

    /// Sets the time (it may move backwards, as a wall clock can).
    pub fn set(&self, t: Timestamp) {
        match self.now.lock() {
            Ok(mut now) => *now = t,
            Err(poisoned) => *poisoned.into_inner() = t,
        }
        self.tx.send_replace(t);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        match self.now.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let mut rx = self.tx.subscribe();
        while *rx.borrow_and_update() < deadline {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-22T10:30:00.1234+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T09:30:00.123Z");
        assert_eq!(t.month_key(), "2026-11");
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(10)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::EPOCH.saturating_sub(Duration::from_secs(1)),
            Timestamp::EPOCH
        );
        assert_eq!(
            Timestamp::from_millis(5).duration_since(Timestamp::from_millis(9)),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_advanced_past_deadline() {
        let clock = std::sync::Arc::new(ManualClock::new(Timestamp::from_millis(1_000)));
        let c = clock.clone();
        let sleeper =
            tokio::spawn(async move { c.sleep_until(Timestamp::from_millis(2_000)).await });
        clock.advance(Duration::from_millis(500));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(500));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(clock.now(), Timestamp::from_millis(2_000));
    }
}

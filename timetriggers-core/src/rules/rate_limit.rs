//! Per-tag rate limits: the sliding-window arithmetic (API.md §5 "Rate limits").
//!
//! A rule allows at most `limit` executions started with its tag in each of its windows
//! (1 s, 1 min, 1 h, 24 h, 7 d, 30 d), each window being the half-open interval
//! `(now − length, now]`. A store does not count: for each window it reads the start time of the
//! `limit`-th most recent execution started with the tag (one index seek, `O(limit)`), and
//! [`admit`] decides. A window has room at `now` exactly when that start is at or before
//! `now − length` (or there is none); it next has room at that start + length.
//!
//! ```
//! use timetriggers_core::rules::rate_limit::{admit, Admission, Window, WindowUsage};
//! use timetriggers_core::Timestamp;
//!
//! let now = Timestamp::from_millis(10_000);
//! // "api" allows 2 per second; the 2nd most recent start was 400 ms ago.
//! let usage = [WindowUsage {
//!     tag: "api",
//!     window: Window::Second,
//!     limit: 2,
//!     nth_latest_start: Some(Timestamp::from_millis(9_600)),
//! }];
//! assert_eq!(
//!     admit(now, &usage),
//!     Admission::HeldBack { until: Timestamp::from_millis(10_600), tags: vec!["api".into()] }
//! );
//! ```

use std::time::Duration;

use crate::time::Timestamp;

/// A sliding window of a rate-limit rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// 1 second.
    Second,
    /// 1 minute.
    Minute,
    /// 1 hour.
    Hour,
    /// 24 hours.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 6] = [
        Window::Second,
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::Week,
        Window::Month,
    ];

    /// The longest window: usage older than this never matters again.
    pub const LONGEST: Window = Window::Month;

    /// The window's length.
    pub const fn length(self) -> Duration {
        Duration::from_secs(match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
            Window::Week => 7 * 86_400,
            Window::Month => 30 * 86_400,
        })
    }

    /// The contract's field name for this window's limit (`maxPerSecond`, …).
    pub const fn field(self) -> &'static str {
        match self {
            Window::Second => "maxPerSecond",
            Window::Minute => "maxPerMinute",
            Window::Hour => "maxPerHour",
            Window::Day => "maxPerDay",
            Window::Week => "maxPerWeek",
            Window::Month => "maxPerMonth",
        }
    }

    /// The start of the window ending at `now`, exclusive: starts after this instant count.
    /// Stores may use it to bound their seek (`started_at > since`).
    pub fn since(self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.length())
    }
}

/// One window of one rule as a store read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage<'a> {
    /// The rule's tag.
    pub tag: &'a str,
    /// The window.
    pub window: Window,
    /// The rule's limit for it (0 holds everything back).
    pub limit: u64,
    /// When the `limit`-th most recent execution with the tag started; `None` if there are
    /// fewer than `limit` (a store may also answer `None` when that start lies outside the
    /// window). Unused when `limit` is 0.
    pub nth_latest_start: Option<Timestamp>,
}

/// Whether a due execution may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every window of every rule has room: start it (and record its start for each tag).
    Allowed,
    /// Held back: re-check at `until`, the earliest instant at which every full window has
    /// room again (assuming nothing else starts meanwhile).
    HeldBack {
        /// When to re-check.
        until: Timestamp,
        /// The tags whose rules hold it back, in the order they were given, without repeats.
        tags: Vec<String>,
    },
}

/// Decides whether an execution whose tags have the rules described by `usage` may start at
/// `now`. A window with limit 0 is always full and is re-checked one window length later.
pub fn admit(now: Timestamp, usage: &[WindowUsage<'_>]) -> Admission {
    let mut until: Option<Timestamp> = None;
    let mut tags: Vec<String> = Vec::new();
    for u in usage {
        let free_at = if u.limit == 0 {
            now.saturating_add(u.window.length())
        } else {
            match u.nth_latest_start {
                Some(start) => start.saturating_add(u.window.length()),
                None => continue,
            }
        };
        if free_at <= now {
            continue;
        }
        until = Some(until.map_or(free_at, |t| t.max(free_at)));
        if !tags.iter().any(|t| t == u.tag) {
            tags.push(u.tag.to_owned());
        }
    }
    match until {
        None => Admission::Allowed,
        Some(until) => Admission::HeldBack { until, tags },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn at(offset_ms: i64) -> Timestamp {
        Timestamp::from_millis(NOW + offset_ms)
    }

    fn u(tag: &str, window: Window, limit: u64, nth: Option<i64>) -> WindowUsage<'_> {
        WindowUsage {
            tag,
            window,
            limit,
            nth_latest_start: nth.map(at),
        }
    }

    fn held(until: i64, tags: &[&str]) -> Admission {
        Admission::HeldBack {
            until: at(until),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn no_rules_or_room_everywhere_allows() {
        assert_eq!(admit(at(0), &[]), Admission::Allowed);
        let usage = [
            u("a", Window::Second, 5, None),
            u("a", Window::Minute, 100, Some(-60_000)),
            u("b", Window::Hour, 1, Some(-3_600_001)),
        ];
        assert_eq!(admit(at(0), &usage), Admission::Allowed);
    }

    #[test]
    fn window_boundaries_are_exact() {
        // A start exactly one window ago no longer counts; one millisecond later it does.
        assert_eq!(
            admit(at(0), &[u("a", Window::Second, 1, Some(-1_000))]),
            Admission::Allowed
        );
        assert_eq!(
            admit(at(0), &[u("a", Window::Second, 1, Some(-999))]),
            held(1, &["a"])
        );
        assert_eq!(
            admit(
                at(0),
                &[u("a", Window::Month, 3, Some(-30 * 86_400_000 + 1))]
            ),
            held(1, &["a"])
        );
        // A start "now" blocks for a full window.
        assert_eq!(
            admit(at(0), &[u("a", Window::Minute, 10, Some(0))]),
            held(60_000, &["a"])
        );
    }

    #[test]
    fn the_latest_full_window_decides_the_release() {
        // Per second full until +200 ms, per minute full until +30 s, per hour has room.
        let usage = [
            u("a", Window::Second, 2, Some(-800)),
            u("a", Window::Minute, 20, Some(-30_000)),
            u("a", Window::Hour, 100, Some(-3_600_000)),
        ];
        assert_eq!(admit(at(0), &usage), held(30_000, &["a"]));
    }

    #[test]
    fn several_tags_report_only_the_blocking_ones_in_order() {
        let usage = [
            u("free", Window::Second, 1, Some(-5_000)),
            u("slow", Window::Day, 1, Some(-86_000_000)),
            u("busy", Window::Second, 3, Some(-100)),
            u("slow", Window::Second, 1, Some(-10)),
        ];
        // slow: day window frees at -86_000_000 + 86_400_000 = 400_000; second at 990.
        // busy: 900.
        assert_eq!(admit(at(0), &usage), held(400_000, &["slow", "busy"]));
    }

    #[test]
    fn zero_holds_back_for_one_window() {
        assert_eq!(
            admit(at(0), &[u("paused", Window::Hour, 0, None)]),
            held(3_600_000, &["paused"])
        );
        assert_eq!(
            admit(
                at(0),
                &[
                    u("paused", Window::Second, 0, None),
                    u("other", Window::Second, 1, Some(-500))
                ]
            ),
            held(1_000, &["paused", "other"])
        );
    }

    #[test]
    fn windows_have_their_lengths() {
        assert_eq!(Window::Day.length(), Duration::from_secs(86_400));
        assert_eq!(Window::Month.since(at(0)), at(-2_592_000_000));
        assert_eq!(Window::ALL.len(), 6);
        assert_eq!(Window::Week.field(), "maxPerWeek");
    }
}

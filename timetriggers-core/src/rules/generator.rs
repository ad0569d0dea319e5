//! Generator occurrences: given a cron series, the last occurrence dealt with and `now`, which
//! occurrence is pending next and which missed ones are recorded as skipped (API.md §5).

use std::time::Duration;

use chrono_tz::Tz;

use crate::rules::cron::CronExpr;
use crate::time::Timestamp;

/// An occurrence later than its time by more than this is *missed* (API.md §5: 60 s).
pub const MISSED_AFTER: Duration = Duration::from_secs(60);
/// At most this many missed occurrences are recorded as `skipped`.
pub const MAX_SKIPPED_RECORDS: usize = 100;

/// What to materialise for a generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrencePlan {
    /// Missed occurrences to record as `skipped` (the latest at most 100), oldest first.
    pub skipped: Vec<Timestamp>,
    /// The time of the one pending occurrence to create. In the past for a catch-up (the
    /// latest missed occurrence with `run_missed`) or for an occurrence late by less than
    /// [`MISSED_AFTER`]; both fire at once.
    pub pending_at: Timestamp,
    /// Whether `pending_at` is a catch-up of a missed occurrence.
    pub catch_up: bool,
}

/// The next fire time strictly after `after`.
pub fn next_fire(cron: &CronExpr, tz: Tz, after: Timestamp) -> Option<Timestamp> {
    cron.next_after(after.to_datetime(), tz)
        .map(Timestamp::from_datetime)
}

/// Plans the occurrence that follows `after` (the last occurrence fired or skipped, or the
/// creation time of a new generator), counting occurrences older than `missed_after` as
/// missed ([`MISSED_AFTER`] in production). `None` when the series never fires again.
pub fn plan_occurrences(
    cron: &CronExpr,
    tz: Tz,
    after: Timestamp,
    now: Timestamp,
    run_missed: bool,
    missed_after: Duration,
) -> Option<OccurrencePlan> {
    let first = next_fire(cron, tz, after)?;
    let horizon = now.saturating_sub(missed_after);
    if first >= horizon {
        return Some(OccurrencePlan {
            skipped: Vec::new(),
            pending_at: first,
            catch_up: false,
        });
    }
    // Some occurrences were missed. Find the latest MAX_SKIPPED_RECORDS + 1 of them without
    // walking the whole gap (a per-second series down for a month has millions): search a
    // window ending at the horizon, doubling it until it holds enough or reaches `after`.
    let want = MAX_SKIPPED_RECORDS + 1;
    let mut span = Duration::from_secs(3_600);
    let missed = loop {
        let start = horizon.saturating_sub(span).max(after);
        let mut times = Vec::new();
        let mut t = if start == after {
            Some(first)
        } else {
            next_fire(cron, tz, start)
        };
        while let Some(at) = t {
            if at >= horizon {
                break;
            }
            times.push(at);
            if times.len() > want * 4 {
                times.drain(..times.len() - want);
            }
            t = next_fire(cron, tz, at);
        }
        if times.len() >= want || start == after {
            break times;
        }
        span = span.saturating_mul(2);
    };
    let keep_from = missed.len().saturating_sub(want);
    let mut missed: Vec<Timestamp> = missed.into_iter().skip(keep_from).collect();
    let latest = *missed.last()?;
    if run_missed {
        missed.pop();
        let drop = missed.len().saturating_sub(MAX_SKIPPED_RECORDS);
        missed.drain(..drop);
        return Some(OccurrencePlan {
            skipped: missed,
            pending_at: latest,
            catch_up: true,
        });
    }
    let drop = missed.len().saturating_sub(MAX_SKIPPED_RECORDS);
    missed.drain(..drop);
    let pending_at = next_fire(cron, tz, latest)?;
    Some(OccurrencePlan {
        skipped: missed,
        pending_at,
        catch_up: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn cron(s: &str) -> CronExpr {
        CronExpr::parse(s).unwrap()
    }

    #[test]
    fn nothing_missed_gives_the_next_time() {
        let plan = plan_occurrences(
            &cron("0 9 * * *"),
            Tz::UTC,
            t("2026-11-22T09:00:00Z"),
            t("2026-11-22T10:00:00Z"),
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(plan.pending_at, t("2026-11-23T09:00:00Z"));
        assert!(plan.skipped.is_empty());
        assert!(!plan.catch_up);
    }

    #[test]
    fn late_by_less_than_a_minute_is_not_missed() {
        let plan = plan_occurrences(
            &cron("*/10 * * * * *"),
            Tz::UTC,
            t("2026-11-22T09:00:00Z"),
            t("2026-11-22T09:00:59Z"),
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(plan.pending_at, t("2026-11-22T09:00:10Z"));
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn missed_without_run_missed_skips_them_and_goes_on_from_the_next_time() {
        // Hourly; last fired 06:00; now 09:30 → 07:00, 08:00, 09:00 missed (09:00 is 30 min late).
        let plan = plan_occurrences(
            &cron("0 * * * *"),
            Tz::UTC,
            t("2026-11-22T06:00:00Z"),
            t("2026-11-22T09:30:00Z"),
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(
            plan.skipped,
            vec![
                t("2026-11-22T07:00:00Z"),
                t("2026-11-22T08:00:00Z"),
                t("2026-11-22T09:00:00Z")
            ]
        );
        assert_eq!(plan.pending_at, t("2026-11-22T10:00:00Z"));
        assert!(!plan.catch_up);
    }

    #[test]
    fn missed_with_run_missed_fires_the_latest_once_and_skips_the_rest() {
        let plan = plan_occurrences(
            &cron("0 * * * *"),
            Tz::UTC,
            t("2026-11-22T06:00:00Z"),
            t("2026-11-22T09:30:00Z"),
            true,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(
            plan.skipped,
            vec![t("2026-11-22T07:00:00Z"), t("2026-11-22T08:00:00Z")]
        );
        assert_eq!(plan.pending_at, t("2026-11-22T09:00:00Z"));
        assert!(plan.catch_up);
    }

    #[test]
    fn at_most_the_latest_hundred_are_recorded_even_after_a_long_outage() {
        // Every second, down for 30 days: ~2.6 million missed.
        let now = t("2026-12-22T00:00:00Z");
        let plan = plan_occurrences(
            &cron("* * * * * *"),
            Tz::UTC,
            t("2026-11-22T00:00:00Z"),
            now,
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(plan.skipped.len(), MAX_SKIPPED_RECORDS);
        let horizon = now.saturating_sub(MISSED_AFTER);
        assert_eq!(
            *plan.skipped.last().unwrap(),
            horizon.saturating_sub(Duration::from_secs(1))
        );
        assert!(plan.skipped.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(plan.pending_at, horizon);

        let plan = plan_occurrences(
            &cron("* * * * * *"),
            Tz::UTC,
            t("2026-11-22T00:00:00Z"),
            now,
            true,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(plan.skipped.len(), MAX_SKIPPED_RECORDS);
        assert_eq!(
            plan.pending_at,
            horizon.saturating_sub(Duration::from_secs(1))
        );
        assert!(plan.catch_up);
        assert!(*plan.skipped.last().unwrap() < plan.pending_at);
    }

    #[test]
    fn sparse_series_missed_over_years_find_their_latest_occurrences() {
        // Yearly, down for 150 years (a far-fetched but cheap check of the window doubling).
        let plan = plan_occurrences(
            &cron("@yearly"),
            Tz::UTC,
            t("2000-01-01T00:00:00Z"),
            t("2150-06-01T00:00:00Z"),
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(plan.skipped.len(), 100);
        assert_eq!(plan.skipped[0], t("2051-01-01T00:00:00Z"));
        assert_eq!(*plan.skipped.last().unwrap(), t("2150-01-01T00:00:00Z"));
        assert_eq!(plan.pending_at, t("2151-01-01T00:00:00Z"));
    }

    #[test]
    fn follows_the_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let plan = plan_occurrences(
            &cron("30 9 * * 1-5"),
            ny,
            t("2026-11-20T14:30:00Z"), // Friday 09:30 EST
            t("2026-11-20T15:00:00Z"),
            false,
            MISSED_AFTER,
        )
        .unwrap();
        assert_eq!(
            plan.pending_at,
            t("2026-11-23T14:30:00Z"),
            "Monday 09:30 EST"
        );
    }
}

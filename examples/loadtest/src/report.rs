//! Pure statistics over what was scheduled and what arrived, and the table / JSON output.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::schedule::{per_second, Batch};
use crate::target::Arrival;

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// `v` rounded to `decimals` places, for readable JSON.
pub fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Duplicate, missing and unexpected deliveries, by `x-callback-id`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct IdCheck {
    /// Distinct scheduled ids that arrived.
    pub unique: usize,
    /// Extra deliveries of an id that had already arrived (3 arrivals of one id = 2).
    pub duplicates: usize,
    /// Ids that arrived more than once.
    pub duplicated_ids: usize,
    /// Scheduled (accepted) ids that never arrived.
    pub missing: usize,
    /// Arrivals whose id was not among the accepted ones (or had no id).
    pub unexpected: usize,
}

/// Compares the accepted trigger ids with the `x-callback-id`s that arrived.
pub fn check_ids<'a>(
    scheduled: &[String],
    arrived: impl IntoIterator<Item = Option<&'a str>>,
) -> IdCheck {
    let expected: HashSet<&str> = scheduled.iter().map(String::as_str).collect();
    let mut counts: HashMap<&str, usize> = HashMap::with_capacity(expected.len());
    let mut check = IdCheck::default();
    for id in arrived {
        match id {
            Some(id) if expected.contains(id) => *counts.entry(id).or_default() += 1,
            _ => check.unexpected += 1,
        }
    }
    check.unique = counts.len();
    check.duplicates = counts.values().map(|c| c - 1).sum();
    check.duplicated_ids = counts.values().filter(|c| **c > 1).count();
    check.missing = expected.len() - counts.len();
    check
}

/// CPU time (user + system, from /proc) per job, in µs, of the server process(es) and of this
/// tool (its callers while scheduling, its target while delivering). `None` where /proc could
/// not be read (or, for the server, no pid is known).
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct CpuPerJob {
    pub server_schedule_us: Option<f64>,
    pub server_delivery_us: Option<f64>,
    pub tool_schedule_us: Option<f64>,
    pub tool_delivery_us: Option<f64>,
}

/// CPU time used so far, in ms.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    pub server_ms: Option<f64>,
    pub tool_ms: Option<f64>,
}

impl CpuPerJob {
    /// From marks taken before scheduling, after it, and once the deliveries arrived.
    pub fn between(
        start: CpuMark,
        scheduled: CpuMark,
        delivered: CpuMark,
        accepted: usize,
        arrived: usize,
    ) -> CpuPerJob {
        let per = |a: Option<f64>, b: Option<f64>, n: usize| match (a, b) {
            (Some(a), Some(b)) if n > 0 => Some(round((b - a).max(0.0) * 1000.0 / n as f64, 1)),
            _ => None,
        };
        CpuPerJob {
            server_schedule_us: per(start.server_ms, scheduled.server_ms, accepted),
            server_delivery_us: per(scheduled.server_ms, delivered.server_ms, arrived),
            tool_schedule_us: per(start.tool_ms, scheduled.tool_ms, accepted),
            tool_delivery_us: per(scheduled.tool_ms, delivered.tool_ms, arrived),
        }
    }
}

/// Lag (arrival − due) percentiles in ms; negative means early.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Lag {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// Deliveries that arrived before their due millisecond.
    pub early: usize,
}

/// Lag statistics over the arrivals that carry `x-due-ms`.
pub fn lag(arrivals: &[Arrival]) -> Lag {
    // Integer µs first, so the ms values print as exact thousandths.
    let mut lags: Vec<f64> = arrivals
        .iter()
        .filter_map(|a| {
            a.due_ms
                .map(|due| (a.at_us as i64 - due * 1000) as f64 / 1000.0)
        })
        .collect();
    lags.sort_unstable_by(f64::total_cmp);
    Lag {
        p50: percentile(&lags, 50.0),
        p90: percentile(&lags, 90.0),
        p99: percentile(&lags, 99.0),
        max: lags.last().copied(),
        min: lags.first().copied(),
        early: lags.iter().filter(|l| **l < 0.0).count(),
    }
}

/// First-to-last arrival span.
pub fn arrival_span(arrivals: &[Arrival]) -> Duration {
    let first = arrivals.iter().map(|a| a.at_us).min();
    let last = arrivals.iter().map(|a| a.at_us).max();
    match (first, last) {
        (Some(f), Some(l)) => Duration::from_micros(l - f),
        _ => Duration::ZERO,
    }
}

/// Rates over the first and the last 10 % of completions (sorted offsets from the start).
pub fn edge_rates(completions: &[Duration]) -> (f64, f64) {
    let n = completions.len();
    let tenth = n / 10;
    if tenth == 0 {
        return (0.0, 0.0);
    }
    let first = per_second(tenth, completions[tenth - 1]);
    let last = per_second(
        tenth,
        completions[n - 1].saturating_sub(completions[n - 1 - tenth]),
    );
    (first, last)
}

/// The `/schedule` side of a workload.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStats {
    pub calls: usize,
    pub callers: usize,
    pub accepted: usize,
    pub wall_ms: f64,
    /// Accepted 200 calls per second.
    pub rate_per_s: f64,
    pub non_200: usize,
    pub first_error: Option<String>,
    pub call_latency_p50_ms: Option<f64>,
    pub call_latency_p99_ms: Option<f64>,
}

impl ScheduleStats {
    pub fn from_batch(calls: usize, callers: usize, batch: &Batch) -> Self {
        let lat: Vec<f64> = batch
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ScheduleStats {
            calls,
            callers,
            accepted: batch.accepted,
            wall_ms: round(batch.wall.as_secs_f64() * 1000.0, 1),
            rate_per_s: round(batch.rate(), 1),
            non_200: batch.failed,
            first_error: batch.first_error.clone(),
            call_latency_p50_ms: percentile(&lat, 50.0).map(|v| round(v, 3)),
            call_latency_p99_ms: percentile(&lat, 99.0).map(|v| round(v, 3)),
        }
    }
}

/// W3's backlog seeding.
#[derive(Debug, Clone, Serialize)]
pub struct SeedStats {
    pub method: String,
    pub jobs: usize,
    pub due_in_days: u32,
    pub schedule: ScheduleStats,
    pub first_10pct_rate_per_s: f64,
    pub last_10pct_rate_per_s: f64,
}

/// One workload's results.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    pub description: String,
    pub jobs: usize,
    /// How far ahead of the scheduling start the first job was due, and how it was chosen.
    pub lead_ms: u64,
    pub lead_source: String,
    /// First due time − end of scheduling; negative: scheduling overran the due time.
    pub due_slack_ms: f64,
    pub seed: Option<SeedStats>,
    pub schedule: ScheduleStats,
    pub delivered: usize,
    pub first_to_last_arrival_ms: f64,
    /// Deliveries ÷ (last arrival − first arrival).
    pub delivery_rate_per_s: f64,
    pub lag_ms: Lag,
    pub cpu_us_per_job: CpuPerJob,
    #[serde(flatten)]
    pub ids: IdCheck,
    /// Whether every accepted job arrived before the deadline.
    pub all_arrived: bool,
}

impl WorkloadReport {
    /// Problems that make the exit code 1.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |n: usize, what: &str| {
            if n > 0 {
                out.push(format!("{}: {n} {what}", self.workload));
            }
        };
        add(self.ids.missing, "missing");
        add(self.ids.duplicates, "duplicate deliveries");
        add(self.ids.unexpected, "unexpected deliveries");
        add(self.lag_ms.early, "early deliveries");
        add(self.schedule.non_200, "failed /schedule calls");
        if let Some(seed) = &self.seed {
            add(
                seed.schedule.non_200,
                "failed /schedule calls while seeding",
            );
        }
        out
    }
}

/// The whole run, printed as the final JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tool: &'static str,
    pub database: String,
    pub instances: usize,
    pub spawned: bool,
    pub cores: usize,
    pub workloads: Vec<WorkloadReport>,
    /// Peak RSS (VmHWM) per known server process, MB.
    pub server_peak_rss_mb: Vec<Option<f64>>,
    /// Requests to the backlog URL (must be 0).
    pub backlog_hits: u64,
    /// Requests to unknown target paths.
    pub stray_requests: u64,
    pub ok: bool,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn schedule_row(s: &ScheduleStats) -> String {
    format!(
        "{} accepted of {} in {:.2} s = {:.0}/s ({} callers); non-200: {}; call p50 {} ms, p99 {} ms",
        s.accepted,
        s.calls,
        s.wall_ms / 1000.0,
        s.rate_per_s,
        s.callers,
        s.non_200,
        ms(s.call_latency_p50_ms),
        ms(s.call_latency_p99_ms),
    )
}

/// The human table of one workload.
pub fn table(w: &WorkloadReport) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(seed) = &w.seed {
        rows.push((
            "backlog seeding",
            format!(
                "{} ({} due in {} days)",
                seed.method, seed.jobs, seed.due_in_days
            ),
        ));
        rows.push(("  seed schedule", schedule_row(&seed.schedule)));
        rows.push((
            "  seed rate 1st/last 10%",
            format!(
                "{:.0}/s / {:.0}/s",
                seed.first_10pct_rate_per_s, seed.last_10pct_rate_per_s
            ),
        ));
    }
    rows.push(("schedule", schedule_row(&w.schedule)));
    if let Some(e) = &w.schedule.first_error {
        rows.push(("  first error", e.clone()));
    }
    rows.push((
        "due",
        format!(
            "first due {:.2} s after start ({}); {}",
            w.lead_ms as f64 / 1000.0,
            w.lead_source,
            if w.due_slack_ms >= 0.0 {
                format!("scheduling ended {:.0} ms before it", w.due_slack_ms)
            } else {
                format!(
                    "SCHEDULING OVERRAN THE DUE TIME by {:.0} ms",
                    -w.due_slack_ms
                )
            }
        ),
    ));
    rows.push((
        "delivery",
        format!(
            "{} delivered, first→last {:.0} ms = {:.0}/s{}",
            w.delivered,
            w.first_to_last_arrival_ms,
            w.delivery_rate_per_s,
            if w.all_arrived {
                ""
            } else {
                " (deadline reached)"
            }
        ),
    ));
    let l = &w.lag_ms;
    rows.push((
        "lag ms",
        format!(
            "p50 {}  p90 {}  p99 {}  max {}  min {}  (early: {})",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            ms(l.min),
            l.early
        ),
    ));
    let c = &w.cpu_us_per_job;
    let us = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"));
    rows.push((
        "cpu µs per job",
        format!(
            "server: schedule {}, delivery {}; this tool: schedule {}, delivery {}",
            us(c.server_schedule_us),
            us(c.server_delivery_us),
            us(c.tool_schedule_us),
            us(c.tool_delivery_us)
        ),
    ));
    rows.push((
        "ids",
        format!(
            "duplicates {}  missing {}  unexpected {}",
            w.ids.duplicates, w.ids.missing, w.ids.unexpected
        ),
    ));
    let mut out = format!("== {}: {} ==\n", w.workload, w.description);
    for (k, v) in rows {
        out.push_str(&format!("  {k:<24} {v}\n"));
    }
    out
}

/// The closing table of the run (environment and server memory).
pub fn run_table(r: &RunReport) -> String {
    let rss: Vec<String> = r
        .server_peak_rss_mb
        .iter()
        .map(|m| m.map_or_else(|| "?".to_owned(), |m| format!("{m:.1} MB")))
        .collect();
    format!(
        "== run ==\n  {:<24} {} ({} instance{}, {})\n  {:<24} {}\n  {:<24} {}\n  {:<24} backlog hits {}, stray requests {}\n  {:<24} {}\n",
        "database",
        r.database,
        r.instances,
        if r.instances == 1 { "" } else { "s" },
        if r.spawned { "spawned by this tool" } else { "already running" },
        "cores",
        r.cores,
        "server peak RSS",
        if rss.is_empty() { "not known (pass --server-pid)".to_owned() } else { rss.join(", ") },
        "target",
        r.backlog_hits,
        r.stray_requests,
        "result",
        if r.ok { "OK" } else { "FAILED" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_job_splits_the_phases() {
        let mark = |server: Option<f64>, tool: f64| CpuMark {
            server_ms: server,
            tool_ms: Some(tool),
        };
        let c = CpuPerJob::between(
            mark(Some(100.0), 10.0),
            mark(Some(1_100.0), 210.0),
            mark(Some(2_100.0), 410.0),
            20_000,
            10_000,
        );
        assert_eq!(c.server_schedule_us, Some(50.0));
        assert_eq!(c.server_delivery_us, Some(100.0));
        assert_eq!(c.tool_schedule_us, Some(10.0));
        assert_eq!(c.tool_delivery_us, Some(20.0));
        let unknown = CpuPerJob::between(mark(None, 0.0), mark(None, 1.0), mark(None, 2.0), 1, 0);
        assert_eq!(unknown.server_schedule_us, None, "no server pid");
        assert_eq!(unknown.tool_delivery_us, None, "nothing delivered");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn counts_duplicates_missing_unexpected() {
        let scheduled: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let arrived = [
            Some("a"),
            Some("b"),
            Some("a"),
            Some("a"),
            Some("c"),
            Some("zz"),
            None,
        ];
        let check = check_ids(&scheduled, arrived);
        assert_eq!(
            check,
            IdCheck {
                unique: 3,
                duplicates: 2,
                duplicated_ids: 1,
                missing: 1,
                unexpected: 2,
            }
        );
    }

    #[test]
    fn lag_and_early() {
        let a = |at_ms: u64, due: i64| Arrival {
            at_us: at_ms * 1000,
            callback_id: None,
            due_ms: Some(due),
        };
        let l = lag(&[a(1005, 1000), a(999, 1000), a(1002, 1000)]);
        assert_eq!(l.min, Some(-1.0));
        assert_eq!(l.max, Some(5.0));
        assert_eq!(l.p50, Some(2.0));
        assert_eq!(l.early, 1);
        assert_eq!(
            arrival_span(&[a(1005, 0), a(999, 0)]),
            Duration::from_millis(6)
        );
    }

    #[test]
    fn edge_rates_of_a_slowing_batch() {
        // 10 calls: the first one after 100 ms, the last one 1 s after the ninth.
        let c: Vec<Duration> = (1..=9)
            .map(|i| Duration::from_millis(i * 100))
            .chain([Duration::from_millis(1900)])
            .collect();
        let (first, last) = edge_rates(&c);
        assert_eq!(first, 10.0);
        assert_eq!(last, 1.0);
    }
}

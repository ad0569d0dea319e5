//! The workloads W1, W2 and W3: schedule, wait for the deliveries, measure.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use crate::report::{self, CpuMark, CpuPerJob, ScheduleStats, SeedStats, WorkloadReport};
use crate::schedule::{per_second, JobFn, Scheduler};
use crate::server;
use crate::target::{now_ms, Target};

/// The lead never goes below this (W1 due instant, W2 first due time).
const MIN_LEAD_MS: u64 = 3_000;
/// How far ahead W3's backlog is due.
const BACKLOG_DAYS: u32 = 30;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// `jobs` one-off triggers all due at one instant.
    W1 { jobs: usize },
    /// `rate` triggers/s due evenly over `duration_secs`.
    W2 { rate: u32, duration_secs: u32 },
    /// W2 while `backlog` triggers are pending far in the future.
    W3 {
        backlog: usize,
        rate: u32,
        duration_secs: u32,
    },
}

/// What every workload needs.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub scheduler: Scheduler,
    pub target: &'a Target,
    /// How long to wait for deliveries after the last due time.
    pub wait: Duration,
    /// How long to keep listening for duplicates once everything arrived.
    pub settle: Duration,
    /// `--lead-ms`: a fixed lead instead of the adaptive one.
    pub lead_ms: Option<u64>,
    /// The server processes, for their CPU time (empty: not known).
    pub server_pids: Vec<u32>,
}

impl Ctx<'_> {
    /// CPU time used so far by the servers (all of them, or `None`) and by this tool.
    fn cpu(&self) -> CpuMark {
        let server_ms = if self.server_pids.is_empty() {
            None
        } else {
            self.server_pids
                .iter()
                .map(|pid| server::cpu_ms(*pid))
                .sum::<Option<f64>>()
        };
        CpuMark {
            server_ms,
            tool_ms: server::own_cpu_ms(),
        }
    }
}

/// How far ahead the first job is due, and why.
struct Lead {
    ms: u64,
    source: String,
}

/// Runs one workload to completion.
pub async fn run(ctx: &Ctx<'_>, workload: Workload) -> anyhow::Result<WorkloadReport> {
    match workload {
        Workload::W1 { jobs } => {
            let lead = lead(ctx, jobs, None).await?;
            let spec = Measured {
                name: "W1",
                description: format!("{jobs} one-off triggers due at one instant"),
                jobs,
                per_second: None,
            };
            measure(ctx, spec, lead, None).await
        }
        Workload::W2 {
            rate,
            duration_secs,
        } => {
            let spec = steady("W2", rate, duration_secs, String::new())?;
            let lead = lead(ctx, spec.jobs, None).await?;
            measure(ctx, spec, lead, None).await
        }
        Workload::W3 {
            backlog,
            rate,
            duration_secs,
        } => {
            let seed = seed_backlog(ctx, backlog).await?;
            let spec = steady(
                "W3",
                rate,
                duration_secs,
                format!(" while {backlog} triggers are pending {BACKLOG_DAYS} days ahead"),
            )?;
            let estimate = (seed.last_10pct_rate_per_s > 0.0).then_some(seed.last_10pct_rate_per_s);
            let lead = lead(ctx, spec.jobs, estimate).await?;
            measure(ctx, spec, lead, Some(seed)).await
        }
    }
}

/// A measured step: `jobs` jobs, all due at once (`per_second: None`) or evenly spread.
struct Measured {
    name: &'static str,
    description: String,
    jobs: usize,
    per_second: Option<u32>,
}

fn steady(name: &'static str, rate: u32, secs: u32, extra: String) -> anyhow::Result<Measured> {
    if rate == 0 || secs == 0 {
        bail!("--rate and --duration-secs must be at least 1");
    }
    Ok(Measured {
        name,
        description: format!("{rate} triggers/s due evenly over {secs} s{extra}"),
        jobs: rate as usize * secs as usize,
        per_second: Some(rate),
    })
}

/// `--lead-ms`, or long enough for `jobs` calls at the estimated (or probed) schedule rate.
async fn lead(ctx: &Ctx<'_>, jobs: usize, estimate: Option<f64>) -> anyhow::Result<Lead> {
    if let Some(ms) = ctx.lead_ms {
        return Ok(Lead {
            ms,
            source: "--lead-ms".to_owned(),
        });
    }
    let (rate, how) = match estimate {
        Some(rate) => (rate, format!("seeding's last 10 % at {rate:.0}/s")),
        None => {
            let (rate, probed) = probe(ctx, jobs).await?;
            (rate, format!("{probed} probe jobs at {rate:.0}/s"))
        }
    };
    let needed = 1.25 * jobs as f64 / rate * 1000.0 + 1000.0;
    Ok(Lead {
        ms: (needed.ceil() as u64).max(MIN_LEAD_MS),
        source: format!("adaptive: {how}"),
    })
}

/// Schedules a few jobs due now to estimate the schedule rate (and warm up connections),
/// then waits for them so they do not overlap the measurement. The rate is that of the
/// probe's second half (warm); the lead's 25 % margin covers the rest.
async fn probe(ctx: &Ctx<'_>, jobs: usize) -> anyhow::Result<(f64, usize)> {
    let k = (jobs / 20).clamp(50, 1000);
    let phase = ctx.target.phase(k);
    let p = phase.clone();
    let job: JobFn = Arc::new(move |i| (p.url(i), now_ms()));
    let batch = ctx.scheduler.run(k, job, true).await;
    if batch.accepted == 0 {
        bail!(
            "probe: none of {k} /schedule calls succeeded; first error: {}",
            batch.first_error.as_deref().unwrap_or("none")
        );
    }
    phase.set_expected(batch.ids.len());
    if !phase
        .wait_all(Instant::now() + Duration::from_secs(30))
        .await
    {
        eprintln!(
            "warning: only {} of {} probe jobs (due now) arrived within 30 s",
            phase.unique(),
            batch.ids.len()
        );
    }
    // The second half: the first calls pay for connection set-up and a cold server.
    let c = &batch.completions;
    let half = c.len() / 2;
    let warm = match (half.checked_sub(1).and_then(|i| c.get(i)), c.last()) {
        (Some(mid), Some(last)) if last > mid => per_second(c.len() - half, *last - *mid),
        _ => batch.rate(),
    };
    Ok((warm.max(batch.rate()), k))
}

async fn seed_backlog(ctx: &Ctx<'_>, backlog: usize) -> anyhow::Result<SeedStats> {
    let url = ctx.target.never_url();
    let due = now_ms() + i64::from(BACKLOG_DAYS) * 86_400_000;
    let callers = ctx.scheduler.callers();
    eprintln!("W3: seeding {backlog} triggers due in {BACKLOG_DAYS} days through /schedule ({callers} callers)…");
    let job: JobFn = Arc::new(move |_| (url.clone(), due));
    let batch = ctx.scheduler.run(backlog, job, false).await;
    if backlog > 0 && batch.accepted == 0 {
        bail!(
            "seeding: no /schedule call succeeded; first error: {}",
            batch.first_error.as_deref().unwrap_or("none")
        );
    }
    let (first, last) = report::edge_rates(&batch.completions);
    Ok(SeedStats {
        method: format!("seeded through /schedule, {callers} callers"),
        jobs: backlog,
        due_in_days: BACKLOG_DAYS,
        schedule: ScheduleStats::from_batch(backlog, callers, &batch),
        first_10pct_rate_per_s: report::round(first, 1),
        last_10pct_rate_per_s: report::round(last, 1),
    })
}

/// Due time of job `i`: all at `base`, or `base + i·1000/rate` ms.
fn due_ms(base: i64, i: usize, per_second: Option<u32>) -> i64 {
    match per_second {
        Some(rate) if rate > 0 => base + (i as i64 * 1000) / i64::from(rate),
        _ => base,
    }
}

async fn measure(
    ctx: &Ctx<'_>,
    spec: Measured,
    lead: Lead,
    seed: Option<SeedStats>,
) -> anyhow::Result<WorkloadReport> {
    let n = spec.jobs;
    if n == 0 {
        bail!("{}: nothing to schedule", spec.name);
    }
    let phase = ctx.target.phase(n);
    let base = now_ms() + lead.ms as i64;
    let rate = spec.per_second;
    let p = phase.clone();
    let job: JobFn = Arc::new(move |i| (p.url(i), due_ms(base, i, rate)));
    eprintln!(
        "{}: scheduling {n} jobs with {} callers, first due in {} ms ({})…",
        spec.name,
        ctx.scheduler.callers(),
        lead.ms,
        lead.source
    );
    let cpu_start = ctx.cpu();
    let batch = ctx.scheduler.run(n, job, true).await;
    let scheduled_end = now_ms();
    let cpu_scheduled = ctx.cpu();
    phase.set_expected(batch.ids.len());

    let last_due = due_ms(base, n - 1, rate);
    let until_last_due = Duration::from_millis((last_due - now_ms()).max(0) as u64);
    eprintln!(
        "{}: {} accepted, {} failed; waiting for deliveries (up to {} s after the last due time)…",
        spec.name,
        batch.accepted,
        batch.failed,
        ctx.wait.as_secs()
    );
    let all_arrived = phase
        .wait_all(Instant::now() + until_last_due + ctx.wait)
        .await;
    let cpu_delivered = ctx.cpu();
    if all_arrived && !ctx.settle.is_zero() {
        tokio::time::sleep(ctx.settle).await;
    }
    let arrivals = phase.take_arrivals();

    let span = report::arrival_span(&arrivals);
    Ok(WorkloadReport {
        workload: spec.name.to_owned(),
        description: spec.description,
        jobs: n,
        lead_ms: lead.ms,
        lead_source: lead.source,
        due_slack_ms: (base - scheduled_end) as f64,
        seed,
        schedule: ScheduleStats::from_batch(n, ctx.scheduler.callers(), &batch),
        delivered: arrivals.len(),
        first_to_last_arrival_ms: report::round(span.as_secs_f64() * 1000.0, 1),
        delivery_rate_per_s: report::round(per_second(arrivals.len(), span), 1),
        lag_ms: report::lag(&arrivals),
        cpu_us_per_job: CpuPerJob::between(
            cpu_start,
            cpu_scheduled,
            cpu_delivered,
            batch.accepted,
            arrivals.len(),
        ),
        ids: report::check_ids(
            &batch.ids,
            arrivals.iter().map(|a| a.callback_id.as_deref()),
        ),
        all_arrived,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times() {
        assert_eq!(due_ms(1000, 7, None), 1000);
        assert_eq!(due_ms(1000, 0, Some(500)), 1000);
        assert_eq!(due_ms(1000, 3, Some(500)), 1006);
        assert_eq!(due_ms(1000, 2, Some(3)), 1666);
    }
}

//! The job and execution state machines of API.md §5, and the create-or-reschedule and cancel
//! decisions built on them. Stores call these inside their transactions, so the rules live in
//! exactly one place.

use std::time::Duration;

use crate::ids::JobId;
use crate::model::{ExecutionStatus, GeneratorStatus, JobKind, JobStatus, Origin, TriggeredBy};

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Registered,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Cancelled,
        JobStatus::Skipped,
    ];

    /// The wire / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Registered => "registered",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Skipped => "skipped",
        }
    }

    /// Parses the wire / storage name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job still holds its custom key (it has not finished).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            JobStatus::Registered | JobStatus::Queued | JobStatus::Running
        )
    }

    /// The allowed transitions. `Queued ⇄ Running` covers an engine taking the job and, between
    /// automatic retry attempts, the job waiting `queued` for its next attempt.
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Registered, Queued | Running | Cancelled | Skipped)
                | (Queued, Running)
                | (Running, Queued | Completed)
                // A replay or dashboard retry runs a finished job again.
                | (Completed | Cancelled | Skipped, Queued)
        )
    }
}

impl ExecutionStatus {
    /// The wire / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Planned => "planned",
            ExecutionStatus::Started => "started",
            ExecutionStatus::Complete => "complete",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the wire / storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ExecutionStatus::Planned,
            ExecutionStatus::Started,
            ExecutionStatus::Complete,
            ExecutionStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// `planned` → `started` → `complete`, or `planned` → `cancelled`.
    pub fn can_become(self, next: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, next),
            (Planned, Started | Cancelled) | (Started, Complete)
        )
    }
}

impl TriggeredBy {
    /// The wire / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggeredBy::Scheduler => "scheduler",
            TriggeredBy::Retry => "retry",
            TriggeredBy::Replay => "replay",
        }
    }

    /// Parses the wire / storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TriggeredBy::Scheduler,
            TriggeredBy::Retry,
            TriggeredBy::Replay,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl JobKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Job => "job",
            JobKind::Generator => "generator",
        }
    }
}

impl GeneratorStatus {
    /// The wire / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            GeneratorStatus::Active => "active",
            GeneratorStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the wire / storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(GeneratorStatus::Active),
            "cancelled" => Some(GeneratorStatus::Cancelled),
            _ => None,
        }
    }
}

impl Origin {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Schedule => "schedule",
            Origin::Declare => "declare",
            Origin::Bulk => "bulk",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "schedule" => Some(Origin::Schedule),
            "declare" => Some(Origin::Declare),
            "bulk" => Some(Origin::Bulk),
            _ => None,
        }
    }
}

/// The state of an existing item, as a store reads it inside its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// A one-off job in this state.
    Job(JobStatus),
    /// A generator in this state.
    Generator(GeneratorStatus),
}

impl ItemState {
    /// Whether it may be rescheduled or cancelled: a `registered` job or an active generator.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            ItemState::Job(JobStatus::Registered) | ItemState::Generator(GeneratorStatus::Active)
        )
    }

    /// The pending state of an item of `kind`: a `registered` job or an active generator.
    pub fn pending(kind: JobKind) -> Self {
        match kind {
            JobKind::Job => ItemState::Job(JobStatus::Registered),
            JobKind::Generator => ItemState::Generator(GeneratorStatus::Active),
        }
    }

    /// The kind of item.
    pub fn kind(self) -> JobKind {
        match self {
            ItemState::Job(_) => JobKind::Job,
            ItemState::Generator(_) => JobKind::Generator,
        }
    }
}

/// An existing item found by id or by custom key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundItem {
    /// Its id.
    pub id: JobId,
    /// Its state.
    pub state: ItemState,
}

/// Why a create-or-reschedule or a cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 404: no such id (or live key) in the project.
    NotFound,
    /// 410: the item is no longer pending.
    Gone,
    /// 400: the custom key is held by another live item.
    CustomKeyTaken,
    /// 402: the project's monthly quota is used up.
    QuotaExceeded,
}

/// What a create-or-reschedule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertPlan {
    /// Create a new item.
    Create,
    /// Update this item in place, keeping its id.
    Update(JobId),
}

/// The create-or-reschedule table of API.md §2.
///
/// `by_id` is `Some(lookup)` when the caller named an id, `lookup` being the item with that id in
/// the project (any state). `key_holder` is `Some(lookup)` when the caller gave a custom key,
/// `lookup` being the *live* item holding that key.
pub fn plan_upsert(
    by_id: Option<Option<FoundItem>>,
    key_holder: Option<Option<FoundItem>>,
) -> Result<UpsertPlan, Refusal> {
    match by_id {
        Some(None) => Err(Refusal::NotFound),
        Some(Some(item)) => {
            if !item.state.is_pending() {
                return Err(Refusal::Gone);
            }
            if let Some(Some(holder)) = key_holder {
                if holder.id != item.id {
                    return Err(Refusal::CustomKeyTaken);
                }
            }
            Ok(UpsertPlan::Update(item.id))
        }
        None => match key_holder {
            Some(Some(holder)) if holder.state.is_pending() => Ok(UpsertPlan::Update(holder.id)),
            Some(Some(_)) => Err(Refusal::Gone),
            _ => Ok(UpsertPlan::Create),
        },
    }
}

/// The cancel rule of API.md §2: only a `registered` job or an active generator.
pub fn plan_cancel(found: Option<FoundItem>) -> Result<FoundItem, Refusal> {
    match found {
        None => Err(Refusal::NotFound),
        Some(item) if item.state.is_pending() => Ok(item),
        Some(_) => Err(Refusal::Gone),
    }
}

/// Whether an outcome deserves an automatic retry: a transport error (including a timeout),
/// 429, or any 5xx.
pub fn is_retryable(response_status: Option<u16>) -> bool {
    match response_status {
        None => true,
        Some(s) => s == 429 || (500..=599).contains(&s),
    }
}

/// The backoff before attempt `next_attempt` (2, 3, …): about 1 s × 2^(n−2) for the n-th
/// attempt, i.e. 1 s before the 2nd, 2 s before the 3rd; scaled by `jitter` (a factor in
/// 0.8..=1.2 drawn by the caller) and capped at one hour.
pub fn retry_delay(next_attempt: u32, jitter: f64) -> Duration {
    let exp = next_attempt.saturating_sub(2).min(20);
    let base_ms = 1_000f64 * f64::from(1u32 << exp);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.8, 1.2)
    } else {
        1.0
    };
    let ms = (base_ms * jitter).min(3_600_000.0);
    Duration::from_millis(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, st: JobStatus) -> Option<FoundItem> {
        Some(FoundItem {
            id: JobId::from(id),
            state: ItemState::Job(st),
        })
    }

    #[test]
    fn neither_id_nor_key_creates() {
        assert_eq!(plan_upsert(None, None), Ok(UpsertPlan::Create));
    }

    #[test]
    fn key_only_follows_the_table() {
        assert_eq!(plan_upsert(None, Some(None)), Ok(UpsertPlan::Create));
        assert_eq!(
            plan_upsert(None, Some(job("a", JobStatus::Registered))),
            Ok(UpsertPlan::Update(JobId::from("a")))
        );
        for st in [JobStatus::Queued, JobStatus::Running] {
            assert_eq!(plan_upsert(None, Some(job("a", st))), Err(Refusal::Gone));
        }
        let generator = Some(FoundItem {
            id: JobId::from("g"),
            state: ItemState::Generator(GeneratorStatus::Active),
        });
        assert_eq!(
            plan_upsert(None, Some(generator)),
            Ok(UpsertPlan::Update(JobId::from("g")))
        );
    }

    #[test]
    fn id_follows_the_table() {
        assert_eq!(plan_upsert(Some(None), None), Err(Refusal::NotFound));
        for st in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Completed,
            JobStatus::Cancelled,
            JobStatus::Skipped,
        ] {
            assert_eq!(plan_upsert(Some(job("a", st)), None), Err(Refusal::Gone));
        }
        assert_eq!(
            plan_upsert(Some(job("a", JobStatus::Registered)), Some(None)),
            Ok(UpsertPlan::Update(JobId::from("a")))
        );
        assert_eq!(
            plan_upsert(
                Some(job("a", JobStatus::Registered)),
                Some(job("a", JobStatus::Registered))
            ),
            Ok(UpsertPlan::Update(JobId::from("a")))
        );
        assert_eq!(
            plan_upsert(
                Some(job("a", JobStatus::Registered)),
                Some(job("b", JobStatus::Registered))
            ),
            Err(Refusal::CustomKeyTaken)
        );
        let cancelled_gen = Some(FoundItem {
            id: JobId::from("g"),
            state: ItemState::Generator(GeneratorStatus::Cancelled),
        });
        assert_eq!(plan_upsert(Some(cancelled_gen), None), Err(Refusal::Gone));
    }

    #[test]
    fn cancel_only_pending_items() {
        assert_eq!(plan_cancel(None), Err(Refusal::NotFound));
        assert!(plan_cancel(job("a", JobStatus::Registered)).is_ok());
        for st in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Completed,
            JobStatus::Cancelled,
            JobStatus::Skipped,
        ] {
            assert_eq!(plan_cancel(job("a", st)), Err(Refusal::Gone));
        }
    }

    #[test]
    fn state_machines() {
        use JobStatus::*;
        assert!(Registered.can_become(Cancelled));
        assert!(Registered.can_become(Running));
        assert!(!Completed.can_become(Running));
        assert!(!Cancelled.can_become(Registered));
        assert!(Running.can_become(Completed));
        assert!(ExecutionStatus::Planned.can_become(ExecutionStatus::Started));
        assert!(!ExecutionStatus::Complete.can_become(ExecutionStatus::Started));
        assert!(!ExecutionStatus::Cancelled.can_become(ExecutionStatus::Started));
        for st in JobStatus::ALL {
            assert_eq!(JobStatus::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn retries_on_transport_errors_429_and_5xx_only() {
        assert!(is_retryable(None));
        assert!(is_retryable(Some(429)));
        assert!(is_retryable(Some(500)));
        assert!(is_retryable(Some(503)));
        assert!(!is_retryable(Some(200)));
        assert!(!is_retryable(Some(404)));
        assert!(!is_retryable(Some(301)));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        assert_eq!(retry_delay(2, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(4, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, 0.8), Duration::from_millis(1_600));
        assert_eq!(retry_delay(3, 5.0), Duration::from_millis(2_400));
        assert_eq!(retry_delay(30, 1.0), Duration::from_secs(3_600));
        assert_eq!(retry_delay(2, f64::NAN), Duration::from_secs(1));
    }
}

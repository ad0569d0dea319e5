//! The delivery engine: claims due executions in batches under a lease, delivers them
//! concurrently with a bounded number in flight, records outcomes in batches, and sleeps exactly
//! until the next due time (or until the service signals an earlier one).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::dispatch::{DispatchOutcome, DispatchRequest, Dispatcher};
use crate::ids::{ExecutionId, JobId};
use crate::lifecycle::{is_retryable, retry_delay};
use crate::rules::generator::{plan_occurrences, MISSED_AFTER};
use crate::service::parse_cron;
use crate::store::{
    Claim, ClaimedExecution, CompletedExecution, GeneratorDue, MaterializeGenerator, NewOccurrence,
    PlannedRetry, StaleScope, Store, StoreError,
};
use crate::time::{Clock, Timestamp};

/// The error message recorded on an execution that a dead process left `started`.
pub const INTERRUPTED: &str = "interrupted";

/// Settings of the [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most executions claimed in one store call.
    pub batch_size: usize,
    /// Most deliveries in flight at once.
    pub max_in_flight: usize,
    /// Time beyond a delivery's own timeout before another engine may recover it.
    pub lease_margin: Duration,
    /// Safety-net wake-up when nothing is known to be due (other instances may add work).
    pub idle_poll: Duration,
    /// How often expired leases are looked for.
    pub stale_check_interval: Duration,
    /// How long shutdown waits for in-flight deliveries.
    pub shutdown_grace: Duration,
    /// This engine's name in leases and logs.
    pub worker_id: String,
    /// How late a generator occurrence may be before it counts as missed (API.md §5: 60 s).
    pub missed_after: Duration,
    /// How far ahead of their due time executions are claimed; each is then sent at exactly
    /// its due time, so the claim's own latency does not add to the lag.
    pub claim_ahead: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_size: 512,
            max_in_flight: 512,
            lease_margin: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            stale_check_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            worker_id: format!("{}-{}", std::process::id(), crate::ids::random_secret(4)),
            missed_after: MISSED_AFTER,
            claim_ahead: Duration::from_millis(25),
        }
    }
}

/// How the service tells a sleeping engine that something is due earlier than it planned to
/// wake. Cheap: a compare against the engine's next wake-up, and a notify only when earlier.
#[derive(Debug)]
pub struct EngineSignal {
    notify: Notify,
    next_wake: AtomicI64,
    generators: AtomicBool,
}

impl Default for EngineSignal {
    fn default() -> Self {
        EngineSignal {
            notify: Notify::new(),
            next_wake: AtomicI64::new(i64::MAX),
            generators: AtomicBool::new(true),
        }
    }
}

impl EngineSignal {
    /// A signal with no engine waiting yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Something became due at `at`: wake the engine if it planned to sleep past it.
    pub fn due_at(&self, at: Timestamp) {
        if at.as_millis() < self.next_wake.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Wake the engine unconditionally (e.g. another instance announced work).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// A generator may need its next occurrence planned (e.g. one occurrence was cancelled).
    pub fn generators_changed(&self) {
        self.generators.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn take_generators_flag(&self) -> bool {
        self.generators.swap(false, Ordering::SeqCst)
    }

    /// Called before the engine looks at the store: from now on every new due time wakes it,
    /// so nothing committed between its look and its sleep is missed.
    fn arm(&self) {
        self.next_wake.store(i64::MAX, Ordering::SeqCst);
    }

    fn sleeping_until(&self, t: Timestamp) {
        self.next_wake.store(t.as_millis(), Ordering::SeqCst);
    }
}

/// The delivery engine. See the module docs.
pub struct Engine {
    store: Arc<dyn Store>,
    dispatcher: Arc<dyn Dispatcher>,
    clock: Arc<dyn Clock>,
    signal: Arc<EngineSignal>,
    config: EngineConfig,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over a store, a dispatcher and a clock.
    pub fn new(
        store: Arc<dyn Store>,
        dispatcher: Arc<dyn Dispatcher>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Self {
        Engine {
            store,
            dispatcher,
            clock,
            signal: Arc::new(EngineSignal::new()),
            config,
        }
    }

    /// The signal to hand to [`crate::TimeTriggers::new`].
    pub fn signal(&self) -> Arc<EngineSignal> {
        self.signal.clone()
    }

    /// One synchronous round, for tests and tools: recovers nothing, claims everything due at
    /// the clock's current time, delivers it, records the outcomes. Returns how many executions
    /// were delivered.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        self.materialize_generators().await?;
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_due(self.claim(now, self.config.batch_size, Duration::ZERO))
                .await?;
            let n = claimed.len();
            if n == 0 {
                break;
            }
            if claimed.iter().any(|c| c.generator_id.is_some()) {
                self.materialize_generators().await?;
            }
            let deliveries = claimed
                .into_iter()
                .map(|c| deliver(self.dispatcher.clone(), self.clock.clone(), c, None));
            let done = futures::future::join_all(deliveries).await;
            self.store.complete_executions(&done).await?;
            total += n;
            if n < self.config.batch_size {
                break;
            }
        }
        Ok(total)
    }

    /// Finishes `started` executions that a dead process left behind (or whose lease expired)
    /// as `interrupted`, retrying those with attempts left. Returns how many.
    pub async fn recover_stale(&self, scope: StaleScope) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let now = self.clock.now();
            let stale = self.store.list_stale_executions(now, scope, 500).await?;
            let n = stale.len();
            if n == 0 {
                return Ok(total);
            }
            let done: Vec<_> = stale
                .into_iter()
                .map(|c| completion(c, DispatchOutcome::Failed(INTERRUPTED.into()), now))
                .collect();
            self.store.complete_executions(&done).await?;
            if let Some(t) = earliest_retry(&done) {
                self.signal.due_at(t);
            }
            total += n;
            if n < 500 {
                return Ok(total);
            }
        }
    }

    /// Plans the next occurrence of every generator that needs one (its last occurrence fired
    /// or was cancelled, or its pending one was missed), recording missed occurrences as
    /// skipped. Returns how many generators were updated.
    pub async fn materialize_generators(&self) -> Result<usize, StoreError> {
        const PAGE: usize = 200;
        let mut applied = 0;
        // Bounded: a generator whose series has ended is listed again and again.
        for _ in 0..50 {
            let now = self.clock.now();
            let overdue_before = now.saturating_sub(self.config.missed_after);
            let due = self.store.list_generators_due(overdue_before, PAGE).await?;
            let listed = due.len();
            let before = applied;
            for g in due {
                let Some(plan) = plan_generator(&g, now, self.config.missed_after) else {
                    continue;
                };
                let next = plan.create.as_ref().map(|c| c.at);
                if self.store.materialize_generator(plan).await? {
                    applied += 1;
                    if let Some(at) = next {
                        self.signal.due_at(at);
                    }
                }
            }
            // A full page that made no progress would come back unchanged: stop, the next pass
            // (after the next occurrence fires or the periodic check) tries again.
            if listed < PAGE || applied == before {
                break;
            }
        }
        Ok(applied)
    }

    /// A claim of what is due at `now` (`run_once`) or, with `ahead`, shortly after.
    fn claim(&self, now: Timestamp, limit: usize, ahead: Duration) -> Claim {
        Claim {
            now,
            due_by: now.saturating_add(ahead),
            limit,
            lease_margin: self.config.lease_margin,
            worker: self.config.worker_id.clone(),
        }
    }

    /// Runs until `shutdown` completes, then stops claiming, lets in-flight deliveries finish
    /// (up to [`EngineConfig::shutdown_grace`]) and flushes their outcomes.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel::<CompletedExecution>(self.config.max_in_flight.max(1) * 2);
        let recorder = tokio::spawn(record_outcomes(self.store.clone(), rx, self.signal.clone()));
        let slots = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        // Claimed deliveries, sending or waiting for a slot: up to a batch more than there are
        // slots, so that the next claim runs while the previous batch is still being sent and
        // the slots do not drain while the store claims; but no more waiting than there are
        // slots, so that each waiting one gets a slot once a delivery in flight ends (see
        // `claim_and_next` on leases).
        let slots_total = self.config.max_in_flight.max(1);
        let capacity = slots_total + self.config.batch_size.max(1).min(slots_total);
        // The longest timeout among the claimed deliveries since the engine was last idle.
        let mut longest = Duration::ZERO;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut failures: u32 = 0;
        tokio::pin!(shutdown);

        let first_scope = if self.store.is_exclusive() {
            StaleScope::AllStarted
        } else {
            StaleScope::ExpiredLeases
        };
        let mut next_stale_check = self.clock.now();
        let mut stale_scope = first_scope;
        // After a full claim more is due at once; claiming again for one or two free slots
        // would cost a store transaction per delivery, so wait until a quarter are free.
        let min_claim = (self.config.max_in_flight / 4).clamp(1, self.config.batch_size.max(1));
        let mut backlog = false;

        loop {
            while tasks.try_join_next().is_some() {}
            let now = self.clock.now();
            if now >= next_stale_check {
                match self.recover_stale(stale_scope).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(count = n, "recovered interrupted executions"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not recover interrupted executions")
                    }
                }
                stale_scope = StaleScope::ExpiredLeases;
                next_stale_check = now.saturating_add(self.config.stale_check_interval);
                // The periodic pass also catches occurrences planned by other instances' API
                // calls (a cancelled occurrence on a shared store).
                self.signal.generators.store(true, Ordering::SeqCst);
            }
            if self.signal.take_generators_flag() {
                if let Err(e) = self.materialize_generators().await {
                    tracing::warn!(error = %e, "could not plan generator occurrences");
                    self.signal.generators.store(true, Ordering::SeqCst);
                }
            }
            if tasks.is_empty() {
                longest = Duration::ZERO;
            }
            let free = capacity.saturating_sub(tasks.len());
            if free == 0 || (backlog && free < min_claim && !tasks.is_empty()) {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tasks.join_next() => continue,
                }
            }
            self.signal.arm();
            let limit = free.min(self.config.batch_size);
            let next_due = match self
                .claim_and_next(now, limit, &slots, &tx, &mut tasks, &mut longest)
                .await
            {
                Ok(Some(next)) => {
                    backlog = false;
                    next
                }
                Ok(None) => {
                    // A full batch: more may be due right now.
                    backlog = true;
                    continue;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "engine cannot reach the store");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            failures = 0;
            // Wake early enough to claim the next due execution before it is due; if the claim
            // that just ran could already see it (a rate-limited execution is only claimed
            // once due, or it was committed just after the claim), wait until it is due.
            let ahead = next_due.saturating_sub(self.config.claim_ahead);
            let wake = if ahead <= now { next_due } else { ahead }
                .min(now.saturating_add(self.config.idle_poll))
                .min(next_stale_check);
            self.signal.sleeping_until(wake);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.clock.sleep_until(wake) => {}
                _ = self.signal.notify.notified() => {}
            }
        }

        let grace = self.config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = tasks.len(),
                "deliveries still running after the shutdown grace; they will be recovered as interrupted"
            );
            tasks.abort_all();
        }
        drop(tx);
        if recorder.await.is_err() {
            tracing::error!("the outcome recorder stopped abnormally");
        }
    }

    /// Claims and spawns up to `limit` deliveries. `Ok(None)` when the batch was full (claim
    /// again at once), else the next due time to sleep until.
    async fn claim_and_next(
        &self,
        now: Timestamp,
        limit: usize,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<CompletedExecution>,
        tasks: &mut JoinSet<()>,
        longest: &mut Duration,
    ) -> Result<Option<Timestamp>, StoreError> {
        let ahead = self.config.claim_ahead;
        let mut claim = self.claim(now, limit, ahead);
        if tasks.len().saturating_add(limit) > self.config.max_in_flight.max(1) {
            // Some of this batch may wait for a slot: at most until a delivery in flight ends,
            // that is at most the longest timeout among them. Their leases cover that wait
            // too, so that no engine takes a waiting execution for an abandoned one.
            claim.lease_margin = claim.lease_margin.saturating_add(*longest);
        }
        let claimed = self.store.claim_due(claim).await?;
        if let Some(t) = claimed.iter().map(|c| c.options.timeout).max() {
            *longest = (*longest).max(t);
        }
        let full = claimed.len() >= limit;
        let fired_occurrences = claimed.iter().any(|c| c.generator_id.is_some());
        for c in claimed {
            let (dispatcher, clock, tx) = (self.dispatcher.clone(), self.clock.clone(), tx.clone());
            let slots = slots.clone();
            tasks.spawn(async move {
                let done = deliver(dispatcher, clock, c, Some(slots)).await;
                // The recorder only stops after every sender is gone.
                let _ = tx.send(done).await;
            });
        }
        if fired_occurrences {
            // Each fired occurrence makes the next one, before the engine decides how long
            // to sleep.
            self.materialize_generators().await?;
        }
        if full {
            return Ok(None);
        }
        Ok(Some(
            self.store.next_due_at().await?.unwrap_or(Timestamp::MAX),
        ))
    }
}

/// The store change that plans `g`'s next occurrence, or `None` if its series has ended or its
/// definition no longer parses.
fn plan_generator(
    g: &GeneratorDue,
    now: Timestamp,
    missed_after: Duration,
) -> Option<MaterializeGenerator> {
    let (cron, tz) = match parse_cron(&g.expression, &g.timezone) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!(generator = %g.id, error = %e, "stored generator does not parse");
            return None;
        }
    };
    let after = match &g.pending {
        // The overdue pending occurrence is itself one of the missed ones.
        Some(p) => Timestamp::from_millis(p.scheduled_at.as_millis() - 1),
        None => g.last_occurrence_at.unwrap_or(g.defined_at),
    };
    let plan = plan_occurrences(&cron, tz, after, now, g.run_missed, missed_after)?;
    let occurrence = |at| NewOccurrence {
        job_id: JobId::generate(),
        execution_id: ExecutionId::generate(),
        at,
    };
    let pending_time = g.pending.as_ref().map(|p| p.scheduled_at);
    let keep_pending = pending_time == Some(plan.pending_at);
    Some(MaterializeGenerator {
        generator_id: g.id.clone(),
        expected_pending: g.pending.as_ref().map(|p| p.job_id.clone()),
        skip_pending: g.pending.is_some() && !keep_pending,
        skipped: plan
            .skipped
            .into_iter()
            .filter(|t| Some(*t) != pending_time)
            .map(occurrence)
            .collect(),
        create: (!keep_pending).then(|| occurrence(plan.pending_at)),
        now,
    })
}

fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_millis(ms.min(5_000))
}

/// Delivers one claimed execution at its due time, once one of `slots` is free (the
/// semaphore is fair: claimed first, sent first), and decides what follows.
async fn deliver(
    dispatcher: Arc<dyn Dispatcher>,
    clock: Arc<dyn Clock>,
    c: ClaimedExecution,
    slots: Option<Arc<Semaphore>>,
) -> CompletedExecution {
    let req = DispatchRequest {
        execution_id: c.execution_id.clone(),
        job_id: c.job_id.clone(),
        attempt_number: c.attempt_number,
        method: c.request.method.clone(),
        url: c.request.url.clone(),
        headers: c.request.headers.clone(),
        body: c.request.body.clone(),
        timeout: c.options.timeout,
    };
    if clock.now() < c.due_at {
        // Claimed ahead of time: never send early.
        clock.sleep_until(c.due_at).await;
    }
    // Never closed, so acquiring cannot fail.
    let permit = match slots {
        Some(slots) => slots.acquire_owned().await.ok(),
        None => None,
    };
    let outcome = dispatcher.dispatch(&req).await;
    drop(permit);
    completion(c, outcome, clock.now())
}

/// The completion record for `c`, with a retry planned when the outcome is retryable and
/// attempts are left.
fn completion(c: ClaimedExecution, outcome: DispatchOutcome, now: Timestamp) -> CompletedExecution {
    let retry =
        (is_retryable(outcome.status()) && c.attempt_number < c.options.max_attempts).then(|| {
            let next = c.attempt_number + 1;
            let jitter = rand::thread_rng().gen_range(0.8..=1.2);
            PlannedRetry {
                execution_id: ExecutionId::generate(),
                attempt_number: next,
                due_at: now.saturating_add(retry_delay(next, jitter)),
            }
        });
    CompletedExecution {
        execution_id: c.execution_id,
        job_id: c.job_id,
        attempt_number: c.attempt_number,
        completed_at: now,
        outcome,
        retry,
    }
}

fn earliest_retry(done: &[CompletedExecution]) -> Option<Timestamp> {
    done.iter()
        .filter_map(|d| d.retry.as_ref().map(|r| r.due_at))
        .min()
}

/// Writes outcomes in batches: whatever has accumulated while the previous batch committed.
async fn record_outcomes(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<CompletedExecution>,
    signal: Arc<EngineSignal>,
) {
    let mut batch = Vec::with_capacity(1024);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let mut failures = 0;
        loop {
            match store.complete_executions(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    let pause = backoff(failures);
                    tracing::warn!(error = %e, count = batch.len(), retry_in_ms = pause.as_millis() as u64, "cannot record outcomes yet");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        if let Some(t) = earliest_retry(&batch) {
            signal.due_at(t);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delivery_claimed_ahead_is_sent_at_its_due_time() {
        use std::sync::atomic::AtomicUsize;
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(995)));
        let sent = Arc::new(AtomicUsize::new(0));
        let mut dispatcher = MockDispatcher::new();
        let counter = sent.clone();
        dispatcher.expect_dispatch().returning(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            response(200)
        });
        let mut c = claimed(3, 1);
        c.due_at = Timestamp::from_millis(1_000);
        let task = tokio::spawn(deliver(Arc::new(dispatcher), clock.clone(), c, None));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(sent.load(Ordering::SeqCst), 0, "not before its due time");
        clock.advance(Duration::from_millis(4));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(sent.load(Ordering::SeqCst), 0, "still 1 ms early");
        clock.advance(Duration::from_millis(1));
        let done = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("sent once due")
            .unwrap();
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        assert_eq!(done.completed_at, Timestamp::from_millis(1_000));
    }

    #[test]
    fn signal_wakes_only_for_earlier_times() {
        let s = EngineSignal::new();
        s.sleeping_until(Timestamp::from_millis(1_000));
        s.due_at(Timestamp::from_millis(2_000));
        let notified = s.notify.notified();
        futures::pin_mut!(notified);
        assert!(futures::FutureExt::now_or_never(notified.as_mut()).is_none());
        s.due_at(Timestamp::from_millis(500));
        assert!(futures::FutureExt::now_or_never(notified).is_some());
    }

    use crate::dispatch::{MockDispatcher, ResponseSummary};
    use crate::ids::ProjectId;
    use crate::model::{DeliveryOptions, HttpRequest, TriggeredBy};
    use crate::store::MockStore;
    use crate::time::ManualClock;

    fn claimed(max_attempts: u32, attempt: u32) -> ClaimedExecution {
        ClaimedExecution {
            execution_id: ExecutionId::generate(),
            job_id: JobId::generate(),
            project_id: ProjectId::generate(),
            attempt_number: attempt,
            triggered_by: TriggeredBy::Scheduler,
            planned_at: Timestamp::from_millis(1_000),
            due_at: Timestamp::from_millis(1_000),
            request: HttpRequest {
                method: "GET".into(),
                url: "https://example.com/".into(),
                headers: vec![],
                body: bytes::Bytes::new(),
            },
            options: DeliveryOptions {
                max_attempts,
                timeout: Duration::from_secs(5),
            },
            generator_id: None,
        }
    }

    fn response(status: u16) -> DispatchOutcome {
        DispatchOutcome::Response(ResponseSummary {
            status,
            headers: vec![],
            body: String::new(),
            size: 0,
        })
    }

    /// Runs one `run_once` round where the store hands out `batch` and the dispatcher answers
    /// with `outcome`; returns what the engine asked the store to record.
    async fn round(
        batch: Vec<ClaimedExecution>,
        outcome: DispatchOutcome,
    ) -> Vec<CompletedExecution> {
        let now = Timestamp::from_millis(10_000);
        let mut store = MockStore::new();
        store
            .expect_list_generators_due()
            .returning(|_, _| Ok(Vec::new()));
        let mut batch = Some(batch);
        store.expect_claim_due().returning(move |claim| {
            assert_eq!(claim.now, now);
            Ok(batch.take().unwrap_or_default())
        });
        let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = recorded.clone();
        store.expect_complete_executions().returning(move |done| {
            sink.lock().unwrap().extend_from_slice(done);
            Ok(())
        });
        let mut dispatcher = MockDispatcher::new();
        dispatcher.expect_dispatch().returning(move |req| {
            assert_eq!(req.timeout, Duration::from_secs(5));
            outcome.clone()
        });
        let engine = Engine::new(
            Arc::new(store),
            Arc::new(dispatcher),
            Arc::new(ManualClock::new(now)),
            EngineConfig::default(),
        );
        engine.run_once().await.unwrap();
        let out = recorded.lock().unwrap().clone();
        out
    }

    #[tokio::test]
    async fn a_retryable_failure_with_attempts_left_plans_the_next_attempt() {
        let done = round(
            vec![claimed(3, 1)],
            DispatchOutcome::Failed("refused".into()),
        )
        .await;
        assert_eq!(done.len(), 1);
        let retry = done[0].retry.as_ref().expect("a retry is planned");
        assert_eq!(retry.attempt_number, 2);
        let delay = retry.due_at.as_millis() - 10_000;
        assert!((800..=1_200).contains(&delay), "backoff {delay} ms");
        assert_eq!(done[0].outcome.error(), Some("refused"));
    }

    #[tokio::test]
    async fn the_last_attempt_and_non_retryable_answers_complete_the_job() {
        let done = round(vec![claimed(3, 3)], response(503)).await;
        assert!(done[0].retry.is_none(), "no attempts left");
        let done = round(vec![claimed(3, 1)], response(404)).await;
        assert!(done[0].retry.is_none(), "404 is not retried");
        let done = round(vec![claimed(2, 1)], response(429)).await;
        assert_eq!(done[0].retry.as_ref().map(|r| r.attempt_number), Some(2));
        let done = round(vec![claimed(1, 1)], response(500)).await;
        assert!(done[0].retry.is_none(), "one attempt only");
    }

    /// A dispatcher whose deliveries wait until the test closes `gate`, counting how many are
    /// in progress at once.
    #[derive(Debug)]
    struct HeldDispatcher {
        gate: Semaphore,
        sending: std::sync::atomic::AtomicUsize,
        most_at_once: std::sync::atomic::AtomicUsize,
        sent: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Dispatcher for HeldDispatcher {
        async fn dispatch(&self, _req: &DispatchRequest) -> DispatchOutcome {
            let now = self.sending.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            // The gate has no permits: this returns once it is closed.
            let _ = self.gate.acquire().await;
            self.sending.fetch_sub(1, Ordering::SeqCst);
            self.sent.fetch_add(1, Ordering::SeqCst);
            response(200)
        }
    }

    /// With every slot busy, the engine already claims the next batch, so that the store's
    /// claim does not leave the slots idle; the claimed deliveries wait for a slot and never
    /// exceed `max_in_flight`.
    #[tokio::test]
    async fn the_next_batch_is_claimed_while_every_slot_is_busy() {
        let now = Timestamp::from_millis(10_000);
        let claims = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let claimed_two = Arc::new(Notify::new());
        let mut store = MockStore::new();
        store.expect_is_exclusive().return_const(true);
        store
            .expect_list_stale_executions()
            .returning(|_, _, _| Ok(Vec::new()));
        store
            .expect_list_generators_due()
            .returning(|_, _| Ok(Vec::new()));
        let (counter, signal) = (claims.clone(), claimed_two.clone());
        let margin = EngineConfig::default().lease_margin;
        store.expect_claim_due().returning(move |claim| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                assert_eq!(
                    claim.lease_margin, margin,
                    "every claimed one starts at once"
                );
            }
            if n == 2 {
                assert_eq!(
                    claim.lease_margin,
                    margin + Duration::from_secs(5),
                    "the lease of a claim that may wait for a slot covers the longest timeout \
                     in flight"
                );
            }
            if n == 2 {
                signal.notify_one();
            }
            // Two full batches of two, then nothing.
            let batch = if n <= 2 { claim.limit.min(2) } else { 0 };
            Ok((0..batch).map(|_| claimed(1, 1)).collect())
        });
        store.expect_next_due_at().returning(|| Ok(None));
        let (recorded, mut recorded_rx) = tokio::sync::watch::channel(0usize);
        store.expect_complete_executions().returning(move |done| {
            recorded.send_modify(|n| *n += done.len());
            Ok(())
        });
        let dispatcher = Arc::new(HeldDispatcher {
            gate: Semaphore::new(0),
            sending: Default::default(),
            most_at_once: Default::default(),
            sent: Default::default(),
        });
        let engine = Engine::new(
            Arc::new(store),
            dispatcher.clone(),
            Arc::new(ManualClock::new(now)),
            EngineConfig {
                batch_size: 2,
                max_in_flight: 2,
                ..EngineConfig::default()
            },
        );
        let stop = Arc::new(Notify::new());
        let stopping = stop.clone();
        let run = tokio::spawn(async move { engine.run(stopping.notified()).await });

        tokio::time::timeout(Duration::from_secs(10), claimed_two.notified())
            .await
            .expect("the second batch is claimed while the first is still being sent");
        assert_eq!(
            dispatcher.sent.load(Ordering::SeqCst),
            0,
            "nothing finished yet"
        );

        dispatcher.gate.close();
        tokio::time::timeout(Duration::from_secs(10), recorded_rx.wait_for(|n| *n >= 4))
            .await
            .expect("all four recorded")
            .unwrap();
        stop.notify_one();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the engine stops")
            .unwrap();
        assert_eq!(dispatcher.sent.load(Ordering::SeqCst), 4);
        assert_eq!(
            dispatcher.most_at_once.load(Ordering::SeqCst),
            2,
            "never more than max_in_flight deliveries at once"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(30), Duration::from_millis(5_000));
    }
}

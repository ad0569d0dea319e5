//! What the engine needs: claims (with rate limits checked and reserved in the same
//! transaction), outcomes and retries, expired leases, the next due time.

use timetriggers_core::rules::rate_limit::{admit, Admission, Window, WindowUsage};
use timetriggers_core::{
    Claim, ClaimedExecution, CompletedExecution, DispatchOutcome, ExecutionId, ExecutionStatus,
    JobStatus, LastAttempt, ProjectId, RateLimitState, StaleScope, StoreError, StoreResult,
    Timestamp, TriggeredBy, WindowLimits,
};

use crate::state::{State, StoredExecution};

impl State {
    /// [`timetriggers_core::Store::claim_due`]: up to `limit` planned executions due by
    /// `due_by` (the engine's look-ahead; an execution a rate-limit rule applies to only once
    /// due at `now`), by due time then planned time, each `started` under a lease. The lock held for
    /// the whole call is what keeps concurrent claimers disjoint (a database uses
    /// `FOR UPDATE SKIP LOCKED`, or a single writer).
    pub(crate) fn claim_due(&mut self, claim: &Claim) -> StoreResult<Vec<ClaimedExecution>> {
        let mut due: Vec<(Timestamp, Timestamp, ExecutionId)> = self
            .executions
            .values()
            .filter(|e| {
                e.execution.status == ExecutionStatus::Planned
                    && e.due_at <= claim.due_by.max(claim.now)
            })
            .map(|e| (e.due_at, e.execution.planned_at, e.execution.id.clone()))
            .collect();
        due.sort();
        let mut claimed = Vec::new();
        for (due_at, _, id) in due {
            if claimed.len() >= claim.limit {
                break;
            }
            if due_at > claim.now && !self.ruled_tags(&id)?.is_empty() {
                continue; // a rule's window counts real starts: claimed once due
            }
            if self.admit(&id, claim.now)? {
                claimed.push(self.start(&id, claim)?);
            }
        }
        Ok(claimed)
    }

    /// The rate limits of the execution's job, asked of core's [`admit`]: `true` if it may
    /// start now (its start is then recorded for each ruled tag, so the next candidate of the
    /// same claim sees it); `false` if a rule holds it back (it stays `planned`, due again at
    /// the release time, with the bookkeeping on it and its job).
    fn admit(&mut self, id: &ExecutionId, now: Timestamp) -> StoreResult<bool> {
        let e = self.execution(id)?;
        let (job_id, project) = (e.execution.job_id.clone(), e.execution.project_id.clone());
        let ruled = self.ruled_tags(id)?;
        if ruled.is_empty() {
            return Ok(true);
        }
        let mut usage = Vec::new();
        for (tag, limits) in &ruled {
            for (window, limit) in limits.iter() {
                let nth_latest_start = self.nth_latest_start(&project, tag, window, limit, now);
                usage.push(WindowUsage {
                    tag,
                    window,
                    limit,
                    nth_latest_start,
                });
            }
        }
        match admit(now, &usage) {
            Admission::Allowed => {
                for (tag, _) in ruled {
                    self.rate_usage.push((project.clone(), tag, now));
                }
                // Starts older than the longest window never matter again.
                let horizon = Window::LONGEST.since(now);
                self.rate_usage.retain(|(_, _, at)| *at > horizon);
                Ok(true)
            }
            Admission::HeldBack { until, tags } => {
                let held = |old: &RateLimitState| RateLimitState {
                    limited_at: old.limited_at.or(Some(now)),
                    limited_until: Some(until),
                    tags: tags.clone(),
                };
                let job = self.job_mut(&job_id)?;
                job.rate_limited = held(&job.rate_limited);
                let e = self.execution_mut(id)?;
                e.execution.rate_limited = held(&e.execution.rate_limited);
                e.due_at = until;
                Ok(false)
            }
        }
    }

    /// When the `limit`-th most recent start with `tag` inside the window ending at `now`
    /// happened; `None` if there were fewer.
    fn nth_latest_start(
        &self,
        project: &ProjectId,
        tag: &str,
        window: Window,
        limit: u64,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let since = window.since(now);
        let mut starts: Vec<Timestamp> = self
            .rate_usage
            .iter()
            .filter(|(p, t, at)| p == project && t == tag && *at > since)
            .map(|(_, _, at)| *at)
            .collect();
        starts.sort_unstable_by(|a, b| b.cmp(a));
        let nth = usize::try_from(limit.checked_sub(1)?).ok()?;
        starts.get(nth).copied()
    }

    /// Marks an admitted execution `started` (lease: the job's timeout + the claim's margin)
    /// and its job `running`.
    fn start(&mut self, id: &ExecutionId, claim: &Claim) -> StoreResult<ClaimedExecution> {
        let now = claim.now;
        let job_id = self.execution(id)?.execution.job_id.clone();
        let job = self.job_mut(&job_id)?;
        job.status = JobStatus::Running;
        job.queued_at = job.queued_at.or(Some(now));
        job.started_at = Some(now);
        let lease_until = now
            .saturating_add(job.options.timeout)
            .saturating_add(claim.lease_margin);
        let e = self.execution_mut(id)?;
        e.execution.status = ExecutionStatus::Started;
        e.execution.started_at = Some(now);
        e.lease_until = Some(lease_until);
        let claimed = self.claimed(self.execution(id)?)?;
        // The first attempt of a generator's occurrence: the generator needs its next
        // occurrence, and the occurrence costs its project one unit.
        let first_attempt =
            claimed.attempt_number == 1 && claimed.triggered_by == TriggeredBy::Scheduler;
        if claimed.generator_id.is_some() && first_attempt {
            self.release_pending(&claimed.job_id);
            self.charge(&claimed.project_id, now, 1)?;
        }
        Ok(claimed)
    }

    /// An execution with what is needed to deliver it.
    fn claimed(&self, e: &StoredExecution) -> StoreResult<ClaimedExecution> {
        let x = &e.execution;
        let stored = self
            .jobs
            .get(&x.job_id)
            .ok_or_else(|| StoreError::corrupt(format!("job {} is missing", x.job_id)))?;
        Ok(ClaimedExecution {
            execution_id: x.id.clone(),
            job_id: x.job_id.clone(),
            project_id: x.project_id.clone(),
            attempt_number: x.attempt_number,
            triggered_by: x.triggered_by,
            planned_at: x.planned_at,
            due_at: e.due_at,
            request: stored.job.request.clone(),
            options: stored.job.options,
            generator_id: stored.generator_id.clone(),
        })
    }

    /// [`timetriggers_core::Store::next_due_at`].
    pub(crate) fn next_due_at(&self) -> Option<Timestamp> {
        self.executions
            .values()
            .filter(|e| e.execution.status == ExecutionStatus::Planned)
            .map(|e| e.due_at)
            .min()
    }

    /// [`timetriggers_core::Store::complete_executions`]: the engine has already decided
    /// whether to retry (`done.retry`); the store records the outcome, plans the retry or
    /// completes the job.
    pub(crate) fn complete_executions(&mut self, done: &[CompletedExecution]) -> StoreResult<()> {
        for d in done {
            // Fencing: an execution that is no longer `started` (another engine recovered
            // it) keeps its first outcome.
            let Some(e) = self.executions.get_mut(&d.execution_id) else {
                continue;
            };
            if e.execution.status != ExecutionStatus::Started {
                continue;
            }
            let x = &mut e.execution;
            x.status = ExecutionStatus::Complete;
            x.completed_at = Some(d.completed_at);
            x.error_message = d.outcome.error().map(str::to_owned);
            if let DispatchOutcome::Response(r) = &d.outcome {
                x.response_status = Some(r.status);
                x.response_headers = Some(r.headers.clone());
                x.response_body = Some(r.body.clone());
                x.response_size = Some(r.size);
            }
            let (job_id, project_id) = (x.job_id.clone(), x.project_id.clone());
            let attempt_number = Some(x.attempt_number);
            let job = self.job_mut(&job_id)?;
            job.last = LastAttempt {
                attempt_number,
                response_status: d.outcome.status(),
                error_message: d.outcome.error().map(str::to_owned),
            };
            match &d.retry {
                Some(retry) => {
                    job.status = JobStatus::Queued;
                    let (id, attempt) = (&retry.execution_id, retry.attempt_number);
                    let by = TriggeredBy::Retry;
                    self.plan_execution(id, &job_id, &project_id, attempt, by, retry.due_at);
                }
                None => {
                    job.status = JobStatus::Completed;
                    job.completed_at = Some(d.completed_at);
                }
            }
        }
        Ok(())
    }

    /// [`timetriggers_core::Store::list_stale_executions`]: reads only; the engine completes
    /// them as `interrupted`.
    pub(crate) fn list_stale_executions(
        &self,
        now: Timestamp,
        scope: StaleScope,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedExecution>> {
        let mut stale: Vec<&StoredExecution> = self
            .executions
            .values()
            .filter(|e| e.execution.status == ExecutionStatus::Started)
            .filter(|e| scope == StaleScope::AllStarted || e.lease_until.is_some_and(|t| t <= now))
            .collect();
        stale.sort_by_key(|e| e.lease_until);
        stale
            .into_iter()
            .take(limit)
            .map(|e| self.claimed(e))
            .collect()
    }

    /// The tags of the execution's job that have a rule in its project, in the job's order.
    fn ruled_tags(&self, id: &ExecutionId) -> StoreResult<Vec<(String, WindowLimits)>> {
        let e = self.execution(id)?;
        let project = &e.execution.project_id;
        let job = self
            .jobs
            .get(&e.execution.job_id)
            .ok_or_else(|| StoreError::corrupt(format!("job {} is missing", e.execution.job_id)))?;
        Ok(job
            .job
            .tags
            .iter()
            .filter_map(|tag| {
                let rule = self
                    .rate_limits
                    .iter()
                    .find(|r| &r.project_id == project && &r.tag == tag)?;
                Some((tag.clone(), rule.limits))
            })
            .collect())
    }

    fn execution(&self, id: &ExecutionId) -> StoreResult<&StoredExecution> {
        self.executions
            .get(id)
            .ok_or_else(|| StoreError::corrupt(format!("execution {id} is missing")))
    }

    fn execution_mut(&mut self, id: &ExecutionId) -> StoreResult<&mut StoredExecution> {
        self.executions
            .get_mut(id)
            .ok_or_else(|| StoreError::corrupt(format!("execution {id} is missing")))
    }
}

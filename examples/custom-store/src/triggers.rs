//! Create-or-reschedule, cancel, `/declare` and `/bulk`. Core makes every decision
//! ([`plan_upsert`], [`plan_cancel`], [`plan_declare`], [`plan_bulk_upserts`], [`billable`]);
//! this module reads what they need and applies what they decide.

use timetriggers_core::declare::{billable, plan_bulk_upserts, plan_declare};
use timetriggers_core::lifecycle::{plan_cancel, plan_upsert};
use timetriggers_core::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, FoundItem, GeneratorStatus, ItemState, JobId,
    JobKind, JobStatus, ManagedItem, Origin, ProjectId, RateLimitState, Refusal, StoreError,
    StoreResult, SyncOperation, SyncOutcome, SyncResult, SyncStep, Timestamp, TriggerRef,
    TriggerSchedule, TriggeredBy, UpsertOperation, UpsertPlan, UpsertTrigger, Upserted,
};

use crate::state::{new_job, State, StoredJob};

impl State {
    /// [`timetriggers_core::Store::upsert_trigger`]: quota first, then the table of
    /// [`plan_upsert`]; one unit charged when accepted.
    pub(crate) fn upsert_trigger(
        &mut self,
        req: &UpsertTrigger,
    ) -> StoreResult<Result<Upserted, Refusal>> {
        if !self.quota_allows(&req.project_id, req.now, 1)? {
            return Ok(Err(Refusal::QuotaExceeded));
        }
        let by_id = req
            .trigger_id
            .as_ref()
            .map(|id| self.find_by_id(&req.project_id, id));
        let key_holder = req
            .custom_key
            .as_deref()
            .map(|key| self.find_live_key_holder(&req.project_id, key));
        let plan = match plan_upsert(by_id, key_holder) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let (id, operation, scheduled_at) = self.apply_upsert(req, plan)?;
        let month_quota_remaining = self.charge(&req.project_id, req.now, 1)?;
        Ok(Ok(Upserted {
            id,
            operation,
            kind: req.definition.schedule.kind(),
            scheduled_at,
            month_quota_remaining,
        }))
    }

    /// Applies a create-or-reschedule decision; returns the id, the operation and the fire
    /// time. A reschedule keeps the id, origin, registration time and (unless a new one is
    /// given) the custom key, and may turn a job into a generator or back.
    pub(crate) fn apply_upsert(
        &mut self,
        req: &UpsertTrigger,
        plan: UpsertPlan,
    ) -> StoreResult<(JobId, UpsertOperation, Timestamp)> {
        let (id, operation) = match plan {
            UpsertPlan::Create => (req.new_job_id.clone(), UpsertOperation::Schedule),
            UpsertPlan::Update(id) => (id, UpsertOperation::Reschedule),
        };
        let is_generator = self.generators.contains_key(&id);
        let fire_at = match (&req.definition.schedule, operation) {
            (TriggerSchedule::Once { at, skip }, UpsertOperation::Schedule) => {
                self.insert_job(req, &id, req.custom_key.clone(), *at, *skip)?;
                *at
            }
            (TriggerSchedule::Once { at, skip }, UpsertOperation::Reschedule) => {
                if is_generator {
                    let old_key = self.remove_generator(&id)?;
                    let key = req.custom_key.clone().or(old_key);
                    self.insert_job(req, &id, key, *at, *skip)?;
                } else {
                    self.update_job(req, &id, *at, *skip)?;
                }
                *at
            }
            (TriggerSchedule::Cron { .. }, UpsertOperation::Schedule) => {
                self.create_generator(req, &id, req.custom_key.clone())?
            }
            (TriggerSchedule::Cron { .. }, UpsertOperation::Reschedule) => {
                if is_generator {
                    self.redefine_generator(req, &id)?
                } else {
                    let old = self.delete_job(&id).ok_or(StoreError::NotFound)?;
                    let key = req.custom_key.clone().or(old.job.custom_key);
                    self.create_generator(req, &id, key)?
                }
            }
        };
        Ok((id, operation, fire_at))
    }

    /// A new one-off job: `registered` with its first planned execution, or `skipped` (a past
    /// time not to run) with none.
    fn insert_job(
        &mut self,
        req: &UpsertTrigger,
        id: &JobId,
        custom_key: Option<String>,
        at: Timestamp,
        skip: bool,
    ) -> StoreResult<()> {
        let status = if skip {
            JobStatus::Skipped
        } else {
            JobStatus::Registered
        };
        let project = self.project(&req.project_id)?;
        let mut job = new_job(
            project,
            id,
            &req.definition,
            status,
            at,
            req.origin,
            req.now,
        );
        job.custom_key = custom_key;
        self.jobs.insert(
            id.clone(),
            StoredJob {
                job,
                generator_id: None,
                spec: None,
            },
        );
        if !skip {
            let (execution, project) = (&req.new_execution_id, &req.project_id);
            self.plan_execution(execution, id, project, 1, TriggeredBy::Scheduler, at);
        }
        Ok(())
    }

    /// Replaces a `registered` job's definition in place and moves (or, for a skip, cancels)
    /// its planned execution.
    fn update_job(
        &mut self,
        req: &UpsertTrigger,
        id: &JobId,
        at: Timestamp,
        skip: bool,
    ) -> StoreResult<()> {
        let def = &req.definition;
        let job = self.job_mut(id)?;
        if req.custom_key.is_some() {
            job.custom_key = req.custom_key.clone();
        }
        job.title = def.title.clone();
        job.status = if skip {
            JobStatus::Skipped
        } else {
            JobStatus::Registered
        };
        job.scheduled_at = at;
        job.request = def.request.clone();
        job.tags = def.tags.clone();
        job.options = def.options;
        job.rate_limited = RateLimitState::default();
        if skip {
            self.cancel_planned(id);
            return Ok(());
        }
        match self.planned_mut(id) {
            Some(planned) => {
                planned.execution.planned_at = at;
                planned.execution.rate_limited = RateLimitState::default();
                planned.due_at = at;
            }
            // A registered job always has one; should it be missing, plan it again.
            None => {
                let (execution, project) = (&req.new_execution_id, &req.project_id);
                self.plan_execution(execution, id, project, 1, TriggeredBy::Scheduler, at);
            }
        }
        Ok(())
    }

    /// [`timetriggers_core::Store::cancel_trigger`], following [`plan_cancel`].
    pub(crate) fn cancel_trigger(
        &mut self,
        project: &ProjectId,
        target: &TriggerRef,
        now: Timestamp,
    ) -> StoreResult<Result<JobId, Refusal>> {
        let found = match target {
            TriggerRef::Id(id) => self.find_by_id(project, id),
            TriggerRef::CustomKey(key) => self.find_live_key_holder(project, key),
        };
        let item = match plan_cancel(found) {
            Ok(item) => item,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.cancel_item(&item, now)?;
        Ok(Ok(item.id))
    }

    /// Cancels a pending item: a generator's whole series, or one job (its key is released
    /// because a cancelled job is no longer live).
    pub(crate) fn cancel_item(&mut self, item: &FoundItem, now: Timestamp) -> StoreResult<()> {
        if item.state.kind() == JobKind::Generator {
            return self.cancel_generator(&item.id, now);
        }
        let job = self.job_mut(&item.id)?;
        job.status = JobStatus::Cancelled;
        job.cancelled_at = Some(now);
        self.cancel_planned(&item.id);
        // Cancelling one occurrence skips only it: its generator plans the next one.
        self.release_pending(&item.id);
        Ok(())
    }

    // ---- /declare and /bulk ----

    /// [`timetriggers_core::Store::declare`]: all or nothing on the quota.
    pub(crate) fn declare(
        &mut self,
        sync: &DeclareSync,
    ) -> StoreResult<Result<SyncOutcome, Refusal>> {
        let existing = self.managed_items(&sync.project_id, &sync.items, true)?;
        let steps = plan_declare(&sync.items, &existing);
        self.apply_steps(
            &sync.project_id,
            &sync.items,
            steps,
            Origin::Declare,
            sync.now,
        )
    }

    /// [`timetriggers_core::Store::bulk`]: the cancels, then the upserts by key.
    pub(crate) fn bulk(&mut self, sync: &BulkSync) -> StoreResult<Result<SyncOutcome, Refusal>> {
        let mut cancelled = Vec::new();
        for selector in &sync.cancels {
            for item in self.select(&sync.project_id, selector) {
                // Finished items, and items an earlier selector cancelled, are ignored.
                if !item.state.is_pending() {
                    continue;
                }
                self.cancel_item(&item, sync.now)?;
                cancelled.push(SyncResult {
                    operation: SyncOperation::Cancelled,
                    custom_key: self.key_of(&item.id),
                    kind: item.state.kind(),
                    id: item.id,
                    changed_fields: None,
                });
            }
        }
        let holders = self.managed_items(&sync.project_id, &sync.upserts, false)?;
        let steps = plan_bulk_upserts(&sync.upserts, &holders);
        let applied = self.apply_steps(
            &sync.project_id,
            &sync.upserts,
            steps,
            Origin::Bulk,
            sync.now,
        )?;
        Ok(applied.map(|mut outcome| {
            cancelled.append(&mut outcome.operations);
            SyncOutcome {
                operations: cancelled,
            }
        }))
    }

    /// Checks the quota for the billable steps, applies every step, charges.
    fn apply_steps(
        &mut self,
        project: &ProjectId,
        items: &[DeclareItem],
        steps: Vec<SyncStep>,
        origin: Origin,
        now: Timestamp,
    ) -> StoreResult<Result<SyncOutcome, Refusal>> {
        let units = billable(&steps, items);
        if !self.quota_allows(project, now, units)? {
            return Ok(Err(Refusal::QuotaExceeded));
        }
        let mut outcome = SyncOutcome::default();
        for step in steps {
            let line = self.apply_step(project, items, step, origin, now)?;
            outcome.operations.push(line);
        }
        self.charge(project, now, units)?;
        Ok(Ok(outcome))
    }

    fn apply_step(
        &mut self,
        project: &ProjectId,
        items: &[DeclareItem],
        step: SyncStep,
        origin: Origin,
        now: Timestamp,
    ) -> StoreResult<SyncResult> {
        let item = |index: usize| {
            items
                .get(index)
                .ok_or_else(|| StoreError::corrupt(format!("sync step names item {index}")))
        };
        Ok(match step {
            SyncStep::Add { index } => {
                let item = item(index)?;
                let req = item.upsert(project, None, origin, now);
                let (id, _, _) = self.apply_upsert(&req, UpsertPlan::Create)?;
                self.record_spec(&id, item);
                item.applied(SyncOperation::Added, id, None)
            }
            SyncStep::Update {
                index, id, changed, ..
            } => {
                let item = item(index)?;
                let req = item.upsert(project, Some(id.clone()), origin, now);
                self.apply_upsert(&req, UpsertPlan::Update(id.clone()))?;
                self.record_spec(&id, item);
                item.applied(SyncOperation::Updated, id, Some(changed))
            }
            SyncStep::Unchanged { index, id } => {
                item(index)?.result(SyncOperation::Unchanged, id, None)
            }
            SyncStep::Skip { index, id } => item(index)?.result(SyncOperation::Skipped, id, None),
            SyncStep::Cancel {
                id,
                kind,
                custom_key,
            } => {
                let found = FoundItem {
                    id: id.clone(),
                    state: ItemState::pending(kind),
                };
                self.cancel_item(&found, now)?;
                SyncResult {
                    operation: SyncOperation::Cancelled,
                    custom_key,
                    kind,
                    id,
                    changed_fields: None,
                }
            }
        })
    }

    /// Keeps the declared `scheduledAt` for the next sync's comparison.
    fn record_spec(&mut self, id: &JobId, item: &DeclareItem) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.spec = item.spec.clone();
        } else if let Some(generator) = self.generators.get_mut(id) {
            generator.spec = item.spec.clone();
        }
    }

    /// What a sync compares against: the live items holding one of the declared keys (any
    /// origin) and, for `/declare`, every live or finished (completed, skipped) item that
    /// `/declare` created. Occurrence jobs are never items. Newest first.
    fn managed_items(
        &self,
        project: &ProjectId,
        items: &[DeclareItem],
        declared: bool,
    ) -> StoreResult<Vec<ManagedItem>> {
        let keyed = |key: &Option<String>| {
            key.as_ref()
                .is_some_and(|k| items.iter().any(|i| i.custom_key.as_ref() == Some(k)))
        };
        let mut jobs: Vec<&StoredJob> = self
            .jobs
            .values()
            .filter(|j| &j.job.project_id == project && j.generator_id.is_none())
            .filter(|j| {
                let (job, live) = (&j.job, j.job.status.is_live());
                let finished = matches!(job.status, JobStatus::Completed | JobStatus::Skipped);
                (live && keyed(&job.custom_key))
                    || (declared && job.origin == Origin::Declare && (live || finished))
            })
            .collect();
        jobs.sort_by(|a, b| {
            (b.job.registered_at, &b.job.id).cmp(&(a.job.registered_at, &a.job.id))
        });
        let mut managed: Vec<ManagedItem> = jobs
            .into_iter()
            .map(|j| ManagedItem {
                id: j.job.id.clone(),
                state: ItemState::Job(j.job.status),
                custom_key: j.job.custom_key.clone(),
                spec: j.spec.clone(),
                timezone: None,
                title: j.job.title.clone(),
                request: j.job.request.clone(),
                tags: j.job.tags.clone(),
                options: j.job.options,
                declared: j.job.origin == Origin::Declare,
            })
            .collect();
        for g in self.generators.values() {
            let active = &g.project_id == project && g.status == GeneratorStatus::Active;
            if !active || !(keyed(&g.custom_key) || (declared && g.origin == Origin::Declare)) {
                continue;
            }
            let TriggerSchedule::Cron {
                expression,
                timezone,
                ..
            } = &g.definition.schedule
            else {
                return Err(StoreError::corrupt(format!(
                    "generator {} has no cron",
                    g.id
                )));
            };
            let def = &g.definition;
            managed.push(ManagedItem {
                id: g.id.clone(),
                state: ItemState::Generator(g.status),
                custom_key: g.custom_key.clone(),
                spec: g.spec.clone().or_else(|| Some(expression.clone())),
                timezone: Some(timezone.clone()),
                title: def.title.clone(),
                request: def.request.clone(),
                tags: def.tags.clone(),
                options: def.options,
                declared: g.origin == Origin::Declare,
            });
        }
        Ok(managed)
    }

    /// The items a `/bulk` cancel selector names, in any state.
    fn select(&self, project: &ProjectId, selector: &BulkSelector) -> Vec<FoundItem> {
        match selector {
            BulkSelector::CustomKey(key) => self
                .find_live_key_holder(project, key)
                .into_iter()
                .collect(),
            BulkSelector::Id(id) => self.find_by_id(project, id).into_iter().collect(),
            BulkSelector::Bare(s) => self
                .find_live_key_holder(project, s)
                .or_else(|| self.find_by_id(project, &JobId::new(s.as_str())))
                .into_iter()
                .collect(),
            BulkSelector::Tag(tag) => {
                let tagged = |tags: &[String]| tags.contains(tag);
                let jobs = self.jobs.values().filter(|j| {
                    &j.job.project_id == project
                        && j.generator_id.is_none()
                        && j.job.status == JobStatus::Registered
                        && tagged(&j.job.tags)
                });
                let generators = self.generators.values().filter(|g| {
                    &g.project_id == project
                        && g.status == GeneratorStatus::Active
                        && tagged(&g.definition.tags)
                });
                jobs.map(|j| FoundItem {
                    id: j.job.id.clone(),
                    state: ItemState::Job(j.job.status),
                })
                .chain(generators.map(|g| FoundItem {
                    id: g.id.clone(),
                    state: ItemState::Generator(g.status),
                }))
                .collect()
            }
        }
    }
}

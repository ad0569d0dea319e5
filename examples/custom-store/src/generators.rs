//! Generators: a cron series with at most one pending occurrence job. The engine plans the
//! occurrences (`timetriggers_core::rules::generator`); the store lists the generators that
//! need a plan and applies it.

use timetriggers_core::{
    GeneratorDue, GeneratorStatus, JobId, JobStatus, MaterializeGenerator, NewOccurrence,
    PendingOccurrence, StoreError, StoreResult, Timestamp, TriggerSchedule, TriggeredBy,
    UpsertTrigger,
};

use crate::state::{new_job, State, StoredGenerator, StoredJob};

impl State {
    /// A new active generator `id` with its first occurrence; returns the occurrence's time.
    pub(crate) fn create_generator(
        &mut self,
        req: &UpsertTrigger,
        id: &JobId,
        custom_key: Option<String>,
    ) -> StoreResult<Timestamp> {
        self.generators.insert(
            id.clone(),
            StoredGenerator {
                id: id.clone(),
                project_id: req.project_id.clone(),
                custom_key,
                status: GeneratorStatus::Active,
                definition: req.definition.clone(),
                origin: req.origin,
                defined_at: req.now,
                pending: None,
                last_occurrence_at: None,
                spec: None,
            },
        );
        self.insert_first_occurrence(req, id)
    }

    /// Replaces an active generator's definition in place; its pending occurrence is replaced
    /// by the new first one.
    pub(crate) fn redefine_generator(
        &mut self,
        req: &UpsertTrigger,
        id: &JobId,
    ) -> StoreResult<Timestamp> {
        self.delete_pending_occurrence(id);
        let g = self
            .generators
            .get_mut(id)
            .filter(|g| g.project_id == req.project_id)
            .ok_or(StoreError::NotFound)?;
        if req.custom_key.is_some() {
            g.custom_key = req.custom_key.clone();
        }
        g.definition = req.definition.clone();
        g.defined_at = req.now;
        g.last_occurrence_at = None;
        self.insert_first_occurrence(req, id)
    }

    fn insert_first_occurrence(
        &mut self,
        req: &UpsertTrigger,
        id: &JobId,
    ) -> StoreResult<Timestamp> {
        let TriggerSchedule::Cron {
            first_at,
            occurrence_id,
            ..
        } = &req.definition.schedule
        else {
            return Err(StoreError::corrupt("a generator needs a cron schedule"));
        };
        let first = NewOccurrence {
            job_id: occurrence_id.clone(),
            execution_id: req.new_execution_id.clone(),
            at: *first_at,
        };
        self.insert_occurrence(id, &first, JobStatus::Registered, req.now)?;
        Ok(*first_at)
    }

    /// Removes a generator so that its id can become a one-off job; returns its key. Its
    /// pending occurrence goes with it; past occurrences stay.
    pub(crate) fn remove_generator(&mut self, id: &JobId) -> StoreResult<Option<String>> {
        self.delete_pending_occurrence(id);
        let g = self.generators.remove(id).ok_or(StoreError::NotFound)?;
        Ok(g.custom_key)
    }

    fn delete_pending_occurrence(&mut self, id: &JobId) {
        let pending = self.generators.get_mut(id).and_then(|g| g.pending.take());
        if let Some(job) = pending {
            if self
                .jobs
                .get(&job)
                .is_some_and(|j| j.job.status == JobStatus::Registered)
            {
                self.delete_job(&job);
            }
        }
    }

    /// Stops the series: the generator and its pending occurrence become cancelled.
    pub(crate) fn cancel_generator(&mut self, id: &JobId, now: Timestamp) -> StoreResult<()> {
        let g = self.generators.get_mut(id).ok_or(StoreError::NotFound)?;
        g.status = GeneratorStatus::Cancelled;
        if let Some(pending) = g.pending.take() {
            let job = self.job_mut(&pending)?;
            if job.status == JobStatus::Registered {
                job.status = JobStatus::Cancelled;
                job.cancelled_at = Some(now);
                self.cancel_planned(&pending);
            }
        }
        Ok(())
    }

    /// The occurrence `job` left `registered` (it fired, was cancelled or skipped): its
    /// generator, if still active, has no pending occurrence and needs the next one.
    pub(crate) fn release_pending(&mut self, job: &JobId) {
        let Some(at) = self.jobs.get(job).map(|j| j.job.scheduled_at) else {
            return;
        };
        let waiting = |g: &&mut StoredGenerator| {
            g.status == GeneratorStatus::Active && g.pending.as_ref() == Some(job)
        };
        if let Some(g) = self.generators.values_mut().find(waiting) {
            g.pending = None;
            g.last_occurrence_at = Some(at);
        }
    }

    /// An occurrence job copied from the generator's definition: `registered` (with its planned
    /// execution, and made the pending occurrence) or `skipped` (a record, no execution).
    fn insert_occurrence(
        &mut self,
        generator: &JobId,
        occ: &NewOccurrence,
        status: JobStatus,
        now: Timestamp,
    ) -> StoreResult<()> {
        let g = self.generators.get(generator).ok_or(StoreError::NotFound)?;
        let project = self.project(&g.project_id)?;
        let job = new_job(
            project,
            &occ.job_id,
            &g.definition,
            status,
            occ.at,
            g.origin,
            now,
        );
        let project_id = project.id.clone();
        self.jobs.insert(
            occ.job_id.clone(),
            StoredJob {
                job,
                generator_id: Some(generator.clone()),
                spec: None,
            },
        );
        if status == JobStatus::Registered {
            let (execution, job_id) = (&occ.execution_id, &occ.job_id);
            self.plan_execution(
                execution,
                job_id,
                &project_id,
                1,
                TriggeredBy::Scheduler,
                occ.at,
            );
            if let Some(g) = self.generators.get_mut(generator) {
                g.pending = Some(occ.job_id.clone());
            }
        }
        Ok(())
    }

    /// [`timetriggers_core::Store::list_generators_due`]: active generators without a pending
    /// occurrence, or whose pending one is still `registered` and due before `overdue_before`.
    pub(crate) fn list_generators_due(
        &self,
        overdue_before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<GeneratorDue>> {
        let mut due = Vec::new();
        for g in self.generators.values() {
            if due.len() >= limit {
                break;
            }
            if g.status != GeneratorStatus::Active {
                continue;
            }
            let pending = match &g.pending {
                None => None,
                Some(id) => match self.jobs.get(id) {
                    Some(j)
                        if j.job.status == JobStatus::Registered
                            && j.job.scheduled_at < overdue_before =>
                    {
                        Some(PendingOccurrence {
                            job_id: id.clone(),
                            scheduled_at: j.job.scheduled_at,
                        })
                    }
                    _ => continue,
                },
            };
            let TriggerSchedule::Cron {
                expression,
                timezone,
                run_missed,
                ..
            } = &g.definition.schedule
            else {
                return Err(StoreError::corrupt(format!(
                    "generator {} has no cron",
                    g.id
                )));
            };
            due.push(GeneratorDue {
                id: g.id.clone(),
                project_id: g.project_id.clone(),
                expression: expression.clone(),
                timezone: timezone.clone(),
                run_missed: *run_missed,
                last_occurrence_at: g.last_occurrence_at,
                defined_at: g.defined_at,
                pending,
            });
        }
        Ok(due)
    }

    /// [`timetriggers_core::Store::materialize_generator`]: a compare-and-set on the pending
    /// occurrence, so that two engines planning the same generator apply one plan.
    pub(crate) fn materialize_generator(
        &mut self,
        plan: &MaterializeGenerator,
    ) -> StoreResult<bool> {
        let id = &plan.generator_id;
        let Some(g) = self.generators.get(id) else {
            return Ok(false);
        };
        if g.status != GeneratorStatus::Active || g.pending != plan.expected_pending {
            return Ok(false);
        }
        if let (true, Some(pending)) = (plan.skip_pending, &plan.expected_pending) {
            let job = self.job_mut(pending)?;
            if job.status == JobStatus::Registered {
                job.status = JobStatus::Skipped;
            }
            self.cancel_planned(pending);
            self.release_pending(pending);
        }
        for occ in &plan.skipped {
            self.insert_occurrence(id, occ, JobStatus::Skipped, plan.now)?;
        }
        if let Some(latest) = plan.skipped.iter().map(|o| o.at).max() {
            if let Some(g) = self.generators.get_mut(id) {
                g.last_occurrence_at = Some(g.last_occurrence_at.map_or(latest, |t| t.max(latest)));
            }
        }
        if let Some(occ) = &plan.create {
            self.insert_occurrence(id, occ, JobStatus::Registered, plan.now)?;
        }
        Ok(true)
    }
}

//! The tables, and what several modules share: projects, keys, the monthly quota, item
//! lookups, jobs and executions.

use std::collections::BTreeMap;

use timetriggers_core::{
    ApiKey, ApiKeyId, Execution, ExecutionId, ExecutionStatus, FoundItem, GeneratorLink,
    GeneratorStatus, ItemState, Job, JobId, JobStatus, LastAttempt, NewApiKey, NewProject,
    NewSession, Origin, Project, ProjectId, RateLimit, RateLimitState, StoreError, StoreResult,
    Timestamp, TriggerDefinition, TriggeredBy, UserCredentials, UserId,
};

/// Everything the store holds. `Clone` is what makes [`crate::MemoryStore`]'s transactions.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) projects: BTreeMap<ProjectId, Project>,
    /// API keys by the hash of their secret.
    pub(crate) api_keys: BTreeMap<String, ApiKey>,
    /// Units used per project and month (`YYYY-MM`, [`Timestamp::month_key`]).
    pub(crate) quota_used: BTreeMap<(ProjectId, String), u64>,
    /// One-off jobs and generator occurrences (generators are not jobs).
    pub(crate) jobs: BTreeMap<JobId, StoredJob>,
    pub(crate) generators: BTreeMap<JobId, StoredGenerator>,
    pub(crate) executions: BTreeMap<ExecutionId, StoredExecution>,
    pub(crate) users: BTreeMap<UserId, UserCredentials>,
    pub(crate) memberships: Vec<Membership>,
    /// Sessions by the hash of their token.
    pub(crate) sessions: BTreeMap<String, NewSession>,
    /// Rate-limit rules, in creation order.
    pub(crate) rate_limits: Vec<RateLimit>,
    /// Starts of executions per project and ruled tag, for the sliding windows.
    pub(crate) rate_usage: Vec<(ProjectId, String, Timestamp)>,
}

/// A job as stored: `job.generator` is left `None` and filled from `generator_id` on reads,
/// so that the link shows the generator's current key and status.
#[derive(Debug, Clone)]
pub(crate) struct StoredJob {
    pub(crate) job: Job,
    pub(crate) generator_id: Option<JobId>,
    /// `scheduledAt` as `/declare` or `/bulk` wrote it, for the next sync's comparison.
    pub(crate) spec: Option<String>,
}

/// A cron series: its definition (whose schedule is `Cron`) and at most one pending
/// occurrence job.
#[derive(Debug, Clone)]
pub(crate) struct StoredGenerator {
    pub(crate) id: JobId,
    pub(crate) project_id: ProjectId,
    pub(crate) custom_key: Option<String>,
    pub(crate) status: GeneratorStatus,
    pub(crate) definition: TriggerDefinition,
    pub(crate) origin: Origin,
    /// When the definition last changed (creation or reschedule).
    pub(crate) defined_at: Timestamp,
    /// The `registered` occurrence job waiting for its time.
    pub(crate) pending: Option<JobId>,
    /// The time of the last occurrence that fired, was cancelled or was skipped.
    pub(crate) last_occurrence_at: Option<Timestamp>,
    pub(crate) spec: Option<String>,
}

/// An execution and what only the store needs: when it is due and its lease.
#[derive(Debug, Clone)]
pub(crate) struct StoredExecution {
    pub(crate) execution: Execution,
    /// `planned_at`, or later while a rate limit holds it back.
    pub(crate) due_at: Timestamp,
    /// While `started`: when another engine may treat it as interrupted.
    pub(crate) lease_until: Option<Timestamp>,
}

/// A user's membership of a project.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) user_id: UserId,
    pub(crate) project_id: ProjectId,
    pub(crate) joined_at: Timestamp,
}

/// A new job of `project` sending what `def` defines, without a custom key.
pub(crate) fn new_job(
    project: &Project,
    id: &JobId,
    def: &TriggerDefinition,
    status: JobStatus,
    scheduled_at: Timestamp,
    origin: Origin,
    now: Timestamp,
) -> Job {
    Job {
        id: id.clone(),
        project_id: project.id.clone(),
        project_slug: project.slug.clone(),
        custom_key: None,
        title: def.title.clone(),
        status,
        scheduled_at,
        request: def.request.clone(),
        tags: def.tags.clone(),
        options: def.options,
        origin,
        registered_at: now,
        cancelled_at: None,
        queued_at: None,
        started_at: None,
        completed_at: None,
        last: LastAttempt::default(),
        rate_limited: RateLimitState::default(),
        generator: None,
    }
}

impl State {
    // ---- projects, keys, quota ----

    pub(crate) fn project(&self, id: &ProjectId) -> StoreResult<&Project> {
        self.projects.get(id).ok_or(StoreError::NotFound)
    }

    pub(crate) fn create_project(&mut self, new: NewProject) -> StoreResult<Project> {
        if self.projects.values().any(|p| p.slug == new.slug) {
            return Err(StoreError::Conflict(format!(
                "project slug {:?} is already taken",
                new.slug
            )));
        }
        let project = Project {
            id: new.id,
            slug: new.slug,
            month_quota: new.month_quota,
            created_at: new.now,
        };
        self.projects.insert(project.id.clone(), project.clone());
        Ok(project)
    }

    pub(crate) fn create_api_key(&mut self, new: NewApiKey) -> StoreResult<ApiKey> {
        self.project(&new.project_id)?;
        if self.api_keys.contains_key(&new.key_hash) {
            return Err(StoreError::Conflict("this API key exists already".into()));
        }
        let key = ApiKey {
            id: new.id,
            project_id: new.project_id,
            name: new.name,
            masked: new.masked,
            created_at: new.now,
        };
        self.api_keys.insert(new.key_hash, key.clone());
        Ok(key)
    }

    pub(crate) fn delete_api_key(&mut self, project: &ProjectId, id: &ApiKeyId) -> StoreResult<()> {
        let before = self.api_keys.len();
        self.api_keys
            .retain(|_, k| !(&k.id == id && &k.project_id == project));
        if self.api_keys.len() == before {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Whether the project's quota for the month of `now` covers `units` more.
    pub(crate) fn quota_allows(
        &self,
        project: &ProjectId,
        now: Timestamp,
        units: u64,
    ) -> StoreResult<bool> {
        let quota = self.project(project)?.month_quota;
        let used = self
            .quota_used
            .get(&(project.clone(), now.month_key()))
            .copied()
            .unwrap_or(0);
        Ok(quota.remaining(used).is_none_or(|left| left >= units))
    }

    /// Charges `units` to the month of `now`; returns what is left (`None`: unlimited).
    pub(crate) fn charge(
        &mut self,
        project: &ProjectId,
        now: Timestamp,
        units: u64,
    ) -> StoreResult<Option<u64>> {
        let quota = self.project(project)?.month_quota;
        let used = self
            .quota_used
            .entry((project.clone(), now.month_key()))
            .or_default();
        *used += units;
        Ok(quota.remaining(*used))
    }

    // ---- items: jobs and generators share one id space ----

    /// The item with this id in the project, in any state.
    pub(crate) fn find_by_id(&self, project: &ProjectId, id: &JobId) -> Option<FoundItem> {
        let state = match (self.jobs.get(id), self.generators.get(id)) {
            (Some(j), _) if &j.job.project_id == project => ItemState::Job(j.job.status),
            (_, Some(g)) if &g.project_id == project => ItemState::Generator(g.status),
            _ => return None,
        };
        Some(FoundItem {
            id: id.clone(),
            state,
        })
    }

    /// The live item holding `key`: a `registered`, `queued` or `running` job, or an active
    /// generator.
    pub(crate) fn find_live_key_holder(&self, project: &ProjectId, key: &str) -> Option<FoundItem> {
        let holds = |p: &ProjectId, k: &Option<String>| p == project && k.as_deref() == Some(key);
        let job = self
            .jobs
            .values()
            .find(|j| holds(&j.job.project_id, &j.job.custom_key) && j.job.status.is_live())
            .map(|j| FoundItem {
                id: j.job.id.clone(),
                state: ItemState::Job(j.job.status),
            });
        job.or_else(|| {
            self.generators
                .values()
                .find(|g| {
                    holds(&g.project_id, &g.custom_key) && g.status == GeneratorStatus::Active
                })
                .map(|g| FoundItem {
                    id: g.id.clone(),
                    state: ItemState::Generator(g.status),
                })
        })
    }

    /// The custom key of a job or generator.
    pub(crate) fn key_of(&self, id: &JobId) -> Option<String> {
        match (self.jobs.get(id), self.generators.get(id)) {
            (Some(j), _) => j.job.custom_key.clone(),
            (_, Some(g)) => g.custom_key.clone(),
            _ => None,
        }
    }

    /// A job as read: with its generator link.
    pub(crate) fn job(&self, stored: &StoredJob) -> Job {
        let mut job = stored.job.clone();
        job.generator = stored
            .generator_id
            .as_ref()
            .map(|id| match self.generators.get(id) {
                Some(g) => GeneratorLink {
                    id: id.clone(),
                    custom_key: g.custom_key.clone(),
                    status: g.status,
                },
                // The generator became a one-off job under its id: its series has ended.
                None => GeneratorLink {
                    id: id.clone(),
                    custom_key: None,
                    status: GeneratorStatus::Cancelled,
                },
            });
        job
    }

    pub(crate) fn job_mut(&mut self, id: &JobId) -> StoreResult<&mut Job> {
        self.jobs
            .get_mut(id)
            .map(|j| &mut j.job)
            .ok_or_else(|| StoreError::corrupt(format!("job {id} is missing")))
    }

    // ---- executions ----

    /// Adds a `planned` execution due at `at`.
    pub(crate) fn plan_execution(
        &mut self,
        id: &ExecutionId,
        job_id: &JobId,
        project_id: &ProjectId,
        attempt_number: u32,
        triggered_by: TriggeredBy,
        at: Timestamp,
    ) {
        let execution = Execution {
            id: id.clone(),
            job_id: job_id.clone(),
            project_id: project_id.clone(),
            attempt_number,
            triggered_by,
            status: ExecutionStatus::Planned,
            planned_at: at,
            started_at: None,
            completed_at: None,
            response_status: None,
            response_headers: None,
            response_body: None,
            response_size: None,
            error_message: None,
            rate_limited: RateLimitState::default(),
        };
        self.executions.insert(
            id.clone(),
            StoredExecution {
                execution,
                due_at: at,
                lease_until: None,
            },
        );
    }

    /// The `planned` execution of a job, if it has one (it never has more).
    pub(crate) fn planned_mut(&mut self, job: &JobId) -> Option<&mut StoredExecution> {
        self.executions
            .values_mut()
            .find(|e| &e.execution.job_id == job && e.execution.status == ExecutionStatus::Planned)
    }

    /// Cancels a job's planned execution, if it has one.
    pub(crate) fn cancel_planned(&mut self, job: &JobId) {
        if let Some(e) = self.planned_mut(job) {
            e.execution.status = ExecutionStatus::Cancelled;
        }
    }

    /// Deletes a job that never ran (a `registered` one) with its executions.
    pub(crate) fn delete_job(&mut self, id: &JobId) -> Option<StoredJob> {
        self.executions.retain(|_, e| &e.execution.job_id != id);
        self.jobs.remove(id)
    }

    /// A job's executions, newest first; `None` if the job is not in the project.
    pub(crate) fn list_job_executions(
        &self,
        project: &ProjectId,
        job: &JobId,
    ) -> Option<Vec<Execution>> {
        self.jobs
            .get(job)
            .filter(|j| &j.job.project_id == project)?;
        let mut found: Vec<&Execution> = self
            .executions
            .values()
            .map(|e| &e.execution)
            .filter(|e| &e.job_id == job)
            .collect();
        found.sort_by(|a, b| {
            (b.attempt_number, b.planned_at, &b.id).cmp(&(a.attempt_number, a.planned_at, &a.id))
        });
        Some(found.into_iter().cloned().collect())
    }
}

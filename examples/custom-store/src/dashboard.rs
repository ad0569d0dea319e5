//! The dashboard's methods: users, sessions and memberships; key, job and execution listings;
//! replay; rate-limit rules.

use timetriggers_core::{
    plan_replay, ApiKey, Execution, ExecutionJob, ExecutionListing, ExecutionPage, ExecutionQuery,
    ExecutionStatus, JobPage, JobQuery, JobStatus, NewProject, NewRateLimit, NewSession, NewUser,
    Project, ProjectId, RateLimit, RateLimitId, RateLimitState, ReplayJob, ReplayRefusal, Replayed,
    SessionUser, StoreError, StoreResult, Timestamp, UpdateRateLimit, User, UserCredentials,
    UserId,
};

use crate::state::{Membership, State, StoredExecution, StoredJob};

/// The page `offset..offset + limit` of `items`.
fn page<T>(items: Vec<T>, limit: u32, offset: u64) -> impl Iterator<Item = T> {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    items.into_iter().skip(skip).take(limit as usize)
}

impl State {
    // ---- users, sessions, memberships ----

    /// [`timetriggers_core::Store::create_user`]: the user, their first project and the
    /// membership, or nothing.
    pub(crate) fn create_user(&mut self, new: NewUser) -> StoreResult<User> {
        if self.users.values().any(|u| u.user.email == new.email) {
            return Err(StoreError::Conflict(format!(
                "the email {:?} is already registered",
                new.email
            )));
        }
        let project = self.create_project(new.project)?;
        let user = User {
            id: new.id,
            email: new.email,
            created_at: new.now,
        };
        self.users.insert(
            user.id.clone(),
            UserCredentials {
                user: user.clone(),
                password_hash: new.password_hash,
            },
        );
        self.join(&user.id, &project);
        Ok(user)
    }

    fn join(&mut self, user: &UserId, project: &Project) {
        self.memberships.push(Membership {
            user_id: user.clone(),
            project_id: project.id.clone(),
            joined_at: project.created_at,
        });
    }

    /// [`timetriggers_core::Store::create_session`], purging the user's expired sessions.
    pub(crate) fn create_session(&mut self, new: NewSession) -> StoreResult<()> {
        if !self.users.contains_key(&new.user_id) {
            return Err(StoreError::NotFound);
        }
        self.sessions
            .retain(|_, s| !(s.user_id == new.user_id && s.expires_at <= new.now));
        if self.sessions.contains_key(&new.token_hash) {
            return Err(StoreError::Conflict("this session exists already".into()));
        }
        self.sessions.insert(new.token_hash.clone(), new);
        Ok(())
    }

    /// A session is live strictly before its `expires_at`.
    pub(crate) fn find_session(&self, token_hash: &str, now: Timestamp) -> Option<SessionUser> {
        let session = self
            .sessions
            .get(token_hash)
            .filter(|s| now < s.expires_at)?;
        Some(SessionUser {
            user: self.users.get(&session.user_id)?.user.clone(),
            expires_at: session.expires_at,
        })
    }

    pub(crate) fn revoke_session(&mut self, token_hash: &str) -> StoreResult<()> {
        self.sessions
            .remove(token_hash)
            .map(drop)
            .ok_or(StoreError::NotFound)
    }

    /// The user's projects, oldest membership first (ties by project id).
    pub(crate) fn list_user_projects(&self, user: &UserId) -> Vec<Project> {
        let mut mine: Vec<&Membership> = self
            .memberships
            .iter()
            .filter(|m| &m.user_id == user)
            .collect();
        mine.sort_by(|a, b| (a.joined_at, &a.project_id).cmp(&(b.joined_at, &b.project_id)));
        mine.iter()
            .filter_map(|m| self.projects.get(&m.project_id).cloned())
            .collect()
    }

    pub(crate) fn create_user_project(
        &mut self,
        user: &UserId,
        new: NewProject,
    ) -> StoreResult<Project> {
        if !self.users.contains_key(user) {
            return Err(StoreError::NotFound);
        }
        let project = self.create_project(new)?;
        self.join(user, &project);
        Ok(project)
    }

    // ---- listings ----

    /// Newest first (`created_at`, then id, descending).
    pub(crate) fn list_api_keys(&self, projects: &[ProjectId]) -> Vec<ApiKey> {
        let mut keys: Vec<ApiKey> = self
            .api_keys
            .values()
            .filter(|k| projects.contains(&k.project_id))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        keys
    }

    /// Jobs (never generators) by `scheduled_at` then id, descending; `total` before paging.
    pub(crate) fn list_jobs(&self, q: &JobQuery) -> JobPage {
        let mut jobs: Vec<&StoredJob> = self
            .jobs
            .values()
            .filter(|j| {
                q.project_ids.contains(&j.job.project_id)
                    && (q.statuses.is_empty() || q.statuses.contains(&j.job.status))
                    && q.id
                        .as_ref()
                        .is_none_or(|id| &j.job.id == id || j.generator_id.as_ref() == Some(id))
            })
            .collect();
        jobs.sort_by(|a, b| (b.job.scheduled_at, &b.job.id).cmp(&(a.job.scheduled_at, &a.job.id)));
        JobPage {
            total: jobs.len() as u64,
            jobs: page(jobs, q.limit, q.offset).map(|j| self.job(j)).collect(),
        }
    }

    /// Executions by `planned_at` then id, descending, with their job's facts and without
    /// response headers and body; `total` before paging.
    pub(crate) fn list_executions(&self, q: &ExecutionQuery) -> ExecutionPage {
        let matches = |e: &StoredExecution, j: &StoredJob| {
            let (x, job) = (&e.execution, &j.job);
            q.project_ids.contains(&x.project_id)
                && q.job_id.as_ref().is_none_or(|id| &x.job_id == id)
                && q.custom_key
                    .as_ref()
                    .is_none_or(|k| job.custom_key.as_ref() == Some(k))
                && (q.job_statuses.is_empty() || q.job_statuses.contains(&job.status))
                && (q.execution_statuses.is_empty() || q.execution_statuses.contains(&x.status))
                && q.http_status.is_none_or(|filter| {
                    let (low, high) = filter.range();
                    x.response_status.is_some_and(|s| (low..=high).contains(&s))
                })
        };
        let mut found: Vec<(&Execution, &StoredJob)> = self
            .executions
            .values()
            .filter_map(|e| Some((e, self.jobs.get(&e.execution.job_id)?)))
            .filter(|(e, j)| matches(e, j))
            .map(|(e, j)| (&e.execution, j))
            .collect();
        found.sort_by(|(a, _), (b, _)| (b.planned_at, &b.id).cmp(&(a.planned_at, &a.id)));
        ExecutionPage {
            total: found.len() as u64,
            executions: page(found, q.limit, q.offset)
                .map(|(x, j)| ExecutionListing {
                    execution: Execution {
                        response_headers: None,
                        response_body: None,
                        ..x.clone()
                    },
                    job: ExecutionJob {
                        custom_key: j.job.custom_key.clone(),
                        title: j.job.title.clone(),
                        status: j.job.status,
                        url: j.job.request.url.clone(),
                        method: j.job.request.method.clone(),
                        project_slug: j.job.project_slug.clone(),
                    },
                })
                .collect(),
        }
    }

    // ---- replay ----

    /// [`timetriggers_core::Store::replay_job`]: refusals in the trait's order, then a new
    /// planned execution due now, the job `queued`, one unit charged.
    pub(crate) fn replay_job(
        &mut self,
        r: &ReplayJob,
    ) -> StoreResult<Result<Replayed, ReplayRefusal>> {
        let Some(stored) = self
            .jobs
            .get(&r.job_id)
            .filter(|j| r.project_ids.contains(&j.job.project_id))
        else {
            return Ok(Err(ReplayRefusal::NotFound));
        };
        let job = stored.job.clone();
        if let Err(refusal) = plan_replay(job.status) {
            return Ok(Err(refusal));
        }
        // The job is finished, so a live holder of its key is another item.
        if let Some(key) = &job.custom_key {
            if self.find_live_key_holder(&job.project_id, key).is_some() {
                return Ok(Err(ReplayRefusal::CustomKeyTaken));
            }
        }
        if !self.quota_allows(&job.project_id, r.now, 1)? {
            return Ok(Err(ReplayRefusal::QuotaExceeded));
        }
        let last = self
            .executions
            .values()
            .filter(|e| e.execution.job_id == job.id)
            .map(|e| e.execution.attempt_number)
            .max()
            .unwrap_or(0);
        let attempt_number = last + 1;
        self.plan_execution(
            &r.execution_id,
            &job.id,
            &job.project_id,
            attempt_number,
            r.triggered_by,
            r.now,
        );
        let stored = self.job_mut(&job.id)?;
        stored.status = JobStatus::Queued;
        stored.completed_at = None;
        stored.rate_limited = RateLimitState::default();
        let month_quota_remaining = self.charge(&job.project_id, r.now, 1)?;
        Ok(Ok(Replayed {
            job_id: job.id,
            project_id: job.project_id,
            execution_id: r.execution_id.clone(),
            attempt_number,
            due_at: r.now,
            month_quota_remaining,
        }))
    }

    // ---- rate-limit rules ----

    /// Oldest first: by `created_at`, ties in creation order. (The trait says ties by id;
    /// generated ids sort by creation only to the millisecond, and the conformance suite
    /// expects creation order for two rules made within one.)
    pub(crate) fn list_rate_limits(&self, projects: &[ProjectId]) -> Vec<RateLimit> {
        let mut rules: Vec<RateLimit> = self
            .rate_limits
            .iter()
            .filter(|r| projects.contains(&r.project_id))
            .cloned()
            .collect();
        rules.sort_by_key(|r| r.created_at);
        rules
    }

    fn tag_taken(&self, project: &ProjectId, tag: &str, except: &RateLimitId) -> bool {
        self.rate_limits
            .iter()
            .any(|r| &r.project_id == project && r.tag == tag && &r.id != except)
    }

    pub(crate) fn create_rate_limit(&mut self, new: NewRateLimit) -> StoreResult<RateLimit> {
        if self.tag_taken(&new.project_id, &new.tag, &new.id) {
            return Err(StoreError::Conflict(format!(
                "the project has a rule for tag {:?}",
                new.tag
            )));
        }
        let rule = RateLimit {
            id: new.id,
            project_id: new.project_id,
            tag: new.tag,
            limits: new.limits,
            created_at: new.now,
            updated_at: new.now,
        };
        self.rate_limits.push(rule.clone());
        Ok(rule)
    }

    /// Replaces a rule and re-checks at once what it held back, on the old tag and the new.
    pub(crate) fn update_rate_limit(&mut self, u: UpdateRateLimit) -> StoreResult<RateLimit> {
        let index = self
            .rate_limits
            .iter()
            .position(|r| r.id == u.id && r.project_id == u.project_id)
            .ok_or(StoreError::NotFound)?;
        if self.tag_taken(&u.project_id, &u.tag, &u.id) {
            return Err(StoreError::Conflict(format!(
                "the project has a rule for tag {:?}",
                u.tag
            )));
        }
        let rule = &mut self.rate_limits[index];
        let old_tag = std::mem::replace(&mut rule.tag, u.tag.clone());
        rule.limits = u.limits;
        rule.updated_at = u.now;
        let rule = rule.clone();
        self.release_held(&u.project_id, &old_tag, u.now);
        self.release_held(&u.project_id, &u.tag, u.now);
        Ok(rule)
    }

    /// Deletes a rule (and the usage of its tag) and re-checks at once what it held back.
    pub(crate) fn delete_rate_limit(
        &mut self,
        project: &ProjectId,
        id: &RateLimitId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let index = self
            .rate_limits
            .iter()
            .position(|r| &r.id == id && &r.project_id == project)
            .ok_or(StoreError::NotFound)?;
        let tag = self.rate_limits.remove(index).tag;
        self.rate_usage
            .retain(|(p, t, _)| !(p == project && t == &tag));
        self.release_held(project, &tag, now);
        Ok(())
    }

    /// Makes the project's executions that a rule on `tag` holds back due at `now`.
    fn release_held(&mut self, project: &ProjectId, tag: &str, now: Timestamp) {
        for e in self.executions.values_mut() {
            let x = &e.execution;
            let held = x.status == ExecutionStatus::Planned
                && &x.project_id == project
                && x.rate_limited.limited_until == Some(e.due_at)
                && x.rate_limited.tags.iter().any(|t| t == tag);
            if held && e.due_at > now {
                e.due_at = now;
            }
        }
    }
}

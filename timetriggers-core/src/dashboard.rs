//! The dashboard's service API (API.md §3): sign-up, sign-in and sessions on [`TimeTriggers`];
//! everything a signed-in user (or an API key) may see and do through a [`Dashboard`], which is
//! scoped to the caller's projects.
//!
//! ```no_run
//! # async fn demo(service: timetriggers_core::TimeTriggers) -> Result<(), timetriggers_core::Error> {
//! use timetriggers_core::{JobFilter, TriggeredBy};
//!
//! let signed_up = service.signup("ada@example.com", "correct horse battery").await?;
//! // The cookie value is `signed_up.session.token`; later requests resolve it:
//! let caller = service.session_caller(&signed_up.session.token).await?;
//! let dashboard = service.dashboard(&caller);
//! let key = dashboard.create_key("ci", None).await?;
//! println!("schedule with ttr-api-key: {}", key.secret);
//! let page = dashboard.list_jobs(&JobFilter::default()).await?;
//! for job in &page.jobs {
//!     if job.status.as_str() == "completed" {
//!         dashboard.replay(&job.id, TriggeredBy::Replay).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;

use crate::accounts::{
    default_project_slug, hash_password, hash_session_token, new_session_token, normalize_email,
    validate_password, verify_password, MAX_PASSWORD_BYTES, SESSION_TTL,
};
use crate::error::Error;
use crate::ids::{random_secret, ApiKeyId, ExecutionId, JobId, ProjectId, UserId};
use crate::model::{
    ApiKey, AuthenticatedKey, Execution, ExecutionListing, ExecutionStatus, Job, JobStatus,
    Project, TriggeredBy, User,
};
use crate::service::{CreatedApiKey, TimeTriggers};
use crate::store::{NewProject, StoreError};
use crate::store_dashboard::{
    ExecutionQuery, HttpStatusFilter, JobQuery, NewSession, NewUser, ReplayJob, ReplayRefusal,
    Replayed,
};
use crate::time::Timestamp;

/// The message of every failed sign-in, whether the email exists or not.
const BAD_CREDENTIALS: &str = "invalid email or password";

/// The message of a request without a live session.
const NO_SESSION: &str = "not signed in, or the session has expired";

/// Longest API key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// A new session: the token (the cookie value, shown only to the client) and its end.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The opaque token (256 random bits, hex). Only its hash is stored.
    pub token: String,
    /// The session ends at this instant.
    pub expires_at: Timestamp,
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The result of a sign-up: the user, their first project, and a session.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The new user.
    pub user: User,
    /// Their default project.
    pub project: Project,
    /// A session for them.
    pub session: SessionToken,
}

/// The result of a sign-in.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The user.
    pub user: User,
    /// A new session for them.
    pub session: SessionToken,
}

/// How a dashboard caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A live session of this user.
    Session(User),
    /// An API key, scoped to its project.
    ApiKey(AuthenticatedKey),
}

/// An authenticated dashboard caller and the projects it may see: a signed-in user's projects
/// (oldest first; the first is the default), or an API key's one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    credentials: Credentials,
    projects: Vec<Project>,
}

impl Caller {
    /// How the caller authenticated.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The signed-in user, if the caller has a session.
    pub fn user(&self) -> Option<&User> {
        match &self.credentials {
            Credentials::Session(user) => Some(user),
            Credentials::ApiKey(_) => None,
        }
    }

    /// The caller's projects.
    pub fn projects(&self) -> &[Project] {
        &self.projects
    }

    /// The projects a listing covers: all of the caller's without `project_id`, else that one
    /// (404 if it is not the caller's).
    pub fn scope(&self, project_id: Option<&ProjectId>) -> Result<Vec<ProjectId>, Error> {
        match project_id {
            None => Ok(self.projects.iter().map(|p| p.id.clone()).collect()),
            Some(id) => self.project(id).map(|p| vec![p.id.clone()]),
        }
    }

    /// The project something is created in: `project_id` (404 if it is not the caller's), or
    /// the caller's first project.
    pub fn home(&self, project_id: Option<&ProjectId>) -> Result<&Project, Error> {
        match project_id {
            Some(id) => self.project(id),
            None => self.projects.first().ok_or_else(|| {
                Error::NotFound("you have no project yet; create one with POST /projects".into())
            }),
        }
    }

    fn project(&self, id: &ProjectId) -> Result<&Project, Error> {
        self.projects
            .iter()
            .find(|p| &p.id == id)
            .ok_or_else(|| Error::NotFound(format!("project {:?} not found", id.as_str())))
    }
}

/// `limit` and `offset` of a list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1..=[`Paging::MAX_LIMIT`].
    pub limit: u32,
    /// Items skipped first.
    pub offset: u64,
}

impl Paging {
    /// `limit` when none is given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest `limit`.
    pub const MAX_LIMIT: u32 = 500;

    /// Parses `limit` (an integer 1..=500, default 50) and `offset` (an integer ≥ 0, default
    /// 0); anything else (negative, fractional, non-numeric, out of range) is a 400 naming the
    /// field. An empty value counts as absent.
    pub fn parse(limit: Option<&str>, offset: Option<&str>) -> Result<Paging, Error> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => parse_count(raw)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "limit must be an integer from 1 to {} (got {raw:?})",
                        Self::MAX_LIMIT
                    ))
                })?,
        };
        let offset = match offset {
            None => 0,
            Some(raw) => parse_count(raw)
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "offset must be an integer of at least 0 (got {raw:?})"
                    ))
                })?,
        };
        Ok(Paging { limit, offset })
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// Plain decimal digits only: no sign, no fraction, no exponent.
fn parse_count(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Query-string parameters, as decoded (name, value) pairs.
struct Params<'a>(&'a [(String, String)]);

impl<'a> Params<'a> {
    /// A single-valued parameter, trimmed; empty counts as absent; 400 if given twice.
    fn single(&self, name: &str) -> Result<Option<&'a str>, Error> {
        let mut found = None;
        for (k, v) in self.0 {
            let v = v.trim();
            if k == name && !v.is_empty() {
                if found.is_some() {
                    return Err(Error::BadRequest(format!("{name} is given more than once")));
                }
                found = Some(v);
            }
        }
        Ok(found)
    }

    /// A list parameter: comma-separated, repeatable; items trimmed, empty items dropped.
    fn list(&self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn statuses<T: Copy + PartialEq>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for raw in self.list(name) {
            let st = parse(raw).ok_or_else(|| {
                Error::BadRequest(format!(
                    "{name}: unknown status {raw:?} (expected a comma-separated list of {expected})"
                ))
            })?;
            if !out.contains(&st) {
                out.push(st);
            }
        }
        Ok(out)
    }

    fn paging(&self) -> Result<Paging, Error> {
        Paging::parse(self.single("limit")?, self.single("offset")?)
    }

    fn project_id(&self) -> Result<Option<ProjectId>, Error> {
        Ok(self.single("projectId")?.map(ProjectId::from))
    }
}

const JOB_STATUSES: &str = "registered, queued, running, completed, cancelled, skipped";
const EXECUTION_STATUSES: &str = "planned, started, complete, cancelled";

/// The filters of `GET /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFilter {
    /// Only this project of the caller's (404 if it is not theirs); all of them when absent.
    pub project_id: Option<ProjectId>,
    /// Only jobs in these statuses; any when empty.
    pub statuses: Vec<JobStatus>,
    /// Only this job, or the occurrences of this generator.
    pub id: Option<JobId>,
    /// The page.
    pub paging: Paging,
}

impl JobFilter {
    /// From the query string: `status` (comma-separated, repeatable), `id`, `projectId`,
    /// `limit`, `offset`. Unknown parameters are ignored; bad values are a 400 naming the field.
    pub fn from_query(pairs: &[(String, String)]) -> Result<JobFilter, Error> {
        let q = Params(pairs);
        Ok(JobFilter {
            project_id: q.project_id()?,
            statuses: q.statuses("status", JobStatus::parse, JOB_STATUSES)?,
            id: q.single("id")?.map(JobId::from),
            paging: q.paging()?,
        })
    }
}

/// The filters of `GET /executions`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionFilter {
    /// Only this project of the caller's (404 if it is not theirs); all of them when absent.
    pub project_id: Option<ProjectId>,
    /// Only this job's executions.
    pub job_id: Option<JobId>,
    /// Only executions of jobs with this custom key.
    pub custom_key: Option<String>,
    /// Only executions whose job is in one of these statuses.
    pub job_statuses: Vec<JobStatus>,
    /// Only executions in one of these statuses.
    pub execution_statuses: Vec<ExecutionStatus>,
    /// Only executions whose response status matches.
    pub http_status: Option<HttpStatusFilter>,
    /// The page.
    pub paging: Paging,
}

impl ExecutionFilter {
    /// From the query string: `jobId`, `customKey`, `jobStatus` and `executionStatus`
    /// (comma-separated, repeatable), `httpStatus` (`503` or `5xx`), `projectId`, `limit`,
    /// `offset`. Unknown parameters are ignored; bad values are a 400 naming the field.
    pub fn from_query(pairs: &[(String, String)]) -> Result<ExecutionFilter, Error> {
        let q = Params(pairs);
        let http_status = match q.single("httpStatus")? {
            None => None,
            Some(raw) => Some(HttpStatusFilter::parse(raw).ok_or_else(|| {
                Error::BadRequest(format!(
                    "httpStatus must be a status code (100 to 599) or a class like 5xx (got {raw:?})"
                ))
            })?),
        };
        Ok(ExecutionFilter {
            project_id: q.project_id()?,
            job_id: q.single("jobId")?.map(JobId::from),
            custom_key: q.single("customKey")?.map(str::to_owned),
            job_statuses: q.statuses("jobStatus", JobStatus::parse, JOB_STATUSES)?,
            execution_statuses: q.statuses(
                "executionStatus",
                ExecutionStatus::parse,
                EXECUTION_STATUSES,
            )?,
            http_status,
            paging: q.paging()?,
        })
    }
}

/// A page of jobs (`ListJobsResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedJobs {
    /// The jobs, newest `scheduled_at` first.
    pub jobs: Vec<Job>,
    /// Matching jobs before paging.
    pub total: u64,
    /// The page size asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
}

/// A page of executions (`ListDashboardExecutionsResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedExecutions {
    /// The executions, newest `planned_at` first.
    pub executions: Vec<ExecutionListing>,
    /// Matching executions before paging.
    pub total: u64,
    /// The page size asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
}

/// 400 unless `slug` matches `^[a-z0-9_-]{3,40}$`.
pub fn validate_project_slug(slug: &str) -> Result<(), Error> {
    let valid = (3..=40).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "slug {slug:?} must match ^[a-z0-9_-]{{3,40}}$"
        )))
    }
}

/// Runs a slow password computation off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(format!("password hashing task failed: {e}")))
}

impl TimeTriggers {
    /// Creates a user with a default project (its slug derived from the email's local part,
    /// made unique) and signs them in. 400 for an invalid email or a password under 8
    /// characters; 409 if the email is taken. Whether sign-up is open is the caller's (the
    /// HTTP layer's) decision.
    pub async fn signup(&self, email: &str, password: &str) -> Result<SignedUp, Error> {
        let email = normalize_email(email)?;
        validate_password(password)?;
        if self.store().find_user_by_email(&email).await?.is_some() {
            return Err(email_taken(&email));
        }
        let password = password.to_owned();
        let password_hash = blocking(move || hash_password(&password)).await??;
        let base = default_project_slug(&email);
        let mut slug = base.clone();
        if self.store().get_project_by_slug(&slug).await?.is_some() {
            slug = suffixed(&base);
        }
        // A slug taken between the look-up and the insert (or by a suffix collision) is
        // retried with a new suffix; an email taken meanwhile is a 409.
        let mut attempts = 0;
        let (user, project) = loop {
            attempts += 1;
            let now = self.now();
            let new = NewUser {
                id: UserId::generate(),
                email: email.clone(),
                password_hash: password_hash.clone(),
                project: NewProject {
                    id: ProjectId::generate(),
                    slug: slug.clone(),
                    month_quota: self.config().default_month_quota,
                    now,
                },
                now,
            };
            let project = new.project.clone();
            match self.store().create_user(new).await {
                Ok(user) => {
                    break (
                        user,
                        Project {
                            id: project.id,
                            slug: project.slug,
                            month_quota: project.month_quota,
                            created_at: project.now,
                        },
                    )
                }
                Err(StoreError::Conflict(reason)) => {
                    if self.store().find_user_by_email(&email).await?.is_some() {
                        return Err(email_taken(&email));
                    }
                    if attempts >= 5 {
                        return Err(Error::Conflict(reason));
                    }
                    slug = suffixed(&base);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let session = self.open_session(&user.id).await?;
        Ok(SignedUp {
            user,
            project,
            session,
        })
    }

    /// Signs a user in: a new session. 401 with the same message, and after the same
    /// password-hash work, whether the email is unknown or the password wrong.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoggedIn, Error> {
        let email = email.trim().to_lowercase();
        let found = if email.is_empty() {
            None
        } else {
            self.store().find_user_by_email(&email).await?
        };
        let stored = found.as_ref().map(|c| c.password_hash.clone());
        // An over-long password cannot match (sign-up refuses it); verify something of the
        // same cost anyway.
        let candidate = if password.len() > MAX_PASSWORD_BYTES {
            String::new()
        } else {
            password.to_owned()
        };
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let ok = blocking(move || verify_password(&candidate, stored.as_deref())).await?;
        match found {
            Some(creds) if ok && !too_long => {
                let session = self.open_session(&creds.user.id).await?;
                Ok(LoggedIn {
                    user: creds.user,
                    session,
                })
            }
            _ => Err(Error::Unauthorized(BAD_CREDENTIALS.into())),
        }
    }

    /// Revokes the session with this token at once. Idempotent: an unknown or already revoked
    /// token is fine.
    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        match self
            .store()
            .revoke_session(&hash_session_token(token))
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller behind a session token (the cookie value); 401 if the session is unknown,
    /// revoked or expired.
    pub async fn session_caller(&self, token: &str) -> Result<Caller, Error> {
        if token.is_empty() || token.len() > 256 {
            return Err(Error::Unauthorized(NO_SESSION.into()));
        }
        let session = self
            .store()
            .find_session(&hash_session_token(token), self.now())
            .await?
            .ok_or_else(|| Error::Unauthorized(NO_SESSION.into()))?;
        let projects = self.store().list_user_projects(&session.user.id).await?;
        Ok(Caller {
            credentials: Credentials::Session(session.user),
            projects,
        })
    }

    /// The caller behind an API key: scoped to the key's project. 401 if the key is unknown or
    /// deleted.
    pub async fn api_key_caller(&self, secret: &str) -> Result<Caller, Error> {
        let key = self.authenticate(secret).await?;
        let project = self
            .store()
            .get_project(&key.project_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("invalid API key".into()))?;
        Ok(Caller {
            credentials: Credentials::ApiKey(key),
            projects: vec![project],
        })
    }

    /// What `caller` may see and do.
    pub fn dashboard<'a>(&'a self, caller: &'a Caller) -> Dashboard<'a> {
        Dashboard {
            service: self,
            caller,
        }
    }

    async fn open_session(&self, user_id: &UserId) -> Result<SessionToken, Error> {
        let token = new_session_token();
        let now = self.now();
        let expires_at = now.saturating_add(SESSION_TTL);
        self.store()
            .create_session(NewSession {
                token_hash: hash_session_token(&token),
                user_id: user_id.clone(),
                expires_at,
                now,
            })
            .await?;
        Ok(SessionToken { token, expires_at })
    }
}

fn email_taken(email: &str) -> Error {
    Error::Conflict(format!("the email {email:?} is already registered"))
}

/// `base` + `-` + six random hex digits (at most 37 characters).
fn suffixed(base: &str) -> String {
    format!("{base}-{}", random_secret(3))
}

/// The dashboard as one caller sees it: every read and write is scoped to the caller's
/// projects, and an item of another project is a 404.
#[derive(Debug, Clone, Copy)]
pub struct Dashboard<'a> {
    pub(crate) service: &'a TimeTriggers,
    pub(crate) caller: &'a Caller,
}

impl Dashboard<'_> {
    /// The caller's projects.
    pub fn projects(&self) -> Vec<Project> {
        self.caller.projects.clone()
    }

    /// Creates a project owned by the signed-in user. 400 for a slug not matching
    /// `^[a-z0-9_-]{3,40}$`, 409 if taken, 403 for an API key (it acts for one project only).
    pub async fn create_project(&self, slug: &str) -> Result<Project, Error> {
        let Some(user) = self.caller.user() else {
            return Err(Error::Forbidden(
                "creating a project needs a signed-in user; an API key acts for its own project only"
                    .into(),
            ));
        };
        validate_project_slug(slug)?;
        let store = self.service.store();
        let project = NewProject {
            id: ProjectId::generate(),
            slug: slug.to_owned(),
            month_quota: self.service.config().default_month_quota,
            now: self.service.now(),
        };
        match store.create_user_project(&user.id, project).await {
            Ok(p) => Ok(p),
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "project slug {slug:?} is already taken"
            ))),
            Err(StoreError::NotFound) => Err(Error::Unauthorized(NO_SESSION.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The API keys of the caller's projects (or of `project_id`), newest first, masked.
    pub async fn list_keys(&self, project_id: Option<&ProjectId>) -> Result<Vec<ApiKey>, Error> {
        let scope = self.caller.scope(project_id)?;
        Ok(self.service.store().list_api_keys(&scope).await?)
    }

    /// Creates an API key named `name` (trimmed, 1..=100 characters) in `project_id` or the
    /// caller's first project. The secret is in the result, and nowhere else ever again.
    pub async fn create_key(
        &self,
        name: &str,
        project_id: Option<&ProjectId>,
    ) -> Result<CreatedApiKey, Error> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_KEY_NAME_CHARS {
            return Err(Error::BadRequest(format!(
                "name must have 1 to {MAX_KEY_NAME_CHARS} characters"
            )));
        }
        let project = self.caller.home(project_id)?;
        self.service.create_api_key(&project.id, name).await
    }

    /// Deletes an API key of the caller's projects; it is refused (401) from then on. 404 if
    /// no such key is in the caller's projects.
    pub async fn delete_key(&self, id: &ApiKeyId) -> Result<(), Error> {
        let not_found = || Error::NotFound(format!("API key {:?} not found", id.as_str()));
        let store = self.service.store();
        let keys = store.list_api_keys(&self.caller.scope(None)?).await?;
        let key = keys.iter().find(|k| &k.id == id).ok_or_else(not_found)?;
        match self.service.delete_api_key(&key.project_id, id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// A page of the caller's jobs, newest `scheduled_at` first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<ListedJobs, Error> {
        let query = JobQuery {
            project_ids: self.caller.scope(filter.project_id.as_ref())?,
            statuses: filter.statuses.clone(),
            id: filter.id.clone(),
            limit: filter.paging.limit,
            offset: filter.paging.offset,
        };
        let page = self.service.store().list_jobs(&query).await?;
        Ok(ListedJobs {
            jobs: page.jobs,
            total: page.total,
            limit: query.limit,
            offset: query.offset,
        })
    }

    /// A job of the caller's, by id.
    pub async fn job(&self, id: &JobId) -> Result<Job, Error> {
        for project in &self.caller.projects {
            if let Some(job) = self.service.store().get_job(&project.id, id).await? {
                return Ok(job);
            }
        }
        Err(job_not_found(id))
    }

    /// A job's executions, newest first, with response headers and bodies. 404 if the job is
    /// not the caller's.
    pub async fn job_executions(&self, id: &JobId) -> Result<Vec<Execution>, Error> {
        for project in &self.caller.projects {
            if let Some(executions) = self
                .service
                .store()
                .list_job_executions(&project.id, id)
                .await?
            {
                return Ok(executions);
            }
        }
        Err(job_not_found(id))
    }

    /// Runs a finished job (`completed`, `cancelled` or `skipped`) again now, as a new
    /// execution with the next attempt number, `triggered_by` `Replay` or `Retry`. The job
    /// goes back to `queued`; one quota unit is charged. 404 if the job is not the caller's;
    /// 400 if it is not finished, if the quota is used up, or if its custom key is now held by
    /// another live item.
    pub async fn replay(&self, id: &JobId, triggered_by: TriggeredBy) -> Result<Replayed, Error> {
        if triggered_by == TriggeredBy::Scheduler {
            return Err(Error::BadRequest(
                "triggeredBy must be \"replay\" or \"retry\"".into(),
            ));
        }
        let now = self.service.now();
        let replay = ReplayJob {
            project_ids: self.caller.scope(None)?,
            job_id: id.clone(),
            execution_id: ExecutionId::generate(),
            triggered_by,
            now,
        };
        let done = self
            .service
            .store()
            .replay_job(replay)
            .await?
            .map_err(|refusal| replay_error(refusal, id))?;
        self.service.signal().due_at(done.due_at);
        Ok(done)
    }

    /// A page of the executions of the caller's jobs, newest `planned_at` first.
    pub async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<ListedExecutions, Error> {
        let query = ExecutionQuery {
            project_ids: self.caller.scope(filter.project_id.as_ref())?,
            job_id: filter.job_id.clone(),
            custom_key: filter.custom_key.clone(),
            job_statuses: filter.job_statuses.clone(),
            execution_statuses: filter.execution_statuses.clone(),
            http_status: filter.http_status,
            limit: filter.paging.limit,
            offset: filter.paging.offset,
        };
        let page = self.service.store().list_executions(&query).await?;
        Ok(ListedExecutions {
            executions: page.executions,
            total: page.total,
            limit: query.limit,
            offset: query.offset,
        })
    }
}

fn job_not_found(id: &JobId) -> Error {
    Error::NotFound(format!("job {:?} not found", id.as_str()))
}

fn replay_error(refusal: ReplayRefusal, id: &JobId) -> Error {
    let id = id.as_str();
    match refusal {
        ReplayRefusal::NotFound => Error::NotFound(format!("job {id:?} not found")),
        ReplayRefusal::NotFinished(status) => Error::BadRequest(format!(
            "job {id:?} is {}: only completed, cancelled or skipped jobs can be run again",
            status.as_str()
        )),
        ReplayRefusal::CustomKeyTaken => Error::BadRequest(format!(
            "job {id:?} cannot run again: its custom key is now held by another live item"
        )),
        ReplayRefusal::QuotaExceeded => {
            Error::BadRequest("the project's monthly quota is used up".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn bad(result: Result<impl fmt::Debug, Error>, field: &str) {
        match result {
            Err(Error::BadRequest(m)) => assert!(m.starts_with(field), "{m:?} names {field}"),
            other => panic!("expected a 400 naming {field}, got {other:?}"),
        }
    }

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(Paging::parse(None, None).unwrap(), Paging::default());
        assert_eq!(
            Paging::parse(Some("1"), Some("0")).unwrap(),
            Paging {
                limit: 1,
                offset: 0
            }
        );
        assert_eq!(
            Paging::parse(Some("500"), Some("12345")).unwrap().limit,
            500
        );
        for l in [
            "0",
            "501",
            "-1",
            "1.5",
            "abc",
            "1e2",
            "+5",
            "0x10",
            "99999999999999999999",
        ] {
            bad(Paging::parse(Some(l), None), "limit");
        }
        for o in ["-1", "1.0", "x", "NaN", "Infinity", "99999999999999999999"] {
            bad(Paging::parse(None, Some(o)), "offset");
        }
    }

    #[test]
    fn job_filters_from_the_query() {
        let f = JobFilter::from_query(&pairs(&[
            ("status", "completed, cancelled"),
            ("status", "skipped,completed"),
            ("id", "job_1"),
            ("projectId", "prj_1"),
            ("limit", "10"),
            ("offset", "20"),
            ("unknown", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            f.statuses,
            vec![
                JobStatus::Completed,
                JobStatus::Cancelled,
                JobStatus::Skipped
            ]
        );
        assert_eq!(f.id, Some(JobId::from("job_1")));
        assert_eq!(f.project_id, Some(ProjectId::from("prj_1")));
        assert_eq!(
            f.paging,
            Paging {
                limit: 10,
                offset: 20
            }
        );
        let empty =
            JobFilter::from_query(&pairs(&[("status", ""), ("limit", ""), ("id", " ")])).unwrap();
        assert_eq!(empty, JobFilter::default());
        bad(
            JobFilter::from_query(&pairs(&[("status", "completed,done")])),
            "status",
        );
        bad(
            JobFilter::from_query(&pairs(&[("limit", "1"), ("limit", "2")])),
            "limit",
        );
    }

    #[test]
    fn execution_filters_from_the_query() {
        let f = ExecutionFilter::from_query(&pairs(&[
            ("jobId", "job_1"),
            ("customKey", "nightly"),
            ("jobStatus", "completed"),
            ("executionStatus", "complete,cancelled"),
            ("httpStatus", "5xx"),
        ]))
        .unwrap();
        assert_eq!(f.job_id, Some(JobId::from("job_1")));
        assert_eq!(f.custom_key.as_deref(), Some("nightly"));
        assert_eq!(f.job_statuses, vec![JobStatus::Completed]);
        assert_eq!(
            f.execution_statuses,
            vec![ExecutionStatus::Complete, ExecutionStatus::Cancelled]
        );
        assert_eq!(f.http_status, Some(HttpStatusFilter::Class(5)));
        bad(
            ExecutionFilter::from_query(&pairs(&[("httpStatus", "5x")])),
            "httpStatus",
        );
        bad(
            ExecutionFilter::from_query(&pairs(&[("jobStatus", "complete")])),
            "jobStatus",
        );
        bad(
            ExecutionFilter::from_query(&pairs(&[("executionStatus", "completed")])),
            "executionStatus",
        );
        bad(
            ExecutionFilter::from_query(&pairs(&[("offset", "-3")])),
            "offset",
        );
    }

    #[test]
    fn slugs_follow_the_rule() {
        assert!(validate_project_slug("abc").is_ok());
        assert!(validate_project_slug("my_app-2").is_ok());
        assert!(validate_project_slug(&"a".repeat(40)).is_ok());
        for bad in ["ab", "ABC", "a b", "héllo", "a.b", ""] {
            assert!(validate_project_slug(bad).is_err(), "{bad}");
        }
        assert!(validate_project_slug(&"a".repeat(41)).is_err());
    }

    fn project(slug: &str) -> Project {
        Project {
            id: ProjectId::from(format!("prj_{slug}").as_str()),
            slug: slug.into(),
            month_quota: crate::MonthQuota::Unlimited,
            created_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn callers_see_only_their_projects() {
        let user = User {
            id: UserId::from("usr_1"),
            email: "a@b".into(),
            created_at: Timestamp::EPOCH,
        };
        let caller = Caller {
            credentials: Credentials::Session(user.clone()),
            projects: vec![project("one"), project("two")],
        };
        assert_eq!(caller.user(), Some(&user));
        assert_eq!(caller.scope(None).unwrap().len(), 2);
        let two = ProjectId::from("prj_two");
        assert_eq!(caller.scope(Some(&two)).unwrap(), vec![two.clone()]);
        assert_eq!(caller.home(None).unwrap().slug, "one");
        assert_eq!(caller.home(Some(&two)).unwrap().slug, "two");
        let other = ProjectId::from("prj_other");
        assert!(matches!(
            caller.scope(Some(&other)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(caller.home(Some(&other)), Err(Error::NotFound(_))));

        let lonely = Caller {
            credentials: Credentials::Session(user),
            projects: vec![],
        };
        assert!(lonely.scope(None).unwrap().is_empty());
        assert!(matches!(lonely.home(None), Err(Error::NotFound(_))));
    }
}

//! Parameters and results of the dashboard's [`crate::Store`] methods (users, sessions,
//! project membership, listings and replay), and the replay rule stores apply inside their
//! transaction.

use crate::ids::{ExecutionId, JobId, ProjectId, UserId};
use crate::model::{ExecutionStatus, JobStatus, TriggeredBy};
use crate::store::NewProject;
use crate::time::Timestamp;

/// A new user with its first project. [`crate::Store::create_user`] creates the user, the
/// project and the user's membership of it in one transaction.
#[derive(Clone)]
pub struct NewUser {
    /// Its id.
    pub id: UserId,
    /// Normalised email (trimmed, lower-case); unique among users.
    pub email: String,
    /// The argon2id PHC string of the password.
    pub password_hash: String,
    /// The user's first project (its default).
    pub project: NewProject,
    /// Creation time (of the user and of the membership).
    pub now: Timestamp,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("project", &self.project)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A new session. The token itself is never stored: only its hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Hex SHA-256 of the session token (the cookie value); unique.
    pub token_hash: String,
    /// The signed-in user.
    pub user_id: UserId,
    /// The session is valid strictly before this instant.
    pub expires_at: Timestamp,
    /// Creation time.
    pub now: Timestamp,
}

/// Which jobs [`crate::Store::list_jobs`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs of these projects (the caller's scope). Empty matches nothing.
    pub project_ids: Vec<ProjectId>,
    /// Only jobs in one of these statuses; empty means any status.
    pub statuses: Vec<JobStatus>,
    /// Only the job with this id, or the occurrence jobs of the generator with this id.
    pub id: Option<JobId>,
    /// At most this many jobs (the service keeps it within 1..=500).
    pub limit: u32,
    /// Skip this many matching jobs first.
    pub offset: u64,
}

/// A filter on an execution's HTTP response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpStatusFilter {
    /// Exactly this status (100..=599).
    Exact(u16),
    /// A class: `Class(5)` is `5xx`, i.e. 500..=599 (1..=5).
    Class(u16),
}

impl HttpStatusFilter {
    /// The statuses matched, as an inclusive range.
    pub fn range(self) -> (u16, u16) {
        match self {
            HttpStatusFilter::Exact(s) => (s, s),
            HttpStatusFilter::Class(c) => (c * 100, c * 100 + 99),
        }
    }

    /// Parses `503` (100..=599) or a class `5xx` / `5XX` (1xx..=5xx); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() == 3 && s[1..].eq_ignore_ascii_case("xx") {
            return match s.as_bytes()[0] {
                c @ b'1'..=b'5' => Some(HttpStatusFilter::Class(u16::from(c - b'0'))),
                _ => None,
            };
        }
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
            let n: u16 = s.parse().ok()?;
            return (100..=599)
                .contains(&n)
                .then_some(HttpStatusFilter::Exact(n));
        }
        None
    }
}

/// Which executions [`crate::Store::list_executions`] returns. Every filter that is set must
/// hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only executions of jobs of these projects (the caller's scope). Empty matches nothing.
    pub project_ids: Vec<ProjectId>,
    /// Only executions of this job.
    pub job_id: Option<JobId>,
    /// Only executions of jobs whose custom key is exactly this (every job that ever held it).
    pub custom_key: Option<String>,
    /// Only executions whose job is in one of these statuses; empty means any.
    pub job_statuses: Vec<JobStatus>,
    /// Only executions in one of these statuses; empty means any.
    pub execution_statuses: Vec<ExecutionStatus>,
    /// Only executions whose response status matches (executions without a response never
    /// match).
    pub http_status: Option<HttpStatusFilter>,
    /// At most this many executions (the service keeps it within 1..=500).
    pub limit: u32,
    /// Skip this many matching executions first.
    pub offset: u64,
}

/// A replay (or dashboard retry): run a finished job again now as a new execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayJob {
    /// The job must belong to one of these projects (the caller's scope).
    pub project_ids: Vec<ProjectId>,
    /// The job.
    pub job_id: JobId,
    /// Id of the new execution.
    pub execution_id: ExecutionId,
    /// `Replay` or `Retry`.
    pub triggered_by: TriggeredBy,
    /// The current time: the new execution is planned and due at it, and the quota unit is
    /// charged to its month.
    pub now: Timestamp,
}

/// An accepted replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The job.
    pub job_id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// The new planned execution.
    pub execution_id: ExecutionId,
    /// Its attempt number: the job's highest attempt number so far + 1 (1 if it had none).
    pub attempt_number: u32,
    /// When it is due (the request's `now`).
    pub due_at: Timestamp,
    /// Quota left after the charge; `None` when unlimited.
    pub month_quota_remaining: Option<u64>,
}

/// Why a replay was refused. Stores check in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// No such job in the caller's projects.
    NotFound,
    /// The job is not `completed`, `cancelled` or `skipped` (it is in this status).
    NotFinished(JobStatus),
    /// The job's custom key is now held by another live item (a `registered`, `queued` or
    /// `running` job, or an active generator) of the project, so the job cannot become live
    /// again.
    CustomKeyTaken,
    /// The project's monthly quota is used up.
    QuotaExceeded,
}

/// The replay rule: only a finished job (`completed`, `cancelled` or `skipped`) runs again.
pub fn plan_replay(status: JobStatus) -> Result<(), ReplayRefusal> {
    match status {
        JobStatus::Completed | JobStatus::Cancelled | JobStatus::Skipped => Ok(()),
        other => Err(ReplayRefusal::NotFinished(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_jobs_replay() {
        for st in JobStatus::ALL {
            let finished = matches!(
                st,
                JobStatus::Completed | JobStatus::Cancelled | JobStatus::Skipped
            );
            assert_eq!(plan_replay(st).is_ok(), finished, "{st:?}");
            if finished {
                assert!(st.can_become(JobStatus::Queued));
            }
        }
    }

    #[test]
    fn http_status_filters() {
        use HttpStatusFilter::*;
        assert_eq!(HttpStatusFilter::parse("503"), Some(Exact(503)));
        assert_eq!(HttpStatusFilter::parse("5xx"), Some(Class(5)));
        assert_eq!(HttpStatusFilter::parse("2XX"), Some(Class(2)));
        assert_eq!(HttpStatusFilter::parse(" 404 "), Some(Exact(404)));
        for bad in [
            "", "99", "600", "6xx", "0xx", "50x", "5x", "abc", "+20", "-200", "2000", "20.0", "x5x",
        ] {
            assert_eq!(HttpStatusFilter::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Class(5).range(), (500, 599));
        assert_eq!(Exact(201).range(), (201, 201));
    }
}

use crate::model::{Execution, Job, JobStatus};

/// One page of jobs and the number of jobs matching before paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The jobs of the page, newest `scheduled_at` first.
    pub jobs: Vec<Job>,
    /// How many jobs match the query, ignoring `limit` and `offset`.
    pub total: u64,
}

/// The job facts a dashboard shows beside each execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionJob {
    /// The job's custom key.
    pub custom_key: Option<String>,
    /// The job's title.
    pub title: Option<String>,
    /// The job's current status.
    pub status: JobStatus,
    /// The job's target URL.
    pub url: String,
    /// The job's HTTP method.
    pub method: String,
    /// The slug of the job's project.
    pub project_slug: String,
}

/// An execution in a cross-job listing, with its job's facts.
///
/// `execution.response_headers` and `execution.response_body` are always `None` here: a
/// listing never carries response bodies (up to 64 KiB each); they are read per job with
/// [`crate::Store::list_job_executions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionListing {
    /// The execution (without response headers and body).
    pub execution: Execution,
    /// Its job.
    pub job: ExecutionJob,
}

/// One page of executions and the number of executions matching before paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionPage {
    /// The executions of the page, newest `planned_at` first.
    pub executions: Vec<ExecutionListing>,
    /// How many executions match the query, ignoring `limit` and `offset`.
    pub total: u64,
}

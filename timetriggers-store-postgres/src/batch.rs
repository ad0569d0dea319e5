//! Group commit for the most common write: a new one-off job without id or key.
//!
//! Such a job needs no decision (with neither id nor key, `plan_upsert` always creates) and,
//! in a project with an unlimited quota, no refusal is possible either; so concurrent ones can
//! be inserted together. Callers queue them; a task takes everything queued (up to
//! [`MAX_BATCH`]) and inserts it in **one statement** — jobs, planned executions and quota
//! shards — which commits before any caller is answered. Per-statement costs (a round trip,
//! executor start-up, a commit and its WAL flush) are paid once per batch instead of once per
//! job; under load batches grow by themselves, idle a batch is one job.
//!
//! [`BATCHES_IN_FLIGHT`] statements run at once, on separate connections. If a statement
//! fails, each of its jobs is answered [`Created::Retry`] and the caller inserts it alone, so
//! that one job's error is never another's.

use std::sync::Arc;

use sqlx::PgPool;
use timetriggers_core::{StoreError, StoreResult, UpsertTrigger};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{closed, from_sqlx};
use crate::rows::{duration_ms, headers_json, int4, ms};
use crate::triggers::{random_shard, status_for};

/// Most jobs inserted by one statement.
const MAX_BATCH: usize = 256;

/// Statements running at once (each on its own pooled connection). One: everything that
/// arrives while a statement runs forms the next one, so batches are as large as the load
/// makes them. With two, W1's 16 callers made batches of about 8 jobs, and per-statement
/// executor start-up showed in PostgreSQL's profile; one scheduled 10 % faster (four
/// interleaved runs each: 5.3 / 5.5 / 5.5 / 6.2k/s with two, 6.0 / 6.1 / 5.8 / 6.9k/s with
/// one).
const BATCHES_IN_FLIGHT: usize = 1;

/// Jobs waiting for a statement; callers wait when it is full.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// What became of a queued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// Inserted and committed.
    Yes,
    /// Not inserted: the project does not exist or has a quota (take the general path).
    NotEligible,
    /// Not inserted: the batch's statement failed (insert it alone).
    Retry,
}

struct Queued {
    job: NewJob,
    reply: oneshot::Sender<Created>,
}

/// The columns of one queued job, encoded.
struct NewJob {
    id: String,
    project_id: String,
    title: Option<String>,
    status: &'static str,
    scheduled_at: i64,
    method: String,
    url: String,
    headers: String,
    body: bytes::Bytes,
    tags: String,
    max_attempts: i32,
    timeout_ms: i64,
    origin: &'static str,
    registered_at: i64,
    execution_id: String,
    planned: bool,
    month: String,
}

/// The handle callers queue jobs on. The task stops when every handle is gone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the batching task over `pool`.
    pub(crate) fn spawn(pool: PgPool) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(pool, rx));
        Batcher { tx }
    }

    /// Queues `req` (a keyless one-off due `at`, skipped if `skip`) and waits for its batch.
    pub(crate) async fn create(
        &self,
        req: &UpsertTrigger,
        at: timetriggers_core::Timestamp,
        skip: bool,
    ) -> StoreResult<Created> {
        let def = &req.definition;
        let job = NewJob {
            id: req.new_job_id.as_str().to_owned(),
            project_id: req.project_id.as_str().to_owned(),
            title: def.title.clone(),
            status: status_for(skip).as_str(),
            scheduled_at: ms(at),
            method: def.request.method.clone(),
            url: def.request.url.clone(),
            headers: headers_json(&def.request.headers)?,
            body: def.request.body.clone(),
            tags: serde_json::to_string(&def.tags).map_err(StoreError::backend)?,
            max_attempts: int4(def.options.max_attempts),
            timeout_ms: duration_ms(def.options.timeout),
            origin: req.origin.as_str(),
            registered_at: ms(req.now),
            execution_id: req.new_execution_id.as_str().to_owned(),
            planned: !skip,
            month: req.now.month_key(),
        };
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Queued { job, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        // Wait for a free connection slot first, so that jobs arriving meanwhile join the batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            insert(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Inserts the batch's eligible jobs in one statement and answers every caller.
async fn insert(pool: &PgPool, batch: Vec<Queued>) {
    let jobs: Vec<&NewJob> = batch.iter().map(|q| &q.job).collect();
    let shard = random_shard();
    let created: Result<Vec<String>, StoreError> = sqlx::query_scalar(INSERT_BATCH)
        .bind(jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.project_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.title.as_deref()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.status).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.scheduled_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.method.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.url.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.headers.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.body.as_ref()).collect::<Vec<&[u8]>>())
        .bind(jobs.iter().map(|j| j.tags.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.timeout_ms).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.origin).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.registered_at).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.execution_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.planned).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.month.as_str()).collect::<Vec<_>>())
        .bind(shard)
        .fetch_all(pool)
        .await
        .map_err(from_sqlx);
    let created = match created {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "batched insert failed; inserting one by one");
            for q in batch {
                let _ = q.reply.send(Created::Retry);
            }
            return;
        }
    };
    let created: std::collections::HashSet<String> = created.into_iter().collect();
    for q in batch {
        let answer = if created.contains(&q.job.id) {
            Created::Yes
        } else {
            Created::NotEligible
        };
        // The caller may have gone away; its job is committed all the same.
        let _ = q.reply.send(answer);
    }
}

/// One statement for a whole batch. Rows whose project is missing or has a quota are left out
/// (their callers take the general path). Tags arrive as JSON arrays (a batch's tag lists have
/// different lengths, which a 2-D array cannot hold); quota usage is charged per project and
/// month on one shard, so that no row is updated twice by the statement.
const INSERT_BATCH: &str = "WITH input AS ( \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
             $6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[], $11::int4[], \
             $12::int8[], $13::text[], $14::int8[], $15::text[], $16::bool[], $17::text[]) \
         AS t(id, project_id, title, status, scheduled_at, method, url, headers, body, tags, \
             max_attempts, timeout_ms, origin, registered_at, execution_id, planned, month)), \
     accepted AS ( \
         SELECT input.* FROM input JOIN projects p \
             ON p.id = input.project_id AND p.month_quota IS NULL), \
     job AS ( \
         INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, url, \
             headers, body, tags, max_attempts, timeout_ms, origin, registered_at) \
         SELECT id, project_id, NULL, title, status, scheduled_at, method, url, headers::jsonb, \
             body, ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), max_attempts, \
             timeout_ms, origin, registered_at \
         FROM accepted \
         RETURNING id), \
     planned AS ( \
         INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
             planned_at, due_at) \
         SELECT execution_id, id, project_id, 1, 'scheduler', 'planned', scheduled_at, \
             scheduled_at \
         FROM accepted WHERE planned AND id IN (SELECT id FROM job)), \
     charged AS ( \
         INSERT INTO quota_usage (project_id, month, shard, used) \
         SELECT project_id, month, $18, COUNT(*) FROM accepted GROUP BY project_id, month \
         ON CONFLICT (project_id, month, shard) DO UPDATE \
             SET used = quota_usage.used + excluded.used) \
     SELECT id FROM job";

//! Group insert for the most common write: a new one-off job without id or key.
//!
//! Such a job needs no decision (with neither id nor key, `plan_upsert` always creates), so
//! concurrent ones can be written together. Callers queue them; a task takes everything
//! queued (up to [`MAX_BATCH`]) and hands the lot to the writer as **one operation**: one
//! savepoint, one quota read and one quota write per project and month, then the rows. With a
//! savepoint and a quota row per job, SQLite copied the same index pages into its sub-journal
//! once per job; now once per group. Under load groups grow by themselves; idle a group is one
//! job. [`GROUPS_IN_FLIGHT`] groups may wait in the writer's queue at once, so that the next
//! group forms while one is written.
//!
//! A job whose project does not exist, or whose project has no quota left, is not inserted:
//! its caller takes the general path, which answers as always (not found, quota exceeded). If
//! the group's operation fails, nothing of it is kept and every caller takes the general path,
//! so one job's error is never another's.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;

use rusqlite::Connection;
use timetriggers_core::{
    JobKind, MonthQuota, ProjectId, StoreResult, TriggerSchedule, UpsertOperation, UpsertTrigger,
    Upserted,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::closed;
use crate::triggers::{charge_units, insert_job, quota_state};
use crate::writer::Writer;

/// Most jobs in one group.
const MAX_BATCH: usize = 256;

/// Groups handed to the writer and not yet answered.
const GROUPS_IN_FLIGHT: usize = 2;

/// Jobs waiting for a group; callers wait when it is full.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// What became of a queued job.
#[derive(Debug)]
pub(crate) enum Created {
    /// Inserted and committed.
    Yes(Upserted),
    /// Not inserted (no such project, no quota left, or the group failed): take the general
    /// path.
    No,
}

struct Queued {
    req: Arc<UpsertTrigger>,
    reply: oneshot::Sender<Created>,
}

/// The handle callers queue jobs on. The task stops when every handle is gone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the grouping task in front of `writer`.
    pub(crate) fn spawn(writer: Writer) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(writer, rx));
        Batcher { tx }
    }

    /// Whether `req` can be grouped: a new one-off job with neither id nor key.
    pub(crate) fn eligible(req: &UpsertTrigger) -> bool {
        req.trigger_id.is_none()
            && req.custom_key.is_none()
            && matches!(req.definition.schedule, TriggerSchedule::Once { .. })
    }

    /// Queues `req` (see [`Batcher::eligible`]) and waits for its group's commit.
    pub(crate) async fn create(&self, req: Arc<UpsertTrigger>) -> StoreResult<Created> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Queued { req, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())
    }
}

async fn run(writer: Writer, mut rx: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    loop {
        // Wait for a free slot first, so that jobs arriving meanwhile join the group.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut group, MAX_BATCH).await == 0 {
            return;
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            let reqs: Vec<Arc<UpsertTrigger>> = group.iter().map(|q| q.req.clone()).collect();
            let inserted = writer.write(move |conn| insert_group(conn, &reqs)).await;
            drop(permit);
            match inserted {
                Ok(answers) => {
                    for (Queued { req, reply }, answer) in group.into_iter().zip(answers) {
                        // The caller gets its request back unshared if it must go on with it.
                        drop(req);
                        // The caller may have gone away; its job is committed all the same.
                        let _ = reply.send(answer.map_or(Created::No, Created::Yes));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = group.len(), "grouped insert failed; inserting one by one");
                    for Queued { req, reply } in group {
                        drop(req);
                        let _ = reply.send(Created::No);
                    }
                }
            }
        });
    }
}

/// A project's quota in one month, as the group goes.
struct Charge {
    quota: MonthQuota,
    used: u64,
    added: u64,
}

/// Inserts the group's jobs in the writer's transaction; per job, what to answer (`None`: take
/// the general path).
fn insert_group(
    conn: &Connection,
    reqs: &[Arc<UpsertTrigger>],
) -> StoreResult<Vec<Option<Upserted>>> {
    let mut charges: HashMap<(&ProjectId, String), Option<Charge>> = HashMap::new();
    let mut answers = Vec::with_capacity(reqs.len());
    for req in reqs {
        let TriggerSchedule::Once { at, skip } = req.definition.schedule else {
            answers.push(None);
            continue;
        };
        let month = req.now.month_key();
        let key = (&req.project_id, month);
        let charge = match charges.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(first) => {
                let read = quota_state(conn, first.key().0.as_str(), &first.key().1)?;
                first.insert(read.map(|(quota, used)| Charge {
                    quota,
                    used,
                    added: 0,
                }))
            }
        };
        // No such project, or no quota left: the general path answers.
        let Some(charge) = charge.as_mut() else {
            answers.push(None);
            continue;
        };
        if charge.quota.remaining(charge.used) == Some(0) {
            answers.push(None);
            continue;
        }
        insert_job(conn, req, &req.new_job_id, None, at, skip)?;
        charge.used += 1;
        charge.added += 1;
        answers.push(Some(Upserted {
            id: req.new_job_id.clone(),
            operation: UpsertOperation::Schedule,
            kind: JobKind::Job,
            scheduled_at: at,
            month_quota_remaining: charge.quota.remaining(charge.used),
        }));
    }
    for ((project, month), charge) in &charges {
        if let Some(charge) = charge.as_ref().filter(|c| c.added > 0) {
            charge_units(conn, project, month, charge.added)?;
        }
    }
    Ok(answers)
}

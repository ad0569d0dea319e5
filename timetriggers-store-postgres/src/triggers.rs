//! Create-or-reschedule, cancel, and reading jobs and their executions.
//!
//! The decisions are core's ([`plan_upsert`], [`plan_cancel`]); this module reads what they
//! need inside one transaction, with the rows it may change locked (`FOR NO KEY UPDATE`, so
//! foreign-key checks of concurrent inserts are not blocked), and applies what they decide.
//! Concurrent upserts of one custom key are serialised by a transaction-scoped advisory lock
//! on (project, key), taken before anything is read.

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::types::Json;
use timetriggers_core::lifecycle::{plan_cancel, plan_upsert};
use timetriggers_core::{
    Execution, FoundItem, ItemState, Job, JobId, JobKind, JobStatus, MonthQuota, ProjectId,
    Refusal, StoreError, StoreResult, Timestamp, TriggerRef, TriggerSchedule, UpsertOperation,
    UpsertPlan, UpsertTrigger, Upserted,
};

use crate::batch::{Batcher, Created};
use crate::error::from_sqlx;
use crate::generators;
use crate::rows::{self, duration_ms, int4, ms, EXECUTION_COLUMNS, GENERATOR_JOIN, JOB_COLUMNS};

/// The advisory-lock class of custom keys (`pg_advisory_xact_lock(class, hashtext(...))`), so
/// that the store's locks never collide with an application's own.
const KEY_LOCK_CLASS: i32 = 0x7474_6b79; // "ttky"

/// Quota usage is spread over this many rows per project and month (see the migration).
const QUOTA_SHARDS: i16 = 32;

// ---- lookups inside a transaction -----------------------------------------------------------

/// Serialises every transaction that looks up or takes `key` in the project.
pub(crate) async fn lock_key(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    key: &str,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))")
        .bind(KEY_LOCK_CLASS)
        .bind(project_id.as_str())
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// The item with this id in the project, in any state, locked. An occurrence job's generator
/// is locked before the job (the lock order of the migration).
pub(crate) async fn find_by_id(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    id: &JobId,
) -> StoreResult<Option<FoundItem>> {
    let row = sqlx::query(
        "SELECT id, status FROM jobs WHERE id = $1 AND project_id = $2 AND generator_id IS NULL \
         FOR NO KEY UPDATE",
    )
    .bind(id.as_str())
    .bind(project_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if let Some(row) = row {
        return found_job(&row).map(Some);
    }
    let generator: Option<Option<String>> =
        sqlx::query_scalar("SELECT generator_id FROM jobs WHERE id = $1 AND project_id = $2")
            .bind(id.as_str())
            .bind(project_id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    if let Some(Some(generator)) = generator {
        lock_generator(conn, &JobId::new(generator)).await?;
        let row = sqlx::query("SELECT id, status FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        return row.map(|row| found_job(&row)).transpose();
    }
    let row = sqlx::query(
        "SELECT id, status FROM generators WHERE id = $1 AND project_id = $2 FOR NO KEY UPDATE",
    )
    .bind(id.as_str())
    .bind(project_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    row.map(|row| found_generator(&row)).transpose()
}

/// Locks a generator row (whatever its state).
pub(crate) async fn lock_generator(conn: &mut PgConnection, id: &JobId) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM generators WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// The live item holding `key` in the project, locked. Occurrence jobs hold no key, so the
/// job found here has no generator to lock first.
pub(crate) async fn find_live_key_holder(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    key: &str,
) -> StoreResult<Option<FoundItem>> {
    let row = sqlx::query(
        "SELECT id, status FROM jobs WHERE project_id = $1 AND custom_key = $2 \
         AND custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running') \
         FOR NO KEY UPDATE",
    )
    .bind(project_id.as_str())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if let Some(row) = row {
        return found_job(&row).map(Some);
    }
    let row = sqlx::query(
        "SELECT id, status FROM generators WHERE project_id = $1 AND custom_key = $2 \
         AND custom_key IS NOT NULL AND status = 'active' FOR NO KEY UPDATE",
    )
    .bind(project_id.as_str())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    row.map(|row| found_generator(&row)).transpose()
}

fn found_job(row: &PgRow) -> StoreResult<FoundItem> {
    Ok(FoundItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Job(rows::job_status(row, "status")?),
    })
}

fn found_generator(row: &PgRow) -> StoreResult<FoundItem> {
    Ok(FoundItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Generator(rows::generator_status(row, "status")?),
    })
}

/// The project's quota and what it used this month; `NotFound` if there is no such project.
///
/// Unlimited projects are not locked and their usage is not summed (nothing depends on it).
/// A project with a finite quota is locked (`FOR NO KEY UPDATE`: upserts of that project queue
/// here, other projects and foreign-key checks do not) and its shards summed, so two concurrent
/// upserts can never both take the last unit.
pub(crate) async fn quota_state(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    month: &str,
) -> StoreResult<(MonthQuota, u64)> {
    let row = sqlx::query("SELECT month_quota FROM projects WHERE id = $1")
        .bind(project_id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .ok_or(StoreError::NotFound)?;
    if rows::month_quota(&row, "month_quota")? == MonthQuota::Unlimited {
        return Ok((MonthQuota::Unlimited, 0));
    }
    // Lock first, then sum in a statement of its own: in READ COMMITTED each statement reads
    // a snapshot taken when it starts, so a sum in the locking statement would miss what the
    // previous lock holder charged just before it committed.
    let row = sqlx::query("SELECT month_quota FROM projects WHERE id = $1 FOR NO KEY UPDATE")
        .bind(project_id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .ok_or(StoreError::NotFound)?;
    let quota = rows::month_quota(&row, "month_quota")?;
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(used), 0)::BIGINT FROM quota_usage \
         WHERE project_id = $1 AND month = $2",
    )
    .bind(project_id.as_str())
    .bind(month)
    .fetch_one(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok((quota, u64::try_from(used).unwrap_or(0)))
}

/// Charges `units` for `month` into a random shard.
pub(crate) async fn charge(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    month: &str,
    units: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO quota_usage (project_id, month, shard, used) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, month, shard) DO UPDATE SET used = quota_usage.used + $4",
    )
    .bind(project_id.as_str())
    .bind(month)
    .bind(random_shard())
    .bind(units)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

pub(crate) fn random_shard() -> i16 {
    rand::random::<u16>().rem_euclid(QUOTA_SHARDS as u16) as i16
}

// ---- upsert -----------------------------------------------------------------------------------

/// [`timetriggers_core::Store::upsert_trigger`]: one transaction, committed only when the
/// upsert is accepted (a refusal changes nothing). The most common call, a new one-off job
/// without id or key in a project with an unlimited quota, is one statement instead.
pub(crate) async fn upsert(
    pool: &PgPool,
    batcher: &Batcher,
    req: &UpsertTrigger,
) -> StoreResult<Result<Upserted, Refusal>> {
    if let (None, None, TriggerSchedule::Once { at, skip }) =
        (&req.trigger_id, &req.custom_key, &req.definition.schedule)
    {
        let created = match batcher.create(req, *at, *skip).await? {
            Created::Yes => true,
            Created::NotEligible => false,
            Created::Retry => create_unlimited(pool, req, *at, *skip).await?,
        };
        if created {
            return Ok(Ok(Upserted {
                id: req.new_job_id.clone(),
                operation: UpsertOperation::Schedule,
                kind: JobKind::Job,
                scheduled_at: *at,
                month_quota_remaining: None,
            }));
        }
    }
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let result = upsert_in(&mut tx, req).await?;
    match result {
        Ok(_) => tx.commit().await.map_err(from_sqlx)?,
        Err(_) => tx.rollback().await.map_err(from_sqlx)?,
    }
    Ok(result)
}

/// The create-or-reschedule inside the transaction. Order of refusals: quota, then whatever
/// [`plan_upsert`] refuses.
async fn upsert_in(
    conn: &mut PgConnection,
    req: &UpsertTrigger,
) -> StoreResult<Result<Upserted, Refusal>> {
    if let Some(key) = &req.custom_key {
        lock_key(conn, &req.project_id, key).await?;
    }
    let month = req.now.month_key();
    let (quota, used) = quota_state(conn, &req.project_id, &month).await?;
    if quota.remaining(used) == Some(0) {
        return Ok(Err(Refusal::QuotaExceeded));
    }

    let by_id = match &req.trigger_id {
        Some(id) => Some(find_by_id(conn, &req.project_id, id).await?),
        None => None,
    };
    let key_holder = match &req.custom_key {
        Some(key) => Some(find_live_key_holder(conn, &req.project_id, key).await?),
        None => None,
    };
    let existing_kind = |id: &JobId| {
        [&by_id, &key_holder]
            .into_iter()
            .flatten()
            .flatten()
            .find(|f| &f.id == id)
            .map(|f| f.state.kind())
    };
    let plan = match plan_upsert(by_id.clone(), key_holder.clone()) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };

    let existing = match &plan {
        UpsertPlan::Update(id) => existing_kind(id),
        UpsertPlan::Create => None,
    };
    let (id, operation, scheduled_at) = apply(conn, req, plan, existing).await?;
    charge(conn, &req.project_id, &month, 1).await?;
    Ok(Ok(Upserted {
        id,
        operation,
        kind: req.definition.schedule.kind(),
        scheduled_at,
        month_quota_remaining: quota.remaining(used.saturating_add(1)),
    }))
}

/// Applies a create-or-reschedule decision; `existing` is the kind of the item being updated
/// (whose row is locked). Returns the id, the operation and the fire time.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    req: &UpsertTrigger,
    plan: UpsertPlan,
    existing: Option<JobKind>,
) -> StoreResult<(JobId, UpsertOperation, Timestamp)> {
    Ok(match (plan, &req.definition.schedule) {
        (UpsertPlan::Create, TriggerSchedule::Once { at, skip }) => {
            let id = req.new_job_id.clone();
            insert_job(conn, req, &id, req.custom_key.as_deref(), *at, *skip).await?;
            (id, UpsertOperation::Schedule, *at)
        }
        (UpsertPlan::Create, TriggerSchedule::Cron { .. }) => {
            let id = req.new_job_id.clone();
            let first = generators::create(conn, req, &id, req.custom_key.as_deref()).await?;
            (id, UpsertOperation::Schedule, first)
        }
        (UpsertPlan::Update(id), TriggerSchedule::Once { at, skip }) => {
            if existing == Some(JobKind::Generator) {
                // A generator becomes a one-off job under the same id.
                let old_key = generators::remove(conn, &id).await?;
                let key = req.custom_key.clone().or(old_key);
                insert_job(conn, req, &id, key.as_deref(), *at, *skip).await?;
            } else {
                update_job(conn, req, &id, *at, *skip).await?;
            }
            (id, UpsertOperation::Reschedule, *at)
        }
        (UpsertPlan::Update(id), TriggerSchedule::Cron { .. }) => {
            let first = if existing == Some(JobKind::Generator) {
                generators::redefine(conn, req, &id).await?
            } else {
                // A registered job becomes a generator under the same id.
                let old_key = remove_job(conn, &id).await?;
                let key = req.custom_key.clone().or(old_key);
                generators::create(conn, req, &id, key.as_deref()).await?
            };
            (id, UpsertOperation::Reschedule, first)
        }
    })
}

/// Creates a one-off job without key (and its planned execution unless skipped) and charges
/// one unit, in one statement, if the project exists and its quota is unlimited: with neither
/// id nor key, [`plan_upsert`] always creates, and an unlimited quota refuses nothing. `false`
/// (nothing written) otherwise; the caller then takes the general path.
async fn create_unlimited(
    pool: &PgPool,
    req: &UpsertTrigger,
    at: Timestamp,
    skip: bool,
) -> StoreResult<bool> {
    let def = &req.definition;
    let created: i64 = sqlx::query_scalar(
        "WITH project AS ( \
             SELECT id FROM projects WHERE id = $2 AND month_quota IS NULL), \
         job AS ( \
             INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, \
                 url, headers, body, tags, max_attempts, timeout_ms, origin, registered_at) \
             SELECT $1, project.id, NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
             FROM project \
             RETURNING id, project_id), \
         planned AS ( \
             INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, \
                 status, planned_at, due_at) \
             SELECT $15, job.id, job.project_id, 1, 'scheduler', 'planned', $5, $5 FROM job \
             WHERE $16), \
         charged AS ( \
             INSERT INTO quota_usage (project_id, month, shard, used) \
             SELECT job.project_id, $17, $18, 1 FROM job \
             ON CONFLICT (project_id, month, shard) DO UPDATE SET used = quota_usage.used + 1) \
         SELECT COUNT(*) FROM job",
    )
    .bind(req.new_job_id.as_str())
    .bind(req.project_id.as_str())
    .bind(def.title.as_deref())
    .bind(status_for(skip).as_str())
    .bind(ms(at))
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(Json(&def.request.headers))
    .bind(def.request.body.as_ref())
    .bind(&def.tags)
    .bind(int4(def.options.max_attempts))
    .bind(duration_ms(def.options.timeout))
    .bind(req.origin.as_str())
    .bind(ms(req.now))
    .bind(req.new_execution_id.as_str())
    .bind(!skip)
    .bind(req.now.month_key())
    .bind(random_shard())
    .fetch_one(pool)
    .await
    .map_err(from_sqlx)?;
    Ok(created == 1)
}

/// Deletes a registered job and its planned execution (no foreign key cascades: migration
/// 0008) so that its id can become a generator; returns its custom key.
async fn remove_job(conn: &mut PgConnection, id: &JobId) -> StoreResult<Option<String>> {
    let key: Option<Option<String>> = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM jobs WHERE id = $1 AND status = 'registered' \
             RETURNING id, custom_key), \
         executions_gone AS (DELETE FROM executions \
             WHERE job_id = ANY(ARRAY(SELECT id FROM gone))) \
         SELECT custom_key FROM gone",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    key.ok_or(StoreError::NotFound)
}

pub(crate) fn status_for(skip: bool) -> JobStatus {
    if skip {
        JobStatus::Skipped
    } else {
        JobStatus::Registered
    }
}

/// Inserts a job and, unless it is skipped, its planned execution, in one statement.
async fn insert_job(
    conn: &mut PgConnection,
    req: &UpsertTrigger,
    id: &JobId,
    custom_key: Option<&str>,
    at: Timestamp,
    skip: bool,
) -> StoreResult<()> {
    let def = &req.definition;
    sqlx::query(
        "WITH job AS ( \
             INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, \
                 url, headers, body, tags, max_attempts, timeout_ms, origin, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING id, project_id) \
         INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
             planned_at, due_at) \
         SELECT $16, job.id, job.project_id, 1, 'scheduler', 'planned', $6, $6 FROM job \
         WHERE $17",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(custom_key)
    .bind(def.title.as_deref())
    .bind(status_for(skip).as_str())
    .bind(ms(at))
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(Json(&def.request.headers))
    .bind(def.request.body.as_ref())
    .bind(&def.tags)
    .bind(int4(def.options.max_attempts))
    .bind(duration_ms(def.options.timeout))
    .bind(req.origin.as_str())
    .bind(ms(req.now))
    .bind(req.new_execution_id.as_str())
    .bind(!skip)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Replaces a registered job's definition in place (same id, same origin and registration
/// time; the custom key only when one is given) and moves, or cancels, its planned execution.
async fn update_job(
    conn: &mut PgConnection,
    req: &UpsertTrigger,
    id: &JobId,
    at: Timestamp,
    skip: bool,
) -> StoreResult<()> {
    let def = &req.definition;
    let done = sqlx::query(
        "UPDATE jobs SET custom_key = COALESCE($3, custom_key), title = $4, status = $5, \
         scheduled_at = $6, method = $7, url = $8, headers = $9, body = $10, tags = $11, \
         max_attempts = $12, timeout_ms = $13, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '{}' \
         WHERE id = $1 AND project_id = $2",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(req.custom_key.as_deref())
    .bind(def.title.as_deref())
    .bind(status_for(skip).as_str())
    .bind(ms(at))
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(Json(&def.request.headers))
    .bind(def.request.body.as_ref())
    .bind(&def.tags)
    .bind(int4(def.options.max_attempts))
    .bind(duration_ms(def.options.timeout))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }

    if skip {
        cancel_planned(conn, id).await?;
        return Ok(());
    }
    let moved = sqlx::query(
        "UPDATE executions SET planned_at = $2, due_at = $2, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '{}' \
         WHERE job_id = $1 AND status = 'planned'",
    )
    .bind(id.as_str())
    .bind(ms(at))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if moved.rows_affected() == 0 {
        // A registered job always has its planned execution; should one be missing, the
        // reschedule restores the invariant rather than leaving a job that never fires.
        tracing::warn!(job = %id, "registered job had no planned execution; planning one");
        sqlx::query(
            "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, \
             status, planned_at, due_at) VALUES ($1, $2, $3, 1, 'scheduler', 'planned', $4, $4)",
        )
        .bind(req.new_execution_id.as_str())
        .bind(id.as_str())
        .bind(req.project_id.as_str())
        .bind(ms(at))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Cancels a job's planned execution, if it has one.
pub(crate) async fn cancel_planned(conn: &mut PgConnection, job_id: &JobId) -> StoreResult<()> {
    sqlx::query(
        "UPDATE executions SET status = 'cancelled' WHERE job_id = $1 AND status = 'planned'",
    )
    .bind(job_id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

// ---- cancel -----------------------------------------------------------------------------------

/// [`timetriggers_core::Store::cancel_trigger`]: one transaction, committed only when the
/// cancel is accepted.
pub(crate) async fn cancel(
    pool: &PgPool,
    project_id: &ProjectId,
    target: &TriggerRef,
    now: Timestamp,
) -> StoreResult<Result<JobId, Refusal>> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let result = cancel_in(&mut tx, project_id, target, now).await?;
    match result {
        Ok(_) => tx.commit().await.map_err(from_sqlx)?,
        Err(_) => tx.rollback().await.map_err(from_sqlx)?,
    }
    Ok(result)
}

async fn cancel_in(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    target: &TriggerRef,
    now: Timestamp,
) -> StoreResult<Result<JobId, Refusal>> {
    let found = match target {
        TriggerRef::Id(id) => find_by_id(conn, project_id, id).await?,
        TriggerRef::CustomKey(key) => {
            lock_key(conn, project_id, key).await?;
            find_live_key_holder(conn, project_id, key).await?
        }
    };
    let item = match plan_cancel(found) {
        Ok(item) => item,
        Err(refusal) => return Ok(Err(refusal)),
    };
    cancel_item(conn, &item, now).await?;
    Ok(Ok(item.id))
}

/// Cancels a pending item (whose row is locked): a generator (its series), or a job (and, for
/// an occurrence, lets its generator plan the next one).
pub(crate) async fn cancel_item(
    conn: &mut PgConnection,
    item: &FoundItem,
    now: Timestamp,
) -> StoreResult<()> {
    if item.state.kind() == JobKind::Generator {
        return generators::cancel(conn, &item.id, now).await;
    }
    sqlx::query(
        "WITH job AS ( \
             UPDATE jobs SET status = 'cancelled', cancelled_at = $2 WHERE id = $1 RETURNING id) \
         UPDATE executions SET status = 'cancelled' \
         WHERE job_id IN (SELECT id FROM job) AND status = 'planned'",
    )
    .bind(item.id.as_str())
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    // Cancelling one occurrence skips only it: its generator plans the next one.
    generators::release_pending(conn, &[item.id.as_str()]).await?;
    Ok(())
}

// ---- reads ------------------------------------------------------------------------------------

pub(crate) async fn get_job(
    pool: &PgPool,
    project_id: &ProjectId,
    id: &JobId,
) -> StoreResult<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN projects p ON p.id = j.project_id {GENERATOR_JOIN} \
         WHERE j.id = $1 AND j.project_id = $2"
    );
    sqlx::query(&sql)
        .bind(id.as_str())
        .bind(project_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::job(&row))
        .transpose()
}

/// A job's executions, newest first, in one statement (so one snapshot): the job row is
/// joined so that "no such job" (no row) differs from "no executions" (one row of NULLs).
pub(crate) async fn list_job_executions(
    pool: &PgPool,
    project_id: &ProjectId,
    job_id: &JobId,
) -> StoreResult<Option<Vec<Execution>>> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM jobs j LEFT JOIN executions e ON e.job_id = j.id \
         WHERE j.id = $1 AND j.project_id = $2 \
         ORDER BY e.attempt_number DESC, e.planned_at DESC, e.id DESC"
    );
    let found = sqlx::query(&sql)
        .bind(job_id.as_str())
        .bind(project_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?;
    if found.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        if rows::opt_text(row, "id")?.is_some() {
            out.push(rows::execution(row)?);
        }
    }
    Ok(Some(out))
}

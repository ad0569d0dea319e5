//! Create-or-reschedule, cancel, and reading jobs and their executions.
//!
//! The decisions are core's ([`plan_upsert`], [`plan_cancel`]); this module reads what they
//! need inside the writer's transaction and applies what they decide.

use rusqlite::{params, Connection, Row};
use timetriggers_core::lifecycle::{plan_cancel, plan_upsert};
use timetriggers_core::{
    Execution, ExecutionId, FoundItem, GeneratorStatus, ItemState, Job, JobId, JobKind, JobStatus,
    MonthQuota, ProjectId, Refusal, StoreError, StoreResult, Timestamp, TriggerDefinition,
    TriggerRef, TriggerSchedule, UpsertOperation, UpsertPlan, UpsertTrigger, Upserted,
};

use crate::generators;
use crate::rows::{
    self, duration_ms, headers_json, ms, tags_json, EXECUTION_COLUMNS, GENERATOR_JOIN, JOB_COLUMNS,
};
use crate::sql::{execute, fetch_all, fetch_one, fetch_optional, first};

/// The statuses in which a job holds its custom key. Queries spell the list out literally (as
/// the partial index `jobs_live_custom_key` does) so that SQLite can use the index.
const LIVE: &str = "('registered', 'queued', 'running')";

// ---- lookups inside a write -------------------------------------------------------------------

/// The item with this id in the project, in any state.
pub(crate) fn find_by_id(
    conn: &Connection,
    project_id: &ProjectId,
    id: &JobId,
) -> StoreResult<Option<FoundItem>> {
    let ids = [id.as_str(), project_id.as_str()];
    let job = fetch_optional(
        conn,
        "SELECT id, status FROM jobs WHERE id = ?1 AND project_id = ?2",
        ids,
        found_job,
    )?;
    if job.is_some() {
        return Ok(job);
    }
    fetch_optional(
        conn,
        "SELECT id, status FROM generators WHERE id = ?1 AND project_id = ?2",
        ids,
        found_generator,
    )
}

/// The live item holding `key` in the project.
pub(crate) fn find_live_key_holder(
    conn: &Connection,
    project_id: &ProjectId,
    key: &str,
) -> StoreResult<Option<FoundItem>> {
    let sql = format!(
        "SELECT id, status FROM jobs WHERE project_id = ?1 AND custom_key = ?2 \
         AND custom_key IS NOT NULL AND status IN {LIVE}"
    );
    let job = fetch_optional(conn, &sql, [project_id.as_str(), key], found_job)?;
    if job.is_some() {
        return Ok(job);
    }
    fetch_optional(
        conn,
        "SELECT id, status FROM generators WHERE project_id = ?1 AND custom_key = ?2 \
         AND custom_key IS NOT NULL AND status = 'active'",
        [project_id.as_str(), key],
        found_generator,
    )
}

fn found_generator(row: &Row<'_>) -> StoreResult<FoundItem> {
    Ok(FoundItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Generator(rows::generator_status(row, "status")?),
    })
}

fn found_job(row: &Row<'_>) -> StoreResult<FoundItem> {
    Ok(FoundItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Job(rows::job_status(row, "status")?),
    })
}

/// What an upsert decides on, read in one statement: the project's quota and this month's
/// usage, the item named by id (any state), and the live holder of the custom key. `?3` / `?4`
/// are NULL when no id / key was given. The key lookup repeats the partial index's WHERE clause.
const UPSERT_SNAPSHOT: &str = "SELECT p.month_quota, \
     COALESCE((SELECT q.used FROM quota_usage q WHERE q.project_id = ?1 AND q.month = ?2), 0) \
         AS used, \
     (SELECT j.status FROM jobs j WHERE j.id = ?3 AND j.project_id = ?1) AS id_status, \
     (SELECT j.id FROM jobs j WHERE j.project_id = ?1 AND j.custom_key = ?4 \
         AND j.custom_key IS NOT NULL AND j.status IN ('registered', 'queued', 'running')) \
         AS holder_id, \
     (SELECT j.status FROM jobs j WHERE j.project_id = ?1 AND j.custom_key = ?4 \
         AND j.custom_key IS NOT NULL AND j.status IN ('registered', 'queued', 'running')) \
         AS holder_status, \
     (SELECT g.status FROM generators g WHERE g.id = ?3 AND g.project_id = ?1) \
         AS generator_id_status, \
     (SELECT g.id FROM generators g WHERE g.project_id = ?1 AND g.custom_key = ?4 \
         AND g.custom_key IS NOT NULL AND g.status = 'active') AS generator_holder_id \
     FROM projects p WHERE p.id = ?1";

/// The decision inputs of an upsert.
struct Snapshot {
    quota: MonthQuota,
    used: u64,
    /// `Some(lookup)` when an id was given.
    by_id: Option<Option<FoundItem>>,
    /// `Some(lookup)` when a custom key was given.
    key_holder: Option<Option<FoundItem>>,
}

/// Reads the [`Snapshot`]; `NotFound` if there is no such project.
fn snapshot(conn: &Connection, req: &UpsertTrigger, month: &str) -> StoreResult<Snapshot> {
    fetch_optional(
        conn,
        UPSERT_SNAPSHOT,
        params![
            req.project_id.as_str(),
            month,
            req.trigger_id.as_ref().map(JobId::as_str),
            req.custom_key.as_deref()
        ],
        |row| decode_snapshot(row, req),
    )?
    .ok_or(StoreError::NotFound)
}

fn decode_snapshot(row: &Row<'_>, req: &UpsertTrigger) -> StoreResult<Snapshot> {
    let used: i64 = rows::get(row, "used")?;
    // Jobs and generators share the id space, and an active generator holds its key too.
    let by_id = match &req.trigger_id {
        None => None,
        Some(id) => Some(
            match (
                rows::opt_job_status(row, "id_status")?,
                rows::opt_generator_status(row, "generator_id_status")?,
            ) {
                (Some(status), _) => Some(FoundItem {
                    id: id.clone(),
                    state: ItemState::Job(status),
                }),
                (None, Some(status)) => Some(FoundItem {
                    id: id.clone(),
                    state: ItemState::Generator(status),
                }),
                (None, None) => None,
            },
        ),
    };
    let key_holder = match &req.custom_key {
        None => None,
        Some(_) => Some(match rows::opt_job_status(row, "holder_status")? {
            Some(status) => Some(FoundItem {
                id: rows::job_id(row, "holder_id")?,
                state: ItemState::Job(status),
            }),
            None => rows::opt_text_col(row, "generator_holder_id")?.map(|id| FoundItem {
                id: JobId::new(id),
                state: ItemState::Generator(GeneratorStatus::Active),
            }),
        }),
    };
    Ok(Snapshot {
        quota: rows::month_quota(row, "month_quota")?,
        used: u64::try_from(used).unwrap_or(0),
        by_id,
        key_holder,
    })
}

/// A project's month quota and what it used in `month`; `None` if there is no such project.
pub(crate) fn quota_state(
    conn: &Connection,
    project_id: &str,
    month: &str,
) -> StoreResult<Option<(MonthQuota, u64)>> {
    fetch_optional(
        conn,
        "SELECT p.month_quota, COALESCE((SELECT used FROM quota_usage q \
             WHERE q.project_id = p.id AND q.month = ?2), 0) AS used \
         FROM projects p WHERE p.id = ?1",
        [project_id, month],
        |row| {
            let used: i64 = rows::get(row, "used")?;
            Ok((
                rows::month_quota(row, "month_quota")?,
                u64::try_from(used).unwrap_or(0),
            ))
        },
    )
}

/// Charges `units` for `month`; returns the units used after the charge.
pub(crate) fn charge_units(
    conn: &Connection,
    project_id: &ProjectId,
    month: &str,
    units: u64,
) -> StoreResult<u64> {
    let used: i64 = fetch_one(
        conn,
        "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, month) DO UPDATE SET used = used + ?3 RETURNING used",
        params![project_id.as_str(), month, rows::count(units)],
        first,
    )?;
    Ok(u64::try_from(used).unwrap_or(0))
}

fn charge(conn: &Connection, project_id: &ProjectId, month: &str) -> StoreResult<u64> {
    let used: i64 = fetch_one(
        conn,
        "INSERT INTO quota_usage (project_id, month, used) VALUES (?1, ?2, 1) \
         ON CONFLICT (project_id, month) DO UPDATE SET used = used + 1 RETURNING used",
        [project_id.as_str(), month],
        first,
    )?;
    Ok(u64::try_from(used).unwrap_or(0))
}

// ---- upsert -----------------------------------------------------------------------------------

/// The create-or-reschedule of [`timetriggers_core::Store::upsert_trigger`], in the writer's
/// transaction. Order of refusals: quota, then whatever [`plan_upsert`] refuses.
pub(crate) fn upsert(
    conn: &Connection,
    req: UpsertTrigger,
) -> StoreResult<Result<Upserted, Refusal>> {
    let month = req.now.month_key();
    let Snapshot {
        quota,
        used,
        by_id,
        key_holder,
    } = snapshot(conn, &req, &month)?;
    if quota.remaining(used) == Some(0) {
        return Ok(Err(Refusal::QuotaExceeded));
    }
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

    let kind = existing_kind(match &plan {
        UpsertPlan::Update(id) => id,
        UpsertPlan::Create => &req.new_job_id,
    });
    let (id, operation, scheduled_at) = apply(conn, &req, plan, kind)?;
    let schedule = &req.definition.schedule;

    let used = charge(conn, &req.project_id, &month)?;
    Ok(Ok(Upserted {
        id,
        operation,
        kind: schedule.kind(),
        scheduled_at,
        month_quota_remaining: quota.remaining(used),
    }))
}

/// Applies a create-or-reschedule decision: `existing` is the kind of the item being updated.
/// Returns the id, the operation and the fire time.
pub(crate) fn apply(
    conn: &Connection,
    req: &UpsertTrigger,
    plan: UpsertPlan,
    existing: Option<JobKind>,
) -> StoreResult<(JobId, UpsertOperation, Timestamp)> {
    Ok(match (plan, &req.definition.schedule) {
        (UpsertPlan::Create, TriggerSchedule::Once { at, skip }) => {
            let id = req.new_job_id.clone();
            insert_job(conn, req, &id, req.custom_key.as_deref(), *at, *skip)?;
            (id, UpsertOperation::Schedule, *at)
        }
        (UpsertPlan::Create, TriggerSchedule::Cron { .. }) => {
            let id = req.new_job_id.clone();
            let first = generators::create(conn, req, &id, req.custom_key.as_deref())?;
            (id, UpsertOperation::Schedule, first)
        }
        (UpsertPlan::Update(id), TriggerSchedule::Once { at, skip }) => {
            if existing == Some(JobKind::Generator) {
                // A generator becomes a one-off job under the same id.
                let old_key = generators::remove(conn, &id)?;
                let key = req.custom_key.clone().or(old_key);
                insert_job(conn, req, &id, key.as_deref(), *at, *skip)?;
            } else {
                update_job(conn, req, &id, *at, *skip)?;
            }
            (id, UpsertOperation::Reschedule, *at)
        }
        (UpsertPlan::Update(id), TriggerSchedule::Cron { .. }) => {
            let first = if existing == Some(JobKind::Generator) {
                generators::redefine(conn, req, &id)?
            } else {
                // A registered job becomes a generator under the same id.
                let old_key = remove_job(conn, &id)?;
                let key = req.custom_key.clone().or(old_key);
                generators::create(conn, req, &id, key.as_deref())?
            };
            (id, UpsertOperation::Reschedule, first)
        }
    })
}

/// Deletes a registered job (and its planned execution) so that its id can become a
/// generator; returns its custom key.
fn remove_job(conn: &Connection, id: &JobId) -> StoreResult<Option<String>> {
    fetch_optional(
        conn,
        "DELETE FROM jobs WHERE id = ?1 AND status = 'registered' RETURNING custom_key",
        [id.as_str()],
        first::<Option<String>>,
    )?
    .ok_or(StoreError::NotFound)
}

fn status_for(skip: bool) -> JobStatus {
    if skip {
        JobStatus::Skipped
    } else {
        JobStatus::Registered
    }
}

/// The definition's columns, bound in the order `insert_job` and `update_job` expect.
struct Columns {
    headers: String,
    tags: String,
    max_attempts: i64,
    timeout_ms: i64,
}

fn columns(def: &TriggerDefinition) -> StoreResult<Columns> {
    Ok(Columns {
        headers: headers_json(&def.request.headers)?,
        tags: tags_json(&def.tags)?,
        max_attempts: i64::from(def.options.max_attempts),
        timeout_ms: duration_ms(def.options.timeout),
    })
}

pub(crate) fn insert_job(
    conn: &Connection,
    req: &UpsertTrigger,
    id: &JobId,
    custom_key: Option<&str>,
    at: Timestamp,
    skip: bool,
) -> StoreResult<()> {
    let def = &req.definition;
    let c = columns(def)?;
    execute(
        conn,
        "INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, url, \
         headers, body, tags, max_attempts, timeout_ms, origin, registered_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            id.as_str(),
            req.project_id.as_str(),
            custom_key,
            def.title.as_deref(),
            status_for(skip).as_str(),
            ms(at),
            def.request.method,
            def.request.url,
            c.headers,
            def.request.body.as_ref(),
            c.tags,
            c.max_attempts,
            c.timeout_ms,
            req.origin.as_str(),
            ms(req.now)
        ],
    )?;
    if !skip {
        insert_first_execution(conn, &req.new_execution_id, id, &req.project_id, at)?;
    }
    Ok(())
}

/// The planned execution of a registered job: attempt 1 by the scheduler, due at its time.
fn insert_first_execution(
    conn: &Connection,
    id: &ExecutionId,
    job_id: &JobId,
    project_id: &ProjectId,
    at: Timestamp,
) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES (?1, ?2, ?3, 1, 'scheduler', 'planned', ?4, ?4)",
        params![id.as_str(), job_id.as_str(), project_id.as_str(), ms(at)],
    )?;
    Ok(())
}

/// Replaces a registered job's definition in place (same id, same origin and registration
/// time; the custom key only when one is given) and moves, or cancels, its planned execution.
fn update_job(
    conn: &Connection,
    req: &UpsertTrigger,
    id: &JobId,
    at: Timestamp,
    skip: bool,
) -> StoreResult<()> {
    let def = &req.definition;
    let c = columns(def)?;
    let done = execute(
        conn,
        "UPDATE jobs SET custom_key = COALESCE(?3, custom_key), title = ?4, status = ?5, \
         scheduled_at = ?6, method = ?7, url = ?8, headers = ?9, body = ?10, tags = ?11, \
         max_attempts = ?12, timeout_ms = ?13, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '[]' \
         WHERE id = ?1 AND project_id = ?2",
        params![
            id.as_str(),
            req.project_id.as_str(),
            req.custom_key.as_deref(),
            def.title.as_deref(),
            status_for(skip).as_str(),
            ms(at),
            def.request.method,
            def.request.url,
            c.headers,
            def.request.body.as_ref(),
            c.tags,
            c.max_attempts,
            c.timeout_ms
        ],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }

    if skip {
        cancel_planned(conn, id)?;
        return Ok(());
    }
    let moved = execute(
        conn,
        "UPDATE executions SET planned_at = ?2, due_at = ?2, rate_limited_at = NULL, \
         rate_limited_until = NULL, rate_limited_tags = '[]' \
         WHERE job_id = ?1 AND status = 'planned'",
        params![id.as_str(), ms(at)],
    )?;
    if moved == 0 {
        // A registered job always has its planned execution; should one be missing, the
        // reschedule restores the invariant rather than leaving a job that never fires.
        tracing::warn!(job = %id, "registered job had no planned execution; planning one");
        insert_first_execution(conn, &req.new_execution_id, id, &req.project_id, at)?;
    }
    Ok(())
}

/// Cancels a job's planned execution, if it has one.
fn cancel_planned(conn: &Connection, job_id: &JobId) -> StoreResult<()> {
    execute(
        conn,
        "UPDATE executions SET status = 'cancelled' WHERE job_id = ?1 AND status = 'planned'",
        [job_id.as_str()],
    )?;
    Ok(())
}

// ---- cancel -----------------------------------------------------------------------------------

/// [`timetriggers_core::Store::cancel_trigger`] in the writer's transaction.
pub(crate) fn cancel(
    conn: &Connection,
    project_id: &ProjectId,
    target: &TriggerRef,
    now: Timestamp,
) -> StoreResult<Result<JobId, Refusal>> {
    let found = match target {
        TriggerRef::Id(id) => find_by_id(conn, project_id, id)?,
        TriggerRef::CustomKey(key) => find_live_key_holder(conn, project_id, key)?,
    };
    let item = match plan_cancel(found) {
        Ok(item) => item,
        Err(refusal) => return Ok(Err(refusal)),
    };
    cancel_item(conn, &item, now)?;
    Ok(Ok(item.id))
}

/// Cancels a pending item: a generator (its series), or a job (and, for an occurrence, lets
/// its generator plan the next one).
pub(crate) fn cancel_item(conn: &Connection, item: &FoundItem, now: Timestamp) -> StoreResult<()> {
    if item.state.kind() == JobKind::Generator {
        return generators::cancel(conn, &item.id, now);
    }
    execute(
        conn,
        "UPDATE jobs SET status = 'cancelled', cancelled_at = ?2 WHERE id = ?1",
        params![item.id.as_str(), ms(now)],
    )?;
    cancel_planned(conn, &item.id)?;
    // Cancelling one occurrence skips only it: its generator plans the next one.
    generators::release_pending(conn, &rows::id_list([item.id.as_str()])?)?;
    Ok(())
}

// ---- reads ------------------------------------------------------------------------------------

pub(crate) fn get_job(
    conn: &Connection,
    project_id: &ProjectId,
    id: &JobId,
) -> StoreResult<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN projects p ON p.id = j.project_id {GENERATOR_JOIN} \
         WHERE j.id = ?1 AND j.project_id = ?2"
    );
    fetch_optional(conn, &sql, [id.as_str(), project_id.as_str()], rows::job)
}

/// A job's executions, newest first, in one statement (so one snapshot): the job row is
/// joined so that "no such job" (no row) differs from "no executions" (one row of NULLs).
pub(crate) fn list_job_executions(
    conn: &Connection,
    project_id: &ProjectId,
    job_id: &JobId,
) -> StoreResult<Option<Vec<Execution>>> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM jobs j LEFT JOIN executions e ON e.job_id = j.id \
         WHERE j.id = ?1 AND j.project_id = ?2 \
         ORDER BY e.attempt_number DESC, e.planned_at DESC, e.id DESC"
    );
    let found = fetch_all(conn, &sql, [job_id.as_str(), project_id.as_str()], |row| {
        // The one row of a job without executions has a NULL execution id.
        match rows::get::<Option<String>>(row, "id")? {
            Some(_) => rows::execution(row).map(Some),
            None => Ok(None),
        }
    })?;
    if found.is_empty() {
        return Ok(None);
    }
    Ok(Some(found.into_iter().flatten().collect()))
}

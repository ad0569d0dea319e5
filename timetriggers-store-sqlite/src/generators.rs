//! Generators: creating, redefining, removing and cancelling series; their occurrence jobs; and
//! what the engine needs to plan the next occurrence. The planning itself is core's
//! ([`timetriggers_core::rules::generator`]); this module reads and applies.

use rusqlite::{params, Connection, Row};
use timetriggers_core::{
    ExecutionId, GeneratorDue, JobId, JobStatus, MaterializeGenerator, NewOccurrence,
    PendingOccurrence, ProjectId, StoreError, StoreResult, Timestamp, TriggerSchedule,
    UpsertTrigger,
};

use crate::rows::{duration_ms, get, headers_json, id_list, ms, tags_json};
use crate::sql::{execute, fetch_all, fetch_optional, first};

/// Creates generator `id` from `req` (whose schedule must be cron) with its first occurrence.
pub(crate) fn create(
    conn: &Connection,
    req: &UpsertTrigger,
    id: &JobId,
    custom_key: Option<&str>,
) -> StoreResult<Timestamp> {
    let TriggerSchedule::Cron {
        expression,
        timezone,
        run_missed,
        first_at,
        occurrence_id,
    } = &req.definition.schedule
    else {
        return Err(StoreError::corrupt("a generator needs a cron schedule"));
    };
    let def = &req.definition;
    execute(
        conn,
        "INSERT INTO generators (id, project_id, custom_key, title, status, expression, timezone, \
         run_missed, method, url, headers, body, tags, max_attempts, timeout_ms, origin, \
         created_at, defined_at) \
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
        params![
            id.as_str(),
            req.project_id.as_str(),
            custom_key,
            def.title.as_deref(),
            expression,
            timezone,
            i64::from(*run_missed),
            def.request.method,
            def.request.url,
            headers_json(&def.request.headers)?,
            def.request.body.as_ref(),
            tags_json(&def.tags)?,
            i64::from(def.options.max_attempts),
            duration_ms(def.options.timeout),
            req.origin.as_str(),
            ms(req.now)
        ],
    )?;
    let first = NewOccurrence {
        job_id: occurrence_id.clone(),
        execution_id: req.new_execution_id.clone(),
        at: *first_at,
    };
    insert_occurrence(conn, id, &first, JobStatus::Registered, req.now)?;
    Ok(*first_at)
}

/// Replaces an active generator's definition in place (same id; the custom key only when one
/// is given) and replaces its pending occurrence with the new first one.
pub(crate) fn redefine(
    conn: &Connection,
    req: &UpsertTrigger,
    id: &JobId,
) -> StoreResult<Timestamp> {
    let TriggerSchedule::Cron {
        expression,
        timezone,
        run_missed,
        first_at,
        occurrence_id,
    } = &req.definition.schedule
    else {
        return Err(StoreError::corrupt("a generator needs a cron schedule"));
    };
    delete_pending(conn, id)?;
    let def = &req.definition;
    let done = execute(
        conn,
        "UPDATE generators SET custom_key = COALESCE(?3, custom_key), title = ?4, \
         expression = ?5, timezone = ?6, run_missed = ?7, method = ?8, url = ?9, headers = ?10, \
         body = ?11, tags = ?12, max_attempts = ?13, timeout_ms = ?14, defined_at = ?15, \
         pending_job_id = NULL, last_occurrence_at = NULL \
         WHERE id = ?1 AND project_id = ?2 AND status = 'active'",
        params![
            id.as_str(),
            req.project_id.as_str(),
            req.custom_key.as_deref(),
            def.title.as_deref(),
            expression,
            timezone,
            i64::from(*run_missed),
            def.request.method,
            def.request.url,
            headers_json(&def.request.headers)?,
            def.request.body.as_ref(),
            tags_json(&def.tags)?,
            i64::from(def.options.max_attempts),
            duration_ms(def.options.timeout),
            ms(req.now)
        ],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    let first = NewOccurrence {
        job_id: occurrence_id.clone(),
        execution_id: req.new_execution_id.clone(),
        at: *first_at,
    };
    insert_occurrence(conn, id, &first, JobStatus::Registered, req.now)?;
    Ok(*first_at)
}

/// Removes an active generator so that its id can become a one-off job; returns its custom
/// key. Its pending (never fired) occurrence goes with it; past occurrences stay.
pub(crate) fn remove(conn: &Connection, id: &JobId) -> StoreResult<Option<String>> {
    delete_pending(conn, id)?;
    fetch_optional(
        conn,
        "DELETE FROM generators WHERE id = ?1 RETURNING custom_key",
        [id.as_str()],
        first::<Option<String>>,
    )?
    .ok_or(StoreError::NotFound)
}

/// Deletes the pending occurrence of a generator (a registered job that never fired).
fn delete_pending(conn: &Connection, id: &JobId) -> StoreResult<()> {
    execute(
        conn,
        "DELETE FROM jobs WHERE id = (SELECT pending_job_id FROM generators WHERE id = ?1) \
         AND status = 'registered'",
        [id.as_str()],
    )?;
    Ok(())
}

/// Cancels a generator: the series stops and its pending occurrence is cancelled.
pub(crate) fn cancel(conn: &Connection, id: &JobId, now: Timestamp) -> StoreResult<()> {
    let pending: Option<Option<String>> = fetch_optional(
        conn,
        "SELECT pending_job_id FROM generators WHERE id = ?1",
        [id.as_str()],
        first,
    )?;
    if let Some(Some(job)) = pending {
        execute(
            conn,
            "UPDATE jobs SET status = 'cancelled', cancelled_at = ?2 \
             WHERE id = ?1 AND status = 'registered'",
            params![job, ms(now)],
        )?;
        execute(
            conn,
            "UPDATE executions SET status = 'cancelled' WHERE job_id = ?1 AND status = 'planned'",
            [&job],
        )?;
    }
    execute(
        conn,
        "UPDATE generators SET status = 'cancelled', cancelled_at = ?2, pending_job_id = NULL \
         WHERE id = ?1",
        params![id.as_str(), ms(now)],
    )?;
    Ok(())
}

/// Frees the generators whose pending occurrence is one of `?1` (a JSON array of job ids).
/// `status = 'active'` (implied: only active generators have a pending occurrence) lets SQLite
/// seek the partial index `generators_active` instead of scanning every generator.
pub(crate) const RELEASE_PENDING: &str = "UPDATE generators SET pending_job_id = NULL, \
         last_occurrence_at = \
             (SELECT j.scheduled_at FROM jobs j WHERE j.id = generators.pending_job_id) \
     WHERE status = 'active' AND pending_job_id IN (SELECT value FROM json_each(?1))";

/// An occurrence job left `registered` no longer (it fired or was cancelled): its generator
/// needs the next one. `job_ids` is a JSON array of job ids.
pub(crate) fn release_pending(conn: &Connection, job_ids: &str) -> StoreResult<()> {
    execute(conn, RELEASE_PENDING, [job_ids])?;
    Ok(())
}

/// Inserts an occurrence job of generator `generator_id` copied from its definition:
/// `registered` (with its planned execution, and made the generator's pending occurrence) or
/// `skipped` (a record of a missed occurrence, no execution).
fn insert_occurrence(
    conn: &Connection,
    generator_id: &JobId,
    occ: &NewOccurrence,
    status: JobStatus,
    now: Timestamp,
) -> StoreResult<()> {
    let project: Option<String> = fetch_optional(
        conn,
        "INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, url, \
         headers, body, tags, max_attempts, timeout_ms, origin, registered_at, generator_id) \
         SELECT ?2, project_id, NULL, title, ?3, ?4, method, url, headers, body, tags, \
             max_attempts, timeout_ms, origin, ?5, id \
         FROM generators WHERE id = ?1 \
         RETURNING project_id",
        params![
            generator_id.as_str(),
            occ.job_id.as_str(),
            status.as_str(),
            ms(occ.at),
            ms(now)
        ],
        first,
    )?;
    let project = project.ok_or(StoreError::NotFound)?;
    if status == JobStatus::Registered {
        insert_planned(conn, &occ.execution_id, &occ.job_id, &project, occ.at)?;
        execute(
            conn,
            "UPDATE generators SET pending_job_id = ?2 WHERE id = ?1",
            [generator_id.as_str(), occ.job_id.as_str()],
        )?;
    }
    Ok(())
}

fn insert_planned(
    conn: &Connection,
    id: &ExecutionId,
    job_id: &JobId,
    project_id: &str,
    at: Timestamp,
) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES (?1, ?2, ?3, 1, 'scheduler', 'planned', ?4, ?4)",
        params![id.as_str(), job_id.as_str(), project_id, ms(at)],
    )?;
    Ok(())
}

/// [`timetriggers_core::Store::list_generators_due`].
pub(crate) fn list_due(
    conn: &Connection,
    overdue_before: Timestamp,
    limit: usize,
) -> StoreResult<Vec<GeneratorDue>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    fetch_all(
        conn,
        "SELECT g.id, g.project_id, g.expression, g.timezone, g.run_missed, \
             g.last_occurrence_at, g.defined_at, j.id AS pending_id, \
             j.scheduled_at AS pending_at \
         FROM generators g LEFT JOIN jobs j ON j.id = g.pending_job_id \
         WHERE g.status = 'active' AND (g.pending_job_id IS NULL \
             OR (j.status = 'registered' AND j.scheduled_at < ?1)) \
         ORDER BY g.id LIMIT ?2",
        [ms(overdue_before), limit],
        due_row,
    )
}

fn due_row(row: &Row<'_>) -> StoreResult<GeneratorDue> {
    let pending_id: Option<String> = get(row, "pending_id")?;
    let pending_at: Option<i64> = get(row, "pending_at")?;
    let last: Option<i64> = get(row, "last_occurrence_at")?;
    let run_missed: i64 = get(row, "run_missed")?;
    let defined_at: i64 = get(row, "defined_at")?;
    Ok(GeneratorDue {
        id: JobId::new(get::<String>(row, "id")?),
        project_id: ProjectId::new(get::<String>(row, "project_id")?),
        expression: get(row, "expression")?,
        timezone: get(row, "timezone")?,
        run_missed: run_missed != 0,
        last_occurrence_at: last.map(Timestamp::from_millis),
        defined_at: Timestamp::from_millis(defined_at),
        pending: match (pending_id, pending_at) {
            (Some(job), Some(at)) => Some(PendingOccurrence {
                job_id: JobId::new(job),
                scheduled_at: Timestamp::from_millis(at),
            }),
            _ => None,
        },
    })
}

/// [`timetriggers_core::Store::materialize_generator`] in the writer's transaction.
pub(crate) fn materialize(conn: &Connection, plan: &MaterializeGenerator) -> StoreResult<bool> {
    let current: Option<Option<String>> = fetch_optional(
        conn,
        "SELECT pending_job_id FROM generators WHERE id = ?1 AND status = 'active'",
        [plan.generator_id.as_str()],
        first,
    )?;
    let Some(current) = current else {
        return Ok(false);
    };
    if current.as_deref() != plan.expected_pending.as_ref().map(JobId::as_str) {
        return Ok(false);
    }
    if plan.skip_pending {
        if let Some(pending) = &plan.expected_pending {
            execute(
                conn,
                "UPDATE jobs SET status = 'skipped' WHERE id = ?1 AND status = 'registered'",
                [pending.as_str()],
            )?;
            execute(
                conn,
                "UPDATE executions SET status = 'cancelled' WHERE job_id = ?1 AND status = 'planned'",
                [pending.as_str()],
            )?;
            release_pending(conn, &id_list([pending.as_str()])?)?;
        }
    }
    for occ in &plan.skipped {
        insert_occurrence(conn, &plan.generator_id, occ, JobStatus::Skipped, plan.now)?;
    }
    let latest_skipped = plan.skipped.iter().map(|o| o.at).max();
    if let Some(at) = latest_skipped {
        execute(
            conn,
            "UPDATE generators SET last_occurrence_at = MAX(COALESCE(last_occurrence_at, ?2), ?2) \
             WHERE id = ?1",
            params![plan.generator_id.as_str(), ms(at)],
        )?;
    }
    if let Some(occ) = &plan.create {
        insert_occurrence(
            conn,
            &plan.generator_id,
            occ,
            JobStatus::Registered,
            plan.now,
        )?;
    }
    Ok(true)
}

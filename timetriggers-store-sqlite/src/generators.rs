//! Generators: creating, redefining, removing and cancelling series; their occurrence jobs; and
//! what the engine needs to plan the next occurrence. The planning itself is core's
//! ([`timetriggers_core::rules::generator`]); this module reads and applies.

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::Row;
use timetriggers_core::{
    ExecutionId, GeneratorDue, JobId, JobStatus, MaterializeGenerator, NewOccurrence,
    PendingOccurrence, ProjectId, StoreError, StoreResult, Timestamp, TriggerSchedule,
    UpsertTrigger,
};

use crate::error::from_sqlx;
use crate::rows::{duration_ms, headers_json, id_list, ms, tags_json};

/// Creates generator `id` from `req` (whose schedule must be cron) with its first occurrence.
pub(crate) async fn create(
    conn: &mut SqliteConnection,
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
    sqlx::query(
        "INSERT INTO generators (id, project_id, custom_key, title, status, expression, timezone, \
         run_missed, method, url, headers, body, tags, max_attempts, timeout_ms, origin, \
         created_at, defined_at) \
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(custom_key)
    .bind(def.title.as_deref())
    .bind(expression)
    .bind(timezone)
    .bind(i64::from(*run_missed))
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(headers_json(&def.request.headers)?)
    .bind(def.request.body.as_ref())
    .bind(tags_json(&def.tags)?)
    .bind(i64::from(def.options.max_attempts))
    .bind(duration_ms(def.options.timeout))
    .bind(req.origin.as_str())
    .bind(ms(req.now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let first = NewOccurrence {
        job_id: occurrence_id.clone(),
        execution_id: req.new_execution_id.clone(),
        at: *first_at,
    };
    insert_occurrence(conn, id, &first, JobStatus::Registered, req.now).await?;
    Ok(*first_at)
}

/// Replaces an active generator's definition in place (same id; the custom key only when one
/// is given) and replaces its pending occurrence with the new first one.
pub(crate) async fn redefine(
    conn: &mut SqliteConnection,
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
    delete_pending(conn, id).await?;
    let def = &req.definition;
    let done = sqlx::query(
        "UPDATE generators SET custom_key = COALESCE(?3, custom_key), title = ?4, \
         expression = ?5, timezone = ?6, run_missed = ?7, method = ?8, url = ?9, headers = ?10, \
         body = ?11, tags = ?12, max_attempts = ?13, timeout_ms = ?14, defined_at = ?15, \
         pending_job_id = NULL, last_occurrence_at = NULL \
         WHERE id = ?1 AND project_id = ?2 AND status = 'active'",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(req.custom_key.as_deref())
    .bind(def.title.as_deref())
    .bind(expression)
    .bind(timezone)
    .bind(i64::from(*run_missed))
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(headers_json(&def.request.headers)?)
    .bind(def.request.body.as_ref())
    .bind(tags_json(&def.tags)?)
    .bind(i64::from(def.options.max_attempts))
    .bind(duration_ms(def.options.timeout))
    .bind(ms(req.now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    let first = NewOccurrence {
        job_id: occurrence_id.clone(),
        execution_id: req.new_execution_id.clone(),
        at: *first_at,
    };
    insert_occurrence(conn, id, &first, JobStatus::Registered, req.now).await?;
    Ok(*first_at)
}

/// Removes an active generator so that its id can become a one-off job; returns its custom
/// key. Its pending (never fired) occurrence goes with it; past occurrences stay.
pub(crate) async fn remove(conn: &mut SqliteConnection, id: &JobId) -> StoreResult<Option<String>> {
    delete_pending(conn, id).await?;
    let key: Option<Option<String>> =
        sqlx::query_scalar("DELETE FROM generators WHERE id = ?1 RETURNING custom_key")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    key.ok_or(StoreError::NotFound)
}

/// Deletes the pending occurrence of a generator (a registered job that never fired).
async fn delete_pending(conn: &mut SqliteConnection, id: &JobId) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM jobs WHERE id = (SELECT pending_job_id FROM generators WHERE id = ?1) \
         AND status = 'registered'",
    )
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Cancels a generator: the series stops and its pending occurrence is cancelled.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    id: &JobId,
    now: Timestamp,
) -> StoreResult<()> {
    let pending: Option<Option<String>> =
        sqlx::query_scalar("SELECT pending_job_id FROM generators WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    if let Some(Some(job)) = pending {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', cancelled_at = ?2 \
             WHERE id = ?1 AND status = 'registered'",
        )
        .bind(&job)
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        sqlx::query(
            "UPDATE executions SET status = 'cancelled' WHERE job_id = ?1 AND status = 'planned'",
        )
        .bind(&job)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    }
    sqlx::query(
        "UPDATE generators SET status = 'cancelled', cancelled_at = ?2, pending_job_id = NULL \
         WHERE id = ?1",
    )
    .bind(id.as_str())
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
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
pub(crate) async fn release_pending(conn: &mut SqliteConnection, job_ids: &str) -> StoreResult<()> {
    sqlx::query(RELEASE_PENDING)
        .bind(job_ids)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Inserts an occurrence job of generator `generator_id` copied from its definition:
/// `registered` (with its planned execution, and made the generator's pending occurrence) or
/// `skipped` (a record of a missed occurrence, no execution).
async fn insert_occurrence(
    conn: &mut SqliteConnection,
    generator_id: &JobId,
    occ: &NewOccurrence,
    status: JobStatus,
    now: Timestamp,
) -> StoreResult<()> {
    let project: Option<String> = sqlx::query_scalar(
        "INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, url, \
         headers, body, tags, max_attempts, timeout_ms, origin, registered_at, generator_id) \
         SELECT ?2, project_id, NULL, title, ?3, ?4, method, url, headers, body, tags, \
             max_attempts, timeout_ms, origin, ?5, id \
         FROM generators WHERE id = ?1 \
         RETURNING project_id",
    )
    .bind(generator_id.as_str())
    .bind(occ.job_id.as_str())
    .bind(status.as_str())
    .bind(ms(occ.at))
    .bind(ms(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let project = project.ok_or(StoreError::NotFound)?;
    if status == JobStatus::Registered {
        insert_planned(conn, &occ.execution_id, &occ.job_id, &project, occ.at).await?;
        sqlx::query("UPDATE generators SET pending_job_id = ?2 WHERE id = ?1")
            .bind(generator_id.as_str())
            .bind(occ.job_id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}

async fn insert_planned(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    job_id: &JobId,
    project_id: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, \
         planned_at, due_at) VALUES (?1, ?2, ?3, 1, 'scheduler', 'planned', ?4, ?4)",
    )
    .bind(id.as_str())
    .bind(job_id.as_str())
    .bind(project_id)
    .bind(ms(at))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// [`timetriggers_core::Store::list_generators_due`].
pub(crate) async fn list_due(
    pool: &SqlitePool,
    overdue_before: Timestamp,
    limit: usize,
) -> StoreResult<Vec<GeneratorDue>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    sqlx::query(
        "SELECT g.id, g.project_id, g.expression, g.timezone, g.run_missed, \
             g.last_occurrence_at, g.defined_at, j.id AS pending_id, \
             j.scheduled_at AS pending_at \
         FROM generators g LEFT JOIN jobs j ON j.id = g.pending_job_id \
         WHERE g.status = 'active' AND (g.pending_job_id IS NULL \
             OR (j.status = 'registered' AND j.scheduled_at < ?1)) \
         ORDER BY g.id LIMIT ?2",
    )
    .bind(ms(overdue_before))
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(due_row)
    .collect()
}

fn due_row(row: &SqliteRow) -> StoreResult<GeneratorDue> {
    let get_text = |col: &str| row.try_get::<String, _>(col).map_err(from_sqlx);
    let pending_id: Option<String> = row.try_get("pending_id").map_err(from_sqlx)?;
    let pending_at: Option<i64> = row.try_get("pending_at").map_err(from_sqlx)?;
    let last: Option<i64> = row.try_get("last_occurrence_at").map_err(from_sqlx)?;
    let run_missed: i64 = row.try_get("run_missed").map_err(from_sqlx)?;
    let defined_at: i64 = row.try_get("defined_at").map_err(from_sqlx)?;
    Ok(GeneratorDue {
        id: JobId::new(get_text("id")?),
        project_id: ProjectId::new(get_text("project_id")?),
        expression: get_text("expression")?,
        timezone: get_text("timezone")?,
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
pub(crate) async fn materialize(
    conn: &mut SqliteConnection,
    plan: &MaterializeGenerator,
) -> StoreResult<bool> {
    let current: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pending_job_id FROM generators WHERE id = ?1 AND status = 'active'",
    )
    .bind(plan.generator_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let Some(current) = current else {
        return Ok(false);
    };
    if current.as_deref() != plan.expected_pending.as_ref().map(JobId::as_str) {
        return Ok(false);
    }
    if plan.skip_pending {
        if let Some(pending) = &plan.expected_pending {
            sqlx::query(
                "UPDATE jobs SET status = 'skipped' WHERE id = ?1 AND status = 'registered'",
            )
            .bind(pending.as_str())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            sqlx::query(
                "UPDATE executions SET status = 'cancelled' WHERE job_id = ?1 AND status = 'planned'",
            )
            .bind(pending.as_str())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            release_pending(conn, &id_list([pending.as_str()])?).await?;
        }
    }
    for occ in &plan.skipped {
        insert_occurrence(conn, &plan.generator_id, occ, JobStatus::Skipped, plan.now).await?;
    }
    let latest_skipped = plan.skipped.iter().map(|o| o.at).max();
    if let Some(at) = latest_skipped {
        sqlx::query(
            "UPDATE generators SET last_occurrence_at = MAX(COALESCE(last_occurrence_at, ?2), ?2) \
             WHERE id = ?1",
        )
        .bind(plan.generator_id.as_str())
        .bind(ms(at))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    }
    if let Some(occ) = &plan.create {
        insert_occurrence(
            conn,
            &plan.generator_id,
            occ,
            JobStatus::Registered,
            plan.now,
        )
        .await?;
    }
    Ok(true)
}

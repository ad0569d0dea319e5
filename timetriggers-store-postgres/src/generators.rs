//! Generators: creating, redefining, removing and cancelling series; their occurrence jobs; and
//! what the engine needs to plan the next occurrence. The planning itself is core's
//! ([`timetriggers_core::rules::generator`]); this module reads and applies.
//!
//! Every function that changes a generator's occurrences runs after the generator row was
//! locked (by the upsert's or cancel's lookup, or by [`materialize`] itself): generator first,
//! then its jobs.

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::types::Json;
use timetriggers_core::{
    GeneratorDue, JobId, JobStatus, MaterializeGenerator, NewOccurrence, PendingOccurrence,
    ProjectId, StoreError, StoreResult, Timestamp, TriggerSchedule, UpsertTrigger,
};

use crate::error::from_sqlx;
use crate::rows::{self, duration_ms, int4, ms};

/// Creates generator `id` from `req` (whose schedule must be cron) with its first occurrence.
pub(crate) async fn create(
    conn: &mut PgConnection,
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
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(custom_key)
    .bind(def.title.as_deref())
    .bind(expression)
    .bind(timezone)
    .bind(*run_missed)
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(Json(&def.request.headers))
    .bind(def.request.body.as_ref())
    .bind(&def.tags)
    .bind(int4(def.options.max_attempts))
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
    conn: &mut PgConnection,
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
        "UPDATE generators SET custom_key = COALESCE($3, custom_key), title = $4, \
         expression = $5, timezone = $6, run_missed = $7, method = $8, url = $9, headers = $10, \
         body = $11, tags = $12, max_attempts = $13, timeout_ms = $14, defined_at = $15, \
         pending_job_id = NULL, last_occurrence_at = NULL \
         WHERE id = $1 AND project_id = $2 AND status = 'active'",
    )
    .bind(id.as_str())
    .bind(req.project_id.as_str())
    .bind(req.custom_key.as_deref())
    .bind(def.title.as_deref())
    .bind(expression)
    .bind(timezone)
    .bind(*run_missed)
    .bind(&def.request.method)
    .bind(&def.request.url)
    .bind(Json(&def.request.headers))
    .bind(def.request.body.as_ref())
    .bind(&def.tags)
    .bind(int4(def.options.max_attempts))
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
pub(crate) async fn remove(conn: &mut PgConnection, id: &JobId) -> StoreResult<Option<String>> {
    delete_pending(conn, id).await?;
    let key: Option<Option<String>> =
        sqlx::query_scalar("DELETE FROM generators WHERE id = $1 RETURNING custom_key")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    key.ok_or(StoreError::NotFound)
}

/// Deletes the pending occurrence of a generator (a registered job that never fired) and its
/// planned execution (no foreign key cascades: migration 0008).
async fn delete_pending(conn: &mut PgConnection, id: &JobId) -> StoreResult<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM jobs \
             WHERE id = (SELECT pending_job_id FROM generators WHERE id = $1) \
                 AND status = 'registered' \
             RETURNING id) \
         DELETE FROM executions WHERE job_id = ANY(ARRAY(SELECT id FROM gone))",
    )
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Cancels a generator: the series stops and its pending occurrence is cancelled.
pub(crate) async fn cancel(conn: &mut PgConnection, id: &JobId, now: Timestamp) -> StoreResult<()> {
    sqlx::query(
        "WITH pending AS ( \
             UPDATE jobs SET status = 'cancelled', cancelled_at = $2 \
             WHERE id = (SELECT pending_job_id FROM generators WHERE id = $1) \
                 AND status = 'registered' \
             RETURNING id), \
         planned AS ( \
             UPDATE executions SET status = 'cancelled' \
             WHERE job_id IN (SELECT id FROM pending) AND status = 'planned') \
         UPDATE generators SET status = 'cancelled', cancelled_at = $2, pending_job_id = NULL \
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Occurrence jobs that left `registered` (they were cancelled or skipped): their generators
/// need the next one. The claim does the same for fired occurrences in its own statement.
pub(crate) async fn release_pending(conn: &mut PgConnection, job_ids: &[&str]) -> StoreResult<()> {
    sqlx::query(
        "UPDATE generators g SET pending_job_id = NULL, last_occurrence_at = j.scheduled_at \
         FROM jobs j WHERE j.id = g.pending_job_id AND g.pending_job_id = ANY($1) \
             AND g.status = 'active'",
    )
    .bind(job_ids)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Inserts an occurrence job of generator `generator_id` copied from its definition:
/// `registered` (with its planned execution, and made the generator's pending occurrence) or
/// `skipped` (a record of a missed occurrence, no execution). One statement.
async fn insert_occurrence(
    conn: &mut PgConnection,
    generator_id: &JobId,
    occ: &NewOccurrence,
    status: JobStatus,
    now: Timestamp,
) -> StoreResult<()> {
    let registered = status == JobStatus::Registered;
    let inserted: Option<String> = sqlx::query_scalar(
        "WITH job AS ( \
             INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, \
                 url, headers, body, tags, max_attempts, timeout_ms, origin, registered_at, \
                 generator_id) \
             SELECT $2, project_id, NULL, title, $3, $4, method, url, headers, body, tags, \
                 max_attempts, timeout_ms, origin, $5, id \
             FROM generators WHERE id = $1 \
             RETURNING id, project_id), \
         planned AS ( \
             INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, \
                 status, planned_at, due_at) \
             SELECT $6, job.id, job.project_id, 1, 'scheduler', 'planned', $4, $4 FROM job \
             WHERE $7), \
         pending AS ( \
             UPDATE generators SET pending_job_id = $2 WHERE id = $1 AND $7) \
         SELECT id FROM job",
    )
    .bind(generator_id.as_str())
    .bind(occ.job_id.as_str())
    .bind(status.as_str())
    .bind(ms(occ.at))
    .bind(ms(now))
    .bind(occ.execution_id.as_str())
    .bind(registered)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    inserted.map(|_| ()).ok_or(StoreError::NotFound)
}

/// [`timetriggers_core::Store::list_generators_due`].
pub(crate) async fn list_due(
    pool: &PgPool,
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
             OR (j.status = 'registered' AND j.scheduled_at < $1)) \
         ORDER BY g.id LIMIT $2",
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

fn due_row(row: &PgRow) -> StoreResult<GeneratorDue> {
    let pending_id = rows::opt_text(row, "pending_id")?;
    let pending_at = rows::opt_ts(row, "pending_at")?;
    Ok(GeneratorDue {
        id: rows::job_id(row, "id")?,
        project_id: ProjectId::new(rows::text(row, "project_id")?),
        expression: rows::text(row, "expression")?,
        timezone: rows::text(row, "timezone")?,
        run_missed: rows::flag(row, "run_missed")?,
        last_occurrence_at: rows::opt_ts(row, "last_occurrence_at")?,
        defined_at: rows::ts(row, "defined_at")?,
        pending: match (pending_id, pending_at) {
            (Some(job), Some(at)) => Some(PendingOccurrence {
                job_id: JobId::new(job),
                scheduled_at: at,
            }),
            _ => None,
        },
    })
}

/// [`timetriggers_core::Store::materialize_generator`]: one transaction, which locks the
/// generator first and applies the plan only if the generator is still active with the
/// expected pending occurrence.
pub(crate) async fn materialize(pool: &PgPool, plan: &MaterializeGenerator) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let applied = materialize_in(&mut tx, plan).await?;
    if applied {
        tx.commit().await.map_err(from_sqlx)?;
    } else {
        tx.rollback().await.map_err(from_sqlx)?;
    }
    Ok(applied)
}

async fn materialize_in(conn: &mut PgConnection, plan: &MaterializeGenerator) -> StoreResult<bool> {
    let current: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pending_job_id FROM generators WHERE id = $1 AND status = 'active' \
         FOR NO KEY UPDATE",
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
                "WITH skipped AS ( \
                     UPDATE jobs SET status = 'skipped' WHERE id = $1 AND status = 'registered' \
                     RETURNING id) \
                 UPDATE executions SET status = 'cancelled' \
                 WHERE job_id IN (SELECT id FROM skipped) AND status = 'planned'",
            )
            .bind(pending.as_str())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            release_pending(conn, &[pending.as_str()]).await?;
        }
    }
    for occ in &plan.skipped {
        insert_occurrence(conn, &plan.generator_id, occ, JobStatus::Skipped, plan.now).await?;
    }
    if let Some(at) = plan.skipped.iter().map(|o| o.at).max() {
        sqlx::query(
            "UPDATE generators \
             SET last_occurrence_at = GREATEST(COALESCE(last_occurrence_at, $2), $2) \
             WHERE id = $1",
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

//! `/declare` and `/bulk`: read what the sync concerns, let core plan it
//! ([`plan_declare`], [`plan_bulk_upserts`]), apply the plan — all in the writer's transaction.

use rusqlite::{params, Connection, Row};
use timetriggers_core::declare::{billable, plan_bulk_upserts, plan_declare};
use timetriggers_core::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, FoundItem, GeneratorStatus, ItemState, JobId,
    JobKind, ManagedItem, Origin, ProjectId, Refusal, StoreResult, SyncOperation, SyncOutcome,
    SyncResult, SyncStep, Timestamp, UpsertPlan,
};

use crate::rows::{self, get, id_list};
use crate::sql::{execute, fetch_all, fetch_optional, first};
use crate::triggers;

const MANAGED_JOB_COLUMNS: &str = "id, status, custom_key, spec, title, method, url, headers, \
     body, tags, max_attempts, timeout_ms, origin";
const MANAGED_GENERATOR_COLUMNS: &str = "id, status, custom_key, COALESCE(spec, expression) AS \
     spec, timezone, title, method, url, headers, body, tags, max_attempts, timeout_ms, origin";

fn managed_job(row: &Row<'_>) -> StoreResult<ManagedItem> {
    Ok(ManagedItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Job(rows::job_status(row, "status")?),
        custom_key: rows::opt_text_col(row, "custom_key")?,
        spec: rows::opt_text_col(row, "spec")?,
        timezone: None,
        title: rows::opt_text_col(row, "title")?,
        request: rows::request(row)?,
        tags: tags(row)?,
        options: rows::options(row)?,
        declared: get::<String>(row, "origin")? == "declare",
    })
}

fn managed_generator(row: &Row<'_>) -> StoreResult<ManagedItem> {
    Ok(ManagedItem {
        id: rows::job_id(row, "id")?,
        state: ItemState::Generator(rows::generator_status(row, "status")?),
        custom_key: rows::opt_text_col(row, "custom_key")?,
        spec: rows::opt_text_col(row, "spec")?,
        timezone: rows::opt_text_col(row, "timezone")?,
        title: rows::opt_text_col(row, "title")?,
        request: rows::request(row)?,
        tags: tags(row)?,
        options: rows::options(row)?,
        declared: get::<String>(row, "origin")? == "declare",
    })
}

fn tags(row: &Row<'_>) -> StoreResult<Vec<String>> {
    let raw: String = get(row, "tags")?;
    serde_json::from_str(&raw)
        .map_err(|e| timetriggers_core::StoreError::corrupt(format!("column tags: {e}")))
}

/// The jobs half of [`load`]: two seeks, not one scan of the project's jobs. The live key
/// holders come from `jobs_project_custom_key`, the declared jobs from `jobs_declared` (the
/// unary `+` keeps SQLite from preferring the status index).
fn load_jobs_sql(declared: bool) -> String {
    let declared_jobs = if declared {
        format!(
            "UNION SELECT {MANAGED_JOB_COLUMNS}, registered_at FROM jobs WHERE project_id = ?1 \
             AND generator_id IS NULL AND origin = 'declare' \
             AND +status IN ('registered', 'queued', 'running', 'completed', 'skipped')"
        )
    } else {
        String::new()
    };
    format!(
        "SELECT {MANAGED_JOB_COLUMNS}, registered_at FROM jobs \
         WHERE project_id = ?1 AND generator_id IS NULL \
         AND custom_key IN (SELECT value FROM json_each(?2)) \
         AND status IN ('registered', 'queued', 'running') \
         {declared_jobs} \
         ORDER BY registered_at DESC LIMIT 20000"
    )
}

/// Live items holding one of `keys` (any origin) and, when `declared` is set, every live or
/// finished (completed / skipped) item `/declare` created. Occurrence jobs are never items.
fn load(
    conn: &Connection,
    project: &ProjectId,
    keys: &str,
    declared: bool,
) -> StoreResult<Vec<ManagedItem>> {
    let sql = load_jobs_sql(declared);
    let mut items = fetch_all(conn, &sql, [project.as_str(), keys], managed_job)?;
    let declared_generators = if declared {
        "OR origin = 'declare'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {MANAGED_GENERATOR_COLUMNS} FROM generators WHERE project_id = ?1 \
         AND status = 'active' \
         AND (custom_key IN (SELECT value FROM json_each(?2)) {declared_generators})"
    );
    items.extend(fetch_all(
        conn,
        &sql,
        [project.as_str(), keys],
        managed_generator,
    )?);
    Ok(items)
}

fn keys_of(items: &[DeclareItem]) -> StoreResult<String> {
    id_list(items.iter().filter_map(|i| i.custom_key.as_deref()))
}

/// Quota left for `units` more; `Err` when it cannot cover them.
fn check_quota(
    conn: &Connection,
    project: &ProjectId,
    month: &str,
    units: u64,
) -> StoreResult<Result<(), Refusal>> {
    let (quota, used) = triggers::quota_state(conn, project.as_str(), month)?
        .ok_or(timetriggers_core::StoreError::NotFound)?;
    match quota.remaining(used) {
        Some(left) if left < units => Ok(Err(Refusal::QuotaExceeded)),
        _ => Ok(Ok(())),
    }
}

/// [`timetriggers_core::Store::declare`].
pub(crate) fn declare(
    conn: &Connection,
    sync: &DeclareSync,
) -> StoreResult<Result<SyncOutcome, Refusal>> {
    let existing = load(conn, &sync.project_id, &keys_of(&sync.items)?, true)?;
    let steps = plan_declare(&sync.items, &existing);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.items);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units)? {
        return Ok(Err(refusal));
    }
    let mut outcome = SyncOutcome::default();
    for step in steps {
        let line = apply_step(
            conn,
            &sync.project_id,
            &sync.items,
            step,
            Origin::Declare,
            sync.now,
        )?;
        outcome.operations.push(line);
    }
    if units > 0 {
        triggers::charge_units(conn, &sync.project_id, &month, units)?;
    }
    Ok(Ok(outcome))
}

/// [`timetriggers_core::Store::bulk`].
pub(crate) fn bulk(
    conn: &Connection,
    sync: &BulkSync,
) -> StoreResult<Result<SyncOutcome, Refusal>> {
    let mut outcome = SyncOutcome::default();
    let mut cancelled: Vec<JobId> = Vec::new();
    for selector in &sync.cancels {
        for item in select(conn, &sync.project_id, selector)? {
            if cancelled.contains(&item.id) || !item.state.is_pending() {
                continue;
            }
            triggers::cancel_item(conn, &item, sync.now)?;
            outcome.operations.push(SyncResult {
                operation: SyncOperation::Cancelled,
                custom_key: None,
                kind: item.state.kind(),
                id: item.id.clone(),
                changed_fields: None,
            });
            cancelled.push(item.id);
        }
    }
    // The keys of what was cancelled, for the result lines.
    for line in &mut outcome.operations {
        line.custom_key = item_key(conn, &line.id)?;
    }
    let holders = load(conn, &sync.project_id, &keys_of(&sync.upserts)?, false)?;
    let steps = plan_bulk_upserts(&sync.upserts, &holders);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.upserts);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units)? {
        return Ok(Err(refusal));
    }
    for step in steps {
        let line = apply_step(
            conn,
            &sync.project_id,
            &sync.upserts,
            step,
            Origin::Bulk,
            sync.now,
        )?;
        outcome.operations.push(line);
    }
    if units > 0 {
        triggers::charge_units(conn, &sync.project_id, &month, units)?;
    }
    Ok(Ok(outcome))
}

fn item_key(conn: &Connection, id: &JobId) -> StoreResult<Option<String>> {
    let key: Option<Option<String>> = fetch_optional(
        conn,
        "SELECT custom_key FROM jobs WHERE id = ?1 \
         UNION ALL SELECT custom_key FROM generators WHERE id = ?1 LIMIT 1",
        [id.as_str()],
        first,
    )?;
    Ok(key.flatten())
}

/// The items a bulk cancel selector names (pending or not; the caller keeps pending ones).
fn select(
    conn: &Connection,
    project: &ProjectId,
    selector: &BulkSelector,
) -> StoreResult<Vec<FoundItem>> {
    Ok(match selector {
        BulkSelector::CustomKey(key) => triggers::find_live_key_holder(conn, project, key)?
            .into_iter()
            .collect(),
        BulkSelector::Id(id) => triggers::find_by_id(conn, project, id)?
            .into_iter()
            .collect(),
        BulkSelector::Bare(s) => match triggers::find_live_key_holder(conn, project, s)? {
            Some(item) => vec![item],
            None => triggers::find_by_id(conn, project, &JobId::new(s.as_str()))?
                .into_iter()
                .collect(),
        },
        BulkSelector::Tag(tag) => {
            let mut found = fetch_all(
                conn,
                "SELECT id FROM jobs WHERE project_id = ?1 AND status = 'registered' \
                 AND generator_id IS NULL \
                 AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?2)",
                [project.as_str(), tag.as_str()],
                |row| {
                    Ok(FoundItem {
                        id: rows::job_id(row, "id")?,
                        state: ItemState::Job(timetriggers_core::JobStatus::Registered),
                    })
                },
            )?;
            found.extend(fetch_all(
                conn,
                "SELECT id FROM generators WHERE project_id = ?1 AND status = 'active' \
                 AND EXISTS (SELECT 1 FROM json_each(generators.tags) WHERE value = ?2)",
                [project.as_str(), tag.as_str()],
                |row| {
                    Ok(FoundItem {
                        id: rows::job_id(row, "id")?,
                        state: ItemState::Generator(GeneratorStatus::Active),
                    })
                },
            )?);
            found
        }
    })
}

/// Applies one step and returns its result line.
fn apply_step(
    conn: &Connection,
    project: &ProjectId,
    items: &[DeclareItem],
    step: SyncStep,
    origin: Origin,
    now: Timestamp,
) -> StoreResult<SyncResult> {
    let item_at = |index: usize| {
        items.get(index).ok_or_else(|| {
            timetriggers_core::StoreError::corrupt(format!("sync step names item {index}"))
        })
    };
    Ok(match step {
        SyncStep::Add { index } => {
            let item = item_at(index)?;
            let req = item.upsert(project, None, origin, now);
            let (id, _, _) = triggers::apply(conn, &req, UpsertPlan::Create, None)?;
            record_spec(conn, &id, item)?;
            item.applied(SyncOperation::Added, id, None)
        }
        SyncStep::Update {
            index,
            id,
            existing,
            changed,
        } => {
            let item = item_at(index)?;
            let req = item.upsert(project, Some(id.clone()), origin, now);
            triggers::apply(conn, &req, UpsertPlan::Update(id.clone()), Some(existing))?;
            record_spec(conn, &id, item)?;
            item.applied(SyncOperation::Updated, id, Some(changed))
        }
        SyncStep::Unchanged { index, id } => {
            item_at(index)?.result(SyncOperation::Unchanged, id, None)
        }
        SyncStep::Skip { index, id } => item_at(index)?.result(SyncOperation::Skipped, id, None),
        SyncStep::Cancel {
            id,
            kind,
            custom_key,
        } => {
            let item = FoundItem {
                id: id.clone(),
                state: ItemState::pending(kind),
            };
            triggers::cancel_item(conn, &item, now)?;
            SyncResult {
                operation: SyncOperation::Cancelled,
                custom_key,
                kind,
                id,
                changed_fields: None,
            }
        }
    })
}

/// Keeps the declared `scheduledAt` for the next sync's comparison.
fn record_spec(conn: &Connection, id: &JobId, item: &DeclareItem) -> StoreResult<()> {
    let sql = match item.kind() {
        JobKind::Job => "UPDATE jobs SET spec = ?2 WHERE id = ?1",
        JobKind::Generator => "UPDATE generators SET spec = ?2 WHERE id = ?1",
    };
    execute(conn, sql, params![id.as_str(), item.spec.as_deref()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan_test::{explainer, plan};

    /// The declare sync seeks the key holders and the declared jobs; a project's other jobs
    /// (a million `/schedule` jobs, say) are never read.
    #[tokio::test]
    async fn load_seeks_key_holders_and_declared_jobs_only() {
        let (_dir, store, conn) = explainer().await;

        let both = plan(&conn, &load_jobs_sql(true));
        assert!(both.contains("INDEX jobs_project_custom_key"), "{both}");
        assert!(both.contains("INDEX jobs_declared"), "{both}");
        assert!(!both.contains("SCAN jobs"), "{both}");
        let keys = plan(&conn, &load_jobs_sql(false));
        assert!(keys.contains("INDEX jobs_project_custom_key"), "{keys}");
        assert!(!keys.contains("jobs_declared"), "{keys}");

        drop(conn);
        store.close().await;
    }
}

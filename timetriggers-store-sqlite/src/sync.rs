//! `/declare` and `/bulk`: read what the sync concerns, let core plan it
//! ([`plan_declare`], [`plan_bulk_upserts`]), apply the plan — all in the writer's transaction.

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use timetriggers_core::declare::{billable, plan_bulk_upserts, plan_declare};
use timetriggers_core::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, FoundItem, GeneratorStatus, ItemState, JobId,
    JobKind, ManagedItem, Origin, ProjectId, Refusal, StoreResult, SyncOperation, SyncOutcome,
    SyncResult, SyncStep, Timestamp, UpsertPlan,
};

use crate::error::from_sqlx;
use crate::rows::{self, id_list};
use crate::triggers;

const MANAGED_JOB_COLUMNS: &str = "id, status, custom_key, spec, title, method, url, headers, \
     body, tags, max_attempts, timeout_ms, origin";
const MANAGED_GENERATOR_COLUMNS: &str = "id, status, custom_key, COALESCE(spec, expression) AS \
     spec, timezone, title, method, url, headers, body, tags, max_attempts, timeout_ms, origin";

fn managed_job(row: &SqliteRow) -> StoreResult<ManagedItem> {
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
        declared: row.try_get::<String, _>("origin").map_err(from_sqlx)? == "declare",
    })
}

fn managed_generator(row: &SqliteRow) -> StoreResult<ManagedItem> {
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
        declared: row.try_get::<String, _>("origin").map_err(from_sqlx)? == "declare",
    })
}

fn tags(row: &SqliteRow) -> StoreResult<Vec<String>> {
    let raw: String = row.try_get("tags").map_err(from_sqlx)?;
    serde_json::from_str(&raw)
        .map_err(|e| timetriggers_core::StoreError::corrupt(format!("column tags: {e}")))
}

/// Live items holding one of `keys` (any origin) and, when `declared` is set, every live or
/// finished (completed / skipped) item `/declare` created. Occurrence jobs are never items.
async fn load(
    conn: &mut SqliteConnection,
    project: &ProjectId,
    keys: &str,
    declared: bool,
) -> StoreResult<Vec<ManagedItem>> {
    let declared_jobs = if declared {
        "OR (origin = 'declare' AND status IN ('registered', 'queued', 'running', 'completed', 'skipped'))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {MANAGED_JOB_COLUMNS} FROM jobs WHERE project_id = ?1 AND generator_id IS NULL \
         AND ((custom_key IN (SELECT value FROM json_each(?2)) \
               AND status IN ('registered', 'queued', 'running')) {declared_jobs}) \
         ORDER BY registered_at DESC LIMIT 20000"
    );
    let mut items = sqlx::query(&sql)
        .bind(project.as_str())
        .bind(keys)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(managed_job)
        .collect::<StoreResult<Vec<_>>>()?;
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
    let generators = sqlx::query(&sql)
        .bind(project.as_str())
        .bind(keys)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    for row in &generators {
        items.push(managed_generator(row)?);
    }
    Ok(items)
}

fn keys_of(items: &[DeclareItem]) -> StoreResult<String> {
    id_list(items.iter().filter_map(|i| i.custom_key.as_deref()))
}

/// Quota left for `units` more; `Err` when it cannot cover them.
async fn check_quota(
    conn: &mut SqliteConnection,
    project: &ProjectId,
    month: &str,
    units: u64,
) -> StoreResult<Result<(), Refusal>> {
    let row = sqlx::query(
        "SELECT p.month_quota, COALESCE((SELECT used FROM quota_usage q \
             WHERE q.project_id = p.id AND q.month = ?2), 0) AS used \
         FROM projects p WHERE p.id = ?1",
    )
    .bind(project.as_str())
    .bind(month)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?
    .ok_or(timetriggers_core::StoreError::NotFound)?;
    let quota = rows::month_quota(&row, "month_quota")?;
    let used: i64 = row.try_get("used").map_err(from_sqlx)?;
    let used = u64::try_from(used).unwrap_or(0);
    match quota.remaining(used) {
        Some(left) if left < units => Ok(Err(Refusal::QuotaExceeded)),
        _ => Ok(Ok(())),
    }
}

/// [`timetriggers_core::Store::declare`].
pub(crate) async fn declare(
    conn: &mut SqliteConnection,
    sync: &DeclareSync,
) -> StoreResult<Result<SyncOutcome, Refusal>> {
    let existing = load(conn, &sync.project_id, &keys_of(&sync.items)?, true).await?;
    let steps = plan_declare(&sync.items, &existing);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.items);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units).await? {
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
        )
        .await?;
        outcome.operations.push(line);
    }
    if units > 0 {
        triggers::charge_units(conn, &sync.project_id, &month, units).await?;
    }
    Ok(Ok(outcome))
}

/// [`timetriggers_core::Store::bulk`].
pub(crate) async fn bulk(
    conn: &mut SqliteConnection,
    sync: &BulkSync,
) -> StoreResult<Result<SyncOutcome, Refusal>> {
    let mut outcome = SyncOutcome::default();
    let mut cancelled: Vec<JobId> = Vec::new();
    for selector in &sync.cancels {
        for item in select(conn, &sync.project_id, selector).await? {
            if cancelled.contains(&item.id) || !item.state.is_pending() {
                continue;
            }
            triggers::cancel_item(conn, &item, sync.now).await?;
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
        line.custom_key = item_key(conn, &line.id).await?;
    }
    let holders = load(conn, &sync.project_id, &keys_of(&sync.upserts)?, false).await?;
    let steps = plan_bulk_upserts(&sync.upserts, &holders);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.upserts);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units).await? {
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
        )
        .await?;
        outcome.operations.push(line);
    }
    if units > 0 {
        triggers::charge_units(conn, &sync.project_id, &month, units).await?;
    }
    Ok(Ok(outcome))
}

async fn item_key(conn: &mut SqliteConnection, id: &JobId) -> StoreResult<Option<String>> {
    let key: Option<Option<String>> = sqlx::query_scalar(
        "SELECT custom_key FROM jobs WHERE id = ?1 \
         UNION ALL SELECT custom_key FROM generators WHERE id = ?1 LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(key.flatten())
}

/// The items a bulk cancel selector names (pending or not; the caller keeps pending ones).
async fn select(
    conn: &mut SqliteConnection,
    project: &ProjectId,
    selector: &BulkSelector,
) -> StoreResult<Vec<FoundItem>> {
    Ok(match selector {
        BulkSelector::CustomKey(key) => triggers::find_live_key_holder(conn, project, key)
            .await?
            .into_iter()
            .collect(),
        BulkSelector::Id(id) => triggers::find_by_id(conn, project, id)
            .await?
            .into_iter()
            .collect(),
        BulkSelector::Bare(s) => match triggers::find_live_key_holder(conn, project, s).await? {
            Some(item) => vec![item],
            None => triggers::find_by_id(conn, project, &JobId::new(s.as_str()))
                .await?
                .into_iter()
                .collect(),
        },
        BulkSelector::Tag(tag) => {
            let mut found = Vec::new();
            let jobs = sqlx::query(
                "SELECT id FROM jobs WHERE project_id = ?1 AND status = 'registered' \
                 AND generator_id IS NULL \
                 AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?2)",
            )
            .bind(project.as_str())
            .bind(tag)
            .fetch_all(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            for row in &jobs {
                found.push(FoundItem {
                    id: rows::job_id(row, "id")?,
                    state: ItemState::Job(timetriggers_core::JobStatus::Registered),
                });
            }
            let generators = sqlx::query(
                "SELECT id FROM generators WHERE project_id = ?1 AND status = 'active' \
                 AND EXISTS (SELECT 1 FROM json_each(generators.tags) WHERE value = ?2)",
            )
            .bind(project.as_str())
            .bind(tag)
            .fetch_all(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            for row in &generators {
                found.push(FoundItem {
                    id: rows::job_id(row, "id")?,
                    state: ItemState::Generator(GeneratorStatus::Active),
                });
            }
            found
        }
    })
}

/// Applies one step and returns its result line.
async fn apply_step(
    conn: &mut SqliteConnection,
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
            let (id, _, _) = triggers::apply(conn, &req, UpsertPlan::Create, None).await?;
            record_spec(conn, &id, item).await?;
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
            triggers::apply(conn, &req, UpsertPlan::Update(id.clone()), Some(existing)).await?;
            record_spec(conn, &id, item).await?;
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
            triggers::cancel_item(conn, &item, now).await?;
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
async fn record_spec(
    conn: &mut SqliteConnection,
    id: &JobId,
    item: &DeclareItem,
) -> StoreResult<()> {
    let table = match item.kind() {
        JobKind::Job => "jobs",
        JobKind::Generator => "generators",
    };
    sqlx::query(&format!("UPDATE {table} SET spec = ?2 WHERE id = ?1"))
        .bind(id.as_str())
        .bind(item.spec.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

//! `/declare` and `/bulk`: read what the sync concerns, let core plan it
//! ([`plan_declare`], [`plan_bulk_upserts`]), apply the plan — all in one transaction.
//!
//! Concurrency: a sync first takes the advisory locks of every custom key it names (sorted,
//! so two syncs never wait for each other in a cycle; an upsert takes one such lock), and a
//! `/declare` also its project's declare lock (two declares of one project would otherwise
//! both add the same keyless item). Then the rows it reads are locked (`FOR NO KEY UPDATE`).

use std::collections::BTreeSet;

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use timetriggers_core::declare::{billable, plan_bulk_upserts, plan_declare};
use timetriggers_core::{
    BulkSelector, BulkSync, DeclareItem, DeclareSync, FoundItem, GeneratorStatus, ItemState, JobId,
    JobKind, JobStatus, ManagedItem, Origin, ProjectId, Refusal, StoreError, StoreResult,
    SyncOperation, SyncOutcome, SyncResult, SyncStep, Timestamp, UpsertPlan,
};

use crate::error::from_sqlx;
use crate::rows;
use crate::triggers::{self, charge, lock_key, quota_state};

/// The advisory-lock class of a project's `/declare` (`pg_advisory_xact_lock(class, hash)`).
const DECLARE_LOCK_CLASS: i32 = 0x7474_6463; // "ttdc"

const MANAGED_JOB_COLUMNS: &str = "id, status, custom_key, spec, title, method, url, headers, \
     body, tags, max_attempts, timeout_ms, origin";
const MANAGED_GENERATOR_COLUMNS: &str = "id, status, custom_key, COALESCE(spec, expression) AS \
     spec, timezone, title, method, url, headers, body, tags, max_attempts, timeout_ms, origin";

fn managed(row: &PgRow, state: ItemState, timezone: Option<String>) -> StoreResult<ManagedItem> {
    Ok(ManagedItem {
        id: rows::job_id(row, "id")?,
        state,
        custom_key: rows::opt_text(row, "custom_key")?,
        spec: rows::opt_text(row, "spec")?,
        timezone,
        title: rows::opt_text(row, "title")?,
        request: rows::request(row)?,
        tags: rows::tags(row, "tags")?,
        options: rows::options(row)?,
        declared: rows::text(row, "origin")? == Origin::Declare.as_str(),
    })
}

fn managed_job(row: &PgRow) -> StoreResult<ManagedItem> {
    let state = ItemState::Job(rows::job_status(row, "status")?);
    managed(row, state, None)
}

fn managed_generator(row: &PgRow) -> StoreResult<ManagedItem> {
    let state = ItemState::Generator(rows::generator_status(row, "status")?);
    managed(row, state, rows::opt_text(row, "timezone")?)
}

/// Live items holding one of `keys` (any origin) and, when `declared` is set, every live or
/// finished (completed / skipped) item `/declare` created, locked. Occurrence jobs are never
/// items.
async fn load(
    conn: &mut PgConnection,
    project: &ProjectId,
    keys: &[String],
    declared: bool,
) -> StoreResult<Vec<ManagedItem>> {
    // The key holders and the declared jobs, each found by its own index
    // (`jobs_project_custom_key`, the partial `jobs_declared`), locked together by the outer
    // query (PostgreSQL does not lock the rows of a UNION).
    let declared_jobs = if declared {
        "UNION SELECT id FROM jobs WHERE project_id = $1 AND generator_id IS NULL \
         AND origin = 'declare' \
         AND status IN ('registered', 'queued', 'running', 'completed', 'skipped')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {MANAGED_JOB_COLUMNS} FROM jobs WHERE id IN ( \
             SELECT id FROM jobs WHERE project_id = $1 AND generator_id IS NULL \
             AND custom_key = ANY($2) AND status IN ('registered', 'queued', 'running') \
             {declared_jobs}) \
         ORDER BY registered_at DESC LIMIT 20000 FOR NO KEY UPDATE"
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
        "SELECT {MANAGED_GENERATOR_COLUMNS} FROM generators WHERE project_id = $1 \
         AND status = 'active' AND (custom_key = ANY($2) {declared_generators}) \
         ORDER BY id FOR NO KEY UPDATE"
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

fn keys_of(items: &[DeclareItem]) -> Vec<String> {
    items.iter().filter_map(|i| i.custom_key.clone()).collect()
}

/// Takes the advisory lock of every key, in order.
async fn lock_keys(
    conn: &mut PgConnection,
    project: &ProjectId,
    keys: impl IntoIterator<Item = String>,
) -> StoreResult<()> {
    let keys: BTreeSet<String> = keys.into_iter().collect();
    for key in &keys {
        lock_key(conn, project, key).await?;
    }
    Ok(())
}

/// `Err` when the quota cannot cover `units` more.
async fn check_quota(
    conn: &mut PgConnection,
    project: &ProjectId,
    month: &str,
    units: u64,
) -> StoreResult<Result<(), Refusal>> {
    let (quota, used) = quota_state(conn, project, month).await?;
    match quota.remaining(used) {
        Some(left) if left < units => Ok(Err(Refusal::QuotaExceeded)),
        _ => Ok(Ok(())),
    }
}

/// A sync's result and the earliest due time it planned (to announce).
pub(crate) type Synced = (Result<SyncOutcome, Refusal>, Option<Timestamp>);

/// Commits an accepted sync, rolls a refused one back.
async fn finish(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    result: &Result<SyncOutcome, Refusal>,
) -> StoreResult<()> {
    match result {
        Ok(_) => tx.commit().await.map_err(from_sqlx),
        Err(_) => tx.rollback().await.map_err(from_sqlx),
    }
}

/// [`timetriggers_core::Store::declare`].
pub(crate) async fn declare(pool: &PgPool, sync: &DeclareSync) -> StoreResult<Synced> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let result = declare_in(&mut tx, sync).await?;
    finish(tx, &result.0).await?;
    Ok(result)
}

async fn declare_in(conn: &mut PgConnection, sync: &DeclareSync) -> StoreResult<Synced> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(DECLARE_LOCK_CLASS)
        .bind(sync.project_id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let keys = keys_of(&sync.items);
    lock_keys(conn, &sync.project_id, keys.iter().cloned()).await?;
    let existing = load(conn, &sync.project_id, &keys, true).await?;
    let steps = plan_declare(&sync.items, &existing);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.items);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units).await? {
        return Ok((Err(refusal), None));
    }
    let mut outcome = SyncOutcome::default();
    let mut due = None;
    for step in steps {
        let (line, at) = apply_step(
            conn,
            &sync.project_id,
            &sync.items,
            step,
            Origin::Declare,
            sync.now,
        )
        .await?;
        due = earliest(due, at);
        outcome.operations.push(line);
    }
    if units > 0 {
        charge(conn, &sync.project_id, &month, rows::count(units)).await?;
    }
    Ok((Ok(outcome), due))
}

/// [`timetriggers_core::Store::bulk`].
pub(crate) async fn bulk(pool: &PgPool, sync: &BulkSync) -> StoreResult<Synced> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let result = bulk_in(&mut tx, sync).await?;
    finish(tx, &result.0).await?;
    Ok(result)
}

async fn bulk_in(conn: &mut PgConnection, sync: &BulkSync) -> StoreResult<Synced> {
    let selector_keys = sync.cancels.iter().filter_map(|s| match s {
        BulkSelector::CustomKey(k) | BulkSelector::Bare(k) => Some(k.clone()),
        BulkSelector::Id(_) | BulkSelector::Tag(_) => None,
    });
    let upsert_keys = keys_of(&sync.upserts);
    lock_keys(
        conn,
        &sync.project_id,
        selector_keys.chain(upsert_keys.iter().cloned()),
    )
    .await?;

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
    let holders = load(conn, &sync.project_id, &upsert_keys, false).await?;
    let steps = plan_bulk_upserts(&sync.upserts, &holders);
    let month = sync.now.month_key();
    let units = billable(&steps, &sync.upserts);
    if let Err(refusal) = check_quota(conn, &sync.project_id, &month, units).await? {
        return Ok((Err(refusal), None));
    }
    let mut due = None;
    for step in steps {
        let (line, at) = apply_step(
            conn,
            &sync.project_id,
            &sync.upserts,
            step,
            Origin::Bulk,
            sync.now,
        )
        .await?;
        due = earliest(due, at);
        outcome.operations.push(line);
    }
    if units > 0 {
        charge(conn, &sync.project_id, &month, rows::count(units)).await?;
    }
    Ok((Ok(outcome), due))
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn item_key(conn: &mut PgConnection, id: &JobId) -> StoreResult<Option<String>> {
    let key: Option<Option<String>> = sqlx::query_scalar(
        "SELECT custom_key FROM jobs WHERE id = $1 \
         UNION ALL SELECT custom_key FROM generators WHERE id = $1 LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(key.flatten())
}

/// The items a bulk cancel selector names (pending or not; the caller keeps pending ones),
/// locked.
async fn select(
    conn: &mut PgConnection,
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
                "SELECT id FROM jobs WHERE project_id = $1 AND status = 'registered' \
                 AND generator_id IS NULL AND tags @> ARRAY[$2]::text[] \
                 ORDER BY id FOR NO KEY UPDATE",
            )
            .bind(project.as_str())
            .bind(tag)
            .fetch_all(&mut *conn)
            .await
            .map_err(from_sqlx)?;
            for row in &jobs {
                found.push(FoundItem {
                    id: rows::job_id(row, "id")?,
                    state: ItemState::Job(JobStatus::Registered),
                });
            }
            let generators = sqlx::query(
                "SELECT id FROM generators WHERE project_id = $1 AND status = 'active' \
                 AND tags @> ARRAY[$2]::text[] ORDER BY id FOR NO KEY UPDATE",
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

/// Applies one step; returns its result line and, for a planned item, its due time.
async fn apply_step(
    conn: &mut PgConnection,
    project: &ProjectId,
    items: &[DeclareItem],
    step: SyncStep,
    origin: Origin,
    now: Timestamp,
) -> StoreResult<(SyncResult, Option<Timestamp>)> {
    let item_at = |index: usize| {
        items
            .get(index)
            .ok_or_else(|| StoreError::corrupt(format!("sync step names item {index}")))
    };
    Ok(match step {
        SyncStep::Add { index } => {
            let item = item_at(index)?;
            let req = item.upsert(project, None, origin, now);
            let (id, _, _) = triggers::apply(conn, &req, UpsertPlan::Create, None).await?;
            record_spec(conn, &id, item).await?;
            (item.applied(SyncOperation::Added, id, None), item.due_at())
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
            (
                item.applied(SyncOperation::Updated, id, Some(changed)),
                item.due_at(),
            )
        }
        SyncStep::Unchanged { index, id } => (
            item_at(index)?.result(SyncOperation::Unchanged, id, None),
            None,
        ),
        SyncStep::Skip { index, id } => (
            item_at(index)?.result(SyncOperation::Skipped, id, None),
            None,
        ),
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
            let result = SyncResult {
                operation: SyncOperation::Cancelled,
                custom_key,
                kind,
                id,
                changed_fields: None,
            };
            (result, None)
        }
    })
}

/// Keeps the declared `scheduledAt` for the next sync's comparison.
async fn record_spec(conn: &mut PgConnection, id: &JobId, item: &DeclareItem) -> StoreResult<()> {
    let table = match item.kind() {
        JobKind::Job => "jobs",
        JobKind::Generator => "generators",
    };
    sqlx::query(&format!("UPDATE {table} SET spec = $2 WHERE id = $1"))
        .bind(id.as_str())
        .bind(item.spec.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

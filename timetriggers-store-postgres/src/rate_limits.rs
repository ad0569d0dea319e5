//! Rate-limit rules and their enforcement in the claim.
//!
//! When any rule exists, [`claim_due`] claims in one transaction: it locks up to
//! `limit + CANDIDATE_SLACK` due executions and their jobs (`SKIP LOCKED`, so concurrent
//! claimers take disjoint candidates), then locks the rules of the candidates' tags in id order
//! (`FOR UPDATE`: a concurrent claimer checking the same tags waits here, and then sees the
//! usage the first one recorded, because each statement of a READ COMMITTED transaction takes a
//! fresh snapshot), decides each candidate with
//! [`timetriggers_core::rules::rate_limit::admit`], records the starts of admitted ones in
//! `rate_usage`, moves held-back ones to their release time, and starts the admitted ones with
//! the usual claim statement. Without any rule the claim is the usual single statement after
//! one `EXISTS`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;
use timetriggers_core::rules::rate_limit::{self, Admission, Window, WindowUsage};
use timetriggers_core::{
    Claim, ClaimedExecution, NewRateLimit, ProjectId, RateLimit, RateLimitId, StoreError,
    StoreResult, Timestamp, UpdateRateLimit, WindowLimits,
};

use crate::error::from_sqlx;
use crate::rows::{self, duration_ms, ms};
use crate::triggers::random_shard;

/// Candidates looked at beyond the claim's limit, so that held-back executions at the head of
/// the queue do not starve the claim; the rest wait for the next claim (they are still due, so
/// the engine claims again at once).
const CANDIDATE_SLACK: usize = 256;

const RULE_COLUMNS: &str = "id, project_id, tag, per_second, per_minute, per_hour, per_day, \
     per_week, per_month, created_at, updated_at";

fn get<'r, T>(row: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(from_sqlx)
}

fn limit_col(row: &PgRow, col: &str) -> StoreResult<Option<u64>> {
    match get::<Option<i64>>(row, col)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| StoreError::corrupt(format!("column {col}: {v} is out of range"))),
    }
}

fn limits(row: &PgRow) -> StoreResult<WindowLimits> {
    Ok(WindowLimits {
        per_second: limit_col(row, "per_second")?,
        per_minute: limit_col(row, "per_minute")?,
        per_hour: limit_col(row, "per_hour")?,
        per_day: limit_col(row, "per_day")?,
        per_week: limit_col(row, "per_week")?,
        per_month: limit_col(row, "per_month")?,
    })
}

fn rule(row: &PgRow) -> StoreResult<RateLimit> {
    Ok(RateLimit {
        id: RateLimitId::new(get::<String>(row, "id")?),
        project_id: ProjectId::new(get::<String>(row, "project_id")?),
        tag: get(row, "tag")?,
        limits: limits(row)?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

fn bind_limit(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn project_strings(ids: &[ProjectId]) -> Vec<String> {
    ids.iter().map(|p| p.as_str().to_owned()).collect()
}

// ---- rules ------------------------------------------------------------------------------------

/// [`timetriggers_core::Store::list_rate_limits`].
pub(crate) async fn list(pool: &PgPool, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {RULE_COLUMNS} FROM rate_limits WHERE project_id = ANY($1) \
         ORDER BY created_at, id"
    );
    sqlx::query(&sql)
        .bind(project_strings(project_ids))
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rule)
        .collect()
}

/// [`timetriggers_core::Store::get_rate_limit`].
pub(crate) async fn get_rule(
    pool: &PgPool,
    project_ids: &[ProjectId],
    id: &RateLimitId,
) -> StoreResult<Option<RateLimit>> {
    if project_ids.is_empty() {
        return Ok(None);
    }
    let sql =
        format!("SELECT {RULE_COLUMNS} FROM rate_limits WHERE id = $1 AND project_id = ANY($2)");
    sqlx::query(&sql)
        .bind(id.as_str())
        .bind(project_strings(project_ids))
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .as_ref()
        .map(rule)
        .transpose()
}

/// [`timetriggers_core::Store::create_rate_limit`].
pub(crate) async fn create(pool: &PgPool, new: NewRateLimit) -> StoreResult<RateLimit> {
    let l = new.limits;
    sqlx::query(
        "INSERT INTO rate_limits (id, project_id, tag, per_second, per_minute, per_hour, \
         per_day, per_week, per_month, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(new.id.as_str())
    .bind(new.project_id.as_str())
    .bind(&new.tag)
    .bind(bind_limit(l.per_second))
    .bind(bind_limit(l.per_minute))
    .bind(bind_limit(l.per_hour))
    .bind(bind_limit(l.per_day))
    .bind(bind_limit(l.per_week))
    .bind(bind_limit(l.per_month))
    .bind(ms(new.now))
    .execute(pool)
    .await
    .map_err(from_sqlx)?;
    Ok(RateLimit {
        id: new.id,
        project_id: new.project_id,
        tag: new.tag,
        limits: new.limits,
        created_at: new.now,
        updated_at: new.now,
    })
}

/// [`timetriggers_core::Store::update_rate_limit`], in one transaction.
pub(crate) async fn update(pool: &PgPool, u: UpdateRateLimit) -> StoreResult<RateLimit> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let old_tag: Option<String> = sqlx::query_scalar(
        "SELECT tag FROM rate_limits WHERE id = $1 AND project_id = $2 FOR UPDATE",
    )
    .bind(u.id.as_str())
    .bind(u.project_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    let Some(old_tag) = old_tag else {
        return Err(StoreError::NotFound);
    };
    let l = u.limits;
    let sql = format!(
        "UPDATE rate_limits SET tag = $3, per_second = $4, per_minute = $5, per_hour = $6, \
         per_day = $7, per_week = $8, per_month = $9, updated_at = $10 \
         WHERE id = $1 AND project_id = $2 RETURNING {RULE_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(u.id.as_str())
        .bind(u.project_id.as_str())
        .bind(&u.tag)
        .bind(bind_limit(l.per_second))
        .bind(bind_limit(l.per_minute))
        .bind(bind_limit(l.per_hour))
        .bind(bind_limit(l.per_day))
        .bind(bind_limit(l.per_week))
        .bind(bind_limit(l.per_month))
        .bind(ms(u.now))
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    let updated = rule(&row)?;
    release_held(&mut tx, &u.project_id, &[old_tag, u.tag], u.now).await?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(updated)
}

/// [`timetriggers_core::Store::delete_rate_limit`], in one transaction; the tag's usage goes
/// too.
pub(crate) async fn delete(
    pool: &PgPool,
    project_id: &ProjectId,
    id: &RateLimitId,
    now: Timestamp,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let tag: Option<String> = sqlx::query_scalar(
        "DELETE FROM rate_limits WHERE id = $1 AND project_id = $2 RETURNING tag",
    )
    .bind(id.as_str())
    .bind(project_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    let Some(tag) = tag else {
        return Err(StoreError::NotFound);
    };
    sqlx::query("DELETE FROM rate_usage WHERE project_id = $1 AND tag = $2")
        .bind(project_id.as_str())
        .bind(&tag)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    release_held(&mut tx, project_id, &[tag], now).await?;
    tx.commit().await.map_err(from_sqlx)
}

/// Makes the project's executions held back on any of `tags` due at `now`. Only executions
/// still waiting for their release (`due_at = rate_limited_until`) move. Held executions being
/// claimed right now are skipped (the claim decides them).
async fn release_held(
    conn: &mut PgConnection,
    project_id: &ProjectId,
    tags: &[String],
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE executions SET due_at = $3 WHERE id IN ( \
             SELECT id FROM executions \
             WHERE status = 'planned' AND rate_limited_until IS NOT NULL AND project_id = $1 \
                 AND due_at = rate_limited_until AND due_at > $3 \
                 AND rate_limited_tags && $2::text[] \
             FOR NO KEY UPDATE SKIP LOCKED)",
    )
    .bind(project_id.as_str())
    .bind(tags)
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

// ---- enforcement --------------------------------------------------------------------------------

/// Due executions in claim order, locked with their jobs; rows other claimers hold are skipped.
const CANDIDATES: &str = "SELECT e.id, e.job_id, e.project_id, j.tags \
     FROM executions e JOIN jobs j ON j.id = e.job_id \
     WHERE e.status = 'planned' AND e.due_at <= $1 \
     ORDER BY e.due_at, e.planned_at, e.id LIMIT $2 \
     FOR NO KEY UPDATE OF e, j SKIP LOCKED";

/// The rules of these (project, tag) pairs, locked in id order.
const LOCK_RULES: &str = "SELECT r.project_id, r.tag, r.per_second, r.per_minute, r.per_hour, \
         r.per_day, r.per_week, r.per_month \
     FROM rate_limits r \
     JOIN unnest($1::text[], $2::text[]) AS t(project_id, tag) \
         ON r.project_id = t.project_id AND r.tag = t.tag \
     ORDER BY r.id FOR UPDATE OF r";

/// The `L`-th most recent start of a tag inside a window (`$4` = L − 1).
const NTH_LATEST_START: &str = "SELECT started_at FROM rate_usage \
     WHERE project_id = $1 AND tag = $2 AND started_at > $3 \
     ORDER BY started_at DESC LIMIT 1 OFFSET $4";

/// The start of the due-execution pick in [`crate::engine::CLAIM`] and its end.
const PICK_FROM: &str = "WHERE e.status = 'planned' AND e.due_at <= $7";
const PICK_TO: &str = "SKIP LOCKED";

/// [`crate::engine::CLAIM`] picking the executions in `$2` (already locked by this
/// transaction) instead of the earliest due ones; everything else (leases, generators, quota)
/// is the same statement.
fn claim_admitted() -> StoreResult<&'static str> {
    static SQL: OnceLock<Option<String>> = OnceLock::new();
    SQL.get_or_init(|| {
        let claim = crate::engine::CLAIM;
        let start = claim.find(PICK_FROM)?;
        let end = start + claim[start..].find(PICK_TO)? + PICK_TO.len();
        Some(format!(
            "{}WHERE e.id = ANY($2::text[]) AND e.status = 'planned' \
             FOR NO KEY UPDATE OF e, j{}",
            &claim[..start],
            &claim[end..]
        ))
    })
    .as_deref()
    .ok_or_else(|| StoreError::corrupt("the claim statement has an unexpected shape"))
}

/// [`timetriggers_core::Store::claim_due`] with rate limits: `None` when no project has a rule
/// (the caller then runs the usual claim), else the claimed executions.
pub(crate) async fn claim_due(
    pool: &PgPool,
    claim: &Claim,
) -> StoreResult<Option<Vec<ClaimedExecution>>> {
    if claim.limit == 0 {
        return Ok(None);
    }
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rate_limits)")
        .fetch_one(pool)
        .await
        .map_err(from_sqlx)?;
    if !any {
        return Ok(None);
    }
    let now = claim.now;
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let pick = claim.limit.saturating_add(CANDIDATE_SLACK);
    let candidates = sqlx::query(CANDIDATES)
        .bind(ms(now))
        .bind(i64::try_from(pick).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    for row in &candidates {
        let project: String = get(row, "project_id")?;
        for tag in rows::tags(row, "tags")? {
            pairs.insert((project.clone(), tag));
        }
    }
    let (projects, tags): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
    let mut rules: HashMap<(String, String), WindowLimits> = HashMap::new();
    if !projects.is_empty() {
        for row in sqlx::query(LOCK_RULES)
            .bind(&projects)
            .bind(&tags)
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?
        {
            rules.insert((get(&row, "project_id")?, get(&row, "tag")?), limits(&row)?);
        }
    }

    let mut admitted: Vec<String> = Vec::new();
    let mut pruned: HashSet<(String, String)> = HashSet::new();
    for row in &candidates {
        if admitted.len() >= claim.limit {
            break;
        }
        let id: String = get(row, "id")?;
        let project: String = get(row, "project_id")?;
        let ruled: Vec<(String, WindowLimits)> = rows::tags(row, "tags")?
            .into_iter()
            .filter_map(|t| {
                let limits = rules.get(&(project.clone(), t.clone())).copied();
                limits.map(|l| (t, l))
            })
            .collect();
        if ruled.is_empty() {
            admitted.push(id);
            continue;
        }
        let mut usage = Vec::new();
        for (tag, limits) in &ruled {
            for (window, limit) in limits.iter() {
                let nth = if limit == 0 {
                    None
                } else {
                    nth_latest_start(&mut tx, &project, tag, window, limit, now).await?
                };
                usage.push(WindowUsage {
                    tag: tag.as_str(),
                    window,
                    limit,
                    nth_latest_start: nth,
                });
            }
        }
        match rate_limit::admit(now, &usage) {
            Admission::Allowed => {
                for (tag, _) in &ruled {
                    record_start(&mut tx, &project, tag, now).await?;
                    if pruned.insert((project.clone(), tag.clone())) {
                        prune(&mut tx, &project, tag, now).await?;
                    }
                }
                admitted.push(id);
            }
            Admission::HeldBack { until, tags } => {
                let job: String = get(row, "job_id")?;
                hold(&mut tx, &id, &job, now, until, &tags).await?;
            }
        }
    }

    let claimed = if admitted.is_empty() {
        Vec::new()
    } else {
        // An occurrence whose generator another transaction holds right now is left out by the
        // claim statement (as in the usual claim); its start was recorded all the same, which
        // errs on the safe side of the limit.
        sqlx::query(claim_admitted()?)
            .bind(ms(now))
            .bind(&admitted)
            .bind(&claim.worker)
            .bind(duration_ms(claim.lease_margin))
            .bind(now.month_key())
            .bind(random_shard())
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?
            .iter()
            .map(rows::claimed)
            .collect::<StoreResult<Vec<_>>>()?
    };
    tx.commit().await.map_err(from_sqlx)?;
    Ok(Some(claimed))
}

async fn nth_latest_start(
    conn: &mut PgConnection,
    project: &str,
    tag: &str,
    window: Window,
    limit: u64,
    now: Timestamp,
) -> StoreResult<Option<Timestamp>> {
    let offset = i64::try_from(limit.saturating_sub(1)).unwrap_or(i64::MAX);
    let start: Option<i64> = sqlx::query_scalar(NTH_LATEST_START)
        .bind(project)
        .bind(tag)
        .bind(ms(window.since(now)))
        .bind(offset)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(start.map(Timestamp::from_millis))
}

async fn record_start(
    conn: &mut PgConnection,
    project: &str,
    tag: &str,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO rate_usage (project_id, tag, started_at) VALUES ($1, $2, $3)")
        .bind(project)
        .bind(tag)
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Drops a tag's usage older than the longest window (an index range; usually nothing).
async fn prune(
    conn: &mut PgConnection,
    project: &str,
    tag: &str,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM rate_usage WHERE project_id = $1 AND tag = $2 AND started_at <= $3")
        .bind(project)
        .bind(tag)
        .bind(ms(Window::LONGEST.since(now)))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Keeps an execution `planned` until `until`, with the bookkeeping on it and its job.
async fn hold(
    conn: &mut PgConnection,
    execution: &str,
    job: &str,
    now: Timestamp,
    until: Timestamp,
    tags: &[String],
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE executions SET due_at = $2, rate_limited_at = COALESCE(rate_limited_at, $3), \
         rate_limited_until = $2, rate_limited_tags = $4 WHERE id = $1",
    )
    .bind(execution)
    .bind(ms(until))
    .bind(ms(now))
    .bind(tags)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        "UPDATE jobs SET rate_limited_at = COALESCE(rate_limited_at, $3), \
         rate_limited_until = $2, rate_limited_tags = $4 WHERE id = $1",
    )
    .bind(job)
    .bind(ms(until))
    .bind(ms(now))
    .bind(tags)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admitted_claim_replaces_only_the_pick() {
        let sql = claim_admitted().unwrap();
        assert!(sql.contains("WHERE e.id = ANY($2::text[]) AND e.status = 'planned'"));
        assert!(!sql.contains("e.due_at <= $1"));
        assert!(!sql.contains("LIMIT $2"));
        // The rest of the claim is intact.
        assert!(sql.contains("gens AS MATERIALIZED"));
        assert!(sql.contains("charged AS"));
        assert_eq!(
            sql.matches("SKIP LOCKED").count(),
            1,
            "only the generators' remains"
        );
    }
}

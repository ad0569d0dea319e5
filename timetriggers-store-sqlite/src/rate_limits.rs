//! Rate-limit rules and their enforcement inside the claim.
//!
//! [`admit`] runs in the claim's transaction (the single writer, so no other claim interleaves)
//! before the executions are marked `started`: it walks the due executions in claim order and,
//! for those whose job has tags with rules, reads the `L`-th most recent start of each ruled
//! tag and window from `rate_usage` (one seek of `rate_usage_tag_time`, bounded by the window
//! and by `L`), lets [`timetriggers_core::rules::rate_limit::admit`] decide, records the start
//! of an admitted one at once (so the next candidate of the same batch sees it), and moves a
//! held-back one to its release time. When no project has a rule the claim pays one `EXISTS`.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, Row};
use timetriggers_core::rules::rate_limit::{self, Admission, Window, WindowUsage};
use timetriggers_core::{
    Claim, NewRateLimit, ProjectId, RateLimit, RateLimitId, StoreError, StoreResult, Timestamp,
    UpdateRateLimit, WindowLimits,
};

use crate::rows::{get, id_list, ms, tags_json};
use crate::sql::{execute, fetch_all, fetch_one, fetch_optional, first};

/// At most this many held-back executions per claim, so one claim stays a short transaction
/// when a large backlog waits on a tag; the rest are looked at by the next claim (they are
/// still due, so the engine claims again at once).
const MAX_HELD_PER_CLAIM: usize = 1_000;

const RULE_COLUMNS: &str = "id, project_id, tag, per_second, per_minute, per_hour, per_day, \
     per_week, per_month, created_at, updated_at";

fn limit_col(row: &Row<'_>, col: &str) -> StoreResult<Option<u64>> {
    match get::<Option<i64>>(row, col)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| StoreError::corrupt(format!("column {col}: {v} is out of range"))),
    }
}

fn limits(row: &Row<'_>) -> StoreResult<WindowLimits> {
    Ok(WindowLimits {
        per_second: limit_col(row, "per_second")?,
        per_minute: limit_col(row, "per_minute")?,
        per_hour: limit_col(row, "per_hour")?,
        per_day: limit_col(row, "per_day")?,
        per_week: limit_col(row, "per_week")?,
        per_month: limit_col(row, "per_month")?,
    })
}

fn rule(row: &Row<'_>) -> StoreResult<RateLimit> {
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

// ---- rules ------------------------------------------------------------------------------------

/// [`timetriggers_core::Store::list_rate_limits`].
pub(crate) fn list(conn: &Connection, project_ids: &[ProjectId]) -> StoreResult<Vec<RateLimit>> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {RULE_COLUMNS} FROM rate_limits \
         WHERE project_id IN (SELECT value FROM json_each(?1)) ORDER BY created_at, id"
    );
    fetch_all(
        conn,
        &sql,
        [id_list(project_ids.iter().map(ProjectId::as_str))?],
        rule,
    )
}

/// [`timetriggers_core::Store::get_rate_limit`].
pub(crate) fn get_rule(
    conn: &Connection,
    project_ids: &[ProjectId],
    id: &RateLimitId,
) -> StoreResult<Option<RateLimit>> {
    if project_ids.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {RULE_COLUMNS} FROM rate_limits \
         WHERE id = ?1 AND project_id IN (SELECT value FROM json_each(?2))"
    );
    fetch_optional(
        conn,
        &sql,
        params![
            id.as_str(),
            id_list(project_ids.iter().map(ProjectId::as_str))?
        ],
        rule,
    )
}

/// [`timetriggers_core::Store::create_rate_limit`] in the writer's transaction.
pub(crate) fn create(conn: &Connection, new: NewRateLimit) -> StoreResult<RateLimit> {
    let l = new.limits;
    execute(
        conn,
        "INSERT INTO rate_limits (id, project_id, tag, per_second, per_minute, per_hour, \
         per_day, per_week, per_month, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            new.id.as_str(),
            new.project_id.as_str(),
            new.tag,
            bind_limit(l.per_second),
            bind_limit(l.per_minute),
            bind_limit(l.per_hour),
            bind_limit(l.per_day),
            bind_limit(l.per_week),
            bind_limit(l.per_month),
            ms(new.now)
        ],
    )?;
    Ok(RateLimit {
        id: new.id,
        project_id: new.project_id,
        tag: new.tag,
        limits: new.limits,
        created_at: new.now,
        updated_at: new.now,
    })
}

/// [`timetriggers_core::Store::update_rate_limit`] in the writer's transaction.
pub(crate) fn update(conn: &Connection, u: UpdateRateLimit) -> StoreResult<RateLimit> {
    let old_tag: Option<String> = fetch_optional(
        conn,
        "SELECT tag FROM rate_limits WHERE id = ?1 AND project_id = ?2",
        [u.id.as_str(), u.project_id.as_str()],
        first,
    )?;
    let Some(old_tag) = old_tag else {
        return Err(StoreError::NotFound);
    };
    let l = u.limits;
    let sql = format!(
        "UPDATE rate_limits SET tag = ?3, per_second = ?4, per_minute = ?5, per_hour = ?6, \
         per_day = ?7, per_week = ?8, per_month = ?9, updated_at = ?10 \
         WHERE id = ?1 AND project_id = ?2 RETURNING {RULE_COLUMNS}"
    );
    let updated = fetch_one(
        conn,
        &sql,
        params![
            u.id.as_str(),
            u.project_id.as_str(),
            u.tag,
            bind_limit(l.per_second),
            bind_limit(l.per_minute),
            bind_limit(l.per_hour),
            bind_limit(l.per_day),
            bind_limit(l.per_week),
            bind_limit(l.per_month),
            ms(u.now)
        ],
        rule,
    )?;
    release_held(conn, &u.project_id, &old_tag, u.now)?;
    if u.tag != old_tag {
        release_held(conn, &u.project_id, &u.tag, u.now)?;
    }
    Ok(updated)
}

/// [`timetriggers_core::Store::delete_rate_limit`] in the writer's transaction. The tag's
/// usage rows go too (nothing reads them without a rule).
pub(crate) fn delete(
    conn: &Connection,
    project_id: &ProjectId,
    id: &RateLimitId,
    now: Timestamp,
) -> StoreResult<()> {
    let tag: Option<String> = fetch_optional(
        conn,
        "DELETE FROM rate_limits WHERE id = ?1 AND project_id = ?2 RETURNING tag",
        [id.as_str(), project_id.as_str()],
        first,
    )?;
    let Some(tag) = tag else {
        return Err(StoreError::NotFound);
    };
    execute(
        conn,
        "DELETE FROM rate_usage WHERE project_id = ?1 AND tag = ?2",
        [project_id.as_str(), tag.as_str()],
    )?;
    release_held(conn, project_id, &tag, now)
}

/// Makes the project's executions held back on `tag` due at `now` (a changed rule may let them
/// go). Only executions still waiting for their release (`due_at = rate_limited_until`) move.
fn release_held(
    conn: &Connection,
    project_id: &ProjectId,
    tag: &str,
    now: Timestamp,
) -> StoreResult<()> {
    execute(
        conn,
        "UPDATE executions SET due_at = ?3 \
         WHERE status = 'planned' AND rate_limited_until IS NOT NULL AND project_id = ?1 \
           AND due_at = rate_limited_until AND due_at > ?3 \
           AND EXISTS (SELECT 1 FROM json_each(rate_limited_tags) WHERE value = ?2)",
        params![project_id.as_str(), tag, ms(now)],
    )?;
    Ok(())
}

// ---- enforcement --------------------------------------------------------------------------------

/// Due executions in claim order, after the `OFFSET` already admitted ones.
const CANDIDATES: &str = "SELECT e.id, e.job_id, e.project_id, j.tags \
     FROM executions e JOIN jobs j ON j.id = e.job_id \
     WHERE e.status = 'planned' AND e.due_at <= ?1 \
     ORDER BY e.due_at, e.planned_at, e.id LIMIT ?2 OFFSET ?3";

/// The `L`-th most recent start of a tag inside a window.
const NTH_LATEST_START: &str = "SELECT started_at FROM rate_usage \
     WHERE project_id = ?1 AND tag = ?2 AND started_at > ?3 \
     ORDER BY started_at DESC LIMIT 1 OFFSET ?4";

/// Decides which due executions the claim may start, in claim order (at most `claim.limit`):
/// `None` when no project has a rule (the claim then takes the earliest due ones as usual),
/// else the ids to take as a JSON array. Held-back executions are moved to their release time;
/// admitted ones have their starts recorded.
pub(crate) fn admit(conn: &Connection, claim: &Claim) -> StoreResult<Option<String>> {
    let any: bool = fetch_one(conn, "SELECT EXISTS (SELECT 1 FROM rate_limits)", [], first)?;
    if !any {
        return Ok(None);
    }
    let now = claim.now;
    let mut admitted: Vec<String> = Vec::new();
    let mut rules: HashMap<String, HashMap<String, WindowLimits>> = HashMap::new();
    let mut pruned: HashSet<(String, String)> = HashSet::new();
    let mut held = 0usize;
    while admitted.len() < claim.limit && held < MAX_HELD_PER_CLAIM {
        let need = claim.limit - admitted.len();
        let candidates = fetch_all(
            conn,
            CANDIDATES,
            [
                ms(now),
                i64::try_from(need).unwrap_or(i64::MAX),
                i64::try_from(admitted.len()).unwrap_or(i64::MAX),
            ],
            candidate,
        )?;
        if candidates.is_empty() {
            break;
        }
        for Candidate {
            id,
            job,
            project,
            tags,
        } in candidates
        {
            if tags.is_empty() {
                admitted.push(id);
                continue;
            }
            if !rules.contains_key(&project) {
                let loaded = project_rules(conn, &project)?;
                rules.insert(project.clone(), loaded);
            }
            let ruled: Vec<(&String, WindowLimits)> = match rules.get(&project) {
                Some(project_rules) => tags
                    .iter()
                    .filter_map(|t| project_rules.get(t).map(|l| (t, *l)))
                    .collect(),
                None => Vec::new(),
            };
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
                        nth_latest_start(conn, &project, tag, window, limit, now)?
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
                        record_start(conn, &project, tag, now)?;
                        if pruned.insert((project.clone(), (*tag).clone())) {
                            prune(conn, &project, tag, now)?;
                        }
                    }
                    admitted.push(id);
                }
                Admission::HeldBack { until, tags } => {
                    hold(conn, &id, &job, now, until, &tags)?;
                    held += 1;
                }
            }
        }
    }
    id_list(admitted.iter().map(String::as_str)).map(Some)
}

/// A due execution the claim looks at, with its job's tags.
struct Candidate {
    id: String,
    job: String,
    project: String,
    tags: Vec<String>,
}

fn candidate(row: &Row<'_>) -> StoreResult<Candidate> {
    let raw_tags: String = get(row, "tags")?;
    Ok(Candidate {
        id: get(row, "id")?,
        job: get(row, "job_id")?,
        project: get(row, "project_id")?,
        tags: serde_json::from_str(&raw_tags)
            .map_err(|e| StoreError::corrupt(format!("column tags: invalid JSON: {e}")))?,
    })
}

fn project_rules(conn: &Connection, project: &str) -> StoreResult<HashMap<String, WindowLimits>> {
    fetch_all(
        conn,
        "SELECT tag, per_second, per_minute, per_hour, per_day, per_week, per_month \
         FROM rate_limits WHERE project_id = ?1",
        [project],
        |row| Ok((get::<String>(row, "tag")?, limits(row)?)),
    )
    .map(|rules| rules.into_iter().collect())
}

fn nth_latest_start(
    conn: &Connection,
    project: &str,
    tag: &str,
    window: Window,
    limit: u64,
    now: Timestamp,
) -> StoreResult<Option<Timestamp>> {
    let offset = i64::try_from(limit.saturating_sub(1)).unwrap_or(i64::MAX);
    let start: Option<i64> = fetch_optional(
        conn,
        NTH_LATEST_START,
        params![project, tag, ms(window.since(now)), offset],
        first,
    )?;
    Ok(start.map(Timestamp::from_millis))
}

fn record_start(conn: &Connection, project: &str, tag: &str, now: Timestamp) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO rate_usage (project_id, tag, started_at) VALUES (?1, ?2, ?3)",
        params![project, tag, ms(now)],
    )?;
    Ok(())
}

/// Drops a tag's usage older than the longest window (a seek; usually deletes nothing).
fn prune(conn: &Connection, project: &str, tag: &str, now: Timestamp) -> StoreResult<()> {
    execute(
        conn,
        "DELETE FROM rate_usage WHERE project_id = ?1 AND tag = ?2 AND started_at <= ?3",
        params![project, tag, ms(Window::LONGEST.since(now))],
    )?;
    Ok(())
}

/// Keeps an execution `planned` until `until`, with the rate-limit bookkeeping on it and its job.
fn hold(
    conn: &Connection,
    execution: &str,
    job: &str,
    now: Timestamp,
    until: Timestamp,
    tags: &[String],
) -> StoreResult<()> {
    let tags = tags_json(tags)?;
    execute(
        conn,
        "UPDATE executions SET due_at = ?2, rate_limited_at = COALESCE(rate_limited_at, ?3), \
         rate_limited_until = ?2, rate_limited_tags = ?4 WHERE id = ?1",
        params![execution, ms(until), ms(now), tags],
    )?;
    execute(
        conn,
        "UPDATE jobs SET rate_limited_at = COALESCE(rate_limited_at, ?3), \
         rate_limited_until = ?2, rate_limited_tags = ?4 WHERE id = ?1",
        params![job, ms(until), ms(now), tags],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan_test::{explainer, plan};

    /// Candidates come in claim order straight from the planned-due index, the usage count is
    /// one covering-index seek, and re-checking held jobs seeks its partial index.
    #[tokio::test]
    async fn rate_limit_queries_seek_their_indexes() {
        let (_dir, store, conn) = explainer().await;

        let candidates = plan(&conn, CANDIDATES);
        assert!(
            candidates.contains("executions_planned_due"),
            "{candidates}"
        );
        assert!(
            !candidates.contains("TEMP B-TREE FOR ORDER BY"),
            "{candidates}"
        );
        let nth = plan(&conn, NTH_LATEST_START);
        assert!(nth.contains("COVERING INDEX rate_usage_tag_time"), "{nth}");
        assert!(!nth.contains("TEMP B-TREE"), "{nth}");
        let held = plan(
            &conn,
            "SELECT id FROM executions WHERE status = 'planned' \
             AND rate_limited_until IS NOT NULL AND project_id = 'p'",
        );
        assert!(held.contains("executions_rate_limited"), "{held}");

        drop(conn);
        store.close().await;
    }
}

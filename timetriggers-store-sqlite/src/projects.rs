//! Projects and API keys.

use rusqlite::{params, Connection};
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, NewApiKey, NewProject, Project, ProjectId, StoreError,
    StoreResult,
};

use crate::rows::{self, count, ms, API_KEY_COLUMNS, PROJECT_COLUMNS};
use crate::sql::{execute, fetch_one, fetch_optional};

pub(crate) fn create(conn: &Connection, new: NewProject) -> StoreResult<Project> {
    execute(
        conn,
        "INSERT INTO projects (id, slug, month_quota, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            new.id.as_str(),
            new.slug,
            new.month_quota.as_option().map(count),
            ms(new.now)
        ],
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("project slug {:?} is already taken", new.slug))
        }
        other => other,
    })?;
    Ok(Project {
        id: new.id,
        slug: new.slug,
        month_quota: new.month_quota,
        created_at: new.now,
    })
}

pub(crate) fn get(conn: &Connection, id: &ProjectId) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1");
    fetch_optional(conn, &sql, [id.as_str()], rows::project)
}

pub(crate) fn get_by_slug(conn: &Connection, slug: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE slug = ?1");
    fetch_optional(conn, &sql, [slug], rows::project)
}

/// Whether a project exists (inside a write).
pub(crate) fn exists(conn: &Connection, id: &ProjectId) -> StoreResult<bool> {
    let row = fetch_optional(
        conn,
        "SELECT 1 FROM projects WHERE id = ?1",
        [id.as_str()],
        |_| Ok(()),
    )?;
    Ok(row.is_some())
}

pub(crate) fn create_key(conn: &Connection, new: NewApiKey) -> StoreResult<ApiKey> {
    if !exists(conn, &new.project_id)? {
        return Err(StoreError::NotFound);
    }
    let sql = format!(
        "INSERT INTO api_keys (id, project_id, name, key_hash, masked, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {API_KEY_COLUMNS}"
    );
    fetch_one(
        conn,
        &sql,
        params![
            new.id.as_str(),
            new.project_id.as_str(),
            new.name,
            new.key_hash,
            new.masked,
            ms(new.now)
        ],
        rows::api_key,
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict("this API key exists already".into()),
        other => other,
    })
}

pub(crate) fn find_key(conn: &Connection, key_hash: &str) -> StoreResult<Option<AuthenticatedKey>> {
    fetch_optional(
        conn,
        "SELECT id, project_id FROM api_keys WHERE key_hash = ?1",
        [key_hash],
        rows::api_key_ref,
    )
}

pub(crate) fn delete_key(
    conn: &Connection,
    project_id: &ProjectId,
    id: &ApiKeyId,
) -> StoreResult<()> {
    let done = execute(
        conn,
        "DELETE FROM api_keys WHERE id = ?1 AND project_id = ?2",
        [id.as_str(), project_id.as_str()],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

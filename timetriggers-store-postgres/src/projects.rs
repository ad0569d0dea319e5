//! Projects and API keys.

use sqlx::postgres::PgPool;
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, NewApiKey, NewProject, Project, ProjectId, StoreError,
    StoreResult,
};

use crate::error::from_sqlx;
use crate::rows::{self, count, ms, API_KEY_COLUMNS, PROJECT_COLUMNS};

pub(crate) async fn create<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    new: NewProject,
) -> StoreResult<Project> {
    sqlx::query("INSERT INTO projects (id, slug, month_quota, created_at) VALUES ($1, $2, $3, $4)")
        .bind(new.id.as_str())
        .bind(&new.slug)
        .bind(new.month_quota.as_option().map(count))
        .bind(ms(new.now))
        .execute(conn)
        .await
        .map_err(|e| match from_sqlx(e) {
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

pub(crate) async fn get(pool: &PgPool, id: &ProjectId) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1");
    sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::project(&row))
        .transpose()
}

pub(crate) async fn get_by_slug(pool: &PgPool, slug: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE slug = $1");
    sqlx::query(&sql)
        .bind(slug)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::project(&row))
        .transpose()
}

/// Stores a key; `NotFound` if the project does not exist, `Conflict` if the hash does. One
/// statement: the insert selects from the project, so a missing project inserts nothing.
pub(crate) async fn create_key(pool: &PgPool, new: NewApiKey) -> StoreResult<ApiKey> {
    let sql = format!(
        "INSERT INTO api_keys (id, project_id, name, key_hash, masked, created_at) \
         SELECT $1, p.id, $3, $4, $5, $6 FROM projects p WHERE p.id = $2 \
         RETURNING {API_KEY_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new.id.as_str())
        .bind(new.project_id.as_str())
        .bind(&new.name)
        .bind(&new.key_hash)
        .bind(&new.masked)
        .bind(ms(new.now))
        .fetch_optional(pool)
        .await
        .map_err(|e| match from_sqlx(e) {
            StoreError::Conflict(_) => StoreError::Conflict("this API key exists already".into()),
            other => other,
        })?
        .ok_or(StoreError::NotFound)?;
    rows::api_key(&row)
}

pub(crate) async fn find_key(
    pool: &PgPool,
    key_hash: &str,
) -> StoreResult<Option<AuthenticatedKey>> {
    sqlx::query("SELECT id, project_id FROM api_keys WHERE key_hash = $1")
        .bind(key_hash)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::api_key_ref(&row))
        .transpose()
}

pub(crate) async fn delete_key(
    pool: &PgPool,
    project_id: &ProjectId,
    id: &ApiKeyId,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND project_id = $2")
        .bind(id.as_str())
        .bind(project_id.as_str())
        .execute(pool)
        .await
        .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

//! Projects and API keys.

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use timetriggers_core::{
    ApiKey, ApiKeyId, AuthenticatedKey, NewApiKey, NewProject, Project, ProjectId, StoreError,
    StoreResult,
};

use crate::error::from_sqlx;
use crate::rows::{self, count, ms, API_KEY_COLUMNS, PROJECT_COLUMNS};

pub(crate) async fn create(conn: &mut SqliteConnection, new: NewProject) -> StoreResult<Project> {
    sqlx::query("INSERT INTO projects (id, slug, month_quota, created_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(new.id.as_str())
        .bind(&new.slug)
        .bind(new.month_quota.as_option().map(count))
        .bind(ms(new.now))
        .execute(&mut *conn)
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

pub(crate) async fn get(pool: &SqlitePool, id: &ProjectId) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1");
    sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::project(&row))
        .transpose()
}

pub(crate) async fn get_by_slug(pool: &SqlitePool, slug: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE slug = ?1");
    sqlx::query(&sql)
        .bind(slug)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
        .map(|row| rows::project(&row))
        .transpose()
}

/// Whether a project exists (inside a write).
pub(crate) async fn exists(conn: &mut SqliteConnection, id: &ProjectId) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM projects WHERE id = ?1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(row.is_some())
}

pub(crate) async fn create_key(conn: &mut SqliteConnection, new: NewApiKey) -> StoreResult<ApiKey> {
    if !exists(conn, &new.project_id).await? {
        return Err(StoreError::NotFound);
    }
    let sql = format!(
        "INSERT INTO api_keys (id, project_id, name, key_hash, masked, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {API_KEY_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new.id.as_str())
        .bind(new.project_id.as_str())
        .bind(&new.name)
        .bind(&new.key_hash)
        .bind(&new.masked)
        .bind(ms(new.now))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match from_sqlx(e) {
            StoreError::Conflict(_) => StoreError::Conflict("this API key exists already".into()),
            other => other,
        })?;
    rows::api_key(&row)
}

pub(crate) async fn find_key(
    pool: &SqlitePool,
    key_hash: &str,
) -> StoreResult<Option<AuthenticatedKey>> {
    let row = sqlx::query("SELECT id, project_id FROM api_keys WHERE key_hash = ?1")
        .bind(key_hash)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key = rows::api_key_ref(&row)?;
    Ok(Some(key))
}

pub(crate) async fn delete_key(
    conn: &mut SqliteConnection,
    project_id: &ProjectId,
    id: &ApiKeyId,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = ?1 AND project_id = ?2")
        .bind(id.as_str())
        .bind(project_id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

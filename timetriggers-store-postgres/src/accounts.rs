//! Dashboard accounts: users, sessions and project memberships.

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use timetriggers_core::{
    NewProject, NewSession, NewUser, Project, SessionUser, StoreError, StoreResult, User,
    UserCredentials, UserId,
};

use crate::error::from_sqlx;
use crate::projects;
use crate::rows::{self, ms, PROJECT_COLUMNS};

/// The columns [`user`] reads, from `users u`.
const USER_COLUMNS: &str = "u.id, u.email, u.created_at";

fn user(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(rows::text(row, "id")?),
        email: rows::text(row, "email")?,
        created_at: rows::ts(row, "created_at")?,
    })
}

async fn add_member(
    conn: &mut PgConnection,
    user_id: &UserId,
    project: &NewProject,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO project_members (user_id, project_id, joined_at) VALUES ($1, $2, $3)")
        .bind(user_id.as_str())
        .bind(project.id.as_str())
        .bind(ms(project.now))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// [`timetriggers_core::Store::create_user`]: the user, its first project and its membership,
/// in one transaction (nothing stays behind on a conflict).
pub(crate) async fn create_user(pool: &PgPool, new: NewUser) -> StoreResult<User> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(new.id.as_str())
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(ms(new.now))
        .execute(&mut *tx)
        .await
        .map_err(|e| match from_sqlx(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("the email {:?} is already registered", new.email))
            }
            other => other,
        })?;
    let project = new.project.clone();
    projects::create(&mut *tx, new.project).await?;
    add_member(&mut tx, &new.id, &project).await?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(User {
        id: new.id,
        email: new.email,
        created_at: new.now,
    })
}

pub(crate) async fn find_user_by_email(
    pool: &PgPool,
    email: &str,
) -> StoreResult<Option<UserCredentials>> {
    let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(email)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
    else {
        return Ok(None);
    };
    Ok(Some(UserCredentials {
        user: user(&row)?,
        password_hash: rows::text(&row, "password_hash")?,
    }))
}

/// [`timetriggers_core::Store::create_session`]: also deletes the user's sessions that expired
/// at or before `now`. One statement; `NotFound` when there is no such user.
pub(crate) async fn create_session(pool: &PgPool, new: NewSession) -> StoreResult<()> {
    let done = sqlx::query(
        "WITH expired AS ( \
             DELETE FROM sessions WHERE user_id = $2 AND expires_at <= $3) \
         INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
         SELECT $1, u.id, $3, $4 FROM users u WHERE u.id = $2",
    )
    .bind(&new.token_hash)
    .bind(new.user_id.as_str())
    .bind(ms(new.now))
    .bind(ms(new.expires_at))
    .execute(pool)
    .await
    .map_err(|e| match from_sqlx(e) {
        StoreError::Conflict(_) => StoreError::Conflict("this session exists already".into()),
        other => other,
    })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn find_session(
    pool: &PgPool,
    token_hash: &str,
    now: timetriggers_core::Timestamp,
) -> StoreResult<Option<SessionUser>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.expires_at AS expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2"
    );
    let Some(row) = sqlx::query(&sql)
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?
    else {
        return Ok(None);
    };
    Ok(Some(SessionUser {
        user: user(&row)?,
        expires_at: rows::ts(&row, "expires_at")?,
    }))
}

pub(crate) async fn revoke_session(pool: &PgPool, token_hash: &str) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await
        .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn list_user_projects(
    pool: &PgPool,
    user_id: &UserId,
) -> StoreResult<Vec<Project>> {
    let columns = PROJECT_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM project_members m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = $1 ORDER BY m.joined_at, p.id"
    );
    sqlx::query(&sql)
        .bind(user_id.as_str())
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(rows::project)
        .collect()
}

/// A new project of the user, in one transaction; `NotFound` when there is no such user.
pub(crate) async fn create_user_project(
    pool: &PgPool,
    user_id: &UserId,
    new: NewProject,
) -> StoreResult<Project> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE")
        .bind(user_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound);
    }
    let project = projects::create(&mut *tx, new.clone()).await?;
    add_member(&mut tx, user_id, &new).await?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(project)
}

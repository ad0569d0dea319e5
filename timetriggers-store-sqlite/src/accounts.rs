//! Dashboard accounts: users, sessions and project memberships.

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use timetriggers_core::{
    NewProject, NewSession, NewUser, Project, SessionUser, StoreError, StoreResult, Timestamp,
    User, UserCredentials, UserId,
};

use crate::error::from_sqlx;
use crate::projects;
use crate::rows::{self, ms, PROJECT_COLUMNS};

fn text(row: &SqliteRow, col: &str) -> StoreResult<String> {
    sqlx::Row::try_get(row, col).map_err(from_sqlx)
}

fn ts(row: &SqliteRow, col: &str) -> StoreResult<Timestamp> {
    sqlx::Row::try_get::<i64, _>(row, col)
        .map(Timestamp::from_millis)
        .map_err(from_sqlx)
}

/// The columns [`user`] reads, from `users u`.
const USER_COLUMNS: &str = "u.id, u.email, u.created_at";

fn user(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(text(row, "id")?),
        email: text(row, "email")?,
        created_at: ts(row, "created_at")?,
    })
}

async fn add_member(
    conn: &mut SqliteConnection,
    user_id: &UserId,
    project: &NewProject,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO project_members (user_id, project_id, joined_at) VALUES (?1, ?2, ?3)")
        .bind(user_id.as_str())
        .bind(project.id.as_str())
        .bind(ms(project.now))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// [`timetriggers_core::Store::create_user`] in the writer's transaction (its savepoint undoes
/// everything on a conflict).
pub(crate) async fn create_user(conn: &mut SqliteConnection, new: NewUser) -> StoreResult<User> {
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(new.id.as_str())
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(ms(new.now))
        .execute(&mut *conn)
        .await
        .map_err(|e| match from_sqlx(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("the email {:?} is already registered", new.email))
            }
            other => other,
        })?;
    let project = new.project.clone();
    projects::create(conn, new.project).await?;
    add_member(conn, &new.id, &project).await?;
    Ok(User {
        id: new.id,
        email: new.email,
        created_at: new.now,
    })
}

pub(crate) async fn find_user_by_email(
    pool: &SqlitePool,
    email: &str,
) -> StoreResult<Option<UserCredentials>> {
    let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = ?1");
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
        password_hash: text(&row, "password_hash")?,
    }))
}

async fn user_exists(conn: &mut SqliteConnection, id: &UserId) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM users WHERE id = ?1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(row.is_some())
}

/// [`timetriggers_core::Store::create_session`]: also deletes the user's sessions that expired
/// at or before `now`.
pub(crate) async fn create_session(
    conn: &mut SqliteConnection,
    new: NewSession,
) -> StoreResult<()> {
    if !user_exists(conn, &new.user_id).await? {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2")
        .bind(new.user_id.as_str())
        .bind(ms(new.now))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(&new.token_hash)
    .bind(new.user_id.as_str())
    .bind(ms(new.now))
    .bind(ms(new.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| match from_sqlx(e) {
        StoreError::Conflict(_) => StoreError::Conflict("this session exists already".into()),
        other => other,
    })?;
    Ok(())
}

pub(crate) async fn find_session(
    pool: &SqlitePool,
    token_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<SessionUser>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.expires_at AS expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_at > ?2"
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
        expires_at: ts(&row, "expires_at")?,
    }))
}

pub(crate) async fn revoke_session(
    conn: &mut SqliteConnection,
    token_hash: &str,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = ?1")
        .bind(token_hash)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn list_user_projects(
    pool: &SqlitePool,
    user_id: &UserId,
) -> StoreResult<Vec<Project>> {
    let columns = PROJECT_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM project_members m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = ?1 ORDER BY m.joined_at, p.id"
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

pub(crate) async fn create_user_project(
    conn: &mut SqliteConnection,
    user_id: &UserId,
    new: NewProject,
) -> StoreResult<Project> {
    if !user_exists(conn, user_id).await? {
        return Err(StoreError::NotFound);
    }
    let project = projects::create(conn, new.clone()).await?;
    add_member(conn, user_id, &new).await?;
    Ok(project)
}

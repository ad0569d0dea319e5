//! Dashboard accounts: users, sessions and project memberships.

use rusqlite::{params, Connection, Row};
use timetriggers_core::{
    NewProject, NewSession, NewUser, Project, SessionUser, StoreError, StoreResult, Timestamp,
    User, UserCredentials, UserId,
};

use crate::projects;
use crate::rows::{self, get, ms, PROJECT_COLUMNS};
use crate::sql::{execute, fetch_all, fetch_optional};

fn ts(row: &Row<'_>, col: &str) -> StoreResult<Timestamp> {
    get::<i64>(row, col).map(Timestamp::from_millis)
}

/// The columns [`user`] reads, from `users u`.
const USER_COLUMNS: &str = "u.id, u.email, u.created_at";

fn user(row: &Row<'_>) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(get::<String>(row, "id")?),
        email: get(row, "email")?,
        created_at: ts(row, "created_at")?,
    })
}

fn add_member(conn: &Connection, user_id: &UserId, project: &NewProject) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO project_members (user_id, project_id, joined_at) VALUES (?1, ?2, ?3)",
        params![user_id.as_str(), project.id.as_str(), ms(project.now)],
    )?;
    Ok(())
}

/// [`timetriggers_core::Store::create_user`] in the writer's transaction (its savepoint undoes
/// everything on a conflict).
pub(crate) fn create_user(conn: &Connection, new: NewUser) -> StoreResult<User> {
    execute(
        conn,
        "INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![new.id.as_str(), new.email, new.password_hash, ms(new.now)],
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("the email {:?} is already registered", new.email))
        }
        other => other,
    })?;
    let project = new.project.clone();
    projects::create(conn, new.project)?;
    add_member(conn, &new.id, &project)?;
    Ok(User {
        id: new.id,
        email: new.email,
        created_at: new.now,
    })
}

pub(crate) fn find_user_by_email(
    conn: &Connection,
    email: &str,
) -> StoreResult<Option<UserCredentials>> {
    let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = ?1");
    fetch_optional(conn, &sql, [email], |row| {
        Ok(UserCredentials {
            user: user(row)?,
            password_hash: get(row, "password_hash")?,
        })
    })
}

fn user_exists(conn: &Connection, id: &UserId) -> StoreResult<bool> {
    let row = fetch_optional(
        conn,
        "SELECT 1 FROM users WHERE id = ?1",
        [id.as_str()],
        |_| Ok(()),
    )?;
    Ok(row.is_some())
}

/// [`timetriggers_core::Store::create_session`]: also deletes the user's sessions that expired
/// at or before `now`.
pub(crate) fn create_session(conn: &Connection, new: NewSession) -> StoreResult<()> {
    if !user_exists(conn, &new.user_id)? {
        return Err(StoreError::NotFound);
    }
    execute(
        conn,
        "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
        params![new.user_id.as_str(), ms(new.now)],
    )?;
    execute(
        conn,
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            new.token_hash,
            new.user_id.as_str(),
            ms(new.now),
            ms(new.expires_at)
        ],
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict("this session exists already".into()),
        other => other,
    })?;
    Ok(())
}

pub(crate) fn find_session(
    conn: &Connection,
    token_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<SessionUser>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.expires_at AS expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_at > ?2"
    );
    fetch_optional(conn, &sql, params![token_hash, ms(now)], |row| {
        Ok(SessionUser {
            user: user(row)?,
            expires_at: ts(row, "expires_at")?,
        })
    })
}

pub(crate) fn revoke_session(conn: &Connection, token_hash: &str) -> StoreResult<()> {
    let done = execute(
        conn,
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) fn list_user_projects(conn: &Connection, user_id: &UserId) -> StoreResult<Vec<Project>> {
    let columns = PROJECT_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM project_members m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = ?1 ORDER BY m.joined_at, p.id"
    );
    fetch_all(conn, &sql, [user_id.as_str()], rows::project)
}

pub(crate) fn create_user_project(
    conn: &Connection,
    user_id: &UserId,
    new: NewProject,
) -> StoreResult<Project> {
    if !user_exists(conn, user_id)? {
        return Err(StoreError::NotFound);
    }
    let project = projects::create(conn, new.clone())?;
    add_member(conn, user_id, &new)?;
    Ok(project)
}

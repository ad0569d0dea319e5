//! Statement helpers that keep the query modules short: each prepares its statement through
//! the connection's statement cache, runs it, decodes the rows with the caller's function and
//! maps errors with [`from_sqlite`].

use rusqlite::types::{FromSql, Value};
use rusqlite::{Connection, Params, Row};
use timetriggers_core::{StoreError, StoreResult};

use crate::error::from_sqlite;

/// Runs a statement that returns no rows; returns how many rows it changed.
pub(crate) fn execute<P: Params>(conn: &Connection, sql: &str, params: P) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(from_sqlite)
}

/// The first row, decoded, if there is one. For an `INSERT`/`UPDATE`/`DELETE … RETURNING`,
/// every change is made by the first step, whether or not the other rows are read.
pub(crate) fn fetch_optional<P, T>(
    conn: &Connection,
    sql: &str,
    params: P,
    decode: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>>
where
    P: Params,
{
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let mut rows = stmt.query(params).map_err(from_sqlite)?;
    match rows.next().map_err(from_sqlite)? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// The first row, decoded; a statement that returns none (which it always should) is an error.
pub(crate) fn fetch_one<P, T>(
    conn: &Connection,
    sql: &str,
    params: P,
    decode: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<T>
where
    P: Params,
{
    fetch_optional(conn, sql, params, decode)?
        .ok_or_else(|| StoreError::corrupt("a statement that always returns a row returned none"))
}

/// Every row, decoded.
pub(crate) fn fetch_all<P, T>(
    conn: &Connection,
    sql: &str,
    params: P,
    mut decode: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>>
where
    P: Params,
{
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let mut rows = stmt.query(params).map_err(from_sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(from_sqlite)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The first column of a row (for `fetch_*` of a single value).
pub(crate) fn first<T: FromSql>(row: &Row<'_>) -> StoreResult<T> {
    row.get(0)
        .map_err(|e| StoreError::corrupt(format!("column 0: {e}")))
}

/// Runs `f` in a read transaction, so that its statements see one snapshot.
pub(crate) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    execute(conn, "BEGIN", [])?;
    let result = f(conn);
    // Read-only: ending it either way changes nothing; COMMIT also ends it after an error.
    if let Err(e) = execute(conn, "COMMIT", []) {
        // Never leave the connection inside a transaction: it would keep reading this snapshot.
        let _ = execute(conn, "ROLLBACK", []);
        result?;
        return Err(e);
    }
    result
}

/// SQL built at run time (a variable number of `IN` values, optional filters) and its
/// parameters, bound in order to its `?` placeholders.
#[derive(Debug, Default)]
pub(crate) struct Query {
    sql: String,
    params: Vec<Value>,
}

impl Query {
    pub(crate) fn new(sql: impl Into<String>) -> Query {
        Query {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Query {
        self.sql.push_str(sql);
        self
    }

    /// Appends a `?` placeholder bound to `value`.
    pub(crate) fn push_bind(&mut self, value: impl Into<Value>) -> &mut Query {
        self.sql.push('?');
        self.params.push(value.into());
        self
    }

    /// Appends `<column> IN (?, ?, …)`, one placeholder per value.
    pub(crate) fn push_in(&mut self, column: &str, values: &[String]) -> &mut Query {
        self.push(column).push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(v.clone());
        }
        self.push(")")
    }

    /// The SQL text.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// Every row, decoded.
    pub(crate) fn fetch_all<T>(
        &self,
        conn: &Connection,
        decode: impl FnMut(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        fetch_all(
            conn,
            &self.sql,
            rusqlite::params_from_iter(&self.params),
            decode,
        )
    }

    /// The first row, decoded, if there is one.
    pub(crate) fn fetch_optional<T>(
        &self,
        conn: &Connection,
        decode: impl FnOnce(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        fetch_optional(
            conn,
            &self.sql,
            rusqlite::params_from_iter(&self.params),
            decode,
        )
    }
}

//! The advisory lock that keeps a second process off a database file.
//!
//! [`timetriggers_core::Store::is_exclusive`] is `true` for SQLite: at start-up the engine
//! treats every execution left `started` as interrupted. That is only right if no other process
//! is delivering from the same file, so the store takes an exclusive `flock(2)` on a sidecar
//! file `<database>-lock` for as long as its writer runs. The sidecar (rather than the database
//! itself) keeps clear of SQLite's own POSIX locks, which a process drops whenever it closes
//! *any* descriptor of the database file. The lock is released by the kernel when the process
//! dies, so a crash never leaves it behind; the empty sidecar file stays and is harmless.
//!
//! On platforms without `flock` no lock is taken: run one process per file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use timetriggers_core::StoreResult;

/// How long `open` waits for a previous owner (e.g. a process still shutting down).
const LOCK_WAIT: Duration = Duration::from_secs(2);
const LOCK_POLL: Duration = Duration::from_millis(20);

/// The sidecar lock file of a database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    #[cfg(unix)]
    _file: std::fs::File,
}

/// Takes the exclusive lock of `db`, waiting up to [`LOCK_WAIT`] for a previous owner.
#[cfg(unix)]
pub(crate) async fn acquire(db: &Path) -> StoreResult<FileLock> {
    use rustix::fs::{flock, FlockOperation};
    use timetriggers_core::StoreError;

    let path = lock_path(db);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            crate::error::config(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(FileLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(StoreError::Unavailable(format!(
                        "the SQLite database {} is in use by another TimeTriggers store \
                         (lock file {} is held)",
                        db.display(),
                        path.display()
                    )));
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
            Err(e) => {
                return Err(crate::error::config(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// No `flock` here: no lock (documented in the crate docs).
#[cfg(not(unix))]
pub(crate) async fn acquire(_db: &Path) -> StoreResult<FileLock> {
    Ok(FileLock {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            lock_path(Path::new("/data/tt.db")),
            PathBuf::from("/data/tt.db-lock")
        );
        assert_eq!(lock_path(Path::new("tt")), PathBuf::from("tt-lock"));
    }
}

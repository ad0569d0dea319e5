//! A 200 means committed: every write the store acknowledged survives the process being killed
//! with SIGKILL in the middle of a stream of writes.
//!
//! The test re-runs this test binary as a child (selecting `child_writer` and pointing it at a
//! database through an environment variable), reads the ids it reports as acknowledged, kills
//! it, reopens the file and looks for every one of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use timetriggers_core::testing::{at, definition, project, upsert, T0};
use timetriggers_core::{JobId, MonthQuota, ProjectId, Store};
use timetriggers_store_sqlite::SqliteStore;

const CHILD_DB: &str = "TIMETRIGGERS_SQLITE_DURABILITY_CHILD_DB";
const ACKED_BEFORE_KILL: usize = 300;

/// The child: writes from 16 tasks at once and prints each acknowledged id. Does nothing when
/// run as an ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let p = project(&*store, MonthQuota::Unlimited).await;
    println!("project {}", p.id);
    let writers = (0..16).map(|t| {
        let store = store.clone();
        let pid = p.id.clone();
        tokio::spawn(async move {
            // Bounded, in case the parent never kills us.
            for i in 0..5_000i64 {
                let def = definition("https://example.com/", at(60_000 + i));
                let key = format!("k-{t}-{i}");
                let done = store
                    .upsert_trigger(upsert(&pid, None, Some(&key), def, T0))
                    .await
                    .unwrap()
                    .unwrap();
                println!("acked {}", done.id);
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_DB).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();

    let (project, acked) = tokio::task::spawn_blocking(move || {
        let mut project = None;
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // libtest may print its own "test child_writer ... " before the first line.
            if let Some((_, id)) = line.split_once("project ") {
                project = Some(ProjectId::new(id));
            } else if let Some((_, id)) = line.split_once("acked ") {
                acked.push(JobId::new(id));
                if acked.len() >= ACKED_BEFORE_KILL {
                    break;
                }
            }
        }
        (project, acked)
    })
    .await
    .unwrap();
    // SIGKILL while the other writers are still mid-batch.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let project = project.expect("the child reported its project");
    assert_eq!(acked.len(), ACKED_BEFORE_KILL, "the child stopped early");

    let store = tokio::time::timeout(Duration::from_secs(30), SqliteStore::open(&path))
        .await
        .unwrap()
        .unwrap();
    for id in &acked {
        let job = store.get_job(&project, id).await.unwrap();
        assert!(job.is_some(), "acknowledged job {id} was lost");
    }
    store.close().await;

    let mut conn = <sqlx::sqlite::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

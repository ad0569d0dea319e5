//! Builders shared by the checks.

use std::time::Duration;

use bytes::Bytes;

use crate::dispatch::{DispatchOutcome, ResponseSummary};
use crate::ids::{ApiKeyId, ExecutionId, JobId, ProjectId};
use crate::lifecycle::Refusal;
use crate::model::{DeliveryOptions, HttpRequest, MonthQuota, Origin, Project};
use crate::store::{
    Claim, ClaimedExecution, CompletedExecution, NewApiKey, NewProject, Store, TriggerDefinition,
    TriggerSchedule, UpsertTrigger, Upserted,
};
use crate::time::Timestamp;

/// 2026-11-22T09:30:00.000Z, the suite's reference "now".
pub const T0: Timestamp = Timestamp::from_millis(1_795_339_800_000);

/// `T0 + ms`.
pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + ms)
}

/// Creates a project with a fresh slug.
pub async fn project(store: &dyn Store, quota: MonthQuota) -> Project {
    let id = ProjectId::generate();
    let slug = format!("p-{}", &id.as_str()[id.as_str().len() - 12..]);
    store
        .create_project(NewProject {
            id,
            slug,
            month_quota: quota,
            now: T0,
        })
        .await
        .expect("create project")
}

/// A new API key row for `project`.
pub fn new_key(project: &ProjectId, hash: &str) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::generate(),
        project_id: project.clone(),
        name: "test".into(),
        key_hash: hash.into(),
        masked: "ttr_ab…".into(),
        now: T0,
    }
}

/// A one-off definition firing at `fire` with a recognisable URL.
pub fn definition(url: &str, fire: Timestamp) -> TriggerDefinition {
    TriggerDefinition {
        request: HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(b"hello"),
        },
        title: None,
        tags: Vec::new(),
        options: DeliveryOptions::default(),
        schedule: TriggerSchedule::Once {
            at: fire,
            skip: false,
        },
    }
}

/// A create-or-reschedule request.
pub fn upsert(
    project: &ProjectId,
    id: Option<&JobId>,
    key: Option<&str>,
    def: TriggerDefinition,
    now: Timestamp,
) -> UpsertTrigger {
    UpsertTrigger {
        project_id: project.clone(),
        trigger_id: id.cloned(),
        custom_key: key.map(str::to_owned),
        definition: def,
        origin: Origin::Schedule,
        new_job_id: JobId::generate(),
        new_execution_id: ExecutionId::generate(),
        now,
    }
}

/// Upserts and expects success.
pub async fn schedule_ok(store: &dyn Store, req: UpsertTrigger) -> Upserted {
    store
        .upsert_trigger(req)
        .await
        .expect("store error")
        .expect("refused")
}

/// Upserts and expects a refusal.
pub async fn schedule_refused(store: &dyn Store, req: UpsertTrigger) -> Refusal {
    match store.upsert_trigger(req).await.expect("store error") {
        Ok(done) => panic!("expected a refusal, got {done:?}"),
        Err(r) => r,
    }
}

/// Schedules a plain job at `fire` (registered at `T0`).
pub async fn job_at(store: &dyn Store, project: &ProjectId, fire: Timestamp) -> JobId {
    schedule_ok(
        store,
        upsert(
            project,
            None,
            None,
            definition("https://example.com/a", fire),
            T0,
        ),
    )
    .await
    .id
}

/// A claim at `now`.
pub fn claim(now: Timestamp, limit: usize) -> Claim {
    Claim {
        now,
        due_by: now,
        limit,
        lease_margin: Duration::from_secs(30),
        worker: "conformance".into(),
    }
}

/// A 200 answer.
pub fn ok_response() -> DispatchOutcome {
    DispatchOutcome::Response(ResponseSummary {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: "done".into(),
        size: 4,
    })
}

/// Completes a claimed execution without a retry.
pub fn finished(
    c: &ClaimedExecution,
    outcome: DispatchOutcome,
    now: Timestamp,
) -> CompletedExecution {
    CompletedExecution {
        execution_id: c.execution_id.clone(),
        job_id: c.job_id.clone(),
        attempt_number: c.attempt_number,
        completed_at: now,
        outcome,
        retry: None,
    }
}

/// Claims everything due at `now` and completes it with a 200.
pub async fn run_due(store: &dyn Store, now: Timestamp) -> Vec<ClaimedExecution> {
    let claimed = store.claim_due(claim(now, 1000)).await.expect("claim");
    let done: Vec<_> = claimed
        .iter()
        .map(|c| finished(c, ok_response(), now))
        .collect();
    store.complete_executions(&done).await.expect("complete");
    claimed
}

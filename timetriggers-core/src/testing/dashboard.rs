//! Checks for the dashboard's store methods: users, sessions, project membership, key
//! listings, job and execution listings, and replay.
//!
//! Every check makes its own users (unique emails) and projects (unique slugs), so a backend
//! may run them against one shared database.

use crate::dispatch::{DispatchOutcome, ResponseSummary};
use crate::ids::{ApiKeyId, ExecutionId, JobId, ProjectId, UserId};
use crate::model::{ExecutionStatus, JobStatus, MonthQuota, Project, TriggeredBy, User};
use crate::store::{NewProject, Store, StoreError, TriggerRef, TriggerSchedule};
use crate::store_dashboard::{
    ExecutionQuery, HttpStatusFilter, JobQuery, NewSession, NewUser, ReplayJob, ReplayRefusal,
};
use crate::testing::fixtures::*;
use crate::testing::generators::cron_definition;
use crate::time::Timestamp;

fn unique(prefix: &str) -> String {
    let id = UserId::generate();
    format!("{prefix}{}", &id.as_str()[id.as_str().len() - 12..])
}

fn new_project(quota: MonthQuota, now: Timestamp) -> NewProject {
    NewProject {
        id: ProjectId::generate(),
        slug: unique("u-"),
        month_quota: quota,
        now,
    }
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: email.to_owned(),
        password_hash: format!("$argon2id$hash-of-{email}"),
        project: new_project(MonthQuota::Limited(100), T0),
        now: T0,
    }
}

/// Creates a user with a fresh email; returns the user and their first project.
async fn user(store: &dyn Store) -> (User, Project) {
    let email = format!("{}@example.com", unique("user-"));
    let new = new_user(&email);
    let slug = new.project.slug.clone();
    let user = store.create_user(new).await.expect("create user");
    let project = store
        .get_project_by_slug(&slug)
        .await
        .unwrap()
        .expect("the user's first project");
    (user, project)
}

fn session(user: &UserId, hash: &str, expires_at: Timestamp, now: Timestamp) -> NewSession {
    NewSession {
        token_hash: hash.to_owned(),
        user_id: user.clone(),
        expires_at,
        now,
    }
}

/// A user is created with their first project and membership, found by email with the
/// password hash; a taken email or slug is a conflict that creates nothing.
pub async fn user_create_and_find_by_email(store: &dyn Store) {
    let email = format!("{}@example.com", unique("ada-"));
    let new = new_user(&email);
    let project_id = new.project.id.clone();
    let slug = new.project.slug.clone();
    let user = store.create_user(new.clone()).await.unwrap();
    assert_eq!(user.id, new.id);
    assert_eq!(user.email, email);
    assert_eq!(user.created_at, T0);

    let found = store.find_user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(found.user, user);
    assert_eq!(found.password_hash, new.password_hash);
    assert!(store
        .find_user_by_email(&format!("x{email}"))
        .await
        .unwrap()
        .is_none());

    let project = store.get_project(&project_id).await.unwrap().unwrap();
    assert_eq!(project.slug, slug);
    assert_eq!(project.month_quota, MonthQuota::Limited(100));
    assert_eq!(project.created_at, T0);
    assert_eq!(
        store.list_user_projects(&user.id).await.unwrap(),
        vec![project]
    );

    // The same email again: conflict, and its would-be project is not created.
    let mut again = new_user(&email);
    let again_slug = again.project.slug.clone();
    again.password_hash = "other".into();
    let dup = store.create_user(again.clone()).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(store
        .get_project_by_slug(&again_slug)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .list_user_projects(&again.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_user_by_email(&email)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        new.password_hash
    );

    // A taken slug with a new email: conflict, and the user is not created.
    let other_email = format!("{}@example.com", unique("bob-"));
    let mut taken_slug = new_user(&other_email);
    taken_slug.project.slug = slug;
    let dup = store.create_user(taken_slug).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(store
        .find_user_by_email(&other_email)
        .await
        .unwrap()
        .is_none());
}

/// A session is found until it expires (exclusive), never after it is revoked; unknown users
/// and duplicate token hashes are refused; housekeeping never touches live sessions.
pub async fn sessions_expire_and_are_revocable(store: &dyn Store) {
    let (user, _) = user(store).await;
    let hash = unique("session-hash-");
    let expires = at(5 * 24 * 3_600_000);
    store
        .create_session(session(&user.id, &hash, expires, T0))
        .await
        .unwrap();

    let live = store.find_session(&hash, T0).await.unwrap().unwrap();
    assert_eq!(live.user, user);
    assert_eq!(live.expires_at, expires);
    let last_ms = Timestamp::from_millis(expires.as_millis() - 1);
    assert!(store.find_session(&hash, last_ms).await.unwrap().is_some());
    assert!(store.find_session(&hash, expires).await.unwrap().is_none());
    assert!(store
        .find_session("no-such-hash", T0)
        .await
        .unwrap()
        .is_none());

    let dup = store
        .create_session(session(&user.id, &hash, expires, T0))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let nobody = store
        .create_session(session(
            &UserId::generate(),
            &unique("orphan-"),
            expires,
            T0,
        ))
        .await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");

    // A second session of the same user; creating a third after the first expired may purge
    // the first, never the second.
    let short = unique("short-");
    let long = unique("long-");
    store
        .create_session(session(&user.id, &short, at(1_000), T0))
        .await
        .unwrap();
    store
        .create_session(session(&user.id, &long, at(10_000_000), T0))
        .await
        .unwrap();
    store
        .create_session(session(
            &user.id,
            &unique("third-"),
            at(20_000_000),
            at(5_000),
        ))
        .await
        .unwrap();
    assert!(store
        .find_session(&short, at(5_000))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_session(&long, at(5_000))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_session(&hash, at(5_000))
        .await
        .unwrap()
        .is_some());

    store.revoke_session(&hash).await.unwrap();
    assert!(store.find_session(&hash, T0).await.unwrap().is_none());
    let again = store.revoke_session(&hash).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    // Other sessions of the user are untouched.
    assert!(store.find_session(&long, T0).await.unwrap().is_some());
}

/// Users list the projects they are members of, oldest first; creating one makes the user a
/// member; another user's projects never show.
pub async fn user_projects_membership(store: &dyn Store) {
    let (ada, first) = user(store).await;
    let (bob, bobs) = user(store).await;

    let second = store
        .create_user_project(&ada.id, new_project(MonthQuota::Unlimited, at(1_000)))
        .await
        .unwrap();
    assert_eq!(second.created_at, at(1_000));
    assert_eq!(second.month_quota, MonthQuota::Unlimited);
    assert_eq!(
        store.get_project(&second.id).await.unwrap(),
        Some(second.clone())
    );
    let third = store
        .create_user_project(&ada.id, new_project(MonthQuota::Limited(3), at(2_000)))
        .await
        .unwrap();
    assert_eq!(
        store.list_user_projects(&ada.id).await.unwrap(),
        vec![first.clone(), second, third]
    );
    assert_eq!(store.list_user_projects(&bob.id).await.unwrap(), vec![bobs]);
    assert!(store
        .list_user_projects(&UserId::generate())
        .await
        .unwrap()
        .is_empty());

    // A taken slug: conflict, no membership.
    let mut taken = new_project(MonthQuota::Unlimited, at(3_000));
    taken.slug = first.slug.clone();
    let dup = store.create_user_project(&bob.id, taken).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(store.list_user_projects(&bob.id).await.unwrap().len(), 1);

    // An unknown user: not found, and the project is not created.
    let orphan = new_project(MonthQuota::Unlimited, at(3_000));
    let slug = orphan.slug.clone();
    let missing = store.create_user_project(&UserId::generate(), orphan).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert!(store.get_project_by_slug(&slug).await.unwrap().is_none());
}

/// Keys are listed per project scope, newest first, masked; deleted keys disappear.
pub async fn list_api_keys_is_scoped_and_newest_first(store: &dyn Store) {
    let p1 = project(store, MonthQuota::Unlimited).await;
    let p2 = project(store, MonthQuota::Unlimited).await;
    let mut created = Vec::new();
    for (i, p) in [&p1, &p2, &p1].into_iter().enumerate() {
        let mut key = new_key(&p.id, &unique("hash-"));
        key.now = at(i64::try_from(i).unwrap() * 1_000);
        key.name = format!("key {i}");
        created.push(store.create_api_key(key).await.unwrap());
    }
    let only_p1 = store
        .list_api_keys(std::slice::from_ref(&p1.id))
        .await
        .unwrap();
    assert_eq!(only_p1, vec![created[2].clone(), created[0].clone()]);
    assert_eq!(only_p1[0].masked, "ttr_ab…");
    assert_eq!(only_p1[0].name, "key 2");
    let both = store
        .list_api_keys(&[p1.id.clone(), p2.id.clone()])
        .await
        .unwrap();
    assert_eq!(
        both,
        vec![created[2].clone(), created[1].clone(), created[0].clone()]
    );
    assert!(store.list_api_keys(&[]).await.unwrap().is_empty());
    assert!(store
        .list_api_keys(&[ProjectId::generate()])
        .await
        .unwrap()
        .is_empty());

    store.delete_api_key(&p1.id, &created[0].id).await.unwrap();
    assert_eq!(
        store
            .list_api_keys(std::slice::from_ref(&p1.id))
            .await
            .unwrap(),
        vec![created[2].clone()]
    );
    let gone = store.delete_api_key(&p1.id, &ApiKeyId::generate()).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
}

fn jobs_query(projects: &[&ProjectId]) -> JobQuery {
    JobQuery {
        project_ids: projects.iter().map(|p| (*p).clone()).collect(),
        statuses: Vec::new(),
        id: None,
        limit: 500,
        offset: 0,
    }
}

fn ids(jobs: &[crate::model::Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

/// Jobs are listed newest `scheduled_at` first within the scope, filtered by status list and
/// id (a generator id lists its occurrences), paged, with the total before paging.
pub async fn list_jobs_filters_pages_and_counts(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let other = project(store, MonthQuota::Unlimited).await;
    // Five jobs at distinct times, plus two sharing a time (ties by id, descending).
    let j1 = job_at(store, &p.id, at(1_000)).await;
    let j2 = job_at(store, &p.id, at(2_000)).await;
    let j3 = job_at(store, &p.id, at(3_000)).await;
    let j4 = job_at(store, &p.id, at(4_000)).await;
    let mut tied = [
        job_at(store, &p.id, at(9_000)).await,
        job_at(store, &p.id, at(9_000)).await,
    ];
    tied.sort();
    let foreign = job_at(store, &other.id, at(5_000)).await;

    // j1 and j2 complete, j3 is cancelled, one skipped job.
    run_due(store, at(2_000)).await;
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(j3.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let mut skipped_def = definition("https://example.com/skip", at(-60_000));
    skipped_def.schedule = TriggerSchedule::Once {
        at: at(-60_000),
        skip: true,
    };
    let skipped = schedule_ok(store, upsert(&p.id, None, None, skipped_def, T0))
        .await
        .id;

    let all = store.list_jobs(&jobs_query(&[&p.id])).await.unwrap();
    assert_eq!(all.total, 7);
    assert_eq!(
        ids(&all.jobs),
        vec![
            tied[1].clone(),
            tied[0].clone(),
            j4.clone(),
            j3.clone(),
            j2.clone(),
            j1.clone(),
            skipped.clone()
        ]
    );
    // The listed job is the full job, as get_job reads it.
    let full = store.get_job(&p.id, &j2).await.unwrap().unwrap();
    assert_eq!(all.jobs[4], full);
    assert_eq!(full.status, JobStatus::Completed);
    assert_eq!(full.last.response_status, Some(200));

    // Status lists.
    let mut q = jobs_query(&[&p.id]);
    q.statuses = vec![JobStatus::Completed, JobStatus::Skipped];
    let page = store.list_jobs(&q).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        ids(&page.jobs),
        vec![j2.clone(), j1.clone(), skipped.clone()]
    );
    q.statuses = vec![JobStatus::Cancelled];
    assert_eq!(
        ids(&store.list_jobs(&q).await.unwrap().jobs),
        vec![j3.clone()]
    );
    q.statuses = vec![JobStatus::Running];
    let none = store.list_jobs(&q).await.unwrap();
    assert_eq!((none.total, none.jobs.len()), (0, 0));

    // Paging: total is before paging; an offset past the end is an empty page.
    let mut q = jobs_query(&[&p.id]);
    q.limit = 2;
    q.offset = 1;
    let page = store.list_jobs(&q).await.unwrap();
    assert_eq!(page.total, 7);
    assert_eq!(ids(&page.jobs), vec![tied[0].clone(), j4.clone()]);
    q.offset = 6;
    let page = store.list_jobs(&q).await.unwrap();
    assert_eq!(ids(&page.jobs), vec![skipped.clone()]);
    q.offset = 7;
    let page = store.list_jobs(&q).await.unwrap();
    assert_eq!((page.total, page.jobs.len()), (7, 0));
    q.offset = 1_000_000;
    assert!(store.list_jobs(&q).await.unwrap().jobs.is_empty());

    // The id filter, scoped.
    let mut q = jobs_query(&[&p.id]);
    q.id = Some(j4.clone());
    let page = store.list_jobs(&q).await.unwrap();
    assert_eq!((page.total, ids(&page.jobs)), (1, vec![j4.clone()]));
    q.id = Some(foreign.clone());
    assert_eq!(store.list_jobs(&q).await.unwrap().total, 0);
    q.id = Some(JobId::generate());
    assert_eq!(store.list_jobs(&q).await.unwrap().total, 0);

    // Scope: several projects; none.
    let both = store
        .list_jobs(&jobs_query(&[&p.id, &other.id]))
        .await
        .unwrap();
    assert_eq!(both.total, 8);
    assert_eq!(both.jobs[2].id, foreign);
    assert_eq!(both.jobs[2].project_slug, other.slug);
    let nothing = store.list_jobs(&jobs_query(&[])).await.unwrap();
    assert_eq!((nothing.total, nothing.jobs.len()), (0, 0));

    // Generators are not listed; their occurrences are, and the generator's id finds them.
    let g = project(store, MonthQuota::Unlimited).await;
    let (def, occurrence) = cron_definition("https://example.com/cron", at(60_000));
    let generator = schedule_ok(store, upsert(&g.id, None, Some("series"), def, T0))
        .await
        .id;
    let listed = store.list_jobs(&jobs_query(&[&g.id])).await.unwrap();
    assert_eq!(ids(&listed.jobs), vec![occurrence.clone()]);
    let link = listed.jobs[0].generator.as_ref().expect("generator link");
    assert_eq!(link.id, generator);
    assert_eq!(link.custom_key.as_deref(), Some("series"));
    let mut q = jobs_query(&[&g.id]);
    q.id = Some(generator);
    assert_eq!(
        ids(&store.list_jobs(&q).await.unwrap().jobs),
        vec![occurrence]
    );
}

fn response(status: u16) -> DispatchOutcome {
    DispatchOutcome::Response(ResponseSummary {
        status,
        headers: vec![("x-status".into(), status.to_string())],
        body: format!("status {status}"),
        size: 10,
    })
}

fn executions_query(projects: &[&ProjectId]) -> ExecutionQuery {
    ExecutionQuery {
        project_ids: projects.iter().map(|p| (*p).clone()).collect(),
        job_id: None,
        custom_key: None,
        job_statuses: Vec::new(),
        execution_statuses: Vec::new(),
        http_status: None,
        limit: 500,
        offset: 0,
    }
}

async fn listed(store: &dyn Store, q: &ExecutionQuery) -> (u64, Vec<JobId>) {
    let page = store.list_executions(q).await.unwrap();
    let jobs = page
        .executions
        .iter()
        .map(|e| e.execution.job_id.clone())
        .collect();
    (page.total, jobs)
}

/// Executions are listed newest `planned_at` first within the scope, with their job's facts
/// and without response bodies, filtered by job id, custom key, job status, execution status
/// and HTTP status (exact or class), paged, with the total before paging.
pub async fn list_executions_filters_pages_and_counts(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let other = project(store, MonthQuota::Unlimited).await;
    // Four jobs due at 1 s..4 s, answered 200, 503, 404 and a connection error.
    let mut jobs = Vec::new();
    for (i, key) in ["k-ok", "k-503", "k-404", "k-err"].into_iter().enumerate() {
        let fire = at(1_000 * (i64::try_from(i).unwrap() + 1));
        let mut def = definition(&format!("https://example.com/{key}"), fire);
        def.title = Some(format!("title {key}"));
        def.request.method = "PUT".into();
        jobs.push(
            schedule_ok(store, upsert(&p.id, None, Some(key), def, T0))
                .await
                .id,
        );
    }
    let claimed = store.claim_due(claim(at(4_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let outcomes: Vec<_> = claimed
        .iter()
        .map(|c| {
            let outcome = match jobs.iter().position(|j| j == &c.job_id) {
                Some(0) => response(200),
                Some(1) => response(503),
                Some(2) => response(404),
                _ => DispatchOutcome::Failed("connection refused".into()),
            };
            finished(c, outcome, at(4_500))
        })
        .collect();
    store.complete_executions(&outcomes).await.unwrap();
    // A registered job (planned execution) at 6 s, a cancelled one at 7 s, another project's.
    let planned = job_at(store, &p.id, at(6_000)).await;
    let cancelled = job_at(store, &p.id, at(7_000)).await;
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(cancelled.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let foreign = job_at(store, &other.id, at(5_000)).await;

    let q = executions_query(&[&p.id]);
    let page = store.list_executions(&q).await.unwrap();
    assert_eq!(page.total, 6);
    let order: Vec<_> = page
        .executions
        .iter()
        .map(|e| e.execution.job_id.clone())
        .collect();
    assert_eq!(
        order,
        vec![
            cancelled.clone(),
            planned.clone(),
            jobs[3].clone(),
            jobs[2].clone(),
            jobs[1].clone(),
            jobs[0].clone()
        ]
    );
    let e503 = &page.executions[4];
    assert_eq!(e503.execution.response_status, Some(503));
    assert_eq!(e503.execution.response_size, Some(10));
    assert_eq!(e503.execution.status, ExecutionStatus::Complete);
    assert_eq!(e503.execution.triggered_by, TriggeredBy::Scheduler);
    assert_eq!(e503.execution.attempt_number, 1);
    assert_eq!(e503.execution.planned_at, at(2_000));
    assert_eq!(e503.execution.started_at, Some(at(4_000)));
    assert_eq!(e503.execution.completed_at, Some(at(4_500)));
    assert_eq!(e503.execution.project_id, p.id);
    assert_eq!(
        e503.execution.response_headers, None,
        "listings carry no headers"
    );
    assert_eq!(e503.execution.response_body, None, "listings carry no body");
    assert_eq!(e503.job.custom_key.as_deref(), Some("k-503"));
    assert_eq!(e503.job.title.as_deref(), Some("title k-503"));
    assert_eq!(e503.job.status, JobStatus::Completed);
    assert_eq!(e503.job.url, "https://example.com/k-503");
    assert_eq!(e503.job.method, "PUT");
    assert_eq!(e503.job.project_slug, p.slug);
    let failed = &page.executions[2];
    assert_eq!(failed.execution.response_status, None);
    assert_eq!(
        failed.execution.error_message.as_deref(),
        Some("connection refused")
    );
    assert_eq!(
        page.executions[0].execution.status,
        ExecutionStatus::Cancelled
    );
    assert_eq!(page.executions[0].job.status, JobStatus::Cancelled);
    assert_eq!(
        page.executions[1].execution.status,
        ExecutionStatus::Planned
    );

    // Job id and custom key.
    let mut q = executions_query(&[&p.id]);
    q.job_id = Some(jobs[2].clone());
    assert_eq!(listed(store, &q).await, (1, vec![jobs[2].clone()]));
    q.job_id = Some(foreign.clone());
    assert_eq!(listed(store, &q).await.0, 0);
    let mut q = executions_query(&[&p.id]);
    q.custom_key = Some("k-err".into());
    assert_eq!(listed(store, &q).await, (1, vec![jobs[3].clone()]));
    q.custom_key = Some("nope".into());
    assert_eq!(listed(store, &q).await.0, 0);

    // Job and execution statuses.
    let mut q = executions_query(&[&p.id]);
    q.job_statuses = vec![JobStatus::Registered, JobStatus::Cancelled];
    assert_eq!(
        listed(store, &q).await,
        (2, vec![cancelled.clone(), planned.clone()])
    );
    let mut q = executions_query(&[&p.id]);
    q.execution_statuses = vec![ExecutionStatus::Planned];
    assert_eq!(listed(store, &q).await, (1, vec![planned.clone()]));
    q.execution_statuses = vec![ExecutionStatus::Complete, ExecutionStatus::Cancelled];
    assert_eq!(listed(store, &q).await.0, 5);

    // HTTP status: exact, class; executions without a response never match.
    let mut q = executions_query(&[&p.id]);
    q.http_status = Some(HttpStatusFilter::Exact(503));
    assert_eq!(listed(store, &q).await, (1, vec![jobs[1].clone()]));
    q.http_status = Some(HttpStatusFilter::Class(5));
    assert_eq!(listed(store, &q).await, (1, vec![jobs[1].clone()]));
    q.http_status = Some(HttpStatusFilter::Class(4));
    assert_eq!(listed(store, &q).await, (1, vec![jobs[2].clone()]));
    q.http_status = Some(HttpStatusFilter::Class(2));
    assert_eq!(listed(store, &q).await, (1, vec![jobs[0].clone()]));
    q.http_status = Some(HttpStatusFilter::Exact(500));
    assert_eq!(listed(store, &q).await.0, 0);

    // Filters combine.
    let mut q = executions_query(&[&p.id]);
    q.job_statuses = vec![JobStatus::Completed];
    q.http_status = Some(HttpStatusFilter::Class(4));
    q.custom_key = Some("k-404".into());
    assert_eq!(listed(store, &q).await, (1, vec![jobs[2].clone()]));
    q.custom_key = Some("k-ok".into());
    assert_eq!(listed(store, &q).await.0, 0);

    // Paging.
    let mut q = executions_query(&[&p.id]);
    q.limit = 2;
    q.offset = 2;
    assert_eq!(
        listed(store, &q).await,
        (6, vec![jobs[3].clone(), jobs[2].clone()])
    );
    q.offset = 6;
    assert_eq!(listed(store, &q).await, (6, vec![]));

    // Scope.
    let both = executions_query(&[&p.id, &other.id]);
    assert_eq!(listed(store, &both).await.0, 7);
    let page = store
        .list_executions(&executions_query(&[&other.id]))
        .await
        .unwrap();
    assert_eq!(page.executions.len(), 1);
    assert_eq!(page.executions[0].job.project_slug, other.slug);
    assert_eq!(listed(store, &executions_query(&[])).await, (0, vec![]));
}

fn replay(projects: &[&ProjectId], job: &JobId, by: TriggeredBy, now: Timestamp) -> ReplayJob {
    ReplayJob {
        project_ids: projects.iter().map(|p| (*p).clone()).collect(),
        job_id: job.clone(),
        execution_id: ExecutionId::generate(),
        triggered_by: by,
        now,
    }
}

/// Replay runs a completed, cancelled or skipped job again as a new planned execution with
/// the next attempt number, due now, the job `queued`, one quota unit charged; it refuses
/// unknown or foreign jobs, unfinished jobs, an exhausted quota and a custom key now held by
/// another live item, changing nothing.
pub async fn replay_follows_the_state_rules(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(10)).await;
    let other = project(store, MonthQuota::Unlimited).await;

    // Registered and running jobs are not finished.
    let registered = job_at(store, &p.id, at(60_000)).await;
    let refused = store
        .replay_job(replay(&[&p.id], &registered, TriggeredBy::Replay, T0))
        .await
        .unwrap();
    assert_eq!(
        refused,
        Err(ReplayRefusal::NotFinished(JobStatus::Registered))
    );
    let running = job_at(store, &p.id, at(1_000)).await;
    let claimed = store.claim_due(claim(at(1_000), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        store
            .replay_job(replay(&[&p.id], &running, TriggeredBy::Replay, at(1_000)))
            .await
            .unwrap(),
        Err(ReplayRefusal::NotFinished(JobStatus::Running))
    );

    // Completed: attempt 2, queued, due now, charged.
    store
        .complete_executions(&[finished(&claimed[0], response(500), at(1_500))])
        .await
        .unwrap();
    let now = at(10_000);
    let r = replay(&[&other.id, &p.id], &running, TriggeredBy::Replay, now);
    let execution_id = r.execution_id.clone();
    let done = store.replay_job(r).await.unwrap().unwrap();
    assert_eq!(done.job_id, running);
    assert_eq!(done.project_id, p.id);
    assert_eq!(done.execution_id, execution_id);
    assert_eq!(done.attempt_number, 2);
    assert_eq!(done.due_at, now);
    // 10 − (registered, running, this replay).
    assert_eq!(done.month_quota_remaining, Some(7));
    let job = store.get_job(&p.id, &running).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.completed_at, None);
    assert_eq!(
        job.last.attempt_number,
        Some(1),
        "kept until the replay completes"
    );
    assert_eq!(job.last.response_status, Some(500));
    let execs = store
        .list_job_executions(&p.id, &running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].id, execution_id);
    assert_eq!(execs[0].attempt_number, 2);
    assert_eq!(execs[0].triggered_by, TriggeredBy::Replay);
    assert_eq!(execs[0].status, ExecutionStatus::Planned);
    assert_eq!(execs[0].planned_at, now);
    assert_eq!(execs[0].response_status, None);
    assert_eq!(execs[1].attempt_number, 1);
    // Queued now, so not replayable again until it completes.
    assert_eq!(
        store
            .replay_job(replay(&[&p.id], &running, TriggeredBy::Retry, now))
            .await
            .unwrap(),
        Err(ReplayRefusal::NotFinished(JobStatus::Queued))
    );

    // The engine takes it like any due execution and completes the job.
    assert_eq!(store.next_due_at().await.unwrap(), Some(now));
    let taken = store.claim_due(claim(now, 10)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].execution_id, execution_id);
    assert_eq!(taken[0].attempt_number, 2);
    assert_eq!(taken[0].triggered_by, TriggeredBy::Replay);
    store
        .complete_executions(&[finished(&taken[0], response(200), at(11_000))])
        .await
        .unwrap();
    let job = store.get_job(&p.id, &running).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.completed_at, Some(at(11_000)));
    assert_eq!(job.last.attempt_number, Some(2));
    assert_eq!(job.last.response_status, Some(200));

    // A dashboard retry of the completed job: attempt 3.
    let done = store
        .replay_job(replay(&[&p.id], &running, TriggeredBy::Retry, at(12_000)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.attempt_number, 3);
    let execs = store
        .list_job_executions(&p.id, &running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execs[0].triggered_by, TriggeredBy::Retry);

    // Cancelled: its cancelled execution was attempt 1, so the replay is attempt 2.
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(registered.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let done = store
        .replay_job(replay(
            &[&p.id],
            &registered,
            TriggeredBy::Replay,
            at(13_000),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.attempt_number, 2);
    let job = store.get_job(&p.id, &registered).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.cancelled_at, Some(T0), "history is kept");

    // Skipped (no execution at all): attempt 1.
    let mut def = definition("https://example.com/skip", at(-60_000));
    def.schedule = TriggerSchedule::Once {
        at: at(-60_000),
        skip: true,
    };
    let skipped = schedule_ok(store, upsert(&p.id, None, None, def, T0))
        .await
        .id;
    let done = store
        .replay_job(replay(&[&p.id], &skipped, TriggeredBy::Replay, at(14_000)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.attempt_number, 1);

    // Unknown, or another project's: not found.
    assert_eq!(
        store
            .replay_job(replay(
                &[&p.id],
                &JobId::generate(),
                TriggeredBy::Replay,
                now
            ))
            .await
            .unwrap(),
        Err(ReplayRefusal::NotFound)
    );
    let foreign = job_at(store, &other.id, at(-1)).await;
    run_due(store, T0).await;
    assert_eq!(
        store
            .replay_job(replay(&[&p.id], &foreign, TriggeredBy::Replay, now))
            .await
            .unwrap(),
        Err(ReplayRefusal::NotFound)
    );
    assert_eq!(
        store
            .replay_job(replay(&[], &foreign, TriggeredBy::Replay, now))
            .await
            .unwrap(),
        Err(ReplayRefusal::NotFound)
    );
}

/// Replay charges the quota and refuses when it is used up; a custom key now held by another
/// live item blocks it. Refusals change nothing.
pub async fn replay_quota_and_custom_key(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(3)).await;
    let fire = at(-1);
    let keyed = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("nightly"),
            definition("https://example.com/a", fire),
            T0,
        ),
    )
    .await
    .id;
    run_due(store, T0).await;
    // The finished job released its key; a new live job takes it.
    let holder = schedule_ok(
        store,
        upsert(
            &p.id,
            None,
            Some("nightly"),
            definition("https://example.com/b", at(60_000)),
            T0,
        ),
    )
    .await;
    assert_ne!(holder.id, keyed);
    assert_eq!(
        store
            .replay_job(replay(&[&p.id], &keyed, TriggeredBy::Replay, at(1_000)))
            .await
            .unwrap(),
        Err(ReplayRefusal::CustomKeyTaken)
    );
    let job = store.get_job(&p.id, &keyed).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);

    // Once the holder is cancelled, the replay goes through and the job holds the key again.
    store
        .cancel_trigger(&p.id, &TriggerRef::Id(holder.id.clone()), T0)
        .await
        .unwrap()
        .unwrap();
    let done = store
        .replay_job(replay(&[&p.id], &keyed, TriggeredBy::Replay, at(1_000)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.month_quota_remaining, Some(0));
    let taken = store
        .cancel_trigger(&p.id, &TriggerRef::CustomKey("nightly".into()), T0)
        .await
        .unwrap();
    assert_eq!(
        taken,
        Err(crate::lifecycle::Refusal::Gone),
        "the queued replayed job holds the key"
    );

    // The quota (3: two schedules and one replay) is used up: refused, nothing changes.
    run_due(store, at(1_000)).await;
    let before = store
        .list_job_executions(&p.id, &keyed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .replay_job(replay(&[&p.id], &keyed, TriggeredBy::Replay, at(2_000)))
            .await
            .unwrap(),
        Err(ReplayRefusal::QuotaExceeded)
    );
    let after = store
        .list_job_executions(&p.id, &keyed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        store.get_job(&p.id, &keyed).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
    // A new month has a fresh allowance.
    let next_month = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let done = store
        .replay_job(replay(&[&p.id], &keyed, TriggeredBy::Replay, next_month))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.month_quota_remaining, Some(2));
}

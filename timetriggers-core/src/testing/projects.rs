//! Checks for projects and API keys.

use crate::ids::{ApiKeyId, ProjectId};
use crate::model::MonthQuota;
use crate::store::{NewProject, Store, StoreError};
use crate::testing::fixtures::*;

/// A created project reads back by id and by slug, with its quota.
pub async fn project_create_and_lookup(store: &dyn Store) {
    let p = project(store, MonthQuota::Limited(7)).await;
    assert_eq!(p.month_quota, MonthQuota::Limited(7));
    assert_eq!(p.created_at, T0);
    let by_id = store.get_project(&p.id).await.unwrap().unwrap();
    assert_eq!(by_id, p);
    let by_slug = store.get_project_by_slug(&p.slug).await.unwrap().unwrap();
    assert_eq!(by_slug, p);
    let unlimited = project(store, MonthQuota::Unlimited).await;
    assert_eq!(
        store
            .get_project(&unlimited.id)
            .await
            .unwrap()
            .unwrap()
            .month_quota,
        MonthQuota::Unlimited
    );
    assert!(store
        .get_project(&ProjectId::generate())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_project_by_slug("no-such-slug")
        .await
        .unwrap()
        .is_none());
}

/// A second project with the same slug is a conflict.
pub async fn project_slug_is_unique(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let again = store
        .create_project(NewProject {
            id: ProjectId::generate(),
            slug: p.slug.clone(),
            month_quota: MonthQuota::Unlimited,
            now: T0,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// Keys are found by hash, scoped to their project, and refused at once once deleted.
pub async fn api_key_create_find_delete(store: &dyn Store) {
    let p = project(store, MonthQuota::Unlimited).await;
    let other = project(store, MonthQuota::Unlimited).await;
    let hash = format!("hash-{}", ApiKeyId::generate());
    let key = store.create_api_key(new_key(&p.id, &hash)).await.unwrap();
    assert_eq!(key.project_id, p.id);
    assert_eq!(key.masked, "ttr_ab…");
    assert_eq!(key.created_at, T0);
    let found = store.find_api_key(&hash).await.unwrap().unwrap();
    assert_eq!(found.project_id, p.id);
    assert_eq!(found.key_id, key.id);
    assert!(store.find_api_key("unknown-hash").await.unwrap().is_none());

    let dup = store.create_api_key(new_key(&p.id, &hash)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let wrong_project = store.delete_api_key(&other.id, &key.id).await;
    assert!(
        matches!(wrong_project, Err(StoreError::NotFound)),
        "{wrong_project:?}"
    );
    assert!(store.find_api_key(&hash).await.unwrap().is_some());

    store.delete_api_key(&p.id, &key.id).await.unwrap();
    assert!(store.find_api_key(&hash).await.unwrap().is_none());
    let again = store.delete_api_key(&p.id, &key.id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
}

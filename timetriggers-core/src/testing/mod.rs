//! The store conformance suite. Every backend (SQLite, PostgreSQL, yours) runs the same checks:
//!
//! ```ignore
//! async fn make() -> timetriggers_core::testing::TestStore {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(dir.path().join("db")).await.unwrap();
//!     timetriggers_core::testing::TestStore::new(std::sync::Arc::new(store), dir)
//! }
//! timetriggers_core::store_conformance_tests!(make);
//! ```
//!
//! Each check is a public `async fn(&dyn Store)`; the macro stamps out one `#[tokio::test]`
//! per check (the calling crate needs `tokio` with `macros` and `rt-multi-thread`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dashboard;
mod engine;
mod fixtures;
mod generators;
mod projects;
mod rate_limits;
mod sync;
mod triggers;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::store::Store;

pub use dashboard::*;
pub use engine::*;
pub use fixtures::*;
pub use generators::*;
pub use projects::*;
pub use rate_limits::*;
pub use sync::*;
pub use triggers::*;

/// A store under test plus whatever keeps it alive (a temp dir, a throwaway database).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl TestStore {
    /// Wraps a store and its guard.
    pub fn new(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        TestStore {
            store,
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestStore")
            .field("store", &self.store)
            .finish()
    }
}

/// Stamps out one test per conformance check. `$make` is an async fn returning [`TestStore`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::store_conformance_tests!(@cases $make;
            project_create_and_lookup,
            project_slug_is_unique,
            api_key_create_find_delete,
            job_insert_and_get_round_trips_every_field,
            job_binary_body_and_header_order_round_trip,
            upsert_by_key_reschedules_in_place,
            upsert_by_key_after_finish_creates_new_item,
            upsert_by_key_of_running_job_is_gone,
            upsert_by_id_follows_the_table,
            upsert_skip_records_skipped_job,
            cancel_by_id_and_key,
            cancel_refusals,
            quota_is_charged_and_enforced,
            concurrent_keyless_creations_are_charged_and_fail_alone,
            quota_resets_each_month,
            project_scoping,
            claims_look_ahead_to_due_by,
            claim_only_due_and_only_once,
            claim_respects_limit_and_due_order,
            claims_are_disjoint_under_concurrent_claimers,
            next_due_at_tracks_planned_executions,
            outcome_recording_completes_job,
            outcome_recording_is_fenced,
            retry_plans_next_attempt,
            lease_expiry_recovery,
            generator_create_makes_one_pending_occurrence,
            generator_occurrence_fires_and_the_next_is_planned,
            generator_cancel_stops_the_series,
            cancelling_an_occurrence_skips_only_it,
            missed_occurrences_are_recorded_as_skipped,
            catch_up_keeps_the_pending_occurrence,
            reschedule_converts_job_and_generator_keeping_the_id,
            generator_occurrences_are_charged,
            declare_adds_then_leaves_unchanged,
            declare_updates_in_place_with_changed_fields,
            declare_cancels_only_its_own_absent_items,
            declare_skips_what_it_cannot_apply,
            declare_leaves_finished_jobs_alone,
            declare_is_all_or_nothing_on_quota,
            bulk_cancels_then_upserts,
            bulk_is_all_or_nothing_on_quota,
            user_create_and_find_by_email,
            sessions_expire_and_are_revocable,
            user_projects_membership,
            list_api_keys_is_scoped_and_newest_first,
            list_jobs_filters_pages_and_counts,
            list_executions_filters_pages_and_counts,
            replay_follows_the_state_rules,
            replay_quota_and_custom_key,
            rate_limited_executions_are_not_claimed_ahead,
            rate_limit_rules_crud_and_scoping,
            rate_limit_holds_back_and_releases_in_order,
            rate_limit_windows_combine_and_rule_changes_release,
            rate_limit_reservations_are_atomic_under_concurrent_claimers,
            rate_limit_counts_retries,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let t: $crate::testing::TestStore = $make().await;
                $crate::testing::$case(&*t.store).await;
            }
        )*
    };
}

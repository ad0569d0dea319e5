//! Pure rules: functions of their inputs (and an explicit `now`), unit-tested without a store
//! or a clock.

pub mod cron;
pub mod generator;
pub mod rate_limit;
pub mod schedule_at;
pub mod target;

use crate::ids::{ProjectId, RateLimitId};
use crate::rules::rate_limit::Window;
use crate::time::Timestamp;

/// The limits of a rate-limit rule: at most this many executions started with the tag in each
/// sliding window; `None` leaves that window unlimited, `Some(0)` holds every job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowLimits {
    /// Per second.
    pub per_second: Option<u64>,
    /// Per minute.
    pub per_minute: Option<u64>,
    /// Per hour.
    pub per_hour: Option<u64>,
    /// Per 24 hours.
    pub per_day: Option<u64>,
    /// Per 7 days.
    pub per_week: Option<u64>,
    /// Per 30 days.
    pub per_month: Option<u64>,
}

impl WindowLimits {
    /// The limit of one window.
    pub fn get(&self, window: Window) -> Option<u64> {
        match window {
            Window::Second => self.per_second,
            Window::Minute => self.per_minute,
            Window::Hour => self.per_hour,
            Window::Day => self.per_day,
            Window::Week => self.per_week,
            Window::Month => self.per_month,
        }
    }

    /// A mutable reference to the limit of one window.
    pub fn get_mut(&mut self, window: Window) -> &mut Option<u64> {
        match window {
            Window::Second => &mut self.per_second,
            Window::Minute => &mut self.per_minute,
            Window::Hour => &mut self.per_hour,
            Window::Day => &mut self.per_day,
            Window::Week => &mut self.per_week,
            Window::Month => &mut self.per_month,
        }
    }

    /// The windows that have a limit, shortest first.
    pub fn iter(&self) -> impl Iterator<Item = (Window, u64)> + '_ {
        Window::ALL
            .into_iter()
            .filter_map(|w| self.get(w).map(|limit| (w, limit)))
    }
}

/// A per-tag rate-limit rule of a project (`RateLimit` of the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Its id.
    pub id: RateLimitId,
    /// Its project.
    pub project_id: ProjectId,
    /// The tag it limits (one rule per tag and project).
    pub tag: String,
    /// The limits.
    pub limits: WindowLimits,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

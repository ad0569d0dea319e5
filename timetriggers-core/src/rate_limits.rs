//! Rate-limit rules on the [`Dashboard`] (API.md §3 "Rate limits"): list, create, update and
//! delete, scoped to the caller's projects. Enforcement happens in the store's claim, with the
//! window arithmetic of [`crate::rules::rate_limit`].
//!
//! ```no_run
//! # async fn demo(service: timetriggers_core::TimeTriggers, caller: timetriggers_core::Caller) -> Result<(), timetriggers_core::Error> {
//! use timetriggers_core::RateLimitPatch;
//!
//! let dashboard = service.dashboard(&caller);
//! let body = serde_json::json!({"tag": "partner-api", "maxPerSecond": 2, "maxPerDay": 10000});
//! let rule = dashboard.create_rate_limit(RateLimitPatch::from_json(&body)?).await?;
//! // Lift the daily limit, keep the rest.
//! let patch = RateLimitPatch::from_json(&serde_json::json!({"maxPerDay": null}))?;
//! dashboard.update_rate_limit(&rule.id, patch).await?;
//! # Ok(()) }
//! ```

use serde_json::Value;

use crate::dashboard::Dashboard;
use crate::error::Error;
use crate::ids::{ProjectId, RateLimitId};
use crate::model::{RateLimit, WindowLimits};
use crate::request::normalize_tags;
use crate::rules::rate_limit::Window;
use crate::store::StoreError;
use crate::store_rate_limits::{NewRateLimit, UpdateRateLimit};

/// Largest accepted limit (beyond it a limit means nothing in practice, and stores read
/// `O(limit)` index entries per check).
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;

/// The body of `POST /rate-limits` or `PUT /rate-limits/{id}`, validated: what to set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimitPatch {
    /// The tag (required to create; `None` leaves it on update).
    pub tag: Option<String>,
    /// Windows given in the body: `Some(n)` sets a limit, `None` clears it (`null`). Windows not
    /// listed are left as they are (unlimited on create).
    pub limits: Vec<(Window, Option<u64>)>,
    /// The project to create the rule in (create only; default: the caller's first project).
    pub project_id: Option<ProjectId>,
}

impl RateLimitPatch {
    /// Reads a JSON object: `tag` (a tag as in `ttr-tags`), the six `maxPer…` fields (a whole
    /// number from 0 to [`MAX_RATE_LIMIT`], or `null`), `projectId`. Unknown fields are
    /// ignored. 400, naming the field, for anything else: negative, fractional or non-finite
    /// numbers (`"NaN"`, `"Infinity"`), strings, a tag of the wrong form.
    pub fn from_json(body: &Value) -> Result<RateLimitPatch, Error> {
        let Value::Object(map) = body else {
            return Err(Error::BadRequest(
                "the body must be a JSON object like {\"tag\": \"…\", \"maxPerSecond\": 5}".into(),
            ));
        };
        let tag = match map.get("tag") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(validate_tag(s)?),
            Some(_) => return Err(Error::BadRequest("tag must be a string".into())),
        };
        let mut limits = Vec::new();
        for window in Window::ALL {
            if let Some(value) = map.get(window.field()) {
                limits.push((window, parse_limit(window.field(), value)?));
            }
        }
        let project_id = match map.get("projectId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(ProjectId::from(s.trim())),
            Some(_) => return Err(Error::BadRequest("projectId must be a string".into())),
        };
        Ok(RateLimitPatch {
            tag,
            limits,
            project_id,
        })
    }

    /// `limits` with this patch's windows set or cleared.
    pub fn apply(&self, mut limits: WindowLimits) -> WindowLimits {
        for (window, value) in &self.limits {
            *limits.get_mut(*window) = *value;
        }
        limits
    }
}

fn validate_tag(raw: &str) -> Result<String, Error> {
    let tag = raw.trim();
    if tag.is_empty() {
        return Err(Error::BadRequest("tag must not be empty".into()));
    }
    let mut tags = normalize_tags(vec![tag.to_owned()])?;
    tags.pop()
        .ok_or_else(|| Error::BadRequest("tag must not be empty".into()))
}

/// A count: a JSON number that is a whole number from 0 to [`MAX_RATE_LIMIT`] (`5` or `5.0`),
/// or `null` (no limit).
fn parse_limit(field: &str, value: &Value) -> Result<Option<u64>, Error> {
    let bad = |what: &str| {
        Err(Error::BadRequest(format!(
            "{field} must be a whole number from 0 to {MAX_RATE_LIMIT} or null (got {what})"
        )))
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                return if v <= MAX_RATE_LIMIT {
                    Ok(Some(v))
                } else {
                    bad(&v.to_string())
                };
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 => {
                    if f <= MAX_RATE_LIMIT as f64 {
                        // Exact: a whole number within range.
                        Ok(Some(f as u64))
                    } else {
                        bad(&n.to_string())
                    }
                }
                _ => bad(&n.to_string()),
            }
        }
        Value::String(s) => bad(&format!("{s:?}")),
        other => bad(&other.to_string()),
    }
}

fn rule_not_found(id: &RateLimitId) -> Error {
    Error::NotFound(format!("rate limit {:?} not found", id.as_str()))
}

fn tag_taken(tag: &str) -> Error {
    Error::BadRequest(format!(
        "tag {tag:?} already has a rate limit in this project; update that rule instead"
    ))
}

impl Dashboard<'_> {
    /// The rate-limit rules of the caller's projects (or of `project_id`, 404 if it is not
    /// theirs), oldest first.
    pub async fn list_rate_limits(
        &self,
        project_id: Option<&ProjectId>,
    ) -> Result<Vec<RateLimit>, Error> {
        let scope = self.caller.scope(project_id)?;
        Ok(self.service.store().list_rate_limits(&scope).await?)
    }

    /// Creates a rule for `patch.tag` (required) in `patch.project_id` or the caller's first
    /// project. 400 if the tag is missing or already has a rule in that project.
    pub async fn create_rate_limit(&self, patch: RateLimitPatch) -> Result<RateLimit, Error> {
        let Some(tag) = patch.tag.clone() else {
            return Err(Error::BadRequest("tag is required".into()));
        };
        let project = self.caller.home(patch.project_id.as_ref())?;
        let rule = NewRateLimit {
            id: RateLimitId::generate(),
            project_id: project.id.clone(),
            tag: tag.clone(),
            limits: patch.apply(WindowLimits::default()),
            now: self.service.now(),
        };
        match self.service.store().create_rate_limit(rule).await {
            Ok(rule) => Ok(rule),
            Err(StoreError::Conflict(_)) => Err(tag_taken(&tag)),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a rule of the caller's: the fields in `patch` are set (a `None` limit cleared),
    /// the others kept. Jobs the rule holds back are re-checked at once. 404 if the rule is not
    /// the caller's; 400 if the new tag already has a rule in the project.
    pub async fn update_rate_limit(
        &self,
        id: &RateLimitId,
        patch: RateLimitPatch,
    ) -> Result<RateLimit, Error> {
        let store = self.service.store();
        let current = store
            .get_rate_limit(&self.caller.scope(None)?, id)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let now = self.service.now();
        let tag = patch.tag.clone().unwrap_or(current.tag);
        let update = UpdateRateLimit {
            id: id.clone(),
            project_id: current.project_id,
            tag: tag.clone(),
            limits: patch.apply(current.limits),
            now,
        };
        let updated = match store.update_rate_limit(update).await {
            Ok(rule) => rule,
            Err(StoreError::Conflict(_)) => return Err(tag_taken(&tag)),
            Err(StoreError::NotFound) => return Err(rule_not_found(id)),
            Err(e) => return Err(e.into()),
        };
        self.service.signal().due_at(now);
        Ok(updated)
    }

    /// Deletes a rule of the caller's; jobs it held back are re-checked at once. 404 if the
    /// rule is not the caller's.
    pub async fn delete_rate_limit(&self, id: &RateLimitId) -> Result<(), Error> {
        let store = self.service.store();
        let current = store
            .get_rate_limit(&self.caller.scope(None)?, id)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let now = self.service.now();
        match store.delete_rate_limit(&current.project_id, id, now).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(rule_not_found(id)),
            Err(e) => return Err(e.into()),
        }
        self.service.signal().due_at(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bad(body: Value, field: &str) {
        match RateLimitPatch::from_json(&body) {
            Err(Error::BadRequest(m)) => assert!(m.contains(field), "{m:?} names {field}"),
            other => panic!("expected a 400 for {body}, got {other:?}"),
        }
    }

    #[test]
    fn bodies_are_read_and_validated() {
        let p = RateLimitPatch::from_json(&json!({
            "tag": " api ", "maxPerSecond": 5, "maxPerMinute": null, "maxPerDay": 7.0,
            "maxPerMonth": 0, "projectId": "prj_1", "other": true
        }))
        .unwrap();
        assert_eq!(p.tag.as_deref(), Some("api"));
        assert_eq!(
            p.limits,
            vec![
                (Window::Second, Some(5)),
                (Window::Minute, None),
                (Window::Day, Some(7)),
                (Window::Month, Some(0)),
            ]
        );
        assert_eq!(p.project_id, Some(ProjectId::from("prj_1")));
        let limits = p.apply(WindowLimits {
            per_minute: Some(9),
            per_hour: Some(3),
            ..WindowLimits::default()
        });
        assert_eq!(
            limits,
            WindowLimits {
                per_second: Some(5),
                per_minute: None,
                per_hour: Some(3),
                per_day: Some(7),
                per_week: None,
                per_month: Some(0),
            }
        );
        assert_eq!(
            RateLimitPatch::from_json(&json!({})).unwrap(),
            RateLimitPatch::default()
        );

        bad(json!({"tag": ""}), "tag");
        bad(json!({"tag": "   "}), "tag");
        bad(json!({"tag": "a b"}), "tag");
        bad(json!({"tag": 5}), "tag");
        bad(json!({"tag": "x".repeat(65)}), "tag");
        for v in [
            json!(-1),
            json!(1.5),
            json!("NaN"),
            json!("Infinity"),
            json!("-Infinity"),
            json!("5"),
            json!(true),
            json!([1]),
            json!(1e300),
            json!(MAX_RATE_LIMIT + 1),
        ] {
            bad(json!({"tag": "a", "maxPerHour": v}), "maxPerHour");
        }
        bad(json!([]), "body");
        bad(json!({"projectId": 3}), "projectId");
    }
}

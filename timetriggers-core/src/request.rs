//! Typed trigger requests, and the `ttr-*` header grammar that produces them.
//!
//! [`ScheduleRequest::from_headers`] turns an HTTP-shaped request (method, header pairs, body)
//! into a typed request; [`ScheduleRequest::validate`] checks every value against the contract.
//! The service always validates, so Rust callers building requests by hand get the same checks.

use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::ids::JobId;
use crate::model::{DeliveryOptions, HttpRequest};
use crate::rules::schedule_at::{parse_scheduled_at, ScheduleSpec};
use crate::rules::target::validate_target_url;
use crate::time::Timestamp;

/// Longest custom key, in characters.
pub const MAX_CUSTOM_KEY_CHARS: usize = 256;
/// Longest title, in characters (after trimming).
pub const MAX_TITLE_CHARS: usize = 200;
/// Most tags on one item.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest timeout a job may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Header names that are never stored or forwarded (hop-by-hop and proxy headers).
const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "forwarded",
    "x-real-ip",
    "via",
];

/// Whether a request header is stored and forwarded to the target: not `ttr-*`, not
/// hop-by-hop, not a proxy header. `name` must be lower-case.
pub fn is_forwarded_header(name: &str) -> bool {
    !(name.starts_with("ttr-")
        || name.starts_with("proxy-")
        || name.starts_with("x-forwarded-")
        || DROPPED_HEADERS.contains(&name))
}

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// At once.
    Now,
    /// At this instant (a past instant fires at once unless `run_missed` is false).
    At(Timestamp),
    /// On a cron schedule: a generator.
    Cron {
        /// The expression (API.md §4).
        expression: String,
    },
}

/// A typed create-or-reschedule request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRequest {
    /// What to send.
    pub request: HttpRequest,
    /// When.
    pub when: When,
    /// Reschedule this item.
    pub trigger_id: Option<JobId>,
    /// The caller's key.
    pub custom_key: Option<String>,
    /// Display title (trimmed; empty means none).
    pub title: Option<String>,
    /// Tags (deduplicated on validation, order kept).
    pub tags: Vec<String>,
    /// Run a missed time (`None`: the default for the kind).
    pub run_missed: Option<bool>,
    /// IANA zone for cron expressions (`None`: UTC).
    pub timezone: Option<String>,
    /// Delivery options.
    pub options: DeliveryOptions,
}

impl ScheduleRequest {
    /// A `GET` of `url`, now, with defaults for everything else.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        ScheduleRequest {
            request: HttpRequest {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: Bytes::new(),
            },
            when: When::Now,
            trigger_id: None,
            custom_key: None,
            title: None,
            tags: Vec::new(),
            run_missed: None,
            timezone: None,
            options: DeliveryOptions::default(),
        }
    }

    /// Builder: fire at `at`.
    pub fn at(mut self, at: Timestamp) -> Self {
        self.when = When::At(at);
        self
    }

    /// Builder: the custom key.
    pub fn custom_key(mut self, key: impl Into<String>) -> Self {
        self.custom_key = Some(key.into());
        self
    }

    /// Builder: the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Builder: add a forwarded header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request
            .headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Builder: the tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Reads the `/schedule` headers. `headers` are (lower-case name, value) pairs in request
    /// order; `ttr-api-key` and `ttr-url` presence is checked by the caller before
    /// authentication (a missing one is a decode error). Values are parsed here and checked by
    /// [`ScheduleRequest::validate`].
    pub fn from_headers(
        method: &str,
        headers: &[(String, String)],
        body: Bytes,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let url = get("ttr-url")
            .ok_or_else(|| Error::BadRequest("missing required header ttr-url".into()))?;
        let mut req = ScheduleRequest::new(method.to_ascii_uppercase(), url.trim());
        req.request.body = body;
        req.request.headers = headers
            .iter()
            .filter(|(k, _)| is_forwarded_header(k))
            .cloned()
            .collect();
        req.when = match get("ttr-scheduled-at") {
            None => When::Now,
            Some(raw) => parse_when(raw, now)?,
        };
        req.trigger_id = non_empty(get("ttr-trigger-id")).map(JobId::new);
        req.custom_key = get("ttr-custom-key").map(str::to_owned);
        req.title = get("ttr-title").map(str::to_owned);
        if let Some(raw) = get("ttr-tags") {
            req.tags = parse_tags(raw)?;
        }
        if let Some(raw) = get("ttr-run-missed") {
            req.run_missed = Some(parse_flag("ttr-run-missed", raw)?);
        }
        req.timezone = non_empty(get("ttr-timezone")).map(str::to_owned);
        if let Some(raw) = get("ttr-max-attempts") {
            req.options.max_attempts = parse_count("ttr-max-attempts", raw, 1, MAX_ATTEMPTS)?;
        }
        if let Some(raw) = get("ttr-timeout") {
            let secs = parse_count("ttr-timeout", raw, 1, 300)?;
            req.options.timeout = Duration::from_secs(u64::from(secs));
        }
        Ok(req)
    }

    /// Checks every value against the contract and normalises title and tags. Errors name the
    /// field.
    pub fn validate(&mut self, allow_private_targets: bool) -> Result<(), Error> {
        validate_target_url(&self.request.url, allow_private_targets).map_err(Error::BadRequest)?;
        self.request.method = self.request.method.to_ascii_uppercase();
        if !matches!(
            self.request.method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        ) {
            return Err(Error::BadRequest(format!(
                "unsupported method {:?}",
                self.request.method
            )));
        }
        for (name, _) in &mut self.request.headers {
            name.make_ascii_lowercase();
        }
        self.request.headers.retain(|(k, _)| is_forwarded_header(k));
        if let Some(key) = &self.custom_key {
            let n = key.chars().count();
            if n == 0 || n > MAX_CUSTOM_KEY_CHARS {
                return Err(Error::BadRequest(format!(
                    "ttr-custom-key must be 1 to {MAX_CUSTOM_KEY_CHARS} characters (got {n})"
                )));
            }
        }
        if let Some(id) = &self.trigger_id {
            if id.as_str().is_empty() || id.as_str().len() > 128 {
                return Err(Error::BadRequest("ttr-trigger-id is not a valid id".into()));
            }
        }
        self.title = match self.title.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.chars().count() > MAX_TITLE_CHARS => {
                return Err(Error::BadRequest(format!(
                    "ttr-title is longer than {MAX_TITLE_CHARS} characters"
                )))
            }
            Some(t) => Some(t.to_owned()),
        };
        self.tags = normalize_tags(std::mem::take(&mut self.tags))?;
        if !(1..=MAX_ATTEMPTS).contains(&self.options.max_attempts) {
            return Err(Error::BadRequest(format!(
                "ttr-max-attempts must be 1 to {MAX_ATTEMPTS}"
            )));
        }
        if self.options.timeout < Duration::from_secs(1) || self.options.timeout > MAX_TIMEOUT {
            return Err(Error::BadRequest(
                "ttr-timeout must be 1 to 300 seconds".into(),
            ));
        }
        if let Some(tz) = &self.timezone {
            tz.parse::<chrono_tz::Tz>().map_err(|_| {
                Error::BadRequest(format!("ttr-timezone {tz:?} is not a known IANA time zone"))
            })?;
        }
        Ok(())
    }
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a `ttr-scheduled-at` value (API.md §4) against `now`.
pub fn parse_when(raw: &str, now: Timestamp) -> Result<When, Error> {
    match parse_scheduled_at(raw, now.to_datetime()) {
        Ok(ScheduleSpec::At(t)) => Ok(When::At(Timestamp::from_datetime(t))),
        Ok(ScheduleSpec::Cron(expression)) => Ok(When::Cron { expression }),
        Err(e) => Err(Error::BadRequest(format!("ttr-scheduled-at: {e}"))),
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, case-insensitive.
pub fn parse_flag(field: &str, raw: &str) -> Result<bool, Error> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "{field} must be true or false (got {raw:?})"
        ))),
    }
}

fn parse_count(field: &str, raw: &str, min: u32, max: u32) -> Result<u32, Error> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{field} must be a whole number from {min} to {max} (got {raw:?})"
            ))
        })
}

/// Splits `ttr-tags`: a comma-separated list or a JSON array of strings.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, Error> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(trimmed).map_err(|e| {
            Error::BadRequest(format!("ttr-tags is not a JSON array of strings: {e}"))
        });
    }
    Ok(trimmed
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Checks tags (1..=64 chars of `[A-Za-z0-9_.:/-]`, at most 20) and drops duplicates, keeping
/// the first occurrence's position.
pub fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let ok = !tag.is_empty()
            && tag.len() <= MAX_TAG_CHARS
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
        if !ok {
            return Err(Error::BadRequest(format!(
                "invalid tag {tag:?}: tags are 1 to {MAX_TAG_CHARS} characters of A-Z a-z 0-9 _ . : / -"
            )));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::BadRequest(format!(
            "too many tags: at most {MAX_TAGS} (got {})",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forwards_only_non_ttr_non_hop_by_hop_headers() {
        let headers = h(&[
            ("ttr-url", "https://example.com"),
            ("ttr-api-key", "k"),
            ("content-type", "text/plain"),
            ("x-custom", "1"),
            ("x-custom", "2"),
            ("host", "a"),
            ("connection", "close"),
            ("content-length", "3"),
            ("proxy-authorization", "x"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("via", "x"),
            ("te", "trailers"),
        ]);
        let req = ScheduleRequest::from_headers(
            "post",
            &headers,
            Bytes::from_static(b"abc"),
            Timestamp::EPOCH,
        )
        .unwrap();
        assert_eq!(req.request.method, "POST");
        assert_eq!(
            req.request.headers,
            h(&[
                ("content-type", "text/plain"),
                ("x-custom", "1"),
                ("x-custom", "2")
            ])
        );
        assert_eq!(req.when, When::Now);
    }

    #[test]
    fn parses_options_and_flags() {
        let headers = h(&[
            ("ttr-url", "https://example.com"),
            ("ttr-run-missed", "No"),
            ("ttr-max-attempts", "3"),
            ("ttr-timeout", "7"),
            ("ttr-tags", "a, b,a"),
            ("ttr-title", "  hello  "),
        ]);
        let mut req =
            ScheduleRequest::from_headers("GET", &headers, Bytes::new(), Timestamp::EPOCH).unwrap();
        req.validate(false).unwrap();
        assert_eq!(req.run_missed, Some(false));
        assert_eq!(req.options.max_attempts, 3);
        assert_eq!(req.options.timeout, Duration::from_secs(7));
        assert_eq!(req.tags, vec!["a", "b"]);
        assert_eq!(req.title.as_deref(), Some("hello"));
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        let base = [("ttr-url", "https://example.com")];
        for (name, value) in [
            ("ttr-run-missed", "maybe"),
            ("ttr-max-attempts", "0"),
            ("ttr-max-attempts", "11"),
            ("ttr-max-attempts", "2.5"),
            ("ttr-timeout", "301"),
            ("ttr-timeout", "-1"),
            ("ttr-tags", "[1,2]"),
        ] {
            let mut headers = h(&base);
            headers.push((name.into(), value.into()));
            let err =
                ScheduleRequest::from_headers("GET", &headers, Bytes::new(), Timestamp::EPOCH)
                    .unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest(m) if m.contains(name)),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn validation_checks_keys_titles_tags_urls_and_zones() {
        let ok = || ScheduleRequest::new("GET", "https://example.com/");
        assert!(ok().validate(false).is_ok());
        assert!(ok().custom_key("k".repeat(256)).validate(false).is_ok());
        assert!(ok().custom_key("k".repeat(257)).validate(false).is_err());
        assert!(ok().custom_key("").validate(false).is_err());
        let mut r = ok();
        r.title = Some("t".repeat(201));
        assert!(r.validate(false).is_err());
        let mut r = ok();
        r.title = Some("   ".into());
        r.validate(false).unwrap();
        assert_eq!(r.title, None);
        assert!(ok()
            .tags((0..21).map(|i| format!("t{i}")))
            .validate(false)
            .is_err());
        assert!(ok()
            .tags((0..20).map(|i| format!("t{i}")))
            .validate(false)
            .is_ok());
        assert!(ok().tags(["bad tag"]).validate(false).is_err());
        assert!(ok().tags(["x".repeat(65)]).validate(false).is_err());
        assert!(ok().tags(["a_b.c:d/e-f"]).validate(false).is_ok());
        let mut r = ok();
        r.timezone = Some("Mars/Olympus".into());
        assert!(r.validate(false).is_err());
        let mut r = ok();
        r.timezone = Some("America/New_York".into());
        assert!(r.validate(false).is_ok());
        assert!(ScheduleRequest::new("GET", "http://10.0.0.1/")
            .validate(false)
            .is_err());
        assert!(ScheduleRequest::new("GET", "http://10.0.0.1/")
            .validate(true)
            .is_ok());
        assert!(ScheduleRequest::new("BREW", "https://example.com/")
            .validate(false)
            .is_err());
    }
}

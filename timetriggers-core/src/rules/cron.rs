//! Cron expressions (API.md §4) and their next fire times with Debian cron's DST rules.

// Cron expressions: parsing, validation and next-fire computation with the
// semantics of Debian (Vixie) cron, including its daylight-saving-time rules.
//
// Overview of the algorithm used by `CronExpr::next_after`:
//
// * The UTC time line is split into segments of constant UTC offset; the
//   boundaries are the zone's transitions. Inside one segment the wall clock
//   is `utc + offset`, so the first matching wall time of the segment is found
//   with a fast calendar search (`next_wall_match`, which skips months, days,
//   hours and minutes in big steps) and mapped back by subtracting the offset.
// * Transitions are discovered lazily: once a candidate is found under the
//   assumption that the offset stays constant, the offset is probed once a day
//   between the search start and the candidate, and a change is pinned down to
//   the second by bisection. (The tz database never has two transitions less
//   than a week apart, so a daily probe cannot miss one.)
// * Wildcard expressions fire at every instant whose wall time matches, so a
//   repeated wall time fires in both passes and a skipped one never.
// * Fixed-time expressions skip a matching wall time that already occurred
//   earlier (its second pass), and at a forward jump they fire once, at the
//   jump instant, if any matching wall time was skipped by the jump.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// The last calendar year (on the wall clock) that the next-fire search looks at.
const MAX_YEAR: i32 = 9999;

/// Searches never start before 0001-01-01T00:00:00Z (keeps all date arithmetic in range).
const MIN_SEARCH_SECS: i64 = -62_135_596_800;

/// Distance between two offset probes while looking for a zone transition.
const PROBE_STEP_SECS: i64 = 86_400;

/// How far ahead transitions are looked for when no wall time matches any more:
/// a backward jump within this window could still bring a matching wall time back.
const NO_MATCH_WINDOW_SECS: i64 = 3 * 86_400;

/// Upper bound on the iterations of the next-fire loop (a safety net; never reached
/// with real time-zone data).
const MAX_SEARCH_STEPS: usize = 1_000_000;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Why a cron expression was refused; Display names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

/// A parsed, validated cron expression.
///
/// Holds one bit set per field plus the flags Debian cron derives from the
/// text: whether the day-of-month / day-of-week fields begin with `*` (which
/// selects the AND or the OR rule for days) and whether the expression is
/// fixed-time (which selects the daylight-saving-time behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// Bit `s` set when second `s` (0–59) matches; only bit 0 for 5-field expressions.
    seconds: u64,
    /// Bit `m` set when minute `m` (0–59) matches.
    minutes: u64,
    /// Bit `h` set when hour `h` (0–23) matches.
    hours: u32,
    /// Bit `d` set when day of month `d` (1–31) matches.
    days_of_month: u32,
    /// Bit `m` set when month `m` (1–12) matches.
    months: u16,
    /// Bit `w` set when weekday `w` (0 = Sunday … 6 = Saturday) matches.
    days_of_week: u8,
    /// The day-of-month field begins with `*`.
    dom_star: bool,
    /// The day-of-week field begins with `*`.
    dow_star: bool,
    /// Debian cron's fixed-time job (see [`CronExpr::is_fixed_time`]).
    fixed_time: bool,
    /// The expression has a leading seconds field (6 fields).
    has_seconds: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    None,
    Month,
    Weekday,
}

#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    label: &'static str,
    min: u32,
    max: u32,
    names: NameKind,
}

const SECOND_FIELD: FieldSpec = FieldSpec {
    label: "second",
    min: 0,
    max: 59,
    names: NameKind::None,
};
const MINUTE_FIELD: FieldSpec = FieldSpec {
    label: "minute",
    min: 0,
    max: 59,
    names: NameKind::None,
};
const HOUR_FIELD: FieldSpec = FieldSpec {
    label: "hour",
    min: 0,
    max: 23,
    names: NameKind::None,
};
const DOM_FIELD: FieldSpec = FieldSpec {
    label: "day-of-month",
    min: 1,
    max: 31,
    names: NameKind::None,
};
const MONTH_FIELD: FieldSpec = FieldSpec {
    label: "month",
    min: 1,
    max: 12,
    names: NameKind::Month,
};
const DOW_FIELD: FieldSpec = FieldSpec {
    label: "day-of-week",
    min: 0,
    max: 7,
    names: NameKind::Weekday,
};

impl CronExpr {
    /// Parses (trim first) and validates, including the can-never-fire check.
    ///
    /// Accepts 5 fields (`minute hour day-of-month month day-of-week`), 6 fields
    /// (a seconds field first) separated by runs of spaces or tabs, or one of the
    /// macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`
    /// and `@hourly` (in any case).
    ///
    /// # Errors
    ///
    /// A [`CronError`] naming the offending field, term or macro when the text is
    /// not a valid expression, or the whole expression when it can never fire.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let text = expr.trim();
        if text.is_empty() {
            return Err(CronError(
                "invalid cron expression \"\": the expression is empty".to_string(),
            ));
        }
        if text.starts_with('@') {
            let expansion = macro_expansion(text)?;
            return Self::parse_fields(text, expansion);
        }
        Self::parse_fields(text, text)
    }

    /// Whether Debian cron treats it as fixed-time (see above).
    ///
    /// A 5-field expression whose minute and hour fields both begin with
    /// something other than `*` is fixed-time; every other expression (including
    /// every 6-field one and `@hourly`) is a wildcard expression.
    #[must_use]
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Whether the expression has a leading seconds field (6 fields).
    #[must_use]
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// The first fire instant strictly later than `after`, in `tz`, with the DST rules. None only if
    /// nothing fires before year 9999.
    ///
    /// Wildcard expressions fire at every instant whose wall time in `tz` matches
    /// (nothing in skipped wall times, both passes of repeated ones). Fixed-time
    /// expressions fire once per matching wall time: a repeated wall time at its
    /// first occurrence only, skipped wall times once, together, at the instant
    /// of the jump.
    #[must_use]
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = after.timestamp().checked_add(1)?.max(MIN_SEARCH_SECS);
        let fire = self.next_fire_at_or_after(start, tz)?;
        DateTime::from_timestamp(fire, 0)
    }

    /// Convenience: the next `count` fire instants strictly after `after`.
    ///
    /// The result is strictly increasing and shorter than `count` only when
    /// nothing more fires before year 9999.
    #[must_use]
    pub fn next_n(&self, after: DateTime<Utc>, tz: Tz, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor, tz) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    fn parse_fields(original: &str, text: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = text.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
        let (second_text, minute_text, hour_text, dom_text, month_text, dow_text) =
            match fields.as_slice() {
                [mi, h, dom, mon, dow] => (None, *mi, *h, *dom, *mon, *dow),
                [s, mi, h, dom, mon, dow] => (Some(*s), *mi, *h, *dom, *mon, *dow),
                [_, _, _, _, _, _, _] => {
                    return Err(CronError(format!(
                        "invalid cron expression \"{original}\": 7 fields found, but a year \
                         field is not supported (expected 5 fields, or 6 with seconds first)"
                    )))
                }
                other => {
                    return Err(CronError(format!(
                        "invalid cron expression \"{original}\": {} fields found (expected 5 \
                         fields, or 6 with seconds first)",
                        other.len()
                    )))
                }
            };

        let seconds = match second_text {
            Some(s) => parse_field(s, SECOND_FIELD)?,
            None => 1,
        };
        let minutes = parse_field(minute_text, MINUTE_FIELD)?;
        let hours = low_u32(parse_field(hour_text, HOUR_FIELD)?);
        let days_of_month = low_u32(parse_field(dom_text, DOM_FIELD)?);
        let months = low_u16(parse_field(month_text, MONTH_FIELD)?);
        let dow_bits = parse_field(dow_text, DOW_FIELD)?;
        // 7 is Sunday too: fold bit 7 onto bit 0.
        let days_of_week = low_u8((dow_bits | (dow_bits >> 7)) & 0x7f);

        let has_seconds = second_text.is_some();
        let expr = CronExpr {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star: dom_text.starts_with('*'),
            dow_star: dow_text.starts_with('*'),
            fixed_time: !has_seconds
                && !minute_text.starts_with('*')
                && !hour_text.starts_with('*'),
            has_seconds,
        };
        expr.check_can_fire(original)?;
        Ok(expr)
    }

    /// Refuses expressions that match no date at all (e.g. `0 0 30 2 *`).
    ///
    /// The Gregorian calendar repeats every 400 years, so scanning one cycle of
    /// (month, day) combinations decides the question.
    fn check_can_fire(&self, original: &str) -> Result<(), CronError> {
        for year in 2000..2400 {
            for month in 1..=12u32 {
                if !bit16(self.months, month) {
                    continue;
                }
                for day in 1..=days_in_month(year, month) {
                    if self.day_matches(year, month, day) {
                        return Ok(());
                    }
                }
            }
        }
        let any_month_has_day = (1..=12u32).any(|month| {
            bit16(self.months, month)
                && (1..=days_in_month(2000, month)).any(|day| bit32(self.days_of_month, day))
        });
        let reason = if any_month_has_day {
            "no date matches the day-of-month, month and day-of-week fields together"
        } else {
            "no month in the month field has a day listed in the day-of-month field"
        };
        Err(CronError(format!(
            "invalid cron expression \"{original}\": it can never fire ({reason})"
        )))
    }

    /// The day rule: the month must match; then both day fields must match if either
    /// begins with `*`, otherwise either one is enough (Vixie cron).
    fn day_matches(&self, year: i32, month: u32, day: u32) -> bool {
        if !bit16(self.months, month) {
            return false;
        }
        let dom = bit32(self.days_of_month, day);
        let dow = bit8(self.days_of_week, weekday(year, month, day));
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching wall time (as seconds of a naive date-time, read as if it
    /// were UTC) at or after `wall`, up to the end of year 9999.
    fn next_wall_match(&self, wall: i64) -> Option<i64> {
        let start = DateTime::from_timestamp(wall, 0)?.naive_utc();
        let found = self.next_wall_match_naive(start)?;
        Some(found.and_utc().timestamp())
    }

    fn next_wall_match_naive(&self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut year = start.year();
        let mut month = start.month();
        let mut day = start.day();
        let mut hour = start.hour();
        let mut minute = start.minute();
        let mut second = start.second();
        loop {
            if year > MAX_YEAR {
                return None;
            }
            match next_bit(u64::from(self.months), month) {
                Some(m) if m == month => {}
                Some(m) => {
                    (month, day, hour, minute, second) = (m, 1, 0, 0, 0);
                }
                None => {
                    (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                    continue;
                }
            }
            if day > days_in_month(year, month) {
                (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                if month > 12 {
                    (year, month) = (year + 1, 1);
                }
                continue;
            }
            if !self.day_matches(year, month, day) {
                (day, hour, minute, second) = (day + 1, 0, 0, 0);
                continue;
            }
            match next_bit(u64::from(self.hours), hour) {
                Some(h) if h == hour => {}
                Some(h) => {
                    (hour, minute, second) = (h, 0, 0);
                }
                None => {
                    (day, hour, minute, second) = (day + 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, minute) {
                Some(m) if m == minute => {}
                Some(m) => {
                    (minute, second) = (m, 0);
                }
                None => {
                    (hour, minute, second) = (hour + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.seconds, second) {
                Some(s) => second = s,
                None => {
                    (minute, second) = (minute + 1, 0);
                    continue;
                }
            }
            return NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second);
        }
    }

    /// The first fire instant at or after `start` (Unix seconds).
    fn next_fire_at_or_after(&self, start: i64, tz: Tz) -> Option<i64> {
        let mut t = start;
        let mut offset = offset_at(tz, t)?;
        // A transition exactly at `start` is a jump instant later than `after`.
        if let Some(fire) = self.gap_fire(t, offset_at(tz, t.checked_sub(1)?)?, offset) {
            return Some(fire);
        }
        for _ in 0..MAX_SEARCH_STEPS {
            // Invariant: `offset` is in force at `t`, and fires before `t` are not wanted.
            let candidate = self.next_wall_match(t.checked_add(offset)?);
            let limit = match candidate {
                Some(wall) => wall.checked_sub(offset)?,
                None => t.checked_add(NO_MATCH_WINDOW_SECS)?,
            };
            match find_transition(tz, t, offset, limit)? {
                Some((instant, new_offset)) => {
                    // Nothing matched in [t, instant); the zone changes offset at `instant`.
                    if let Some(fire) = self.gap_fire(instant, offset, new_offset) {
                        return Some(fire);
                    }
                    t = instant;
                    offset = new_offset;
                }
                None => {
                    let wall = candidate?;
                    let fire = wall.checked_sub(offset)?;
                    if self.fixed_time && is_repeated_wall_time(tz, wall, fire) {
                        // Second pass of a repeated wall time: it already fired.
                        let next = fire.checked_add(1)?;
                        let next_offset = offset_at(tz, next)?;
                        if let Some(fire) = self.gap_fire(next, offset, next_offset) {
                            return Some(fire);
                        }
                        t = next;
                        offset = next_offset;
                        continue;
                    }
                    return Some(fire);
                }
            }
        }
        None
    }

    /// For a fixed-time expression and a forward jump at `instant` from offset
    /// `before` to `after`: `Some(instant)` if a matching wall time is skipped.
    fn gap_fire(&self, instant: i64, before: i64, after: i64) -> Option<i64> {
        if !self.fixed_time || after <= before {
            return None;
        }
        let skipped_from = instant.checked_add(before)?;
        let skipped_until = instant.checked_add(after)?;
        let wall = self.next_wall_match(skipped_from)?;
        (wall < skipped_until).then_some(instant)
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    /// Same as [`CronExpr::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::None => "no",
            NameKind::Month => "month",
            NameKind::Weekday => "weekday",
        })
    }
}

/// Parses an IANA zone name (`UTC` and `Etc/UTC` included); error message names it.
///
/// # Errors
///
/// A [`CronError`] naming the zone when it is not in the tz database.
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| CronError(format!("unknown time zone \"{name}\"")))
}

fn macro_expansion(text: &str) -> Result<&'static str, CronError> {
    if text.contains([' ', '\t']) {
        return Err(CronError(format!(
            "invalid cron expression \"{text}\": a macro must stand alone"
        )));
    }
    match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        "@reboot" => Err(CronError(format!(
            "invalid cron expression \"{text}\": macro \"{text}\" is not supported"
        ))),
        _ => Err(CronError(format!(
            "invalid cron expression \"{text}\": unknown macro \"{text}\""
        ))),
    }
}

/// Parses one comma-separated field into a bit set (bit `v` for value `v`).
fn parse_field(text: &str, spec: FieldSpec) -> Result<u64, CronError> {
    let terms: Vec<&str> = text.split(',').collect();
    let several = terms.len() > 1;
    let mut bits = 0u64;
    for term in terms {
        let (lo, hi, step) = parse_term(term, spec).map_err(|reason| {
            let in_term = if several && !term.is_empty() {
                format!(" in term \"{term}\"")
            } else {
                String::new()
            };
            CronError(format!(
                "invalid {} field \"{text}\": {reason}{in_term}",
                spec.label
            ))
        })?;
        let mut value = lo;
        while value <= hi {
            bits |= 1u64.checked_shl(value).unwrap_or(0);
            value = match value.checked_add(step) {
                Some(v) => v,
                None => break,
            };
        }
    }
    Ok(bits)
}

/// Parses one term into `(first, last, step)`.
fn parse_term(term: &str, spec: FieldSpec) -> Result<(u32, u32, u32), String> {
    if term.is_empty() {
        return Err("empty term".to_string());
    }
    for special in ['#', '?'] {
        if term.contains(special) {
            return Err(format!("\"{special}\" is not supported"));
        }
    }
    let (range_text, step_text) = match term.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (term, None),
    };
    let step = match step_text {
        Some(s) => Some(parse_step(s)?),
        None => None,
    };
    let (lo, hi) = if range_text == "*" {
        (spec.min, spec.max)
    } else if range_text.is_empty() {
        return Err("missing value before \"/\"".to_string());
    } else if let Some((start_text, end_text)) = range_text.split_once('-') {
        if start_text.is_empty() {
            return Err(format!("missing range start in \"{range_text}\""));
        }
        if end_text.is_empty() {
            return Err(format!("missing range end in \"{range_text}\""));
        }
        let lo = parse_value(start_text, spec)?;
        let mut hi = parse_value(end_text, spec)?;
        // `fri-sun`: a range ending in the name SUN ends on Sunday = 7.
        if spec.names == NameKind::Weekday && hi == 0 && lo > 0 && is_alphabetic(end_text) {
            hi = 7;
        }
        if lo > hi {
            return Err(format!(
                "descending range \"{range_text}\" (the start must not exceed the end)"
            ));
        }
        (lo, hi)
    } else {
        let value = parse_value(range_text, spec)?;
        match step {
            Some(_) => (value, spec.max),
            None => (value, value),
        }
    };
    Ok((lo, hi, step.unwrap_or(1)))
}

fn parse_step(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("missing step after \"/\"".to_string());
    }
    if is_numeric(text) {
        return match text.parse::<u32>() {
            Ok(0) => Err("step must be at least 1".to_string()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("step \"{text}\" is too large")),
        };
    }
    if is_alphabetic(text)
        && (lookup_name(text, &MONTH_NAMES).is_some()
            || lookup_name(text, &WEEKDAY_NAMES).is_some())
    {
        return Err(format!("a name (\"{text}\") cannot be used as a step"));
    }
    Err(format!("invalid step \"{text}\""))
}

fn parse_value(text: &str, spec: FieldSpec) -> Result<u32, String> {
    if text == "*" {
        return Err("\"*\" cannot be part of a range".to_string());
    }
    if is_numeric(text) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!("value out of range {}-{}", spec.min, spec.max)),
        };
    }
    if let Some(special) = unsupported_letter(text) {
        return Err(format!("\"{special}\" is not supported"));
    }
    if is_alphabetic(text) {
        let found = match spec.names {
            NameKind::None => None,
            NameKind::Month => lookup_name(text, &MONTH_NAMES).map(|i| i + 1),
            NameKind::Weekday => lookup_name(text, &WEEKDAY_NAMES),
        };
        return match (found, spec.names) {
            (Some(v), _) => Ok(v),
            (None, NameKind::None) => Err(format!(
                "unexpected name \"{text}\" (names are not allowed in the {} field)",
                spec.label
            )),
            (None, kind) => Err(format!(
                "unknown name \"{text}\" (expected a number or a three-letter {kind} name)"
            )),
        };
    }
    Err(format!("invalid value \"{text}\""))
}

/// `L`, `W` and `LW`, alone or after a number (`5L`, `15W`), are Quartz-style
/// extensions that Debian cron does not have; name them in the error.
fn unsupported_letter(text: &str) -> Option<&'static str> {
    let letters = text.trim_start_matches(|c: char| c.is_ascii_digit());
    match letters.to_ascii_uppercase().as_str() {
        "L" => Some("L"),
        "W" => Some("W"),
        "LW" => Some("LW"),
        _ => None,
    }
}

fn lookup_name(text: &str, names: &[&str]) -> Option<u32> {
    names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .and_then(|i| u32::try_from(i).ok())
}

fn is_numeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_alphabetic(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphabetic())
}

fn low_u32(bits: u64) -> u32 {
    u32::try_from(bits & u64::from(u32::MAX)).unwrap_or(0)
}

fn low_u16(bits: u64) -> u16 {
    u16::try_from(bits & u64::from(u16::MAX)).unwrap_or(0)
}

fn low_u8(bits: u64) -> u8 {
    u8::try_from(bits & u64::from(u8::MAX)).unwrap_or(0)
}

fn bit8(bits: u8, index: u32) -> bool {
    bits.checked_shr(index).is_some_and(|b| b & 1 == 1)
}

fn bit16(bits: u16, index: u32) -> bool {
    bits.checked_shr(index).is_some_and(|b| b & 1 == 1)
}

fn bit32(bits: u32, index: u32) -> bool {
    bits.checked_shr(index).is_some_and(|b| b & 1 == 1)
}

/// The smallest set bit of `bits` at position `from` or above.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let masked = bits & u64::MAX.checked_shl(from)?;
    (masked != 0).then(|| masked.trailing_zeros())
}

fn is_leap_year(year: i32) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of the week, 0 = Sunday … 6 = Saturday (proleptic Gregorian calendar).
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    // Days since 1970-01-01 (a Thursday), after H. Hinnant's `days_from_civil`.
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u32::try_from((days + 4).rem_euclid(7)).unwrap_or(0)
}

/// The UTC offset (wall minus UTC, in seconds) in force at Unix second `t`.
fn offset_at(tz: Tz, t: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp(t, 0)?.naive_utc();
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// The first instant in `(t, limit]` whose offset differs from `offset` (the
/// offset at `t`), with its new offset. `None` (outer) only on arithmetic failure.
fn find_transition(tz: Tz, t: i64, offset: i64, limit: i64) -> Option<Option<(i64, i64)>> {
    let mut probe = t;
    while probe < limit {
        let next = probe.saturating_add(PROBE_STEP_SECS).min(limit);
        if offset_at(tz, next)? != offset {
            // Exactly one transition lies in (probe, next]: bisect it.
            let (mut lo, mut hi) = (probe, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid)? == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return Some(Some((hi, offset_at(tz, hi)?)));
        }
        probe = next;
    }
    Some(None)
}

/// Whether wall time `wall` (naive seconds) already occurred before instant `fire`.
fn is_repeated_wall_time(tz: Tz, wall: i64, fire: i64) -> bool {
    DateTime::from_timestamp(wall, 0)
        .and_then(|w| tz.from_local_datetime(&w.naive_utc()).earliest())
        .is_some_and(|first| first.timestamp() < fire)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // ---------------------------------------------------------------- helpers

    fn cron(s: &str) -> CronExpr {
        CronExpr::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &str) -> String {
        match CronExpr::parse(s) {
            Ok(e) => panic!("{s:?} should be refused, got {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        parse_timezone(name).unwrap()
    }

    fn next(expr: &str, after: &str, zone: &str) -> Option<DateTime<Utc>> {
        cron(expr).next_after(utc(after), tz(zone))
    }

    fn next_list(expr: &str, after: &str, zone: &str, n: usize) -> Vec<String> {
        cron(expr)
            .next_n(utc(after), tz(zone), n)
            .iter()
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    /// Fire instants rendered on the zone's wall clock with their offset.
    fn next_local(expr: &str, after: &str, zone: &str, n: usize) -> Vec<String> {
        let z = tz(zone);
        cron(expr)
            .next_n(utc(after), z, n)
            .iter()
            .map(|d| {
                d.with_timezone(&z)
                    .format("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .collect()
    }

    fn bits(v: &[u32]) -> u64 {
        v.iter().fold(0u64, |acc, &b| acc | (1u64 << b))
    }

    fn offset(zone: Tz, t: DateTime<Utc>) -> i64 {
        offset_at(zone, t.timestamp()).unwrap()
    }

    /// Asserts that `zone` changes its offset from `before` to `after` (seconds)
    /// exactly at `instant`.
    fn assert_transition(zone: &str, instant: &str, before: i64, after: i64) {
        let z = tz(zone);
        let t = utc(instant);
        assert_eq!(
            offset(z, t - chrono::Duration::seconds(1)),
            before,
            "{zone} before {instant}"
        );
        assert_eq!(offset(z, t), after, "{zone} at {instant}");
    }

    /// Independent matcher for the oracle: does wall time `w` match `e`?
    fn matches(e: &CronExpr, w: NaiveDateTime) -> bool {
        let has = |set: u64, v: u32| set & (1u64 << v) != 0;
        let dom = has(u64::from(e.days_of_month), w.day());
        let dow = has(
            u64::from(e.days_of_week),
            w.weekday().num_days_from_sunday(),
        );
        let day_ok = if e.dom_star || e.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        has(u64::from(e.months), w.month())
            && day_ok
            && has(u64::from(e.hours), w.hour())
            && has(e.minutes, w.minute())
            && has(e.seconds, w.second())
    }

    /// Brute-force reference: every fire instant in `(from, to]`, found by
    /// walking the UTC time line in `step`-second increments (aligned so that
    /// the wall clock shows whole steps) and applying the rules literally.
    fn oracle(e: &CronExpr, zone: Tz, from: i64, to: i64, step: i64) -> Vec<i64> {
        let warmup = from - 3 * 86_400;
        let first_off = offset_at(zone, warmup).unwrap();
        // Align so that wall time (u + offset) is a multiple of `step`.
        let mut u = warmup - (warmup + first_off).rem_euclid(step);
        let mut prev_off = offset_at(zone, u - step).unwrap();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while u <= to {
            let off = offset_at(zone, u).unwrap();
            assert_eq!(
                (off - first_off).rem_euclid(step),
                0,
                "oracle needs offsets that agree modulo the step"
            );
            let wall = u + off;
            let naive = |w: i64| DateTime::from_timestamp(w, 0).unwrap().naive_utc();
            let hit = matches(e, naive(wall));
            let mut fire = false;
            if e.is_fixed_time() {
                if hit && seen.insert(wall) {
                    fire = true;
                }
                if off > prev_off {
                    let mut w = u + prev_off;
                    while w < wall {
                        if matches(e, naive(w)) {
                            fire = true;
                        }
                        w += step;
                    }
                }
            } else if hit {
                fire = true;
            }
            if fire && u > from {
                out.push(u);
            }
            prev_off = off;
            u += step;
        }
        out
    }

    /// Compares `next_after` with the oracle on `[from, to]`: the chain of fires
    /// from `from`, and single look-ups from many starting points (every
    /// `probe_every` seconds, plus each fire instant and its neighbours).
    fn check_against_oracle(expr: &str, zone: &str, from: &str, to: &str, probe_every: i64) {
        let (from, to) = (utc(from).timestamp(), utc(to).timestamp());
        check_against_oracle_secs(expr, tz(zone), from, to, probe_every);
    }

    fn check_against_oracle_secs(expr: &str, z: Tz, from: i64, to: i64, probe_every: i64) {
        let e = cron(expr);
        let zone = z.name();
        let step = if e.has_seconds() { 1 } else { 60 };
        let expected = oracle(&e, z, from, to, step);

        let mut chain = Vec::new();
        let mut cursor = from;
        loop {
            let n = e
                .next_after(DateTime::from_timestamp(cursor, 0).unwrap(), z)
                .unwrap()
                .timestamp();
            if n > to {
                break;
            }
            chain.push(n);
            cursor = n;
        }
        assert_eq!(
            chain, expected,
            "{expr} in {zone}: chain differs from oracle"
        );

        let mut starts: Vec<i64> = (from..to).step_by(probe_every as usize).collect();
        for &f in &expected {
            starts.extend([f - 1, f, f + 1]);
        }
        for s in starts.into_iter().filter(|s| (from..to).contains(s)) {
            let want = expected.iter().copied().find(|&f| f > s);
            let got = e
                .next_after(DateTime::from_timestamp(s, 0).unwrap(), z)
                .unwrap()
                .timestamp();
            match want {
                Some(w) => assert_eq!(got, w, "{expr} in {zone} from {s}"),
                None => assert!(got > to, "{expr} in {zone} from {s}: got {got}"),
            }
        }
    }

    const ORACLE_EXPRS: &[&str] = &[
        // fixed-time
        "30 2 * * *",
        "0,30 1-3 * * *",
        "0-59/5 2 * * *",
        "@daily",
        "45 1 * * *",
        "0 3 * * *",
        "15,45 0-4 * * *",
        "0 12 * * *",
        "59 23 * * *",
        "10 0,1,2,3 * * 0",
        // wildcard
        "*/15 * * * *",
        "0 * * * *",
        "*/15 2 * * *",
        "0 */2 * * *",
        "@hourly",
        "*/7 1-3 * * *",
        "15,45 * * * *",
        "* 0-3 * * *",
    ];

    // ---------------------------------------------------------------- parsing

    #[test]
    fn parse_all_stars() {
        let e = cron("* * * * *");
        assert_eq!(e.seconds, 1);
        assert_eq!(e.minutes, (1u64 << 60) - 1);
        assert_eq!(e.hours, (1u32 << 24) - 1);
        assert_eq!(e.days_of_month, u32::MAX - 1);
        assert_eq!(e.months, 0b1_1111_1111_1110);
        assert_eq!(e.days_of_week, 0x7f);
        assert!(e.dom_star && e.dow_star);
        assert!(!e.has_seconds());
    }

    #[test]
    fn parse_single_numbers() {
        let e = cron("5 4 3 2 1");
        assert_eq!(e.minutes, bits(&[5]));
        assert_eq!(u64::from(e.hours), bits(&[4]));
        assert_eq!(u64::from(e.days_of_month), bits(&[3]));
        assert_eq!(u64::from(e.months), bits(&[2]));
        assert_eq!(u64::from(e.days_of_week), bits(&[1]));
        assert!(!e.dom_star && !e.dow_star);
    }

    #[test]
    fn parse_field_bounds_are_accepted() {
        let e = cron("59 59 23 31 12 7");
        assert_eq!(e.seconds, bits(&[59]));
        assert_eq!(e.minutes, bits(&[59]));
        assert_eq!(u64::from(e.hours), bits(&[23]));
        assert_eq!(u64::from(e.days_of_month), bits(&[31]));
        assert_eq!(u64::from(e.months), bits(&[12]));
        assert_eq!(u64::from(e.days_of_week), bits(&[0]));
        let e = cron("0 0 0 1 1 0");
        assert_eq!(e.seconds, bits(&[0]));
        assert_eq!(u64::from(e.days_of_month), bits(&[1]));
    }

    #[test]
    fn parse_ranges() {
        let e = cron("10-12 0-2 5-6 3-4 1-3");
        assert_eq!(e.minutes, bits(&[10, 11, 12]));
        assert_eq!(u64::from(e.hours), bits(&[0, 1, 2]));
        assert_eq!(u64::from(e.days_of_month), bits(&[5, 6]));
        assert_eq!(u64::from(e.months), bits(&[3, 4]));
        assert_eq!(u64::from(e.days_of_week), bits(&[1, 2, 3]));
    }

    #[test]
    fn parse_single_value_range() {
        assert_eq!(cron("7-7 * * * *").minutes, bits(&[7]));
    }

    #[test]
    fn parse_star_step() {
        let e = cron("*/15 */6 */10 */4 *");
        assert_eq!(e.minutes, bits(&[0, 15, 30, 45]));
        assert_eq!(u64::from(e.hours), bits(&[0, 6, 12, 18]));
        assert_eq!(u64::from(e.days_of_month), bits(&[1, 11, 21, 31]));
        assert_eq!(u64::from(e.months), bits(&[1, 5, 9]));
    }

    #[test]
    fn parse_start_step_runs_to_field_max() {
        let e = cron("5/20 3/7 * 2/5 *");
        assert_eq!(e.minutes, bits(&[5, 25, 45]));
        assert_eq!(u64::from(e.hours), bits(&[3, 10, 17]));
        assert_eq!(u64::from(e.months), bits(&[2, 7, 12]));
    }

    #[test]
    fn parse_range_step() {
        let e = cron("10-30/10 1-23/11 * * *");
        assert_eq!(e.minutes, bits(&[10, 20, 30]));
        assert_eq!(u64::from(e.hours), bits(&[1, 12, 23]));
        assert_eq!(cron("0-59/5 2 * * *").minutes, cron("*/5 2 * * *").minutes);
    }

    #[test]
    fn parse_step_of_one_and_step_larger_than_range() {
        assert_eq!(cron("*/1 * * * *").minutes, cron("* * * * *").minutes);
        // A step beyond the range keeps only the start (as Vixie cron does).
        assert_eq!(cron("*/100 * * * *").minutes, bits(&[0]));
        assert_eq!(cron("7/60 * * * *").minutes, bits(&[7]));
    }

    #[test]
    fn parse_lists_mixing_every_term_form() {
        let e = cron("1,2,5-7,*/30,40/9,50-56/3 * * * *");
        assert_eq!(
            e.minutes,
            bits(&[0, 1, 2, 5, 6, 7, 30, 40, 49, 50, 53, 56, 58])
        );
    }

    #[test]
    fn parse_leading_zeros() {
        assert_eq!(cron("05 007 * * *"), cron("5 7 * * *"));
    }

    #[test]
    fn parse_month_names_any_case() {
        for name in ["mar", "MAR", "Mar", "mAr"] {
            assert_eq!(
                u64::from(cron(&format!("0 0 1 {name} *")).months),
                bits(&[3])
            );
        }
        let all = "0 0 1 jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec *";
        assert_eq!(cron(all).months, cron("0 0 1 * *").months);
    }

    #[test]
    fn parse_weekday_names_any_case() {
        let e = cron("0 0 * * sun,MON,Tue,wEd,thu,FRI,sat");
        assert_eq!(e.days_of_week, 0x7f);
        assert_eq!(u64::from(cron("0 0 * * Wed").days_of_week), bits(&[3]));
    }

    #[test]
    fn parse_name_ranges() {
        assert_eq!(cron("0 0 * * mon-fri"), cron("0 0 * * 1-5"));
        assert_eq!(cron("0 0 * * MON-FRI"), cron("0 0 * * 1-5"));
        assert_eq!(cron("0 0 1 jan-mar *"), cron("0 0 1 1-3 *"));
        assert_eq!(cron("0 0 1 Oct-DEC *"), cron("0 0 1 10-12 *"));
        // Names and numbers may be mixed.
        assert_eq!(cron("0 0 * * 1-fri"), cron("0 0 * * 1-5"));
        assert_eq!(cron("0 0 1 2-mar *"), cron("0 0 1 2-3 *"));
    }

    #[test]
    fn parse_names_with_steps() {
        assert_eq!(cron("0 0 * * mon-fri/2"), cron("0 0 * * 1,3,5"));
        assert_eq!(cron("0 0 1 jan-dec/3 *"), cron("0 0 1 1,4,7,10 *"));
        assert_eq!(cron("0 0 1 feb/4 *"), cron("0 0 1 2,6,10 *"));
    }

    #[test]
    fn parse_sunday_is_zero_and_seven() {
        assert_eq!(u64::from(cron("0 0 * * 0").days_of_week), bits(&[0]));
        assert_eq!(u64::from(cron("0 0 * * 7").days_of_week), bits(&[0]));
        assert_eq!(cron("0 0 * * 7"), cron("0 0 * * 0"));
        assert_eq!(cron("0 0 * * sun"), cron("0 0 * * 0"));
        assert_eq!(cron("0 0 * * 0,7").days_of_week, bits(&[0]) as u8);
        assert_eq!(cron("0 0 * * 0-7").days_of_week, 0x7f);
    }

    #[test]
    fn parse_weekday_range_through_seven() {
        assert_eq!(
            u64::from(cron("0 0 * * 5-7").days_of_week),
            bits(&[0, 5, 6])
        );
        assert_eq!(u64::from(cron("0 0 * * 6-7").days_of_week), bits(&[0, 6]));
        // A range ending in the name SUN ends on Sunday (= 7).
        assert_eq!(cron("0 0 * * fri-sun"), cron("0 0 * * 5-7"));
        assert_eq!(cron("0 0 * * sun-sat"), cron("0 0 * * 0-6"));
        assert_eq!(cron("0 0 * * sun-sun"), cron("0 0 * * 0"));
    }

    #[test]
    fn parse_weekday_steps_use_range_zero_to_seven() {
        assert_eq!(
            u64::from(cron("0 0 * * */2").days_of_week),
            bits(&[0, 2, 4, 6])
        );
        // `1/2` is `1-7/2`: Monday, Wednesday, Friday and Sunday (7).
        assert_eq!(
            u64::from(cron("0 0 * * 1/2").days_of_week),
            bits(&[0, 1, 3, 5])
        );
        assert_eq!(u64::from(cron("0 0 * * */7").days_of_week), bits(&[0]));
    }

    #[test]
    fn parse_six_fields_with_seconds() {
        let e = cron("*/20 0 12 * * *");
        assert!(e.has_seconds());
        assert_eq!(e.seconds, bits(&[0, 20, 40]));
        assert_eq!(e.minutes, bits(&[0]));
        assert_eq!(u64::from(e.hours), bits(&[12]));
        assert!(!e.is_fixed_time(), "every 6-field expression is wildcard");
    }

    #[test]
    fn parse_tabs_and_runs_of_blanks_separate_fields() {
        assert_eq!(cron("30\t9\t*\t*\t1-5"), cron("30 9 * * 1-5"));
        assert_eq!(cron("30  9 \t * *\t\t1-5"), cron("30 9 * * 1-5"));
    }

    #[test]
    fn parse_trims_surrounding_whitespace() {
        assert_eq!(cron("  \t30 9 * * 1-5 \n"), cron("30 9 * * 1-5"));
        assert_eq!(cron(" @daily\n"), cron("0 0 * * *"));
    }

    #[test]
    fn parse_macros_equal_their_expansions() {
        for (m, e) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            assert_eq!(cron(m), cron(e), "{m}");
        }
    }

    #[test]
    fn parse_macros_in_any_case() {
        assert_eq!(cron("@DAILY"), cron("@daily"));
        assert_eq!(cron("@Hourly"), cron("@hourly"));
    }

    #[test]
    fn from_str_is_parse() {
        let e: CronExpr = "30 9 * * 1-5".parse().unwrap();
        assert_eq!(e, cron("30 9 * * 1-5"));
        assert!("61 * * * *".parse::<CronExpr>().is_err());
    }

    #[test]
    fn fixed_time_classification() {
        for fixed in [
            "30 2 * * *",
            "0,30 1-3 * * *",
            "0-59/5 2 * * *",
            "5/10 1 * * *",
            "0 0 1 1 *",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert!(cron(fixed).is_fixed_time(), "{fixed} should be fixed-time");
        }
        for wild in [
            "*/15 2 * * *",
            "0 * * * *",
            "0 */2 * * *",
            "* 2 * * *",
            "*,5 2 * * *",
            "5 *,2 * * *",
            "@hourly",
            "0 30 2 * * *",
            "* * * * * *",
        ] {
            assert!(!cron(wild).is_fixed_time(), "{wild} should be wildcard");
        }
    }

    #[test]
    fn star_flags_follow_first_character() {
        assert!(cron("0 0 */2 * 1").dom_star);
        assert!(!cron("0 0 1-31 * 1").dom_star);
        assert!(cron("0 0 1 * *,1").dow_star);
        assert!(!cron("0 0 1 * 0-7").dow_star);
    }

    #[test]
    fn never_fire_check_accepts_rare_dates() {
        cron("0 0 29 2 *");
        cron("0 0 30 2 1");
        cron("0 0 31 1-2 *");
        cron("0 0 29 2 */7"); // AND rule: 29 February on a Sunday
    }

    #[test]
    fn never_fire_check_is_fast() {
        let start = std::time::Instant::now();
        for _ in 0..20 {
            assert!(CronExpr::parse("0 0 30 2 *").is_err());
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    // ---------------------------------------------------------------- errors

    #[test]
    fn error_value_out_of_range_message_names_field() {
        assert_eq!(
            err("61 * * * *"),
            "invalid minute field \"61\": value out of range 0-59"
        );
    }

    #[test]
    fn error_value_out_of_range_every_field() {
        for (expr, field, range) in [
            ("* 24 * * *", "hour", "0-23"),
            ("* * 0 * *", "day-of-month", "1-31"),
            ("* * 32 * *", "day-of-month", "1-31"),
            ("* * * 0 *", "month", "1-12"),
            ("* * * 13 *", "month", "1-12"),
            ("* * * * 8", "day-of-week", "0-7"),
            ("60 * * * * *", "second", "0-59"),
            ("* 60 * * * *", "minute", "0-59"),
        ] {
            let m = err(expr);
            assert!(
                m.starts_with(&format!("invalid {field} field")),
                "{expr}: {m}"
            );
            assert!(
                m.contains(&format!("value out of range {range}")),
                "{expr}: {m}"
            );
        }
    }

    #[test]
    fn error_out_of_range_inside_list_and_range() {
        assert_eq!(
            err("5,61 * * * *"),
            "invalid minute field \"5,61\": value out of range 0-59 in term \"61\""
        );
        assert!(err("50-60 * * * *").contains("value out of range 0-59"));
        assert!(err("* * * * 1-8").contains("day-of-week"));
    }

    #[test]
    fn error_huge_numbers() {
        assert!(err("99999999999999999999 * * * *").contains("value out of range 0-59"));
        assert!(err("*/99999999999999999999 * * * *").contains("too large"));
    }

    #[test]
    fn error_descending_range() {
        let m = err("* * * * 5-1");
        assert!(m.starts_with("invalid day-of-week field \"5-1\""), "{m}");
        assert!(m.contains("descending range"), "{m}");
        assert!(err("30-10 * * * *").contains("descending"));
        assert!(err("0 0 1 dec-jan *").contains("descending"));
        assert!(err("0 0 * * sat-mon").contains("descending"));
    }

    #[test]
    fn error_step_zero() {
        for e in ["*/0 * * * *", "1-5/0 * * * *", "5/0 * * * *"] {
            let m = err(e);
            assert!(
                m.contains("minute") && m.contains("step must be at least 1"),
                "{m}"
            );
        }
    }

    #[test]
    fn error_name_as_step() {
        let m = err("0 0 * * */mon");
        assert!(
            m.contains("day-of-week") && m.contains("cannot be used as a step"),
            "{m}"
        );
        assert!(err("0 0 1 1-12/jan *").contains("cannot be used as a step"));
        assert!(err("*/x * * * *").contains("invalid step"));
    }

    #[test]
    fn error_malformed_steps() {
        assert!(err("*/ * * * *").contains("missing step"));
        assert!(err("/5 * * * *").contains("missing value"));
        assert!(err("1/2/3 * * * *").contains("invalid step"));
        assert!(err("*/-1 * * * *").contains("invalid step"));
    }

    #[test]
    fn error_empty_terms() {
        for e in ["1,,2 * * * *", "1, * * * *", ",1 * * * *", "* * * * mon,"] {
            assert!(err(e).contains("empty term"), "{e}");
        }
    }

    #[test]
    fn error_empty_expression() {
        assert!(err("").contains("empty"));
        assert!(err(" \t ").contains("empty"));
    }

    #[test]
    fn error_wrong_field_counts() {
        assert!(err("* * * *").contains("4 fields"));
        assert!(err("*").contains("1 fields"));
        assert!(err("* * * * * * * *").contains("8 fields"));
        let m = err("0 0 12 * * ? 2026");
        assert!(m.contains("year field is not supported"), "{m}");
        assert!(err("0 0 1 1 * 2026 x").contains("year field"));
    }

    #[test]
    fn error_quartz_letters_l_w() {
        let m = err("0 0 L * *");
        assert_eq!(
            m,
            "invalid day-of-month field \"L\": \"L\" is not supported"
        );
        assert!(err("0 0 15W * *").contains("\"W\" is not supported"));
        assert!(err("0 0 LW * *").contains("\"LW\" is not supported"));
        assert!(err("0 0 * * 5L").contains("\"L\" is not supported"));
        assert!(err("0 0 l * *").contains("is not supported"));
    }

    #[test]
    fn error_hash_and_question_mark() {
        let m = err("0 0 * * 5#3");
        assert!(m.starts_with("invalid day-of-week field"), "{m}");
        assert!(m.contains("\"#\" is not supported"), "{m}");
        assert!(err("0 0 ? * 1").contains("\"?\" is not supported"));
        assert!(err("0 0 1 * ?").contains("day-of-week"));
    }

    #[test]
    fn error_names_in_the_wrong_field() {
        assert!(err("jan * * * *").contains("names are not allowed in the minute field"));
        assert!(err("0 0 * mon *").contains("unknown name \"mon\""));
        assert!(err("0 0 * * jan").contains("unknown name \"jan\""));
        assert!(err("0 0 mon * *").contains("day-of-month"));
    }

    #[test]
    fn error_unknown_names_and_garbage() {
        assert!(err("0 0 * * monday").contains("unknown name \"monday\""));
        assert!(err("0 0 1 janu *").contains("unknown name"));
        assert!(err("1.5 * * * *").contains("invalid value"));
        assert!(err("** * * * *").contains("invalid value"));
        assert!(err("-1 * * * *").contains("missing range start"));
        assert!(err("5- * * * *").contains("missing range end"));
        assert!(err("1-2-3 * * * *").contains("invalid value"));
        assert!(err("*-5 * * * *").contains("cannot be part of a range"));
        assert!(err("é * * * *").contains("invalid value"));
        assert!(err("+5 * * * *").contains("invalid value"));
    }

    #[test]
    fn error_macros() {
        assert!(err("@reboot").contains("not supported"));
        assert!(err("@fortnightly").contains("unknown macro \"@fortnightly\""));
        assert!(err("@daily 5").contains("must stand alone"));
        assert!(err("@").contains("unknown macro"));
    }

    #[test]
    fn error_never_fires() {
        for e in [
            "0 0 30 2 *",
            "0 0 31 4 *",
            "0 0 31 2,4,6,9,11 *",
            "0 0 30,31 feb *",
            "0 0 31 4 */2",
        ] {
            let m = err(e);
            assert!(m.contains("can never fire"), "{e}: {m}");
            assert!(m.contains(&format!("\"{e}\"")), "{e}: {m}");
            assert!(m.contains("day-of-month"), "{e}: {m}");
        }
    }

    #[test]
    fn error_display_is_the_message() {
        let e = CronExpr::parse("61 * * * *").unwrap_err();
        assert_eq!(format!("{e}"), e.0);
    }

    // ---------------------------------------------------------------- time zones

    #[test]
    fn parse_timezone_accepts_iana_names() {
        assert_eq!(parse_timezone("UTC").unwrap(), Tz::UTC);
        assert_eq!(parse_timezone("Etc/UTC").unwrap(), Tz::Etc__UTC);
        assert_eq!(
            parse_timezone("America/New_York").unwrap(),
            Tz::America__New_York
        );
        assert_eq!(
            parse_timezone("Pacific/Chatham").unwrap(),
            Tz::Pacific__Chatham
        );
    }

    #[test]
    fn parse_timezone_refuses_unknown_names() {
        let m = parse_timezone("Mars/Olympus_Mons").unwrap_err().to_string();
        assert_eq!(m, "unknown time zone \"Mars/Olympus_Mons\"");
        assert!(parse_timezone("").is_err());
        assert!(parse_timezone("+05:00").is_err());
    }

    #[test]
    fn transition_dates_are_as_documented() {
        let h = 3600;
        assert_transition("America/New_York", "2026-03-08T07:00:00Z", -5 * h, -4 * h);
        assert_transition("America/New_York", "2026-11-01T06:00:00Z", -4 * h, -5 * h);
        assert_transition("Europe/Paris", "2026-03-29T01:00:00Z", h, 2 * h);
        assert_transition("Europe/Paris", "2026-10-25T01:00:00Z", 2 * h, h);
        // Lord Howe: +10:30 / +11, forward 02:00 -> 02:30, back 02:00 -> 01:30.
        assert_transition(
            "Australia/Lord_Howe",
            "2026-10-03T15:30:00Z",
            37_800,
            39_600,
        );
        assert_transition(
            "Australia/Lord_Howe",
            "2026-04-04T15:00:00Z",
            39_600,
            37_800,
        );
        // Chatham: +12:45 / +13:45, forward 02:45 -> 03:45, back 03:45 -> 02:45.
        assert_transition("Pacific/Chatham", "2026-09-26T14:00:00Z", 45_900, 49_500);
        assert_transition("Pacific/Chatham", "2026-04-04T14:00:00Z", 49_500, 45_900);
        // Havana: midnight gap (00:00 -> 01:00) and 01:00 -> 00:00 in autumn.
        assert_transition("America/Havana", "2026-03-08T05:00:00Z", -5 * h, -4 * h);
        assert_transition("America/Havana", "2026-11-01T05:00:00Z", -4 * h, -5 * h);
        // Samoa skipped 30 December 2011 (-10 -> +14).
        assert_transition("Pacific/Apia", "2011-12-30T10:00:00Z", -10 * h, 14 * h);
    }

    // ---------------------------------------------------------------- next fire, UTC

    #[test]
    fn weekdays_from_friday_evening_to_monday() {
        // 2026-03-06 is a Friday.
        assert_eq!(
            next("30 9 * * 1-5", "2026-03-06T18:00:00Z", "UTC"),
            Some(utc("2026-03-09T09:30:00Z"))
        );
        assert_eq!(
            next_list("30 9 * * mon-fri", "2026-03-05T10:00:00Z", "UTC", 3),
            [
                "2026-03-06T09:30:00Z",
                "2026-03-09T09:30:00Z",
                "2026-03-10T09:30:00Z"
            ]
        );
    }

    #[test]
    fn sunday_as_zero_and_seven() {
        // 2026-03-08 is a Sunday.
        for expr in ["0 12 * * 0", "0 12 * * 7", "0 12 * * sun", "0 12 * * 6-7"] {
            let got = next(expr, "2026-03-07T12:00:00Z", "UTC");
            assert_eq!(got, Some(utc("2026-03-08T12:00:00Z")), "{expr}");
        }
        assert_eq!(
            next_list("0 12 * * 5-7", "2026-03-05T00:00:00Z", "UTC", 4),
            [
                "2026-03-06T12:00:00Z",
                "2026-03-07T12:00:00Z",
                "2026-03-08T12:00:00Z",
                "2026-03-13T12:00:00Z"
            ]
        );
    }

    #[test]
    fn dom_or_dow_when_neither_starts_with_star() {
        // Every 13th and every Friday (2026-02-13 and 2026-03-13 are Fridays).
        assert_eq!(
            next_list("0 0 13 * 5", "2026-01-01T00:00:00Z", "UTC", 7),
            [
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-13T00:00:00Z",
                "2026-01-16T00:00:00Z",
                "2026-01-23T00:00:00Z",
                "2026-01-30T00:00:00Z",
                "2026-02-06T00:00:00Z"
            ]
        );
    }

    #[test]
    fn dom_and_dow_when_dom_starts_with_star() {
        // Odd-numbered days that are Mondays.
        assert_eq!(
            next_list("0 0 */2 * 1", "2026-01-01T00:00:00Z", "UTC", 5),
            [
                "2026-01-05T00:00:00Z",
                "2026-01-19T00:00:00Z",
                "2026-02-09T00:00:00Z",
                "2026-02-23T00:00:00Z",
                "2026-03-09T00:00:00Z"
            ]
        );
    }

    #[test]
    fn dom_and_dow_when_dow_starts_with_star() {
        // `*/2` day-of-week = Sun, Tue, Thu, Sat; AND with the 1st of the month.
        assert_eq!(
            next_list("0 0 1 * */2", "2026-01-01T00:00:00Z", "UTC", 3),
            [
                // 2026-02-01 Sun, 2026-03-01 Sun, 2026-05-01 Fri (no), 2026-08-01 Sat
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                "2026-08-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn plain_star_day_fields() {
        // Only the weekday restricts: Mondays.
        assert_eq!(
            next_list("0 0 * * 1", "2026-03-01T00:00:00Z", "UTC", 2),
            ["2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"]
        );
        // Only the day of month restricts: the 15th.
        assert_eq!(
            next_list("0 0 15 * *", "2026-03-01T00:00:00Z", "UTC", 2),
            ["2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z"]
        );
    }

    #[test]
    fn day_30_of_february_or_mondays() {
        // Fires on Mondays in February (OR rule), never on 30 February.
        assert_eq!(
            next_list("0 0 30 2 1", "2026-01-01T00:00:00Z", "UTC", 5),
            [
                "2026-02-02T00:00:00Z",
                "2026-02-09T00:00:00Z",
                "2026-02-16T00:00:00Z",
                "2026-02-23T00:00:00Z",
                "2027-02-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn month_ends_skip_short_months() {
        assert_eq!(
            next_list("0 0 31 * *", "2026-01-31T00:00:00Z", "UTC", 4),
            [
                "2026-03-31T00:00:00Z",
                "2026-05-31T00:00:00Z",
                "2026-07-31T00:00:00Z",
                "2026-08-31T00:00:00Z"
            ]
        );
        assert_eq!(
            next("0 0 30 * *", "2026-01-30T00:00:00Z", "UTC"),
            Some(utc("2026-03-30T00:00:00Z"))
        );
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            next_list("0 0 29 2 *", "2025-01-01T00:00:00Z", "UTC", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
        // 2100 is not a leap year.
        assert_eq!(
            next("0 0 29 2 *", "2097-01-01T00:00:00Z", "UTC"),
            Some(utc("2104-02-29T00:00:00Z"))
        );
        // 2000 was.
        assert_eq!(
            next("0 0 29 2 *", "1999-01-01T00:00:00Z", "UTC"),
            Some(utc("2000-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn leap_day_on_a_sunday() {
        // AND rule (day-of-week starts with `*`): 29 February that is a Sunday.
        assert_eq!(
            next("0 0 29 2 */7", "2026-01-01T00:00:00Z", "UTC"),
            Some(utc("2032-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn steps_and_names() {
        assert_eq!(
            next_list("*/20 */12 * jan-mar mon", "2026-03-28T00:00:00Z", "UTC", 7),
            [
                "2026-03-30T00:00:00Z",
                "2026-03-30T00:20:00Z",
                "2026-03-30T00:40:00Z",
                "2026-03-30T12:00:00Z",
                "2026-03-30T12:20:00Z",
                "2026-03-30T12:40:00Z",
                "2027-01-04T00:00:00Z"
            ]
        );
    }

    #[test]
    fn year_rollover() {
        assert_eq!(
            next("@yearly", "2026-12-31T23:59:59Z", "UTC"),
            Some(utc("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            next("59 23 31 12 *", "2026-12-31T23:59:00Z", "UTC"),
            Some(utc("2027-12-31T23:59:00Z"))
        );
    }

    #[test]
    fn minute_hour_day_cascade() {
        assert_eq!(
            next("5 4 * * *", "2026-05-31T04:05:00Z", "UTC"),
            Some(utc("2026-06-01T04:05:00Z"))
        );
        assert_eq!(
            next("*/10 * * * *", "2026-05-31T23:55:00Z", "UTC"),
            Some(utc("2026-06-01T00:00:00Z"))
        );
    }

    #[test]
    fn strictly_later_than_after() {
        assert_eq!(
            next("30 9 * * *", "2026-03-09T09:30:00Z", "UTC"),
            Some(utc("2026-03-10T09:30:00Z"))
        );
        assert_eq!(
            next("30 9 * * *", "2026-03-09T09:29:59Z", "UTC"),
            Some(utc("2026-03-09T09:30:00Z"))
        );
    }

    #[test]
    fn sub_second_after() {
        assert_eq!(
            next("30 9 * * *", "2026-03-09T09:29:59.999Z", "UTC"),
            Some(utc("2026-03-09T09:30:00Z"))
        );
        assert_eq!(
            next("30 9 * * *", "2026-03-09T09:30:00.001Z", "UTC"),
            Some(utc("2026-03-10T09:30:00Z"))
        );
        assert_eq!(
            next("* * * * * *", "2026-03-09T09:30:00.5Z", "UTC"),
            Some(utc("2026-03-09T09:30:01Z"))
        );
    }

    #[test]
    fn five_field_results_are_whole_minutes() {
        let e = cron("* * * * *");
        for t in e.next_n(utc("2026-03-09T09:30:17.25Z"), Tz::UTC, 5) {
            assert_eq!(t.timestamp() % 60, 0);
            assert_eq!(t.timestamp_subsec_nanos(), 0);
        }
    }

    #[test]
    fn six_field_seconds() {
        assert_eq!(
            next_list("*/20 * * * * *", "2026-03-09T09:30:15Z", "UTC", 4),
            [
                "2026-03-09T09:30:20Z",
                "2026-03-09T09:30:40Z",
                "2026-03-09T09:31:00Z",
                "2026-03-09T09:31:20Z"
            ]
        );
        assert_eq!(
            next_list("30 0 12 * * *", "2026-03-09T12:00:30Z", "UTC", 2),
            ["2026-03-10T12:00:30Z", "2026-03-11T12:00:30Z"]
        );
        assert_eq!(
            next("59 59 23 31 12 *", "2026-01-01T00:00:00Z", "UTC"),
            Some(utc("2026-12-31T23:59:59Z"))
        );
    }

    #[test]
    fn every_minute_and_every_second() {
        assert_eq!(
            next("* * * * *", "2026-03-09T09:30:00Z", "UTC"),
            Some(utc("2026-03-09T09:31:00Z"))
        );
        assert_eq!(
            next("* * * * * *", "2026-03-09T09:30:00Z", "UTC"),
            Some(utc("2026-03-09T09:30:01Z"))
        );
    }

    #[test]
    fn utc_and_etc_utc_agree() {
        for expr in ["30 9 * * 1-5", "*/15 * * * *", "@monthly"] {
            let a = cron(expr).next_n(utc("2026-03-01T00:00:00Z"), tz("UTC"), 10);
            let b = cron(expr).next_n(utc("2026-03-01T00:00:00Z"), tz("Etc/UTC"), 10);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn fixed_offset_zone_without_dst() {
        // Asia/Kolkata is +05:30 all year.
        assert_eq!(
            next_local("30 9 * * *", "2026-03-09T00:00:00Z", "Asia/Kolkata", 2),
            ["2026-03-09T09:30:00+05:30", "2026-03-10T09:30:00+05:30"]
        );
    }

    #[test]
    fn none_when_nothing_fires_before_year_9999_ends() {
        assert_eq!(next("0 0 1 1 *", "9999-06-01T00:00:00Z", "UTC"), None);
        assert_eq!(next("0 0 29 2 */7", "9990-01-01T00:00:00Z", "UTC"), None);
        assert_eq!(
            next("59 23 31 12 *", "9999-06-01T00:00:00Z", "UTC"),
            Some(utc("9999-12-31T23:59:00Z"))
        );
        assert!(
            cron("0 0 1 1 *")
                .next_n(utc("9997-06-01T00:00:00Z"), Tz::UTC, 10)
                .len()
                == 2
        );
    }

    #[test]
    fn far_past_start() {
        assert_eq!(
            next("0 0 1 1 *", "1000-06-01T00:00:00Z", "UTC"),
            Some(utc("1001-01-01T00:00:00Z"))
        );
        assert_eq!(
            cron("0 0 1 1 *").next_after(DateTime::<Utc>::MIN_UTC, Tz::UTC),
            Some(utc("0001-01-01T00:00:00Z"))
        );
        assert_eq!(
            cron("0 0 1 1 *").next_after(DateTime::<Utc>::MAX_UTC, Tz::UTC),
            None
        );
    }

    #[test]
    fn next_n_zero_and_counts() {
        let e = cron("*/5 * * * *");
        assert!(e.next_n(utc("2026-03-09T00:00:00Z"), Tz::UTC, 0).is_empty());
        assert_eq!(
            e.next_n(utc("2026-03-09T00:00:00Z"), Tz::UTC, 288).len(),
            288
        );
    }

    #[test]
    fn next_n_is_strictly_increasing_everywhere() {
        let zones = [
            "UTC",
            "America/New_York",
            "Europe/Paris",
            "Australia/Lord_Howe",
            "Pacific/Chatham",
            "America/Havana",
        ];
        let starts = [
            "2026-03-07T00:00:00Z",
            "2026-10-24T00:00:00Z",
            "2026-04-03T00:00:00Z",
        ];
        let mut exprs: Vec<&str> = ORACLE_EXPRS.to_vec();
        exprs.extend(["*/30 * * * * *", "@weekly", "0 0 13 * 5"]);
        for zone in zones {
            for start in starts {
                for expr in &exprs {
                    let out = cron(expr).next_n(utc(start), tz(zone), 60);
                    assert_eq!(out.len(), 60);
                    assert!(out[0] > utc(start));
                    assert!(
                        out.windows(2).all(|w| w[0] < w[1]),
                        "{expr} in {zone} from {start}: {out:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_next_n_is_fast() {
        let start = std::time::Instant::now();
        let out =
            cron("* * * * * *").next_n(utc("2026-11-01T04:00:00Z"), tz("America/New_York"), 20_000);
        assert_eq!(out.len(), 20_000);
        assert!(out.windows(2).all(|w| w[0] < w[1]));
        let leap = cron("0 0 29 2 *").next_n(utc("2026-01-01T00:00:00Z"), tz("Europe/Paris"), 100);
        assert_eq!(leap.len(), 100);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    // ---------------------------------------------------------------- DST: New York

    #[test]
    fn ny_spring_fixed_skipped_time_fires_at_jump() {
        assert_eq!(
            next_local("30 2 * * *", "2026-03-07T12:00:00Z", "America/New_York", 3),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn ny_spring_fixed_several_skipped_times_collapse() {
        assert_eq!(
            next_local(
                "0,30 1-3 * * *",
                "2026-03-08T05:00:00Z",
                "America/New_York",
                5
            ),
            [
                "2026-03-08T01:00:00-05:00",
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
                "2026-03-09T01:00:00-04:00"
            ]
        );
        assert_eq!(
            next_local(
                "0-59/5 2 * * *",
                "2026-03-08T06:00:00Z",
                "America/New_York",
                2
            ),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
    }

    #[test]
    fn ny_spring_fixed_outside_gap_unaffected() {
        assert_eq!(
            next_local("30 3 * * *", "2026-03-07T12:00:00Z", "America/New_York", 1),
            ["2026-03-08T03:30:00-04:00"]
        );
        assert_eq!(
            next_local("30 1 * * *", "2026-03-07T12:00:00Z", "America/New_York", 1),
            ["2026-03-08T01:30:00-05:00"]
        );
    }

    #[test]
    fn ny_spring_fixed_relative_to_jump_instant() {
        // `from` one second before the jump: the skipped 02:30 fires at the jump.
        assert_eq!(
            next("30 2 * * *", "2026-03-08T06:59:59Z", "America/New_York"),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // `from` exactly at the jump: not strictly later, so next day.
        assert_eq!(
            next("30 2 * * *", "2026-03-08T07:00:00Z", "America/New_York"),
            Some(utc("2026-03-09T06:30:00Z"))
        );
        assert_eq!(
            next("30 2 * * *", "2026-03-08T07:00:01Z", "America/New_York"),
            Some(utc("2026-03-09T06:30:00Z"))
        );
    }

    #[test]
    fn ny_spring_wildcard_skips_gap() {
        assert_eq!(
            next_local(
                "*/15 * * * *",
                "2026-03-08T06:30:00Z",
                "America/New_York",
                4
            ),
            [
                "2026-03-08T01:45:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:15:00-04:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
        assert_eq!(
            next_local("0 * * * *", "2026-03-08T05:30:00Z", "America/New_York", 3),
            [
                "2026-03-08T01:00:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T04:00:00-04:00"
            ]
        );
    }

    #[test]
    fn ny_spring_wildcard_in_skipped_hour_only_does_not_fire_that_day() {
        assert_eq!(
            next_local(
                "*/15 2 * * *",
                "2026-03-07T12:00:00Z",
                "America/New_York",
                2
            ),
            ["2026-03-09T02:00:00-04:00", "2026-03-09T02:15:00-04:00"]
        );
        assert_eq!(
            next_local("@hourly", "2026-03-08T06:00:00Z", "America/New_York", 1),
            ["2026-03-08T03:00:00-04:00"]
        );
    }

    #[test]
    fn ny_fall_fixed_fires_once() {
        assert_eq!(
            next_list("30 1 * * *", "2026-10-31T12:00:00Z", "America/New_York", 3),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z"
            ]
        );
        assert_eq!(
            next("30 1 * * *", "2026-11-01T05:30:00Z", "America/New_York"),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn ny_fall_fixed_from_first_pass() {
        // 01:10 EDT (first pass): 01:30 EDT still to come.
        assert_eq!(
            next("30 1 * * *", "2026-11-01T05:10:00Z", "America/New_York"),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            next_local(
                "0-59/20 1 * * *",
                "2026-11-01T05:10:00Z",
                "America/New_York",
                3
            ),
            [
                "2026-11-01T01:20:00-04:00",
                "2026-11-01T01:40:00-04:00",
                "2026-11-02T01:00:00-05:00"
            ]
        );
    }

    #[test]
    fn ny_fall_fixed_from_second_pass_does_not_fire_again() {
        // 01:10 EST (second pass): 01:30 already fired in the first pass.
        assert_eq!(
            next("30 1 * * *", "2026-11-01T06:10:00Z", "America/New_York"),
            Some(utc("2026-11-02T06:30:00Z"))
        );
        // Exactly at the transition (01:00 EST, second pass).
        assert_eq!(
            next("0,30 1 * * *", "2026-11-01T05:59:59Z", "America/New_York"),
            Some(utc("2026-11-02T06:00:00Z"))
        );
        assert_eq!(
            next_local(
                "0-59/20 1 * * *",
                "2026-11-01T06:10:00Z",
                "America/New_York",
                1
            ),
            ["2026-11-02T01:00:00-05:00"]
        );
    }

    #[test]
    fn ny_fall_fixed_just_after_repeated_hour() {
        // 02:00 EST exists once.
        assert_eq!(
            next_local("0 2 * * *", "2026-10-31T12:00:00Z", "America/New_York", 2),
            ["2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"]
        );
    }

    #[test]
    fn ny_fall_wildcard_fires_in_both_passes() {
        assert_eq!(
            next_list(
                "*/15 * * * *",
                "2026-11-01T04:50:00Z",
                "America/New_York",
                10
            ),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:15:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T05:45:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:15:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T06:45:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T07:15:00Z"
            ]
        );
        assert_eq!(
            next_local("0 * * * *", "2026-11-01T04:30:00Z", "America/New_York", 3),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-05:00"
            ]
        );
    }

    #[test]
    fn ny_fall_wildcard_from_first_pass_goes_back_on_the_wall_clock() {
        // From 01:50 EDT the next fire is 01:00 EST: earlier on the wall clock, later in UTC.
        assert_eq!(
            next("*/15 * * * *", "2026-11-01T05:50:00Z", "America/New_York"),
            Some(utc("2026-11-01T06:00:00Z"))
        );
        // 01:45 EDT (first pass) comes before 01:15 EST (second pass).
        assert_eq!(
            next_local(
                "15,45 * * * *",
                "2026-11-01T05:40:00Z",
                "America/New_York",
                4
            ),
            [
                "2026-11-01T01:45:00-04:00",
                "2026-11-01T01:15:00-05:00",
                "2026-11-01T01:45:00-05:00",
                "2026-11-01T02:15:00-05:00"
            ]
        );
    }

    #[test]
    fn ny_fall_wildcard_from_second_pass() {
        assert_eq!(
            next_local(
                "*/15 1 * * *",
                "2026-11-01T06:20:00Z",
                "America/New_York",
                3
            ),
            [
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T01:45:00-05:00",
                "2026-11-02T01:00:00-05:00"
            ]
        );
    }

    // ---------------------------------------------------------------- DST: Paris

    #[test]
    fn paris_spring_fixed_and_wildcard() {
        assert_eq!(
            next_local("30 2 * * *", "2026-03-28T12:00:00Z", "Europe/Paris", 2),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
        assert_eq!(
            next_local("*/30 2 * * *", "2026-03-28T12:00:00Z", "Europe/Paris", 2),
            ["2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
        assert_eq!(
            next_local("*/20 * * * *", "2026-03-29T00:30:00Z", "Europe/Paris", 3),
            [
                "2026-03-29T01:40:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:20:00+02:00"
            ]
        );
    }

    #[test]
    fn paris_fall_fixed_once_wildcard_twice() {
        assert_eq!(
            next_list("30 2 * * *", "2026-10-24T12:00:00Z", "Europe/Paris", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        assert_eq!(
            next_local("*/30 2 * * *", "2026-10-24T12:00:00Z", "Europe/Paris", 5),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-26T02:00:00+01:00"
            ]
        );
    }

    #[test]
    fn paris_fall_from_inside_each_pass() {
        // 02:40 CEST (first pass) and 02:10 CET (second pass).
        let first = "2026-10-25T00:40:00Z";
        let second = "2026-10-25T01:10:00Z";
        assert_eq!(
            next_list("*/30 2 * * *", first, "Europe/Paris", 2),
            ["2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
        );
        assert_eq!(
            next_list("*/30 2 * * *", second, "Europe/Paris", 2),
            ["2026-10-25T01:30:00Z", "2026-10-26T01:00:00Z"]
        );
        assert_eq!(
            next_list("0,30 2 * * *", first, "Europe/Paris", 1),
            ["2026-10-26T01:00:00Z"]
        );
        assert_eq!(
            next_list("0,30 2 * * *", second, "Europe/Paris", 1),
            ["2026-10-26T01:00:00Z"]
        );
        assert_eq!(
            next_list("45 2 * * *", first, "Europe/Paris", 1),
            ["2026-10-25T00:45:00Z"]
        );
        assert_eq!(
            next_list("45 2 * * *", second, "Europe/Paris", 1),
            ["2026-10-26T01:45:00Z"]
        );
    }

    // ---------------------------------------------------------------- DST: Lord Howe

    #[test]
    fn lord_howe_forward_half_hour() {
        // 02:00-02:30 is skipped on 2026-10-04; the jump instant is 02:30 (+11).
        assert_eq!(
            next_local(
                "15 2 * * *",
                "2026-10-03T00:00:00Z",
                "Australia/Lord_Howe",
                2
            ),
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
        );
        assert_eq!(
            next_local(
                "30 2 * * *",
                "2026-10-03T00:00:00Z",
                "Australia/Lord_Howe",
                1
            ),
            ["2026-10-04T02:30:00+11:00"]
        );
        assert_eq!(
            next_local(
                "0,15,30 2 * * *",
                "2026-10-03T00:00:00Z",
                "Australia/Lord_Howe",
                2
            ),
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00"]
        );
        assert_eq!(
            next_local(
                "*/15 * * * *",
                "2026-10-03T15:00:00Z",
                "Australia/Lord_Howe",
                3
            ),
            [
                "2026-10-04T01:45:00+10:30",
                "2026-10-04T02:30:00+11:00",
                "2026-10-04T02:45:00+11:00"
            ]
        );
    }

    #[test]
    fn lord_howe_back_half_hour() {
        // 01:30-02:00 repeats on 2026-04-05.
        assert_eq!(
            next_local(
                "45 1 * * *",
                "2026-04-04T00:00:00Z",
                "Australia/Lord_Howe",
                2
            ),
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
        );
        assert_eq!(
            next_local(
                "*/15 * * * *",
                "2026-04-04T14:20:00Z",
                "Australia/Lord_Howe",
                5
            ),
            [
                "2026-04-05T01:30:00+11:00",
                "2026-04-05T01:45:00+11:00",
                "2026-04-05T01:30:00+10:30",
                "2026-04-05T01:45:00+10:30",
                "2026-04-05T02:00:00+10:30"
            ]
        );
        // From the second pass (01:35 +10:30) the fixed job does not fire again.
        assert_eq!(
            next_local(
                "45 1 * * *",
                "2026-04-04T15:05:00Z",
                "Australia/Lord_Howe",
                1
            ),
            ["2026-04-06T01:45:00+10:30"]
        );
    }

    // ---------------------------------------------------------------- DST: Chatham

    #[test]
    fn chatham_forward() {
        // 02:45-03:45 is skipped on 2026-09-27; the jump instant is 03:45 (+13:45).
        assert_eq!(
            next_local("0 3 * * *", "2026-09-26T00:00:00Z", "Pacific/Chatham", 2),
            ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"]
        );
        assert_eq!(
            next_local("45 2 * * *", "2026-09-26T00:00:00Z", "Pacific/Chatham", 1),
            ["2026-09-27T03:45:00+13:45"]
        );
        assert_eq!(
            next_local("30 2 * * *", "2026-09-26T00:00:00Z", "Pacific/Chatham", 1),
            ["2026-09-27T02:30:00+12:45"]
        );
        assert_eq!(
            next_local("*/15 * * * *", "2026-09-26T13:40:00Z", "Pacific/Chatham", 3),
            [
                "2026-09-27T02:30:00+12:45",
                "2026-09-27T03:45:00+13:45",
                "2026-09-27T04:00:00+13:45"
            ]
        );
    }

    #[test]
    fn chatham_back() {
        // 02:45-03:45 repeats on 2026-04-05.
        assert_eq!(
            next_local("0 3 * * *", "2026-04-04T00:00:00Z", "Pacific/Chatham", 2),
            ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"]
        );
        assert_eq!(
            next_local("0 * * * *", "2026-04-04T13:00:00Z", "Pacific/Chatham", 3),
            [
                "2026-04-05T03:00:00+13:45",
                "2026-04-05T03:00:00+12:45",
                "2026-04-05T04:00:00+12:45"
            ]
        );
        // From the second pass: fixed waits for the next day, wildcard fires.
        let second_pass = "2026-04-04T14:10:00Z"; // 02:55 +12:45
        assert_eq!(
            next_local("0 3 * * *", second_pass, "Pacific/Chatham", 1),
            ["2026-04-06T03:00:00+12:45"]
        );
        assert_eq!(
            next_local("0 * * * *", second_pass, "Pacific/Chatham", 1),
            ["2026-04-05T03:00:00+12:45"]
        );
    }

    // ---------------------------------------------------------------- unusual transitions

    #[test]
    fn midnight_gap_daily_still_runs() {
        // Havana skips 00:00-01:00 on 2026-03-08: @daily fires at the jump (01:00 CDT).
        assert_eq!(
            next_local("@daily", "2026-03-07T12:00:00Z", "America/Havana", 2),
            ["2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"]
        );
        // And repeats 00:00-01:00 on 2026-11-01: @daily fires once.
        assert_eq!(
            next_local("@daily", "2026-10-31T12:00:00Z", "America/Havana", 2),
            ["2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"]
        );
        // @hourly is wildcard: nothing at the skipped midnight.
        assert_eq!(
            next_local("@hourly", "2026-03-08T04:30:00Z", "America/Havana", 2),
            ["2026-03-08T01:00:00-04:00", "2026-03-08T02:00:00-04:00"]
        );
    }

    #[test]
    fn skipped_whole_day_in_samoa() {
        // 2011-12-30 does not exist in Pacific/Apia.
        assert_eq!(
            next_list("30 2 * * *", "2011-12-29T00:00:00Z", "Pacific/Apia", 3),
            [
                "2011-12-29T12:30:00Z", // 29 Dec 02:30 -10:00
                "2011-12-30T10:00:00Z", // skipped 30 Dec 02:30: at the jump
                "2011-12-30T12:30:00Z"  // 31 Dec 02:30 +14:00
            ]
        );
        assert_eq!(
            next_local("0 */12 * * *", "2011-12-29T11:00:00Z", "Pacific/Apia", 3),
            [
                "2011-12-29T12:00:00-10:00",
                "2011-12-31T00:00:00+14:00",
                "2011-12-31T12:00:00+14:00"
            ]
        );
        assert_eq!(
            next_list("0 12 30 12 *", "2011-12-01T00:00:00Z", "Pacific/Apia", 2),
            ["2011-12-30T10:00:00Z", "2012-12-29T22:00:00Z"]
        );
    }

    #[test]
    fn repeated_whole_day_in_alaska_1867() {
        // Sitka moved from the Asian to the American side of the date line in
        // 1867: the wall clock went back 24 hours, repeating a whole day.
        let z = tz("America/Sitka");
        let t = utc("1867-10-19T00:00:00Z");
        let before = offset(z, t - chrono::Duration::days(2));
        let after = offset(z, t + chrono::Duration::days(2));
        assert_eq!(before - after, 86_400);
        let fixed = cron("0 12 * * *").next_n(t - chrono::Duration::days(3), z, 6);
        let wild = cron("0 */12 * * *").next_n(t - chrono::Duration::days(3), z, 12);
        let walls = |v: &[DateTime<Utc>]| -> Vec<String> {
            v.iter()
                .map(|d| d.with_timezone(&z).format("%m-%d %H:%M").to_string())
                .collect()
        };
        let fw = walls(&fixed);
        let unique: HashSet<&String> = fw.iter().collect();
        assert_eq!(
            unique.len(),
            fw.len(),
            "fixed-time fires once per wall time: {fw:?}"
        );
        let ww = walls(&wild);
        let unique: HashSet<&String> = ww.iter().collect();
        assert!(
            unique.len() < ww.len(),
            "wildcard repeats wall times: {ww:?}"
        );
        assert!(fixed.windows(2).all(|w| w[0] < w[1]));
        assert!(wild.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_zone_daily_fixed_job_runs_exactly_once_a_day_in_2026() {
        let e = cron("30 2 * * *");
        for zone in chrono_tz::TZ_VARIANTS {
            let fires = e.next_n(utc("2025-12-31T00:00:00Z"), zone, 400);
            let dates: Vec<NaiveDate> = fires
                .iter()
                .map(|f| f.with_timezone(&zone).date_naive())
                .filter(|d| d.year() == 2026)
                .collect();
            assert_eq!(dates.len(), 365, "{zone:?}");
            assert!(
                dates.windows(2).all(|w| w[1] == w[0].succ_opt().unwrap()),
                "{zone:?}: {dates:?}"
            );
        }
    }

    #[test]
    fn every_zone_hourly_fires_once_per_real_hour_in_spring_2026() {
        // `0 * * * *` fires at each instant whose wall clock shows hh:00:00: one
        // hour apart, DST or not, unless the offset changes by a non-whole hour.
        let e = cron("@hourly");
        for zone in chrono_tz::TZ_VARIANTS {
            let fires = e.next_n(utc("2026-03-01T00:00:00Z"), zone, 24 * 45);
            assert_eq!(fires.len(), 24 * 45);
            for w in fires.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert!(a < b, "{zone:?}");
                if (offset(zone, a) - offset(zone, b)) % 3600 == 0 {
                    assert_eq!((b - a).num_seconds(), 3600, "{zone:?} at {a}");
                }
            }
        }
    }

    // ---------------------------------------------------------------- oracle comparisons

    fn oracle_all(zone: &str, from: &str, to: &str) {
        for expr in ORACLE_EXPRS {
            check_against_oracle(expr, zone, from, to, 7 * 60 + 13);
        }
    }

    #[test]
    fn oracle_new_york_spring() {
        oracle_all(
            "America/New_York",
            "2026-03-07T00:00:00Z",
            "2026-03-10T00:00:00Z",
        );
    }

    #[test]
    fn oracle_new_york_fall() {
        oracle_all(
            "America/New_York",
            "2026-10-31T00:00:00Z",
            "2026-11-03T00:00:00Z",
        );
    }

    #[test]
    fn oracle_paris_spring() {
        oracle_all(
            "Europe/Paris",
            "2026-03-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
        );
    }

    #[test]
    fn oracle_paris_fall() {
        oracle_all(
            "Europe/Paris",
            "2026-10-24T00:00:00Z",
            "2026-10-27T00:00:00Z",
        );
    }

    #[test]
    fn oracle_lord_howe_forward() {
        oracle_all(
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            "2026-10-05T00:00:00Z",
        );
    }

    #[test]
    fn oracle_lord_howe_back() {
        oracle_all(
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            "2026-04-06T00:00:00Z",
        );
    }

    #[test]
    fn oracle_chatham_forward() {
        oracle_all(
            "Pacific/Chatham",
            "2026-09-25T00:00:00Z",
            "2026-09-28T00:00:00Z",
        );
    }

    #[test]
    fn oracle_chatham_back() {
        oracle_all(
            "Pacific/Chatham",
            "2026-04-03T00:00:00Z",
            "2026-04-06T00:00:00Z",
        );
    }

    #[test]
    fn oracle_havana_midnight_transitions() {
        oracle_all(
            "America/Havana",
            "2026-03-07T00:00:00Z",
            "2026-03-09T12:00:00Z",
        );
        oracle_all(
            "America/Havana",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
        );
    }

    #[test]
    fn oracle_samoa_skipped_day() {
        oracle_all(
            "Pacific/Apia",
            "2011-12-28T00:00:00Z",
            "2012-01-01T00:00:00Z",
        );
    }

    #[test]
    fn oracle_sitka_repeated_day() {
        oracle_all(
            "America/Sitka",
            "1867-10-17T00:00:00Z",
            "1867-10-21T00:00:00Z",
        );
    }

    #[test]
    fn oracle_every_transition_of_every_zone_in_2026() {
        // Same matching wall times, once fixed-time and once wildcard.
        let exprs = ["0,15,30,45 0-23 * * *", "*/15 * * * *"];
        let (start, end) = (
            utc("2026-01-01T00:00:00Z").timestamp(),
            utc("2027-01-01T00:00:00Z").timestamp(),
        );
        let mut transitions = 0;
        for zone in chrono_tz::TZ_VARIANTS {
            let mut t = start;
            while t < end {
                let o = offset_at(zone, t).unwrap();
                if let Some(Some((instant, _))) = find_transition(zone, t, o, end) {
                    transitions += 1;
                    for expr in exprs {
                        check_against_oracle_secs(
                            expr,
                            zone,
                            instant - 10 * 3600,
                            instant + 10 * 3600,
                            37 * 60,
                        );
                    }
                    t = instant;
                } else {
                    t = end;
                }
            }
        }
        assert!(transitions > 100, "only {transitions} transitions found");
    }

    #[test]
    fn oracle_utc_plain_week() {
        for expr in [
            "30 9 * * 1-5",
            "0 0 13 * 5",
            "0 0 */2 * 1",
            "*/7 */5 * * *",
            "@weekly",
        ] {
            check_against_oracle(
                expr,
                "UTC",
                "2026-02-01T00:00:00Z",
                "2026-02-15T00:00:00Z",
                3607,
            );
        }
    }

    #[test]
    fn oracle_six_field_across_transitions() {
        for expr in ["*/20 * 1-3 * * *", "0,30 15,45 * * * *", "* 0 2 * * *"] {
            check_against_oracle(
                expr,
                "America/New_York",
                "2026-11-01T04:30:00Z",
                "2026-11-01T08:30:00Z",
                97,
            );
            check_against_oracle(
                expr,
                "Australia/Lord_Howe",
                "2026-10-03T14:30:00Z",
                "2026-10-03T17:00:00Z",
                97,
            );
        }
    }
}

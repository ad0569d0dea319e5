//! Parser for the `ttr-scheduled-at` header.
//!
//! Grammar (whitespace is allowed around every token):
//!
//! ```text
//! value := "" | cron | base ( "|" "add" [sign] integer unit )*
//! base  := "now" | iso-date-time | iso-date | unix-seconds
//! ```
//!
//! * `now` is case-insensitive and is resolved against the `now` argument.
//! * ISO-8601 / RFC 3339 date-times: `2026-11-22T09:30:00Z`, `+01:00`, `+0100`,
//!   `+01`, `-05:30`; `T` may be `t` or a single space, `Z` may be `z`; seconds
//!   and fractional seconds (`.` or `,`, any number of digits) are optional. A
//!   date-time without an offset, or a bare date (midnight), is UTC.
//! * Unix timestamps in seconds, optionally with a fractional part.
//! * Fixed-length units: `s`, `m` (minutes), `h`, `d`, `w` and their long
//!   spellings. Calendar units: `mo`/`month(s)` and `y`/`yr`/`year(s)`, which
//!   clamp the day to the end of the target month. Calendar arithmetic is done
//!   in the UTC offset written in the base (UTC for `now` and timestamps).
//! * Values starting with `@`, or made of 5 to 7 whitespace-separated fields
//!   without any `|`, are handed back verbatim as [`ScheduleSpec::Cron`].
//!
//! The result is truncated to milliseconds and must lie within the years
//! 1970..=9999. Every failure is a [`ScheduleAtError`] naming the offending
//! part; no input can make the parser panic.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};

/// Earliest calendar year a scheduled instant may fall in.
const MIN_YEAR: i32 = 1970;
/// Latest calendar year a scheduled instant may fall in.
const MAX_YEAR: i32 = 9999;
/// `9999-12-31T23:59:59Z` as Unix seconds: the largest accepted timestamp.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;
/// Human description of the accepted range, used in error messages.
const RANGE_HINT: &str = "must be within years 1970..=9999";

/// What a `ttr-scheduled-at` value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleSpec {
    /// A one-off instant (already resolved against `now`, truncated to ms).
    At(DateTime<Utc>),
    /// A cron expression, returned verbatim (trimmed) for the cron module to parse.
    Cron(String),
}

/// Why a `ttr-scheduled-at` value was refused. Display is a human message naming the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleAtError(pub String);

/// Parses the `ttr-scheduled-at` grammar against `now`.
///
/// Empty (or whitespace-only) input means `now`. Cron-looking input is
/// returned as [`ScheduleSpec::Cron`] without validation; everything else is
/// resolved to a [`ScheduleSpec::At`] instant truncated to milliseconds.
///
/// # Errors
///
/// Returns a [`ScheduleAtError`] naming the offending part when the base, an
/// `add` step or a unit is malformed, when a number or the arithmetic
/// overflows, or when the result falls outside the years 1970..=9999.
pub fn parse_scheduled_at(
    input: &str,
    now: DateTime<Utc>,
) -> Result<ScheduleSpec, ScheduleAtError> {
    let trimmed = input.trim_matches(is_ws);
    if trimmed.is_empty() {
        return finish(now.fixed_offset(), "now").map(ScheduleSpec::At);
    }
    if trimmed.starts_with('@') || looks_like_cron(trimmed, now) {
        return Ok(ScheduleSpec::Cron(trimmed.to_string()));
    }

    let (base_text, steps) = match trimmed.split_once('|') {
        Some((base, steps)) => (base.trim_matches(is_ws), Some(steps)),
        None => (trimmed, None),
    };
    if base_text.is_empty() {
        return Err(err(format!("missing base before \"|\" in {trimmed:?}")));
    }
    let mut t = parse_base(base_text, now).map_err(|msg| {
        if steps.is_some() {
            err(format!("{msg} in {trimmed:?}"))
        } else {
            err(msg)
        }
    })?;

    if let Some(steps) = steps {
        for raw in steps.split('|') {
            let step_text = raw.trim_matches(is_ws);
            let step = parse_step(step_text, trimmed)?;
            t = apply_step(t, &step, step_text, trimmed)?;
        }
    }
    finish(t, trimmed).map(ScheduleSpec::At)
}

/// Adds `months` calendar months to `t`, clamping the day of month to the
/// last day of the target month (Jan 31 + 1 month = Feb 28 or 29). The time
/// of day is kept. Returns `None` if the result is not representable.
pub fn add_calendar_months(t: DateTime<Utc>, months: i64) -> Option<DateTime<Utc>> {
    add_months_naive(t.naive_utc(), months).map(|n| n.and_utc())
}

/// Whitespace accepted around tokens and between cron fields.
fn is_ws(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// Builds an error from a message.
fn err(msg: String) -> ScheduleAtError {
    ScheduleAtError(msg)
}

/// True when `trimmed` has no `|`, 5 to 7 whitespace-separated fields and is
/// not a base: such values are cron expressions for another module.
fn looks_like_cron(trimmed: &str, now: DateTime<Utc>) -> bool {
    if trimmed.contains('|') {
        return false;
    }
    let fields = trimmed.split(is_ws).filter(|f| !f.is_empty()).count();
    (5..=7).contains(&fields) && parse_base(trimmed, now).is_err()
}

/// Converts to UTC, truncates to milliseconds and checks the year range.
fn finish(t: DateTime<FixedOffset>, context: &str) -> Result<DateTime<Utc>, ScheduleAtError> {
    let utc = t.with_timezone(&Utc);
    let nanos = utc.nanosecond();
    let truncated = nanos
        .checked_sub(nanos % 1_000_000)
        .and_then(|n| utc.with_nanosecond(n))
        .unwrap_or(utc);
    if (MIN_YEAR..=MAX_YEAR).contains(&truncated.year()) {
        Ok(truncated)
    } else {
        Err(err(format!(
            "result {} of {context:?} is out of range ({RANGE_HINT})",
            truncated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )))
    }
}

/// Parses a base (`now`, ISO date-time, bare date or Unix seconds). The error
/// is a message naming the base, without the surrounding input.
fn parse_base(base: &str, now: DateTime<Utc>) -> Result<DateTime<FixedOffset>, String> {
    if base.eq_ignore_ascii_case("now") {
        return Ok(now.fixed_offset());
    }
    let bytes = base.as_bytes();
    let first = bytes.first().copied();
    let second = bytes.get(1).copied();
    let numeric = |b: &[u8]| !b.is_empty() && b.iter().all(|c| c.is_ascii_digit() || *c == b'.');
    match (first, second) {
        (Some(b'-'), Some(d))
            if d.is_ascii_digit() && numeric(bytes.get(1..).unwrap_or_default()) =>
        {
            Err(format!(
                "Unix timestamp {base:?} is out of range (negative; {RANGE_HINT})"
            ))
        }
        (Some(d), _) if d.is_ascii_digit() => {
            if numeric(bytes) {
                parse_unix(base)
            } else {
                parse_iso(base).map_err(|why| format!("invalid date-time {base:?}: {why}"))
            }
        }
        _ => Err(format!(
            "invalid base {base:?}: expected \"now\", an ISO-8601 date-time \
             (e.g. 2026-11-22T09:30:00Z) or a Unix timestamp in seconds"
        )),
    }
}

/// Parses Unix seconds with an optional fractional part (`1763803800.5`).
fn parse_unix(text: &str) -> Result<DateTime<FixedOffset>, String> {
    let invalid =
        || format!("invalid Unix timestamp {text:?}: expected digits with an optional fraction");
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let millis = match frac_part {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => fraction_to_millis(f),
        Some(_) => return Err(invalid()),
    };
    let secs: i64 = int_part
        .parse()
        .map_err(|_| format!("number out of range: Unix timestamp {text:?} ({RANGE_HINT})"))?;
    if secs > MAX_UNIX_SECONDS {
        return Err(format!(
            "Unix timestamp {text:?} is out of range ({RANGE_HINT})"
        ));
    }
    millis
        .checked_mul(1_000_000)
        .and_then(|nanos| DateTime::from_timestamp(secs, nanos))
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("Unix timestamp {text:?} is out of range ({RANGE_HINT})"))
}

/// Milliseconds from the digits after a decimal point (truncating, not rounding).
/// `digits` must be non-empty ASCII digits.
fn fraction_to_millis(digits: &str) -> u32 {
    digits
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u32, |acc, b| {
            acc.saturating_mul(10)
                .saturating_add(u32::from(b.saturating_sub(b'0')))
        })
}

/// A bounds-checked reader over ASCII bytes.
#[derive(Debug)]
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts reading `text` at its first byte.
    fn new(text: &'a str) -> Self {
        Cursor {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// The next byte, if any, without consuming it.
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes one byte.
    fn advance(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.advance();
            true
        } else {
            false
        }
    }

    /// Consumes exactly `n` ASCII digits and returns their value.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let end = self.pos.checked_add(n)?;
        let chunk = self.bytes.get(self.pos..end)?;
        if !chunk.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos = end;
        Some(chunk.iter().fold(0u32, |acc, b| {
            acc.saturating_mul(10)
                .saturating_add(u32::from(b.saturating_sub(b'0')))
        }))
    }

    /// Consumes a run of ASCII digits (possibly empty) and returns it.
    fn digit_run(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.advance();
        }
        self.bytes
            .get(start..self.pos)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The unread remainder, for error messages.
    fn rest(&self) -> String {
        String::from_utf8_lossy(self.bytes.get(self.pos..).unwrap_or_default()).into_owned()
    }

    /// True when everything has been read.
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// Parses an ISO-8601 date or date-time; the error is the reason only.
fn parse_iso(text: &str) -> Result<DateTime<FixedOffset>, String> {
    const DATE_SHAPE: &str = "expected a date as YYYY-MM-DD";
    let mut c = Cursor::new(text);
    let year = c.digits(4).ok_or(DATE_SHAPE)?;
    if !c.eat(b'-') {
        return Err(DATE_SHAPE.into());
    }
    let month = c.digits(2).ok_or(DATE_SHAPE)?;
    if !c.eat(b'-') {
        return Err(DATE_SHAPE.into());
    }
    let day = c.digits(2).ok_or(DATE_SHAPE)?;
    if !(1..=12).contains(&month) {
        return Err("month must be 01-12".into());
    }
    let year = i32::try_from(year).map_err(|_| DATE_SHAPE.to_string())?;
    let date = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| format!("day {day:02} does not exist in {year:04}-{month:02}"))?;

    if c.at_end() {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|n| n.and_utc().fixed_offset())
            .ok_or_else(|| "not representable".to_string());
    }

    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err(format!(
            "expected \"T\" or a space after the date, found {:?}",
            c.rest()
        ));
    }
    const TIME_SHAPE: &str = "expected a time as HH:MM[:SS[.fff]]";
    let hour = c.digits(2).ok_or(TIME_SHAPE)?;
    if !c.eat(b':') {
        return Err(TIME_SHAPE.into());
    }
    let minute = c.digits(2).ok_or(TIME_SHAPE)?;
    let mut second = 0;
    let mut millis = 0;
    if c.eat(b':') {
        second = c.digits(2).ok_or(TIME_SHAPE)?;
        if c.eat(b'.') || c.eat(b',') {
            let frac = c.digit_run();
            if frac.is_empty() {
                return Err("expected digits after the decimal point".into());
            }
            millis = fraction_to_millis(frac);
        }
    }
    if hour > 23 {
        return Err(format!("hour {hour:02} must be 00-23"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} must be 00-59"));
    }
    if second > 59 {
        return Err(format!("second {second:02} must be 00-59"));
    }

    let offset = parse_offset(&mut c)?;
    if !c.at_end() {
        return Err(format!("unexpected {:?} after the time", c.rest()));
    }
    date.and_hms_milli_opt(hour, minute, second, millis)
        .and_then(|n| n.and_local_timezone(offset).single())
        .ok_or_else(|| "not representable".to_string())
}

/// Parses an optional UTC offset: nothing (UTC), `Z`, `±HH`, `±HHMM`, `±HH:MM`.
fn parse_offset(c: &mut Cursor<'_>) -> Result<FixedOffset, String> {
    const OFFSET_SHAPE: &str = "expected a UTC offset as Z, +HH:MM or +HHMM";
    let utc = FixedOffset::east_opt(0).ok_or_else(|| "not representable".to_string());
    if c.at_end() || c.eat(b'Z') || c.eat(b'z') {
        return utc;
    }
    let negative = if c.eat(b'+') {
        false
    } else if c.eat(b'-') {
        true
    } else {
        return Err(format!("unexpected {:?} after the time", c.rest()));
    };
    let hours = c.digits(2).ok_or(OFFSET_SHAPE)?;
    // `±HH:MM` and `±HHMM` carry minutes; a bare `±HH` does not.
    let has_minutes = c.eat(b':') || c.peek().is_some_and(|b| b.is_ascii_digit());
    let minutes = if has_minutes {
        c.digits(2).ok_or(OFFSET_SHAPE)?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return Err(format!(
            "UTC offset {hours:02}:{minutes:02} is out of range"
        ));
    }
    let secs = i32::try_from(
        hours
            .saturating_mul(3600)
            .saturating_add(minutes.saturating_mul(60)),
    )
    .map_err(|_| OFFSET_SHAPE.to_string())?;
    let secs = if negative {
        secs.saturating_neg()
    } else {
        secs
    };
    FixedOffset::east_opt(secs).ok_or_else(|| OFFSET_SHAPE.to_string())
}

/// How one unit moves time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A fixed number of seconds.
    Seconds(i64),
    /// A number of calendar months (1 for a month, 12 for a year).
    Months(i64),
}

/// Looks up a unit spelling (case-insensitive).
fn lookup_unit(name: &str) -> Option<Unit> {
    let unit = match name.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Seconds(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Seconds(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Seconds(3_600),
        "d" | "day" | "days" => Unit::Seconds(86_400),
        "w" | "week" | "weeks" => Unit::Seconds(604_800),
        "mo" | "month" | "months" => Unit::Months(1),
        "y" | "yr" | "yrs" | "year" | "years" => Unit::Months(12),
        _ => return None,
    };
    Some(unit)
}

/// One parsed `add <amount><unit>` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    /// Signed amount of units.
    amount: i64,
    /// The unit.
    unit: Unit,
}

/// Parses a trimmed `add` step; `input` is the whole value, for messages.
fn parse_step(step: &str, input: &str) -> Result<Step, ScheduleAtError> {
    let expected_add = || {
        if step.is_empty() {
            err(format!(
                "expected \"add\" after \"|\", found nothing in {input:?}"
            ))
        } else {
            err(format!(
                "expected \"add\" after \"|\", found {step:?} in {input:?}"
            ))
        }
    };
    let keyword_ok = step.get(..3).is_some_and(|k| k.eq_ignore_ascii_case("add"));
    let rest = match step.get(3..) {
        Some(rest) if keyword_ok => rest,
        _ => return Err(expected_add()),
    };
    if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(expected_add());
    }

    let mut rest = rest.trim_start_matches(is_ws);
    let negative = match rest.chars().next() {
        Some(sign @ ('+' | '-')) => {
            rest = rest.get(1..).unwrap_or_default().trim_start_matches(is_ws);
            sign == '-'
        }
        _ => false,
    };
    let digit_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, after) = rest.split_at_checked(digit_len).unwrap_or((rest, ""));
    if digits.is_empty() {
        return Err(err(format!("missing number in {step:?} of {input:?}")));
    }
    if after.starts_with(['.', ','])
        && after
            .get(1..)
            .is_some_and(|a| a.starts_with(|c: char| c.is_ascii_digit()))
    {
        return Err(err(format!(
            "invalid number in {step:?} of {input:?}: only whole numbers are allowed"
        )));
    }
    let magnitude: i64 = digits.parse().map_err(|_| {
        err(format!(
            "number out of range: {digits:?} in {step:?} of {input:?}"
        ))
    })?;
    let amount = if negative {
        magnitude.checked_neg().ok_or_else(|| {
            err(format!(
                "number out of range: {digits:?} in {step:?} of {input:?}"
            ))
        })?
    } else {
        magnitude
    };

    let unit_name = after.trim_matches(is_ws);
    if unit_name.is_empty() {
        return Err(err(format!("missing unit in {step:?} of {input:?}")));
    }
    let unit = lookup_unit(unit_name)
        .ok_or_else(|| err(format!("invalid unit {unit_name:?} in {input:?}")))?;
    Ok(Step { amount, unit })
}

/// Applies one step with checked arithmetic.
fn apply_step(
    t: DateTime<FixedOffset>,
    step: &Step,
    step_text: &str,
    input: &str,
) -> Result<DateTime<FixedOffset>, ScheduleAtError> {
    let number_out_of_range = || err(format!("number out of range in {step_text:?} of {input:?}"));
    let result_out_of_range = || {
        err(format!(
            "result out of range after {step_text:?} in {input:?} ({RANGE_HINT})"
        ))
    };
    match step.unit {
        Unit::Seconds(per_unit) => {
            let delta = step
                .amount
                .checked_mul(per_unit)
                .and_then(TimeDelta::try_seconds)
                .ok_or_else(number_out_of_range)?;
            t.checked_add_signed(delta).ok_or_else(result_out_of_range)
        }
        Unit::Months(per_unit) => {
            let months = step
                .amount
                .checked_mul(per_unit)
                .ok_or_else(number_out_of_range)?;
            add_months_naive(t.naive_local(), months)
                .and_then(|n| n.and_local_timezone(*t.offset()).single())
                .ok_or_else(result_out_of_range)
        }
    }
}

/// Calendar-month addition on a naive date-time, clamping the day.
fn add_months_naive(n: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let total = i64::from(n.year())
        .checked_mul(12)?
        .checked_add(i64::from(n.month0()))?
        .checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()?.checked_add(1)?;
    let day = n.day().min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day).map(|d| d.and_time(n.time()))
}

/// Number of days in `month` (1-12) of `year` (proleptic Gregorian).
fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Gregorian leap-year rule.
fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The fixed "current time" used by every test: 2026-11-22T09:30:00.123456789Z.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap() + TimeDelta::nanoseconds(123_456_789)
    }

    /// `now()` truncated to milliseconds.
    fn now_ms() -> DateTime<Utc> {
        dt("2026-11-22T09:30:00.123Z")
    }

    fn dt(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap_or_else(|e| panic!("bad test literal {rfc3339:?}: {e}"))
            .with_timezone(&Utc)
    }

    fn at(input: &str) -> DateTime<Utc> {
        match parse_scheduled_at(input, now()) {
            Ok(ScheduleSpec::At(t)) => t,
            other => panic!("{input:?} should be an instant, got {other:?}"),
        }
    }

    fn cron(input: &str) -> String {
        match parse_scheduled_at(input, now()) {
            Ok(ScheduleSpec::Cron(c)) => c,
            other => panic!("{input:?} should be cron, got {other:?}"),
        }
    }

    fn err_msg(input: &str) -> String {
        match parse_scheduled_at(input, now()) {
            Err(e) => e.to_string(),
            Ok(spec) => panic!("{input:?} should be an error, got {spec:?}"),
        }
    }

    fn assert_err_contains(input: &str, needles: &[&str]) {
        let msg = err_msg(input);
        for needle in needles {
            assert!(
                msg.contains(needle),
                "error for {input:?} is {msg:?}, expected it to contain {needle:?}"
            );
        }
    }

    // ---- now and empty input ----

    #[test]
    fn empty_input_is_now_truncated_to_ms() {
        assert_eq!(at(""), now_ms());
    }

    #[test]
    fn whitespace_only_input_is_now() {
        assert_eq!(at("   \t "), now_ms());
    }

    #[test]
    fn now_is_case_insensitive_and_truncated() {
        for input in ["now", "NOW", "Now", "  nOw  "] {
            assert_eq!(at(input), now_ms(), "{input:?}");
        }
    }

    #[test]
    fn now_outside_supported_years_is_an_error() {
        let old = Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap();
        let e = parse_scheduled_at("", old).unwrap_err();
        assert!(e.0.contains("out of range"), "{e}");
        // ...but adds may bring it back into range.
        assert_eq!(
            parse_scheduled_at("now | add 20y", old),
            Ok(ScheduleSpec::At(dt("1980-01-01T00:00:00Z")))
        );
    }

    // ---- add steps ----

    #[test]
    fn now_add_minutes_with_spaces() {
        assert_eq!(at("now | add 5m"), dt("2026-11-22T09:35:00.123Z"));
    }

    #[test]
    fn now_add_explicit_plus_without_spaces() {
        assert_eq!(at("now|add+10s"), dt("2026-11-22T09:30:10.123Z"));
    }

    #[test]
    fn add_keyword_is_case_insensitive() {
        assert_eq!(at("now | ADD 5m"), dt("2026-11-22T09:35:00.123Z"));
        assert_eq!(at("now | Add 5m"), dt("2026-11-22T09:35:00.123Z"));
    }

    #[test]
    fn add_keyword_directly_followed_by_number() {
        assert_eq!(at("now|add5m"), dt("2026-11-22T09:35:00.123Z"));
    }

    #[test]
    fn space_between_number_and_unit() {
        assert_eq!(at("now | add 5 m"), dt("2026-11-22T09:35:00.123Z"));
        assert_eq!(at("now | add 5\tm"), dt("2026-11-22T09:35:00.123Z"));
    }

    #[test]
    fn negative_add() {
        assert_eq!(at("now | add -1d"), dt("2026-11-21T09:30:00.123Z"));
    }

    #[test]
    fn space_after_sign() {
        assert_eq!(at("now | add - 2 h"), dt("2026-11-22T07:30:00.123Z"));
        assert_eq!(at("now | add + 2 h"), dt("2026-11-22T11:30:00.123Z"));
    }

    #[test]
    fn chained_adds() {
        assert_eq!(
            at("2026-11-22T09:30:00Z|add -1d|add 2h"),
            dt("2026-11-21T11:30:00Z")
        );
    }

    #[test]
    fn long_chain_with_mixed_units() {
        assert_eq!(
            at("now | add 1w | add -3d | add 1h | add 30m | add -15s"),
            dt("2026-11-26T10:59:45.123Z")
        );
    }

    #[test]
    fn add_zero_is_identity() {
        assert_eq!(at("now | add 0s"), now_ms());
        assert_eq!(at("now | add -0mo"), now_ms());
    }

    #[test]
    fn leading_zeros_in_amount() {
        assert_eq!(at("now | add 007s"), dt("2026-11-22T09:30:07.123Z"));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(at(" \t now  |  add 1h \t "), dt("2026-11-22T10:30:00.123Z"));
    }

    // ---- unit spellings ----

    fn assert_unit(spellings: &[&str], expected_for_2: &str) {
        for unit in spellings {
            for spelled in [unit.to_string(), unit.to_ascii_uppercase()] {
                let input = format!("2026-11-22T09:30:00Z | add 2{spelled}");
                assert_eq!(at(&input), dt(expected_for_2), "{input:?}");
            }
        }
    }

    #[test]
    fn second_spellings() {
        assert_unit(
            &["s", "sec", "secs", "second", "seconds"],
            "2026-11-22T09:30:02Z",
        );
    }

    #[test]
    fn minute_spellings() {
        assert_unit(
            &["m", "min", "mins", "minute", "minutes"],
            "2026-11-22T09:32:00Z",
        );
    }

    #[test]
    fn hour_spellings() {
        assert_unit(&["h", "hr", "hrs", "hour", "hours"], "2026-11-22T11:30:00Z");
    }

    #[test]
    fn day_spellings() {
        assert_unit(&["d", "day", "days"], "2026-11-24T09:30:00Z");
    }

    #[test]
    fn week_spellings() {
        assert_unit(&["w", "week", "weeks"], "2026-12-06T09:30:00Z");
    }

    #[test]
    fn month_spellings() {
        assert_unit(&["mo", "month", "months"], "2027-01-22T09:30:00Z");
    }

    #[test]
    fn year_spellings() {
        assert_unit(&["y", "yr", "yrs", "year", "years"], "2028-11-22T09:30:00Z");
    }

    #[test]
    fn mixed_case_units() {
        assert_eq!(at("now | add 1 HoUrS"), dt("2026-11-22T10:30:00.123Z"));
        assert_eq!(at("now | add 1Mo"), dt("2026-12-22T09:30:00.123Z"));
    }

    #[test]
    fn m_is_minutes_not_months() {
        assert_eq!(at("now | add 1m"), dt("2026-11-22T09:31:00.123Z"));
        assert_eq!(at("now | add 1M"), dt("2026-11-22T09:31:00.123Z"));
    }

    // ---- calendar arithmetic ----

    #[test]
    fn jan_31_plus_one_month_non_leap_year() {
        assert_eq!(
            at("2026-01-31T10:00:00Z | add 1mo"),
            dt("2026-02-28T10:00:00Z")
        );
    }

    #[test]
    fn jan_31_plus_one_month_leap_year() {
        assert_eq!(
            at("2024-01-31T10:00:00Z | add 1mo"),
            dt("2024-02-29T10:00:00Z")
        );
    }

    #[test]
    fn mar_31_minus_one_month() {
        assert_eq!(at("2026-03-31 | add -1mo"), dt("2026-02-28T00:00:00Z"));
        assert_eq!(at("2024-03-31 | add -1mo"), dt("2024-02-29T00:00:00Z"));
    }

    #[test]
    fn month_end_clamp_to_30_day_month() {
        assert_eq!(at("2026-05-31 | add 1 month"), dt("2026-06-30T00:00:00Z"));
    }

    #[test]
    fn months_roll_over_years_both_ways() {
        assert_eq!(at("2026-12-15 | add 1mo"), dt("2027-01-15T00:00:00Z"));
        assert_eq!(at("2026-01-15 | add -1mo"), dt("2025-12-15T00:00:00Z"));
        assert_eq!(at("2026-01-31 | add 13mo"), dt("2027-02-28T00:00:00Z"));
        assert_eq!(at("2026-01-31 | add -25mo"), dt("2023-12-31T00:00:00Z"));
    }

    #[test]
    fn clamping_is_per_step_not_remembered() {
        // Jan 31 -> Feb 28 -> Mar 28 (the original day is not restored).
        assert_eq!(
            at("2026-01-31 | add 1mo | add 1mo"),
            dt("2026-03-28T00:00:00Z")
        );
    }

    #[test]
    fn month_add_keeps_time_of_day_and_millis() {
        assert_eq!(
            at("2026-01-31T23:59:59.999Z | add 1mo"),
            dt("2026-02-28T23:59:59.999Z")
        );
    }

    #[test]
    fn feb_29_plus_one_year_is_feb_28() {
        assert_eq!(
            at("2024-02-29T12:00:00Z | add 1y"),
            dt("2025-02-28T12:00:00Z")
        );
        assert_eq!(at("2024-02-29 | add -1y"), dt("2023-02-28T00:00:00Z"));
    }

    #[test]
    fn feb_29_plus_four_years_stays_feb_29() {
        assert_eq!(at("2024-02-29 | add 4y"), dt("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn calendar_arithmetic_uses_the_base_offset() {
        // 23:30 on Jan 31 at -05:00 is 04:30 on Feb 1 UTC; one month later in
        // the written offset is Feb 28 23:30 -05:00.
        assert_eq!(
            at("2026-01-31T23:30:00-05:00 | add 1mo"),
            dt("2026-02-28T23:30:00-05:00")
        );
    }

    #[test]
    fn add_calendar_months_public_helper() {
        let t = dt("2024-01-31T08:00:00.250Z");
        assert_eq!(
            add_calendar_months(t, 1),
            Some(dt("2024-02-29T08:00:00.250Z"))
        );
        assert_eq!(
            add_calendar_months(t, 12),
            Some(dt("2025-01-31T08:00:00.250Z"))
        );
        assert_eq!(
            add_calendar_months(t, -2),
            Some(dt("2023-11-30T08:00:00.250Z"))
        );
        assert_eq!(add_calendar_months(t, 0), Some(t));
        assert_eq!(add_calendar_months(t, i64::MAX), None);
        assert_eq!(add_calendar_months(t, i64::MIN), None);
        assert_eq!(add_calendar_months(t, 12 * 1_000_000_000), None);
    }

    #[test]
    fn leap_year_rule() {
        assert!(is_leap_year(2024));
        assert!(is_leap_year(2000));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2026));
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2400, 2), 29);
    }

    // ---- ISO-8601 bases ----

    #[test]
    fn iso_with_z() {
        assert_eq!(at("2026-11-22T09:30:00Z"), dt("2026-11-22T09:30:00Z"));
    }

    #[test]
    fn iso_with_lowercase_t_and_z() {
        assert_eq!(at("2026-11-22t09:30:00z"), dt("2026-11-22T09:30:00Z"));
    }

    #[test]
    fn iso_with_colon_offset() {
        assert_eq!(at("2026-11-22T09:30:00+01:00"), dt("2026-11-22T08:30:00Z"));
    }

    #[test]
    fn iso_with_compact_offset() {
        assert_eq!(at("2026-11-22T09:30:00+0100"), dt("2026-11-22T08:30:00Z"));
    }

    #[test]
    fn iso_with_negative_half_hour_offset() {
        assert_eq!(at("2026-11-22T09:30:00-05:30"), dt("2026-11-22T15:00:00Z"));
        assert_eq!(at("2026-11-22T09:30:00-0530"), dt("2026-11-22T15:00:00Z"));
    }

    #[test]
    fn iso_with_hour_only_offset_and_extremes() {
        assert_eq!(at("2026-11-22T09:30:00+01"), dt("2026-11-22T08:30:00Z"));
        assert_eq!(at("2026-11-22T09:30:00-00:00"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(at("2026-11-22T09:30:00+14:00"), dt("2026-11-21T19:30:00Z"));
        assert_eq!(at("2026-11-22T09:30:00-23:59"), dt("2026-11-23T09:29:00Z"));
    }

    #[test]
    fn iso_fraction_one_digit() {
        assert_eq!(at("2026-11-22T09:30:00.5Z"), dt("2026-11-22T09:30:00.500Z"));
    }

    #[test]
    fn iso_fraction_three_digits() {
        assert_eq!(
            at("2026-11-22T09:30:00.123Z"),
            dt("2026-11-22T09:30:00.123Z")
        );
    }

    #[test]
    fn iso_fraction_nine_digits_is_truncated_not_rounded() {
        assert_eq!(
            at("2026-11-22T09:30:00.123456789Z"),
            dt("2026-11-22T09:30:00.123Z")
        );
        assert_eq!(
            at("2026-11-22T09:30:00.999999999Z"),
            dt("2026-11-22T09:30:00.999Z")
        );
    }

    #[test]
    fn iso_fraction_many_digits_and_comma() {
        assert_eq!(
            at("2026-11-22T09:30:00.12345678901234567890Z"),
            dt("2026-11-22T09:30:00.123Z")
        );
        assert_eq!(
            at("2026-11-22T09:30:00,25Z"),
            dt("2026-11-22T09:30:00.250Z")
        );
    }

    #[test]
    fn iso_fraction_with_offset() {
        assert_eq!(
            at("2026-11-22T09:30:00.05+01:00"),
            dt("2026-11-22T08:30:00.050Z")
        );
    }

    #[test]
    fn iso_without_offset_is_utc() {
        assert_eq!(at("2026-11-22T09:30:00"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(
            at("2026-11-22T09:30:00.750"),
            dt("2026-11-22T09:30:00.750Z")
        );
    }

    #[test]
    fn iso_with_space_separator() {
        assert_eq!(at("2026-11-22 09:30:00Z"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(at("2026-11-22 09:30:00"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(
            at("2026-11-22 09:30:00+01:00 | add 1h"),
            dt("2026-11-22T09:30:00Z")
        );
    }

    #[test]
    fn iso_without_seconds() {
        assert_eq!(at("2026-11-22T09:30Z"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(at("2026-11-22T09:30"), dt("2026-11-22T09:30:00Z"));
        assert_eq!(at("2026-11-22T09:30+02:00"), dt("2026-11-22T07:30:00Z"));
    }

    #[test]
    fn bare_date_is_midnight_utc() {
        assert_eq!(at("2026-11-22"), dt("2026-11-22T00:00:00Z"));
    }

    #[test]
    fn bare_date_with_add() {
        assert_eq!(
            at("2026-11-22 | add 9h | add 30m"),
            dt("2026-11-22T09:30:00Z")
        );
    }

    #[test]
    fn leap_day_in_leap_year_is_valid() {
        assert_eq!(at("2024-02-29"), dt("2024-02-29T00:00:00Z"));
    }

    #[test]
    fn range_edges_are_accepted() {
        assert_eq!(at("1970-01-01T00:00:00Z"), dt("1970-01-01T00:00:00Z"));
        assert_eq!(
            at("9999-12-31T23:59:59.999Z"),
            dt("9999-12-31T23:59:59.999Z")
        );
    }

    // ---- Unix timestamps ----

    #[test]
    fn unix_seconds_integer() {
        assert_eq!(at("1763803800"), dt("2025-11-22T09:30:00Z"));
        assert_eq!(at("0"), dt("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn unix_seconds_fractional() {
        assert_eq!(at("1763803800.5"), dt("2025-11-22T09:30:00.500Z"));
        assert_eq!(at("1763803800.123456"), dt("2025-11-22T09:30:00.123Z"));
        assert_eq!(at("1763803800.0009"), dt("2025-11-22T09:30:00Z"));
    }

    #[test]
    fn unix_seconds_with_add() {
        assert_eq!(at("1795339800 | add 1d"), dt("2026-11-23T09:30:00Z"));
    }

    #[test]
    fn unix_seconds_upper_bound() {
        assert_eq!(at("253402300799.999"), dt("9999-12-31T23:59:59.999Z"));
        assert_err_contains("253402300800", &["\"253402300800\"", "out of range"]);
    }

    #[test]
    fn unix_seconds_negative_is_an_error() {
        assert_err_contains("-5", &["\"-5\"", "out of range"]);
        assert_err_contains("-0.5", &["\"-0.5\"", "out of range"]);
    }

    #[test]
    fn unix_seconds_too_large_for_i64_is_an_error() {
        assert_err_contains("99999999999999999999", &["number out of range"]);
    }

    #[test]
    fn unix_seconds_malformed() {
        assert_err_contains("1763803800.", &["invalid Unix timestamp \"1763803800.\""]);
        assert_err_contains("1.2.3", &["invalid Unix timestamp \"1.2.3\""]);
        assert_err_contains(".5", &["invalid base \".5\""]);
    }

    // ---- cron passthrough ----

    #[test]
    fn cron_five_fields() {
        assert_eq!(cron("*/5 * * * *"), "*/5 * * * *");
    }

    #[test]
    fn cron_six_fields() {
        assert_eq!(cron("0 */5 * * * *"), "0 */5 * * * *");
    }

    #[test]
    fn cron_seven_fields_is_still_cron() {
        assert_eq!(cron("0 0 12 * * ? 2026"), "0 0 12 * * ? 2026");
    }

    #[test]
    fn cron_with_tabs_and_padding_is_trimmed_verbatim() {
        assert_eq!(cron("  0\t9\t*  *\t1-5 \t"), "0\t9\t*  *\t1-5");
    }

    #[test]
    fn cron_at_macros() {
        assert_eq!(cron("@daily"), "@daily");
        assert_eq!(cron("  @every 5m "), "@every 5m");
        assert_eq!(cron("@daily | add 5m"), "@daily | add 5m");
    }

    #[test]
    fn cron_even_when_fields_look_like_garbage() {
        // Validation is the cron module's job.
        assert_eq!(cron("a b c d e"), "a b c d e");
    }

    #[test]
    fn four_or_eight_fields_are_not_cron() {
        assert_err_contains("* * * *", &["invalid base \"* * * *\""]);
        assert_err_contains("* * * * * * * *", &["invalid base"]);
    }

    #[test]
    fn five_fields_with_pipe_are_not_cron() {
        assert_err_contains(
            "0 9 * * 1 | add 5m",
            &["invalid date-time", "\"0 9 * * 1\""],
        );
    }

    #[test]
    fn iso_with_space_is_not_cron() {
        assert!(matches!(
            parse_scheduled_at("2026-11-22 09:30:00Z", now()),
            Ok(ScheduleSpec::At(_))
        ));
    }

    // ---- errors ----

    #[test]
    fn garbage_base() {
        assert_eq!(
            err_msg("tomorrow"),
            "invalid base \"tomorrow\": expected \"now\", an ISO-8601 date-time \
             (e.g. 2026-11-22T09:30:00Z) or a Unix timestamp in seconds"
        );
        assert_err_contains("now add 5m", &["invalid base \"now add 5m\""]);
        assert_err_contains("now+5m", &["invalid base \"now+5m\""]);
    }

    #[test]
    fn garbage_base_in_pipeline_names_base_and_input() {
        assert_err_contains(
            "soon | add 5m",
            &["invalid base \"soon\"", "in \"soon | add 5m\""],
        );
    }

    #[test]
    fn invalid_unit() {
        assert_eq!(
            err_msg("now | add 2fortnights"),
            "invalid unit \"fortnights\" in \"now | add 2fortnights\""
        );
        assert_err_contains("now | add 5m!", &["invalid unit \"m!\""]);
        assert_err_contains("now | add 5 m 3s", &["invalid unit \"m 3s\""]);
        assert_err_contains("now | add 5é", &["invalid unit \"é\""]);
    }

    #[test]
    fn missing_unit() {
        assert_err_contains("now | add 5", &["missing unit", "\"add 5\""]);
        assert_err_contains("now | add -5 ", &["missing unit", "\"add -5\""]);
    }

    #[test]
    fn missing_number() {
        assert_err_contains("now | add m", &["missing number", "\"add m\""]);
        assert_err_contains("now | add -h", &["missing number", "\"add -h\""]);
        assert_err_contains("now | add", &["missing number", "\"add\""]);
        assert_err_contains("now | add +", &["missing number"]);
        assert_err_contains("now | add --5m", &["missing number"]);
    }

    #[test]
    fn fractional_amount_is_rejected() {
        assert_err_contains(
            "now | add 1.5h",
            &["invalid number", "\"add 1.5h\"", "whole numbers"],
        );
    }

    #[test]
    fn pipe_without_add() {
        assert_err_contains("now | 5m", &["expected \"add\" after \"|\"", "\"5m\""]);
        assert_err_contains(
            "now | sub 5m",
            &["expected \"add\" after \"|\"", "\"sub 5m\""],
        );
        assert_err_contains("now | addition 5m", &["expected \"add\" after \"|\""]);
        assert_err_contains("now | ad€5m", &["expected \"add\" after \"|\""]);
    }

    #[test]
    fn empty_steps() {
        assert_eq!(
            err_msg("now |"),
            "expected \"add\" after \"|\", found nothing in \"now |\""
        );
        assert_err_contains(
            "now || add 5m",
            &["expected \"add\" after \"|\", found nothing"],
        );
        assert_err_contains("now | add 5m |", &["found nothing"]);
    }

    #[test]
    fn missing_base() {
        assert_eq!(
            err_msg("| add 5m"),
            "missing base before \"|\" in \"| add 5m\""
        );
    }

    #[test]
    fn amount_too_large_for_i64() {
        assert_err_contains(
            "now | add 99999999999999999999d",
            &["number out of range", "\"99999999999999999999\""],
        );
        assert_err_contains("now | add -9223372036854775808s", &["number out of range"]);
    }

    #[test]
    fn amount_times_unit_overflows() {
        assert_err_contains("now | add 9223372036854775807w", &["number out of range"]);
        assert_err_contains("now | add 100000000000000000s", &["number out of range"]);
        assert_err_contains("now | add 9223372036854775807y", &["number out of range"]);
    }

    #[test]
    fn date_arithmetic_overflow() {
        assert_err_contains(
            "now | add 1000000000000000s",
            &["result out of range", "\"add 1000000000000000s\""],
        );
        assert_err_contains("now | add 9999999999999mo", &["result out of range"]);
        assert_err_contains("now | add -9999999999999y", &["result out of range"]);
    }

    #[test]
    fn result_after_year_9999_is_an_error() {
        assert_err_contains("now | add 8000y", &["out of range", "\"now | add 8000y\""]);
        assert_err_contains("9999-12-31T23:59:59Z | add 1s", &["out of range"]);
    }

    #[test]
    fn result_before_1970_is_an_error() {
        assert_err_contains("now | add -57y", &["out of range"]);
        assert_err_contains("1969-12-31T23:59:59Z", &["out of range"]);
        assert_err_contains("1970-01-01T00:30:00+01:00", &["out of range"]);
        assert_err_contains("0000-01-01", &["out of range"]);
    }

    #[test]
    fn only_the_final_result_must_be_in_range() {
        assert_eq!(at("now | add 9000y | add -9000y"), now_ms());
        assert_eq!(at("1960-01-01 | add 20y"), dt("1980-01-01T00:00:00Z"));
    }

    #[test]
    fn invalid_day_of_month() {
        assert_err_contains(
            "2026-02-30",
            &["invalid date-time \"2026-02-30\"", "day 30"],
        );
        assert_err_contains("2026-02-29", &["invalid date-time \"2026-02-29\""]);
        assert_err_contains("2026-04-31T10:00:00Z", &["invalid date-time"]);
        assert_err_contains("2026-11-00", &["invalid date-time"]);
    }

    #[test]
    fn invalid_month() {
        assert_eq!(
            err_msg("2026-13-01"),
            "invalid date-time \"2026-13-01\": month must be 01-12"
        );
        assert_err_contains("2026-00-10", &["month must be 01-12"]);
    }

    #[test]
    fn invalid_time_fields() {
        assert_err_contains("2026-11-22T25:00:00Z", &["invalid date-time", "hour 25"]);
        assert_err_contains("2026-11-22T24:00:00Z", &["hour 24"]);
        assert_err_contains("2026-11-22T09:60Z", &["minute 60"]);
        assert_err_contains("2026-11-22T09:30:60Z", &["second 60"]);
        assert_err_contains("25:00", &["invalid date-time \"25:00\""]);
    }

    #[test]
    fn invalid_offsets() {
        assert_err_contains("2026-11-22T09:30:00+24:00", &["UTC offset"]);
        assert_err_contains("2026-11-22T09:30:00+01:60", &["UTC offset"]);
        assert_err_contains("2026-11-22T09:30:00+1", &["UTC offset"]);
        assert_err_contains("2026-11-22T09:30:00+01:0", &["UTC offset"]);
        assert_err_contains("2026-11-22T09:30:00 Z", &["invalid date-time"]);
    }

    #[test]
    fn malformed_iso_shapes() {
        for input in [
            "2026-1-5",
            "2026-11-22T",
            "2026-11-22T9:30",
            "2026-11-22T09",
            "2026-11-22T09:30:00.",
            "2026-11-22T09:30:00.Z",
            "2026-11-22X09:30",
            "2026-11-22T09:30:00Zjunk",
            "2026-11-22Z",
            "20261-11-22",
            "2026-11-22T09:30:00+01:00:00",
        ] {
            assert_err_contains(input, &[&format!("invalid date-time {input:?}")]);
        }
    }

    #[test]
    fn base_error_in_pipeline_names_whole_input() {
        assert_eq!(
            err_msg("2026-13-01 | add 1d"),
            "invalid date-time \"2026-13-01\": month must be 01-12 in \"2026-13-01 | add 1d\""
        );
    }

    #[test]
    fn first_failing_step_is_reported() {
        assert_err_contains("now | add 1x | add 2y", &["invalid unit \"x\""]);
    }

    #[test]
    fn error_display_is_the_message() {
        let e = ScheduleAtError("boom".into());
        assert_eq!(e.to_string(), "boom");
    }

    #[test]
    fn odd_inputs_never_panic() {
        let seeds = [
            "2026-11-22T09:30:00.123456789+05:30 | add -3mo | ADD 2 weeks",
            "1763803800.999 | add +1y",
            "now|add 99999999999999999999999999999y",
            "€€€ | ädd 5ñ | add 5\u{0}",
            "2026-11-22T09:30:00+01:0é",
            "0 0 12 * * ? 2026 | add",
            "@",
            "|",
            "||||",
            "-",
            "-1.",
            "9999-12-31T23:59:59.999999999-23:59",
            "0000-01-01T00:00:00+23:59 | add -1s",
        ];
        for seed in seeds {
            let boundaries: Vec<usize> = (0..=seed.len())
                .filter(|&i| seed.is_char_boundary(i))
                .collect();
            for &i in &boundaries {
                for part in [&seed[..i], &seed[i..]] {
                    // Only checks for panics; the result may be Ok or Err.
                    let _ = parse_scheduled_at(part, now());
                    let _ = parse_scheduled_at(part, DateTime::<Utc>::MAX_UTC);
                    let _ = parse_scheduled_at(part, DateTime::<Utc>::MIN_UTC);
                }
            }
        }
    }

    #[test]
    fn extreme_now_values_do_not_panic() {
        for t in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            assert!(parse_scheduled_at("", t).is_err());
            assert!(parse_scheduled_at("now | add 1s", t).is_err());
            assert!(parse_scheduled_at("now | add 1y", t).is_err());
        }
    }
}

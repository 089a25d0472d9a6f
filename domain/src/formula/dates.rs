//! Dates for formulas: moment.js-style format tokens (formatting and parsing), units, and the
//! arithmetic behind `DATEADD`, `DATETIME_DIFF` and `IS_SAME`. Everything is in UTC.

use chrono::{
    DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
};

use super::value::{ErrorKind, MAX_RESULT_CHARS};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Format tokens, longest first so `MMMM` wins over `MM` and `Do` over `D`.
const TOKENS: [&str; 46] = [
    "YYYY", "MMMM", "DDDD", "dddd", "LLLL", "llll", "MMM", "DDD", "ddd", "SSS", "LTS", "LLL",
    "lll", "YY", "MM", "DD", "Do", "dd", "WW", "ww", "HH", "hh", "kk", "mm", "ss", "SS", "ZZ",
    "LT", "LL", "ll", "Q", "M", "D", "d", "E", "W", "w", "H", "h", "k", "m", "s", "S", "A", "a",
    "Z",
];
/// Tokens the table above lacks because a longer one shares their first letter.
const SINGLE_TOKENS: [&str; 4] = ["X", "x", "L", "l"];

#[derive(Debug, PartialEq)]
enum FmtTok<'a> {
    Token(&'static str),
    Literal(&'a str),
}

/// Splits a moment.js format into tokens and literal runs (`[...]` is literal text).
fn tokenize(fmt: &str) -> Vec<FmtTok<'_>> {
    let mut out = Vec::new();
    let mut rest = fmt;
    while let Some(c) = rest.chars().next() {
        if c == '['
            && let Some(end) = rest.find(']')
        {
            out.push(FmtTok::Literal(rest.get(1..end).unwrap_or_default()));
            rest = rest.get(end + 1..).unwrap_or_default();
            continue;
        }
        if let Some(t) = TOKENS
            .iter()
            .chain(SINGLE_TOKENS.iter())
            .find(|t| rest.starts_with(**t))
        {
            out.push(FmtTok::Token(t));
            rest = rest.get(t.len()..).unwrap_or_default();
            continue;
        }
        let n = c.len_utf8();
        out.push(FmtTok::Literal(rest.get(..n).unwrap_or_default()));
        rest = rest.get(n..).unwrap_or_default();
    }
    out
}

/// English expansions of moment's localized formats.
fn localized(token: &str) -> Option<&'static str> {
    Some(match token {
        "LT" => "h:mm A",
        "LTS" => "h:mm:ss A",
        "L" => "MM/DD/YYYY",
        "LL" => "MMMM D, YYYY",
        "LLL" => "MMMM D, YYYY h:mm A",
        "LLLL" => "dddd, MMMM D, YYYY h:mm A",
        "l" => "M/D/YYYY",
        "ll" => "MMM D, YYYY",
        "lll" => "MMM D, YYYY h:mm A",
        "llll" => "ddd, MMM D, YYYY h:mm A",
        _ => return None,
    })
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Week of the year with weeks starting on Sunday and week 1 holding January 1 (moment's `w`
/// in the English locale).
fn locale_week(d: NaiveDate) -> u32 {
    let wd = d.weekday().num_days_from_sunday();
    let saturday = d.checked_add_signed(Duration::days(i64::from(6 - wd)));
    if saturday.is_some_and(|s| s.year() > d.year()) {
        return 1;
    }
    let jan1 =
        NaiveDate::from_ymd_opt(d.year(), 1, 1).map_or(0, |j| j.weekday().num_days_from_sunday());
    (d.ordinal0() + jan1) / 7 + 1
}

fn month_name(m: u32) -> &'static str {
    MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or_default()
}

fn push_token(out: &mut String, t: DateTime<Utc>, token: &str) {
    let d = t.date_naive();
    let ms = t.timestamp_subsec_millis();
    let wd = d.weekday().num_days_from_sunday();
    let weekday = WEEKDAYS.get(wd as usize).copied().unwrap_or_default();
    let s = match token {
        "YYYY" => format!("{:04}", d.year()),
        "YY" => format!("{:02}", d.year().rem_euclid(100)),
        "Q" => ((d.month0() / 3) + 1).to_string(),
        "M" => d.month().to_string(),
        "MM" => format!("{:02}", d.month()),
        "MMM" => month_name(d.month()).chars().take(3).collect(),
        "MMMM" => month_name(d.month()).to_owned(),
        "D" => d.day().to_string(),
        "DD" => format!("{:02}", d.day()),
        "Do" => ordinal(d.day()),
        "DDD" => d.ordinal().to_string(),
        "DDDD" => format!("{:03}", d.ordinal()),
        "d" => wd.to_string(),
        "dd" => weekday.chars().take(2).collect(),
        "ddd" => weekday.chars().take(3).collect(),
        "dddd" => weekday.to_owned(),
        "E" => d.weekday().number_from_monday().to_string(),
        "W" => d.iso_week().week().to_string(),
        "WW" => format!("{:02}", d.iso_week().week()),
        "w" => locale_week(d).to_string(),
        "ww" => format!("{:02}", locale_week(d)),
        "H" => t.hour().to_string(),
        "HH" => format!("{:02}", t.hour()),
        "h" => t.hour12().1.to_string(),
        "hh" => format!("{:02}", t.hour12().1),
        "k" => (if t.hour() == 0 { 24 } else { t.hour() }).to_string(),
        "kk" => format!("{:02}", if t.hour() == 0 { 24 } else { t.hour() }),
        "m" => t.minute().to_string(),
        "mm" => format!("{:02}", t.minute()),
        "s" => t.second().to_string(),
        "ss" => format!("{:02}", t.second()),
        "S" => (ms / 100).to_string(),
        "SS" => format!("{:02}", ms / 10),
        "SSS" => format!("{ms:03}"),
        "A" => (if t.hour() < 12 { "AM" } else { "PM" }).to_owned(),
        "a" => (if t.hour() < 12 { "am" } else { "pm" }).to_owned(),
        "Z" => "+00:00".to_owned(),
        "ZZ" => "+0000".to_owned(),
        "X" => t.timestamp().to_string(),
        "x" => t.timestamp_millis().to_string(),
        other => other.to_owned(),
    };
    out.push_str(&s);
}

/// The default of `DATETIME_FORMAT`: ISO-8601 in UTC with milliseconds.
pub const DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss.SSS[Z]";

/// Formats an instant (in UTC) with moment.js tokens.
///
/// # Errors
/// [`ErrorKind::TooLong`] when the result would pass [`MAX_RESULT_CHARS`].
pub fn format(t: DateTime<Utc>, fmt: &str) -> Result<String, ErrorKind> {
    let mut out = String::new();
    for tok in tokenize(fmt) {
        match tok {
            FmtTok::Literal(s) => out.push_str(s),
            FmtTok::Token(token) => match localized(token) {
                Some(expansion) => {
                    for inner in tokenize(expansion) {
                        match inner {
                            FmtTok::Literal(s) => out.push_str(s),
                            FmtTok::Token(t2) => push_token(&mut out, t, t2),
                        }
                    }
                }
                None => push_token(&mut out, t, token),
            },
        }
        // Bytes bound characters from above, so this stops runaway formats early.
        if out.len() > MAX_RESULT_CHARS.saturating_mul(4) {
            return Err(ErrorKind::TooLong);
        }
    }
    Ok(out)
}

/// Date and time parts read from a text, before they are assembled.
#[derive(Default)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    minute: u32,
    second: u32,
    millis: u32,
    pm: Option<bool>,
    offset_minutes: i64,
    unix_millis: Option<i64>,
}

struct Input<'a> {
    rest: &'a str,
    strict: bool,
}

impl<'a> Input<'a> {
    /// Skips what cannot start the next token: nothing in strict mode, like moment otherwise.
    fn skip_until(&mut self, start: impl Fn(char) -> bool) {
        if !self.strict {
            let i = self.rest.find(&start).unwrap_or(self.rest.len());
            self.rest = self.rest.get(i..).unwrap_or_default();
        }
    }

    fn digits(&mut self, max: usize) -> Option<u32> {
        self.skip_until(|c| c.is_ascii_digit());
        let n = self
            .rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n == 0 {
            return None;
        }
        let (num, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        num.parse().ok()
    }

    fn signed(&mut self) -> Option<(bool, &'a str)> {
        self.skip_until(|c| c.is_ascii_digit() || c == '-' || c == '+');
        let neg = self.rest.starts_with('-');
        if neg || self.rest.starts_with('+') {
            self.rest = self.rest.get(1..).unwrap_or_default();
        }
        let n = self
            .rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (num, rest) = self.rest.split_at_checked(n)?;
        if num.is_empty() {
            return None;
        }
        self.rest = rest;
        Some((neg, num))
    }

    /// The index in `names` of the name (or its first three letters) the input starts with.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        self.skip_until(|c| c.is_alphabetic());
        for (i, name) in names.iter().enumerate() {
            for candidate in [*name, name.get(..3).unwrap_or(name)] {
                let head = self.rest.get(..candidate.len());
                if head.is_some_and(|h| h.eq_ignore_ascii_case(candidate)) {
                    self.rest = self.rest.get(candidate.len()..).unwrap_or_default();
                    return Some(i);
                }
            }
        }
        None
    }

    fn literal(&mut self, lit: &str) -> Option<()> {
        if lit.trim().is_empty() {
            let trimmed = self.rest.trim_start();
            if self.strict && trimmed.len() == self.rest.len() && !lit.is_empty() {
                return None;
            }
            self.rest = trimmed;
            return Some(());
        }
        if let Some(r) = self.rest.strip_prefix(lit) {
            self.rest = r;
            Some(())
        } else if self.strict {
            None
        } else {
            Some(())
        }
    }
}

fn parse_token(input: &mut Input<'_>, p: &mut Parts, token: &str) -> Option<()> {
    match token {
        "YYYY" => {
            let (neg, digits) = input.signed()?;
            let y: i32 = digits.parse().ok()?;
            p.year = Some(if neg { -y } else { y });
        }
        "YY" => {
            let y = i32::try_from(input.digits(2)?).ok()?;
            p.year = Some(if y > 68 { 1900 + y } else { 2000 + y });
        }
        "Q" => {
            let q = input.digits(1)?;
            if !(1..=4).contains(&q) {
                return None;
            }
            p.month.get_or_insert((q - 1) * 3 + 1);
        }
        "M" | "MM" => p.month = Some(input.digits(2)?),
        "MMM" | "MMMM" => p.month = Some(u32::try_from(input.name(&MONTHS)?).ok()? + 1),
        "D" | "DD" => p.day = Some(input.digits(2)?),
        "Do" => {
            p.day = Some(input.digits(2)?);
            for suffix in ["st", "nd", "rd", "th"] {
                if let Some(r) = input.rest.strip_prefix(suffix) {
                    input.rest = r;
                    break;
                }
            }
        }
        "DDD" | "DDDD" => p.day_of_year = Some(input.digits(3)?),
        "d" | "E" => {
            input.digits(1)?;
        }
        "dd" | "ddd" | "dddd" => {
            input.name(&WEEKDAYS)?;
        }
        "H" | "HH" | "h" | "hh" | "k" | "kk" => p.hour = Some(input.digits(2)?),
        "m" | "mm" => p.minute = input.digits(2)?,
        "s" | "ss" => p.second = input.digits(2)?,
        "S" | "SS" | "SSS" => {
            input.skip_until(|c| c.is_ascii_digit());
            let n = input
                .rest
                .bytes()
                .take(9)
                .take_while(u8::is_ascii_digit)
                .count();
            let (frac, rest) = input.rest.split_at_checked(n)?;
            if frac.is_empty() {
                return None;
            }
            input.rest = rest;
            let padded: String = frac.chars().chain("000".chars()).take(3).collect();
            p.millis = padded.parse().ok()?;
        }
        "A" | "a" => {
            input.skip_until(|c| c.is_alphabetic());
            let lower = input.rest.get(..2).map(str::to_ascii_lowercase);
            let first = input.rest.get(..1).map(str::to_ascii_lowercase);
            let (pm, len) = match (lower.as_deref(), first.as_deref()) {
                (Some("am"), _) => (false, 2),
                (Some("pm"), _) => (true, 2),
                (_, Some("a")) => (false, 1),
                (_, Some("p")) => (true, 1),
                _ => return None,
            };
            input.rest = input.rest.get(len..).unwrap_or_default();
            p.pm = Some(pm);
        }
        "Z" | "ZZ" => {
            input.skip_until(|c| c == 'Z' || c == 'z' || c == '+' || c == '-');
            if let Some(r) = input.rest.strip_prefix(['Z', 'z']) {
                input.rest = r;
                p.offset_minutes = 0;
            } else {
                let neg = input.rest.starts_with('-');
                input.rest = input.rest.get(1..)?;
                let h = i64::from(input.digits(2)?);
                if let Some(r) = input.rest.strip_prefix(':') {
                    input.rest = r;
                }
                let m = i64::from(input.digits(2)?);
                let total = h * 60 + m;
                p.offset_minutes = if neg { -total } else { total };
            }
        }
        "X" => {
            let (neg, digits) = input.signed()?;
            let secs: f64 = digits.parse().ok()?;
            let ms = (secs * 1000.0).round();
            if !ms.is_finite() || ms.abs() > 1e16 {
                return None;
            }
            #[allow(clippy::cast_possible_truncation)]
            let ms = ms as i64;
            p.unix_millis = Some(if neg { -ms } else { ms });
        }
        "x" => {
            let (neg, digits) = input.signed()?;
            let ms: i64 = digits.parse().ok()?;
            p.unix_millis = Some(if neg { -ms } else { ms });
        }
        // Week numbers cannot be turned into a date without more context than a format gives.
        _ => return None,
    }
    Some(())
}

/// Parses `text` with a moment.js format. In strict mode every literal must match and nothing
/// may follow; otherwise, like moment, unmatched literals and stray characters are skipped.
/// Missing date parts default to `now`'s year and to January 1 / midnight, as moment does.
#[must_use]
pub fn parse_with_format(
    text: &str,
    fmt: &str,
    now: DateTime<Utc>,
    strict: bool,
) -> Option<DateTime<Utc>> {
    let mut input = Input { rest: text, strict };
    let mut p = Parts::default();
    for tok in tokenize(fmt) {
        match tok {
            FmtTok::Literal(lit) => input.literal(lit)?,
            FmtTok::Token(token) => match localized(token) {
                Some(expansion) => {
                    for inner in tokenize(expansion) {
                        match inner {
                            FmtTok::Literal(lit) => input.literal(lit)?,
                            FmtTok::Token(t) => parse_token(&mut input, &mut p, t)?,
                        }
                    }
                }
                None => parse_token(&mut input, &mut p, token)?,
            },
        }
    }
    if strict && !input.rest.trim().is_empty() {
        return None;
    }
    if let Some(ms) = p.unix_millis {
        return DateTime::from_timestamp_millis(ms);
    }
    let year = p.year.unwrap_or_else(|| now.year());
    let date = match p.day_of_year {
        Some(doy) => NaiveDate::from_yo_opt(year, doy)?,
        None => {
            let (month, day) = match (p.year, p.month, p.day) {
                // Only a time: moment reads it on today's date.
                (None, None, None) => (now.month(), now.day()),
                (_, m, d) => (m.unwrap_or(1), d.unwrap_or(1)),
            };
            NaiveDate::from_ymd_opt(year, month, day)?
        }
    };
    let mut hour = p.hour.unwrap_or(0);
    match p.pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    if hour == 24 && p.minute == 0 && p.second == 0 && p.millis == 0 {
        hour = 0;
    }
    let time = NaiveTime::from_hms_milli_opt(hour, p.minute, p.second, p.millis)?;
    let local = NaiveDateTime::new(date, time).and_utc();
    local.checked_sub_signed(Duration::minutes(p.offset_minutes))
}

/// Formats tried, in order, when a text must be read as a date with no format given.
const LOOSE_FORMATS: [&str; 10] = [
    "M/D/YYYY h:mm:ss a",
    "M/D/YYYY h:mm a",
    "M/D/YYYY H:mm:ss",
    "M/D/YYYY H:mm",
    "M/D/YYYY",
    "MMMM D, YYYY h:mm a",
    "MMMM D, YYYY",
    "D MMMM YYYY",
    "YYYY/M/D H:mm",
    "YYYY/M/D",
];

/// Reads a date from text without a format: ISO-8601 (with or without time, offset, `T`), then
/// US `M/D/YYYY` with optional time, `Month D, YYYY`, `D Month YYYY`, `YYYY/M/D`. Offset-less
/// times are UTC.
#[must_use]
pub fn parse_loose(text: &str) -> Option<DateTime<Utc>> {
    let s = text.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%d %H:%M%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(super::value::date_to_instant(d));
    }
    // The year is present in every loose format, so `now` is never used.
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    LOOSE_FORMATS
        .iter()
        .find_map(|f| parse_with_format(s, f, epoch, true))
}

/// A unit of `DATEADD`, `DATETIME_DIFF` and `IS_SAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// `milliseconds`, `ms`.
    Millisecond,
    /// `seconds`, `s`.
    Second,
    /// `minutes`, `m`.
    Minute,
    /// `hours`, `h`.
    Hour,
    /// `days`, `d`.
    Day,
    /// `weeks`, `w`.
    Week,
    /// `months`, `M`.
    Month,
    /// `quarters`, `Q`.
    Quarter,
    /// `years`, `y`.
    Year,
}

impl Unit {
    /// Reads a unit: moment's short forms (case-sensitive: `m` is minutes, `M` months) or the
    /// long forms, singular or plural, in any case.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let short = match s {
            "ms" => Some(Self::Millisecond),
            "s" => Some(Self::Second),
            "m" => Some(Self::Minute),
            "h" => Some(Self::Hour),
            "d" | "D" => Some(Self::Day),
            "w" | "W" => Some(Self::Week),
            "M" => Some(Self::Month),
            "Q" => Some(Self::Quarter),
            "y" => Some(Self::Year),
            _ => None,
        };
        if short.is_some() {
            return short;
        }
        let lower = s.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Some(match singular {
            "millisecond" => Self::Millisecond,
            "second" => Self::Second,
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" | "isoweek" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return None,
        })
    }

    /// Milliseconds in one unit, for the units of fixed length.
    fn fixed_millis(self) -> Option<f64> {
        match self {
            Self::Millisecond => Some(1.0),
            Self::Second => Some(1e3),
            Self::Minute => Some(6e4),
            Self::Hour => Some(36e5),
            Self::Day => Some(864e5),
            Self::Week => Some(6048e5),
            Self::Month | Self::Quarter | Self::Year => None,
        }
    }
}

/// Rounds half away from zero to a whole `i64`, refusing values outside ±2^53.
fn whole(n: f64) -> Result<i64, ErrorKind> {
    let r = n.round();
    if !r.is_finite() || r.abs() > 9e15 {
        return Err(ErrorKind::InvalidArgument);
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(r as i64)
}

/// `DATEADD`: adds `count` units. Days and longer are rounded to whole units (as moment does);
/// months clamp the day to the month's end (January 31 + 1 month is February 28 or 29).
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] when the result leaves chrono's range.
pub fn add(t: DateTime<Utc>, count: f64, unit: Unit) -> Result<DateTime<Utc>, ErrorKind> {
    let months = match unit {
        Unit::Month => Some(whole(count)?),
        Unit::Quarter => Some(
            whole(count)?
                .checked_mul(3)
                .ok_or(ErrorKind::InvalidArgument)?,
        ),
        Unit::Year => Some(
            whole(count)?
                .checked_mul(12)
                .ok_or(ErrorKind::InvalidArgument)?,
        ),
        _ => None,
    };
    let out = match months {
        Some(m) => {
            let abs = u32::try_from(m.unsigned_abs()).map_err(|_| ErrorKind::InvalidArgument)?;
            if m >= 0 {
                t.checked_add_months(Months::new(abs))
            } else {
                t.checked_sub_months(Months::new(abs))
            }
        }
        None => {
            let ms = match unit {
                Unit::Day => whole(count)?.checked_mul(86_400_000),
                Unit::Week => whole(count * 7.0)?.checked_mul(86_400_000),
                other => whole(count * other.fixed_millis().unwrap_or(1.0)).ok(),
            }
            .ok_or(ErrorKind::InvalidArgument)?;
            Duration::try_milliseconds(ms).and_then(|d| t.checked_add_signed(d))
        }
    };
    out.ok_or(ErrorKind::InvalidArgument)
}

fn add_months_exact(t: DateTime<Utc>, m: i64) -> Result<DateTime<Utc>, ErrorKind> {
    add(t, m as f64, Unit::Month)
}

/// moment's month difference: whole months plus the fraction of the month around `b`.
fn month_diff(a: DateTime<Utc>, b: DateTime<Utc>) -> Result<f64, ErrorKind> {
    if a.date_naive() < b.date_naive() {
        return Ok(-month_diff(b, a)?);
    }
    let whole_months =
        i64::from(b.year() - a.year()) * 12 + (i64::from(b.month()) - i64::from(a.month()));
    let anchor = add_months_exact(a, whole_months)?;
    let span = |x: DateTime<Utc>, y: DateTime<Utc>| (x - y).num_milliseconds() as f64;
    let adjust = if b < anchor {
        let anchor2 = add_months_exact(a, whole_months - 1)?;
        span(b, anchor) / span(anchor, anchor2)
    } else {
        let anchor2 = add_months_exact(a, whole_months + 1)?;
        span(b, anchor) / span(anchor2, anchor)
    };
    let out = -(whole_months as f64 + adjust);
    Ok(if out == 0.0 { 0.0 } else { out })
}

/// `DATETIME_DIFF(a, b, unit)`: `a - b` in `unit`, truncated toward zero like moment's `diff`.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] when a month step leaves chrono's range.
pub fn diff(a: DateTime<Utc>, b: DateTime<Utc>, unit: Unit) -> Result<f64, ErrorKind> {
    let raw = match unit.fixed_millis() {
        Some(per) => (a - b).num_milliseconds() as f64 / per,
        None => {
            let months = month_diff(a, b)?;
            match unit {
                Unit::Quarter => months / 3.0,
                Unit::Year => months / 12.0,
                _ => months,
            }
        }
    };
    let out = raw.trunc();
    Ok(if out == 0.0 { 0.0 } else { out })
}

/// The start of the `unit` that holds `t` (weeks start on Sunday).
#[must_use]
pub fn start_of(t: DateTime<Utc>, unit: Unit) -> Option<DateTime<Utc>> {
    let d = t.date_naive();
    let midnight = |d: NaiveDate| Some(d.and_time(NaiveTime::MIN).and_utc());
    match unit {
        Unit::Millisecond => DateTime::from_timestamp_millis(t.timestamp_millis()),
        Unit::Second => DateTime::from_timestamp(t.timestamp(), 0),
        Unit::Minute => t.with_second(0)?.with_nanosecond(0),
        Unit::Hour => t.with_minute(0)?.with_second(0)?.with_nanosecond(0),
        Unit::Day => midnight(d),
        Unit::Week => midnight(d.checked_sub_signed(Duration::days(i64::from(
            d.weekday().num_days_from_sunday(),
        )))?),
        Unit::Month => midnight(d.with_day(1)?),
        Unit::Quarter => midnight(NaiveDate::from_ymd_opt(
            d.year(),
            d.month0() / 3 * 3 + 1,
            1,
        )?),
        Unit::Year => midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1)?),
    }
}

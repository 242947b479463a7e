//! Parsing of raw cell text: timestamps (ISO-8601 date or datetime, with or without zone — naive
//! means UTC — epoch seconds/milliseconds/microseconds, or a configured chrono format) and amounts.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];
const ZONED_FORMATS: &[&str] = &["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"];

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some(days_since_epoch(d))
}

pub(crate) fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

/// Parses a timestamp into microseconds since the Unix epoch (UTC).
///
/// Errors carry a hint of the formats we accept.
pub fn parse_timestamp_micros(text: &str, format: Option<&str>) -> Result<i64, String> {
    let s = text.trim();
    if let Some(fmt) = format {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(dt.and_utc().timestamp_micros());
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Ok(i64::from(days_since_epoch(d)) * MICROS_PER_DAY);
        }
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Ok(dt.timestamp_micros());
        }
        return Err(format!("expected the configured format `{fmt}`"));
    }
    let b = s.as_bytes();
    if let Some(micros) = fast_naive_iso(b) {
        return Ok(micros);
    }
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(i64::from(days_since_epoch(d)) * MICROS_PER_DAY);
        }
    } else if b.len() >= 16 && b[4] == b'-' {
        for fmt in NAIVE_FORMATS {
            if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(dt.and_utc().timestamp_micros());
            }
        }
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Ok(dt.timestamp_micros());
        }
        for fmt in ZONED_FORMATS {
            if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
                return Ok(dt.timestamp_micros());
            }
        }
    } else if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || c == b'-' || c == b'.')
    {
        if let Some(micros) = compact_date(s) {
            return Ok(micros);
        }
        if let Ok(v) = s.parse::<f64>() {
            return epoch_micros(v);
        }
    }
    Err("expected an ISO-8601 date or datetime (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]), a compact YYYYMMDD[HHMMSS] or an epoch number; set orders.timestamp_format for other layouts".into())
}

/// The common zone-less ISO layouts without chrono's format machinery (the hot path of ingest):
/// `YYYY-MM-DD`, then optionally `[T ]HH:MM`, `:SS` and `.f` (1–9 digits). `None` sends the
/// text to the general parser.
fn fast_naive_iso(b: &[u8]) -> Option<i64> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let mut micros = i64::from(days_since_epoch(date)) * MICROS_PER_DAY;
    if b.len() == 10 {
        return Some(micros);
    }
    if b.len() < 16 || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' {
        return None;
    }
    let (hour, minute) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let mut second = 0;
    let mut rest = &b[16..];
    if let [b':', s1, s2, tail @ ..] = rest {
        second = digits(&[*s1, *s2])?;
        rest = tail;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut fraction = 0i64;
    if let [b'.', frac @ ..] = rest {
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let value = i64::from(digits(frac)?);
        fraction = value * 10i64.pow(9 - frac.len() as u32) / 1000;
        rest = &[];
    }
    if !rest.is_empty() {
        return None;
    }
    micros += (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1_000_000
        + fraction;
    Some(micros)
}

/// A compact date or datetime, `YYYYMMDD` (8 digits) or `YYYYMMDDHHMMSS` (14 digits), with a year
/// in 1900–2199; `None` for anything else (which may then be an epoch number).
pub(crate) fn compact_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !(b.len() == 8 || b.len() == 14) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year: i32 = s[0..4].parse().ok()?;
    if !(1900..2200).contains(&year) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, s[4..6].parse().ok()?, s[6..8].parse().ok()?)?;
    let mut micros = i64::from(days_since_epoch(date)) * MICROS_PER_DAY;
    if b.len() == 14 {
        let (h, m, sec): (i64, i64, i64) = (
            s[8..10].parse().ok()?,
            s[10..12].parse().ok()?,
            s[12..14].parse().ok()?,
        );
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        micros += (h * 3600 + m * 60 + sec) * 1_000_000;
    }
    Some(micros)
}

/// Smallest magnitude read as epoch seconds: 1e8 s is 1973-03-03. Smaller all-digit values
/// (`2024`, `20240310` when not a valid date) are not timestamps anyone exports.
const EPOCH_SECONDS_MIN: f64 = 1e8;

/// A numeric timestamp → microseconds. An integral value of 8 or 14 digits that is a valid
/// compact date (`20240310`, `20240310123000`) is that date; otherwise the magnitude decides the
/// epoch unit: from 1e8 seconds, from 1e11 milliseconds, from 1e14 microseconds, from 1e17
/// nanoseconds. Smaller magnitudes are refused rather than read as a day in 1970.
pub(crate) fn numeric_timestamp(v: f64) -> Result<i64, String> {
    if v.is_finite() && v.fract() == 0.0 && (1e7..1e14).contains(&v) {
        if let Some(micros) = compact_date(&format!("{v:.0}")) {
            return Ok(micros);
        }
    }
    epoch_micros(v)
}

/// Epoch number → microseconds by magnitude (see [`numeric_timestamp`]).
pub(crate) fn epoch_micros(v: f64) -> Result<i64, String> {
    if !v.is_finite() {
        return Err("not a finite epoch number".into());
    }
    let a = v.abs();
    if a < EPOCH_SECONDS_MIN {
        return Err(format!(
            "{v} is too small for an epoch timestamp (before 1973 in seconds) and is not a YYYYMMDD date; set orders.timestamp_format if it is a date"
        ));
    }
    let micros = if a < 1e11 {
        v * 1e6
    } else if a < 1e14 {
        v * 1e3
    } else if a < 1e17 {
        v
    } else {
        v / 1e3
    };
    // Keep within chrono's representable range (about ±262,000 years).
    if micros.abs() > 8.0e18 {
        return Err("epoch value out of range".into());
    }
    Ok(micros.round() as i64)
}

/// Largest order amount accepted, in the shop's currency. Far above any real order, and small
/// enough that sums over billions of orders stay finite (and exact to the cent well past 1e9).
pub const MAX_AMOUNT: f64 = 1e15;

/// Checks a numeric amount: finite and within ±[`MAX_AMOUNT`].
pub(crate) fn check_amount(v: f64) -> Result<f64, String> {
    if !v.is_finite() {
        Err("not a finite number".into())
    } else if v.abs() > MAX_AMOUNT {
        Err(format!("{v:e} is out of range (|amount| ≤ 1e15)"))
    } else {
        Ok(v)
    }
}

/// Parses a decimal amount; rejects NaN and infinities.
pub(crate) fn parse_amount(text: &str) -> Result<f64, String> {
    let s = text.trim();
    match s.parse::<f64>() {
        Ok(v) => check_amount(v),
        Err(_) => {
            Err("expected a decimal number with `.` as the decimal point, e.g. 1234.50".into())
        }
    }
}

/// Floor division of microseconds into days since the epoch.
pub(crate) fn micros_to_day(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    (NaiveDate::default() + chrono::Duration::days(i64::from(day)))
        .format("%Y-%m-%d")
        .to_string()
}

/// Microseconds since the epoch as shown in a message: `2024-03-01 10:00:00` (fractional
/// seconds when present).
pub(crate) fn format_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.naive_utc().to_string())
        .unwrap_or_else(|| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> i32 {
        micros_to_day(parse_timestamp_micros(s, None).unwrap())
    }

    #[test]
    fn iso_shapes_and_zones() {
        let d = parse_date("1997-01-01").unwrap();
        assert_eq!(d, 9862);
        assert_eq!(day("1997-01-01"), d);
        assert_eq!(day("1997-01-01T23:59:59"), d);
        assert_eq!(day("1997-01-01 10:00:00.123"), d);
        assert_eq!(day("1997-01-01T10:00:00Z"), d);
        // 23:30 at UTC-02:00 is the next UTC day.
        assert_eq!(day("1997-01-01T23:30:00-02:00"), d + 1);
        assert_eq!(day("852076800"), d);
        assert_eq!(day("852076800000"), d);
        assert_eq!(day("852076800000000"), d);
        assert_eq!(day("852076800000000000"), d);
    }

    #[test]
    fn compact_dates_are_dates_and_small_numbers_are_not_epochs() {
        let d = parse_date("2024-03-10").unwrap();
        assert_eq!(day("20240310"), d);
        assert_eq!(
            parse_timestamp_micros("20240310233000", None).unwrap() - i64::from(d) * MICROS_PER_DAY,
            (23 * 3600 + 30 * 60) * 1_000_000
        );
        assert_eq!(micros_to_day(numeric_timestamp(20240310.0).unwrap()), d);
        for bad in ["2024", "20241310", "12345"] {
            let e = parse_timestamp_micros(bad, None).unwrap_err();
            assert!(
                e.contains("too small") || e.contains("expected"),
                "{bad}: {e}"
            );
        }
        assert!(numeric_timestamp(2024.0).is_err());
        assert!(check_amount(1e308).is_err());
        assert_eq!(check_amount(-12.5), Ok(-12.5));
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for text in [
            "2024-02-29",
            "2024-02-29T23:59:59",
            "2024-02-29 23:59",
            "1999-12-31T00:00:00.5",
            "2024-01-01 10:11:12.123456789",
        ] {
            let fast = fast_naive_iso(text.as_bytes()).unwrap();
            let slow = NAIVE_FORMATS
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|d| d.and_utc().timestamp_micros())
                .unwrap_or_else(|| i64::from(parse_date(text).unwrap()) * MICROS_PER_DAY);
            assert_eq!(fast, slow, "{text}");
        }
        for bad in [
            "2023-02-29",
            "2024-01-01T24:00",
            "2024-01-01T10:00Z",
            "2024-01-01T10:00:00+02:00",
            "2024-1-01",
        ] {
            assert!(fast_naive_iso(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn configured_format_and_errors() {
        let us = parse_timestamp_micros("19970101", Some("%Y%m%d")).unwrap();
        assert_eq!(micros_to_day(us), 9862);
        assert!(parse_timestamp_micros("2024-13-01", None).is_err());
        assert!(parse_timestamp_micros("yesterday", None).is_err());
        assert!(parse_amount("12,5").is_err());
        assert!(parse_amount("NaN").is_err());
        assert_eq!(parse_amount(" -3.5 "), Ok(-3.5));
    }
}

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
        if let Ok(v) = s.parse::<f64>() {
            return epoch_micros(v);
        }
    }
    Err("expected an ISO-8601 date or datetime (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]) or epoch seconds; set orders.timestamp_format for other layouts".into())
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

/// Epoch number → microseconds: below 1e11 it is seconds, below 1e14 milliseconds, else microseconds.
pub(crate) fn epoch_micros(v: f64) -> Result<i64, String> {
    if !v.is_finite() {
        return Err("not a finite epoch number".into());
    }
    let a = v.abs();
    let micros = if a < 1e11 {
        v * 1e6
    } else if a < 1e14 {
        v * 1e3
    } else {
        v
    };
    // Keep within chrono's representable range (about ±262,000 years).
    if micros.abs() > 8.0e18 {
        return Err("epoch value out of range".into());
    }
    Ok(micros.round() as i64)
}

/// Parses a decimal amount; rejects NaN and infinities.
pub(crate) fn parse_amount(text: &str) -> Result<f64, String> {
    let s = text.trim();
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("not a finite number".into()),
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

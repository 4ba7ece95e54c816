//! Timestamp parsing for every input format: integer epoch milliseconds, RFC 3339, and the
//! `YYYY-MM-DD HH:MM:SS[.ffffff]` form NAB writes (taken as UTC).
//!
//! Hand-written because it is on the hot path of CSV and adapter-shaped JSON, the accepted forms
//! are few and fixed, and every malformed input must come back as an error, never a panic.

use operators::series::EventTime;
use operators::time_format::days_from_civil;

/// Largest accepted timestamp (exclusive): 2200-01-01T00:00:00Z. Later values are almost always
/// a unit mistake (microseconds or nanoseconds sent as milliseconds).
pub const MAX_TIMESTAMP_MS: i128 = 7_258_118_400_000;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// Not a recognised form.
    Malformed(String),
    /// Recognised but before 1970 or from 2200 on.
    OutOfRange(String),
}

/// Checks an epoch-milliseconds value against the supported range.
pub fn check_range(ms: i128) -> Result<EventTime, TimestampError> {
    if (0..MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(ms as EventTime)
    } else {
        Err(TimestampError::OutOfRange(format!(
            "timestamp {ms} ms is outside 1970-01-01..2200-01-01"
        )))
    }
}

/// Parses a textual timestamp: all digits → epoch milliseconds; otherwise RFC 3339 or NAB form.
pub fn parse_text(s: &str) -> Result<EventTime, TimestampError> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<i128>() {
            Ok(ms) => check_range(ms),
            Err(_) => Err(TimestampError::OutOfRange(format!(
                "timestamp {t:?} is too large"
            ))),
        };
    }
    parse_datetime(t)
}

/// Parses `YYYY-MM-DD(T| )HH:MM:SS[.fraction][Z|±HH:MM]`; no zone means UTC.
pub fn parse_datetime(s: &str) -> Result<EventTime, TimestampError> {
    let malformed = || TimestampError::Malformed(format!("unrecognised timestamp {s:?}"));
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(malformed());
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        return Err(malformed());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(malformed());
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(malformed());
    }
    let mut i = 19;
    let mut millis = 0i128;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i128::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(malformed());
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i128 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (Some(h), Some(m)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(malformed());
            };
            if h > 23 || m > 59 {
                return Err(malformed());
            }
            let minutes = i128::from(h * 60 + m);
            if sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return Err(malformed()),
    };
    let days = i128::from(days_from_civil(i64::from(year), month, day));
    // A leap second (:60) is folded into the next second, as most systems do.
    let secs = days * 86_400 + i128::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    check_range(secs * 1000 + millis)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_text("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_text("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_text("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(
            parse_text("2023-11-14t22:13:20.123456z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_text("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_text("2023-11-14T20:13:20-02:00"),
            Ok(1_700_000_000_000)
        );
        // NAB form, taken as UTC.
        assert_eq!(parse_text("2014-07-01 00:00:00"), Ok(1_404_172_800_000));
        assert_eq!(
            parse_text("2014-04-10 07:15:00.000000"),
            Ok(1_397_114_100_000)
        );
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20Zjunk",
            "2023-11-14X22:13:20Z",
            "２０２３-11-14T22:13:20Z",
        ] {
            assert!(
                matches!(parse_text(bad), Err(TimestampError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_text("1969-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_text("-5"),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_text("1700000000000000000"),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_text("99999999999999999999999999999999999999999"),
            Err(TimestampError::OutOfRange(_))
        ));
    }

    #[test]
    fn leap_years() {
        assert!(parse_text("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_text("2000-02-29T00:00:00Z").is_ok());
        assert!(parse_text("2100-02-29T00:00:00Z").is_err());
    }
}

//! Docker's timestamps for `since`/`until` (query parameters and filters), as its
//! `api/types/time` package (`GetTimestamp`) reads them: a Go duration meaning that long
//! before now (`10m`, `1h30m`, `-5s`), Unix seconds with an optional fraction
//! (`1700000000.5`), or an RFC 3339 date and time, where a date alone or a time without a
//! zone is taken as UTC (Docker takes the daemon's zone, which is UTC where berth runs).

/// `text` as nanoseconds since the Unix epoch; `now_nanos` anchors durations. `None` when it
/// is none of the forms above.
pub fn parse(text: &str, now_nanos: i64) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let s: i64 = secs.parse().ok()?;
        let f: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return s.checked_mul(1_000_000_000)?.checked_add(f);
    }
    if let Ok(d) = crate::duration::parse(t) {
        return now_nanos.checked_sub(d);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return d.timestamp_nanos_opt();
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return d.and_utc().timestamp_nanos_opt();
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|d| d.and_utc().timestamp_nanos_opt())
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 2_000_000_000 * 1_000_000_000;

    #[test]
    fn unix_seconds() {
        assert_eq!(parse("1700000000", NOW), Some(1_700_000_000_000_000_000));
        assert_eq!(parse("1700000000.5", NOW), Some(1_700_000_000_500_000_000));
        assert_eq!(parse("0", NOW), Some(0));
        assert_eq!(parse("1.0000000001", NOW), None);
        assert_eq!(parse("99999999999999999999", NOW), None);
    }

    #[test]
    fn go_durations_before_now() {
        assert_eq!(parse("10m", NOW), Some(NOW - 600_000_000_000));
        assert_eq!(parse("1h30m", NOW), Some(NOW - 5_400_000_000_000));
        assert_eq!(parse("-5s", NOW), Some(NOW + 5_000_000_000));
        assert_eq!(parse("10x", NOW), None);
    }

    #[test]
    fn rfc3339_and_shorter_forms() {
        assert_eq!(
            parse("2023-11-14T22:13:20Z", NOW),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse("2023-11-14T23:13:20+01:00", NOW),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse("2023-11-14T22:13:20.25", NOW),
            Some(1_700_000_000_250_000_000)
        );
        assert_eq!(
            parse("2023-11-14T22:13", NOW),
            Some(1_699_999_980_000_000_000)
        );
        assert_eq!(parse("2023-11-14", NOW), Some(1_699_920_000_000_000_000));
        assert_eq!(parse("yesterday", NOW), None);
        assert_eq!(parse("", NOW), None);
    }
}

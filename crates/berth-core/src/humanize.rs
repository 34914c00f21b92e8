//! Durations and sizes the way the docker CLI shows them ("5 seconds", "4.12MB").

/// Docker's rough durations: "Less than a second", "5 seconds", "About a minute", "3 hours"…
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_owned(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_owned(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

/// Docker's human sizes: decimal units and three significant digits ("4.12MB", "512kB",
/// "0B"), as `docker images` shows them.
pub fn size(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes.max(0.0);
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant3(v), UNITS[i])
}

/// Go's `%.3g` for values below 1000: three significant digits, no trailing zeros.
fn significant3(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let digits_before = (v.abs().log10().floor() as i32 + 1).max(1);
    let decimals = (3 - digits_before).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Docker's byte sizes (go-units' RAMInBytes): a number, an optional blank, an optional
/// unit k, m, g, t, p with an optional "i" and "b" ("512mb", "1KiB", "64 m"), powers of 1024.
pub fn parse_ram_bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((n * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(0.0), "0B");
        assert_eq!(size(4_123_456.0), "4.12MB");
        assert_eq!(size(512_000.0), "512kB");
        assert_eq!(size(1_500_000_000.0), "1.5GB");
        assert_eq!(size(999.0), "999B");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(duration(0), "Less than a second");
        assert_eq!(duration(5), "5 seconds");
        assert_eq!(duration(90), "About a minute");
        assert_eq!(duration(7200), "2 hours");
    }
}

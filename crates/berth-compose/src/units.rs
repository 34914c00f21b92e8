//! Durations and byte sizes as compose files write them and as Go prints them: durations
//! accept `1h30m`, `1.5s`, `500ms`, `2d`, `1w` and print as Go's `time.Duration` does
//! (`1h0m0s`, `1m30s`, `500ms`); sizes accept `64m`, `1.5g`, `12mb` (binary multiples, as
//! docker's go-units reads memory).

/// A duration in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "" => return Err(format!("missing unit in duration {text:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
        };
        total += number * scale;
    }
    let nanos = total.round() as i64;
    Ok(if neg { -nanos } else { nanos })
}

/// Prints nanoseconds as Go's `time.Duration.String`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let hours = secs_total / 3600;
        let minutes = (secs_total % 3600) / 60;
        let sub = u % 60_000_000_000;
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&fraction(sub, 1_000_000_000));
        out.push('s');
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// `value / div` with the fraction's trailing zeros dropped.
fn fraction(value: u64, div: u64) -> String {
    let whole = value / div;
    let frac = value % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A memory size in bytes: a number with an optional unit (`k`, `m`, `g`, `t`, `p`, each
/// optionally followed by `b`/`ib`), binary multiples: berth-core's parser, with the error
/// text compose-go gives.
pub fn ram_in_bytes(text: &str) -> Result<i64, String> {
    berth_core::humanize::parse_ram_bytes(text).ok_or_else(|| format!("invalid size: '{text}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        for (input, want) in [
            ("1m30s", "1m30s"),
            ("90s", "1m30s"),
            ("500ms", "500ms"),
            ("1h", "1h0m0s"),
            ("2h3m4s", "2h3m4s"),
            ("1.5s", "1.5s"),
            ("0s", "0s"),
            ("0", "0s"),
            ("1d", "24h0m0s"),
            ("10us", "10µs"),
            ("1500ns", "1.5µs"),
            ("1m0.5s", "1m0.5s"),
        ] {
            assert_eq!(go_duration(parse_duration(input).unwrap()), want, "{input}");
        }
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn sizes_are_binary_multiples() {
        assert_eq!(ram_in_bytes("64m"), Ok(67108864));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1610612736));
        assert_eq!(ram_in_bytes("12mb"), Ok(12582912));
        assert_eq!(ram_in_bytes("2gb"), Ok(2147483648));
        assert_eq!(ram_in_bytes("52428800"), Ok(52428800));
        assert_eq!(ram_in_bytes("1KiB"), Ok(1024));
        assert!(ram_in_bytes("lots").is_err());
        assert!(ram_in_bytes("5q").is_err());
    }
}

//! Durations and byte sizes as compose files write them and as Go prints them: durations
//! accept `1h30m`, `1.5s`, `500ms`, `2d`, `1w` and print as Go's `time.Duration` does
//! (`1h0m0s`, `1m30s`, `500ms`); sizes accept `64m`, `1.5g`, `12mb` (binary multiples, as
//! docker's go-units reads memory).

/// A duration in nanoseconds: Go's `time.ParseDuration` (berth-core's), plus the `d` and
/// `w` units compose-go's parser (str2duration) accepts (`1d12h`, `2w`).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let s = text.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // Days and weeks are taken out; what is left is Go's syntax.
    let mut days_nanos: f64 = 0.0;
    let mut rest = String::new();
    let mut number = String::new();
    for c in body.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'd' | 'w' if !number.is_empty() => {
                let n: f64 = number
                    .parse()
                    .map_err(|_| format!("time: invalid duration {text:?}"))?;
                days_nanos += n * if c == 'd' { 86_400e9 } else { 7.0 * 86_400e9 };
                number.clear();
            }
            _ => {
                rest.push_str(&number);
                number.clear();
                rest.push(c);
            }
        }
    }
    rest.push_str(&number);
    let rest_nanos = if rest.is_empty() {
        if days_nanos == 0.0 {
            return Err(format!("time: invalid duration {text:?}"));
        }
        0
    } else {
        berth_core::duration::parse(&rest).map_err(|e| {
            e.to_string()
                .replace(&format!("{rest:?}"), &format!("{text:?}"))
        })?
    };
    let total = days_nanos as i64 + rest_nanos;
    Ok(if neg { -total } else { total })
}

/// Prints nanoseconds as Go's `time.Duration.String` (berth-core's).
pub fn go_duration(nanos: i64) -> String {
    berth_core::duration::format(nanos)
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
        assert_eq!(go_duration(parse_duration("1d12h").unwrap()), "36h0m0s");
        assert_eq!(go_duration(parse_duration("2w").unwrap()), "336h0m0s");
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

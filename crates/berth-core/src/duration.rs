//! Go's durations, as Docker reads and prints them: healthcheck intervals
//! (`--health-interval 30s`, `HEALTHCHECK --interval=…`), `--since 10m`, `until=24h`.
//!
//! [`parse`] is Go's `time.ParseDuration` (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units `ns`,
//! `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`, the bare `0`), with its overflow checks and its error
//! texts; [`format`] is `time.Duration.String`. Values are nanoseconds in an `i64`, as Go's
//! `time.Duration` is.

use std::fmt;

/// Why a text is not a Go duration; the message is Go's (`time: invalid duration "x"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

const NANOS_PER_UNIT: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// 2^63, the magnitude of the most negative duration.
const LIMIT: u64 = 1 << 63;

/// Parses a Go duration (`1h2m3.5s`, `300ms`, `-1.5h`, `0`) into nanoseconds.
pub fn parse(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {}", quote(text)));
    let mut s = text;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part, [0-9]*.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut int: u64 = 0;
        for b in s[..digits].bytes() {
            if int > LIMIT / 10 {
                return Err(invalid());
            }
            int = int * 10 + u64::from(b - b'0');
            if int > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[digits..];
        // The fraction, (\.[0-9]*)?: digits past what a u64 holds only stop adding precision.
        let (mut frac, mut scale, mut frac_digits) = (0u64, 1f64, 0);
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            frac_digits = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in s[..frac_digits].bytes() {
                if overflow || frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(b - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            s = &s[frac_digits..];
        }
        if digits == 0 && frac_digits == 0 {
            return Err(invalid()); // ".s", "-.s"
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError(format!(
                "time: missing unit in duration {}",
                quote(text)
            )));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let Some(&(_, per)) = NANOS_PER_UNIT.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError(format!(
                "time: unknown unit {} in duration {}",
                quote(unit),
                quote(text)
            )));
        };
        if int > LIMIT / per {
            return Err(invalid());
        }
        let mut v = int * per;
        if frac > 0 {
            // As Go does: a float is exact to the nanosecond for fractions of an hour.
            v += (frac as f64 * (per as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Go's `time.Duration.String`: `1h0m0s`, `1.5s`, `300ms`, `1.5µs`, `0s`.
pub fn format(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Below a second: the largest of ns, µs, ms that keeps an integer part.
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
        let h = u / 3_600_000_000_000;
        let rem = u % 3_600_000_000_000;
        let m = rem / 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(rem % 60_000_000_000, 1_000_000_000));
        out.push('s');
    }
    out
}

/// `v / div` with the fraction's trailing zeros dropped.
fn fraction(v: u64, div: u64) -> String {
    let (int, rem) = (v / div, v % div);
    if rem == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// The quoting of Go's `time` package errors: `"` and `\` escaped, bytes of anything not
/// printable ASCII as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' && c != '\x7f' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_like_go() {
        assert_eq!(parse("1h2m3.5s"), Ok(3723 * S + S / 2));
        assert_eq!(parse("300ms"), Ok(300_000_000));
        assert_eq!(parse("-1.5h"), Ok(-5400 * S));
        assert_eq!(parse("+5s"), Ok(5 * S));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-0"), Ok(0));
        assert_eq!(parse("0s"), Ok(0));
        assert_eq!(parse("1us"), Ok(1_000));
        assert_eq!(parse("1µs"), Ok(1_000));
        assert_eq!(parse("1μs"), Ok(1_000));
        assert_eq!(parse("7ns"), Ok(7));
        assert_eq!(parse(".5s"), Ok(S / 2));
        assert_eq!(parse("5.s"), Ok(5 * S));
        assert_eq!(parse("1.0000000001s"), Ok(S));
        assert_eq!(parse("0.1ns"), Ok(0));
        assert_eq!(parse("1h1h"), Ok(7200 * S));
        assert_eq!(parse("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(parse("-9223372036854775808ns"), Ok(i64::MIN));
        assert_eq!(parse("2562047h47m16.854775807s"), Ok(i64::MAX));
    }

    #[test]
    fn errors_are_gos() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(err(""), "time: invalid duration \"\"");
        assert_eq!(err("-"), "time: invalid duration \"-\"");
        assert_eq!(err("s"), "time: invalid duration \"s\"");
        assert_eq!(err(".s"), "time: invalid duration \".s\"");
        assert_eq!(err("1..2s"), "time: missing unit in duration \"1..2s\"");
        assert_eq!(err(" 1s"), "time: invalid duration \" 1s\"");
        assert_eq!(err("5"), "time: missing unit in duration \"5\"");
        assert_eq!(err("1s5"), "time: missing unit in duration \"1s5\"");
        assert_eq!(err("5x"), "time: unknown unit \"x\" in duration \"5x\"");
        assert_eq!(err("3d"), "time: unknown unit \"d\" in duration \"3d\"");
        assert_eq!(err("1S"), "time: unknown unit \"S\" in duration \"1S\"");
        assert_eq!(
            err("9223372036854775808ns"),
            "time: invalid duration \"9223372036854775808ns\""
        );
        assert_eq!(err("3000000h"), "time: invalid duration \"3000000h\"");
        assert_eq!(
            err("1é"),
            "time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\""
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(0), "0s");
        assert_eq!(format(30 * S), "30s");
        assert_eq!(format(300 * S), "5m0s");
        assert_eq!(format(3600 * S), "1h0m0s");
        assert_eq!(format(3723 * S + S / 2), "1h2m3.5s");
        assert_eq!(format(S + S / 2), "1.5s");
        assert_eq!(format(300_000_000), "300ms");
        assert_eq!(format(1_500), "1.5µs");
        assert_eq!(format(7), "7ns");
        assert_eq!(format(-S), "-1s");
        assert_eq!(format(i64::MIN), "-2562047h47m16.854775808s");
        for text in ["1h2m3.5s", "300ms", "-1.5s", "2562047h47m16.854775807s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}

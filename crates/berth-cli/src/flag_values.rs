//! The values of `run`/`create` flags as the docker CLI parses them (`cli/opts` and
//! `cli/command/container/opts.go`): sizes, CPU counts, integers, devices, device cgroup
//! rules and namespace modes, with its words for a bad value. A value the CLI takes as a
//! string is checked here, so that a bad one is Docker's `invalid argument "x" for "--flag"
//! flag: …` and exit 125, not clap's usage error (exit 2).

use serde_json::{json, Value};

/// pflag's words for a value its type refused: `invalid argument "x" for "--cpus" flag: …`.
/// `flag` is as pflag names it: `--cpus`, or `-c, --cpu-shares` with a short form.
pub fn invalid(value: &str, flag: &str, why: impl std::fmt::Display) -> String {
    format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}")
}

/// A byte size (`opts.MemBytes`: `64m`, `1g`, `512`), Docker's words when it is not one.
pub fn bytes(value: &str, flag: &str) -> Result<i64, String> {
    berth_core::humanize::parse_ram_bytes(value)
        .filter(|_| !value.trim_start().starts_with('-'))
        .ok_or_else(|| invalid(value, flag, format_args!("invalid size: '{value}'")))
}

/// `--memory-swap`: a size, or -1 for unlimited swap (`opts.MemSwapBytes`).
pub fn swap_bytes(value: &str, flag: &str) -> Result<i64, String> {
    if value == "-1" {
        Ok(-1)
    } else {
        bytes(value, flag)
    }
}

/// A Go `int64` flag (`strconv.ParseInt(s, 0, 64)`: a sign, then decimal, `0x`, `0o`, `0b`
/// or a leading-0 octal number).
pub fn int(value: &str, flag: &str) -> Result<i64, String> {
    let syntax = || {
        invalid(
            value,
            flag,
            format_args!("strconv.ParseInt: parsing \"{value}\": invalid syntax"),
        )
    };
    let (negative, digits) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    let magnitude = u128::from_str_radix(body, radix).map_err(|_| syntax())?;
    let signed = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    i64::try_from(signed).map_err(|_| {
        invalid(
            value,
            flag,
            format_args!("strconv.ParseInt: parsing \"{value}\": value out of range"),
        )
    })
}

/// `--cpus`: a rational number of CPUs (Go's `big.Rat`: `1.5`, `3/2`, `1e-1`) in units of
/// 10⁻⁹ CPUs (`NanoCpus`), refused when finer than that, as `opts.ParseCPUs` does.
pub fn nano_cpus(value: &str, flag: &str) -> Result<i64, String> {
    let not_rational = || {
        invalid(
            value,
            flag,
            format_args!("failed to parse {value} as a rational number"),
        )
    };
    let (num, den) = rational(value).ok_or_else(not_rational)?;
    let scaled = num.checked_mul(1_000_000_000).ok_or_else(not_rational)?;
    if scaled % den != 0 {
        return Err(invalid(value, flag, "value is too precise"));
    }
    i64::try_from(scaled / den).map_err(|_| not_rational())
}

/// A fraction `a/b` or a decimal with an optional exponent, as numerator and (positive)
/// denominator; None when it is neither (or too large to hold).
fn rational(text: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = text.split_once('/') {
        let num: i128 = a.parse().ok()?;
        let den: i128 = b.parse().ok().filter(|d: &i128| *d > 0)?;
        if b.starts_with('+') {
            return None;
        }
        return Some((num, den));
    }
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{frac}");
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 30 {
        return None;
    }
    let mut num: i128 = digits.parse().ok()?;
    let scale = exponent - frac.len() as i32;
    if scale.unsigned_abs() > 30 {
        return None;
    }
    let mut den: i128 = 1;
    if scale >= 0 {
        num = num.checked_mul(10i128.pow(scale as u32))?;
    } else {
        den = 10i128.pow(scale.unsigned_abs());
    }
    Some((if negative { -num } else { num }, den))
}

/// Go's `path.Clean` (lexical: `.`, `..` and repeated slashes go).
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// A device's cgroup permissions: some of `r`, `w`, `m`, each at most once.
fn device_mode(mode: &str) -> bool {
    let mut seen = String::new();
    !mode.is_empty()
        && mode.chars().all(|c| {
            let fresh = matches!(c, 'r' | 'w' | 'm') && !seen.contains(c);
            seen.push(c);
            fresh
        })
}

/// Whether `--device` names a CDI device (`vendor.com/class=name`) rather than a path.
pub fn is_cdi_name(device: &str) -> bool {
    match device.split_once('=') {
        Some((kind, name)) => {
            !device.starts_with('/')
                && !name.is_empty()
                && kind
                    .split_once('/')
                    .is_some_and(|(v, c)| !v.is_empty() && !c.is_empty())
        }
        None => false,
    }
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]` as a HostConfig `Devices` entry: the
/// container's path is the host's when absent, the permissions `rwm`. Checked and cleaned
/// as the docker CLI does (`validateLinuxPath`, then `parseLinuxDevice`).
pub fn device(spec: &str) -> Result<Value, String> {
    let bad_format = || format!("bad format for path: {spec}");
    if spec.matches(':').count() > 2 {
        return Err(bad_format());
    }
    let split: Vec<&str> = spec.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(bad_format());
    }
    let (host, container, mode) = match split[..] {
        [host] => (clean_path(host), None, None),
        [host, m] if device_mode(m) => (clean_path(host), None, Some(m)),
        [host, c] => (host.to_owned(), Some(c), None),
        [host, c, m] => {
            if !device_mode(m) {
                return Err(format!("bad mode specified: {m}"));
            }
            (host.to_owned(), Some(c), Some(m))
        }
        _ => return Err(bad_format()),
    };
    let checked = container.unwrap_or(&host);
    if !checked.starts_with('/') {
        return Err(format!("{checked} is not an absolute path"));
    }
    // Two parts clean the container's path, three leave it as given (as Docker's CLI does).
    let container = match (container, split.len()) {
        (Some(c), 2) => clean_path(c),
        (Some(c), _) => c.to_owned(),
        (None, _) => host.clone(),
    };
    Ok(json!({
        "PathOnHost": host,
        "PathInContainer": container,
        "CgroupPermissions": mode.unwrap_or("rwm"),
    }))
}

/// `--device-cgroup-rule`: `TYPE MAJOR:MINOR PERMISSIONS` (`c 1:3 mr`, `b *:* m`), checked
/// by berth-core's [`berth_core::device::CgroupRule`], which the runtime reads it with too.
pub fn device_cgroup_rule(rule: &str) -> Result<String, String> {
    match rule.parse::<berth_core::device::CgroupRule>() {
        Ok(_) => Ok(rule.to_owned()),
        Err(()) => Err(invalid(
            rule,
            "--device-cgroup-rule",
            format_args!("invalid device cgroup format '{rule}'"),
        )),
    }
}

/// `--pid`: empty, `host` or `container:NAME` (Docker's `PidMode.Valid`).
pub fn pid_mode(mode: &str) -> Result<(), String> {
    let valid = matches!(mode, "" | "host")
        || mode
            .strip_prefix("container:")
            .is_some_and(|n| !n.is_empty());
    valid
        .then_some(())
        .ok_or_else(|| "--pid: invalid PID mode".to_owned())
}

/// `--uts`: empty or `host`.
pub fn uts_mode(mode: &str) -> Result<(), String> {
    matches!(mode, "" | "host")
        .then_some(())
        .ok_or_else(|| "--uts: invalid UTS mode".to_owned())
}

/// `--userns`: empty or `host` (berth remaps no users, so both are what it does).
pub fn userns_mode(mode: &str) -> Result<(), String> {
    matches!(mode, "" | "host")
        .then_some(())
        .ok_or_else(|| "--userns: invalid USER mode".to_owned())
}

/// `--cgroupns`: empty (the daemon's default), `host` or `private`.
pub fn cgroupns_mode(mode: &str) -> Result<(), String> {
    matches!(mode, "" | "host" | "private")
        .then_some(())
        .ok_or_else(|| "--cgroupns: invalid CGROUP mode".to_owned())
}

/// `--memory-swappiness`: 0 to 100, or -1 (the default: the host's).
pub fn swappiness(value: &str) -> Result<i64, String> {
    let s = int(value, "--memory-swappiness")?;
    if s != -1 && !(0..=100).contains(&s) {
        return Err(format!(
            "invalid value: {s}. Valid memory swappiness range is 0-100"
        ));
    }
    Ok(s)
}

/// `--pull`: when to pull the image.
pub fn pull_policy(value: &str) -> Result<(), String> {
    matches!(value, "always" | "missing" | "never")
        .then_some(())
        .ok_or_else(|| {
            format!(
                "invalid pull option: '{value}': must be one of \"always\", \"missing\" or \"never\""
            )
        })
}

/// A file of `KEY=VALUE` lines (`--label-file`; Docker's `parseKeyValueFile` without an
/// environment): blank lines and `#` comments skipped, leading blanks trimmed, a key with a
/// blank refused.
pub fn key_value_lines(text: &str) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains(char::is_whitespace) {
            return Err(format!(
                "variable '{}' contains whitespaces",
                key.trim_start()
            ));
        }
        lines.push(line.to_owned());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_mem_bytes() {
        assert_eq!(bytes("64m", "--shm-size").unwrap(), 64 << 20);
        assert_eq!(bytes("8M", "--shm-size").unwrap(), 8 << 20);
        assert_eq!(bytes("1g", "-m, --memory").unwrap(), 1 << 30);
        assert_eq!(bytes("4096", "--shm-size").unwrap(), 4096);
        assert_eq!(
            bytes("x", "--shm-size").unwrap_err(),
            r#"invalid argument "x" for "--shm-size" flag: invalid size: 'x'"#
        );
        assert!(bytes("-5m", "--shm-size").is_err());
        assert_eq!(swap_bytes("-1", "--memory-swap").unwrap(), -1);
        assert_eq!(swap_bytes("1g", "--memory-swap").unwrap(), 1 << 30);
    }

    #[test]
    fn cpus_as_nano_cpus() {
        assert_eq!(nano_cpus("1.5", "--cpus").unwrap(), 1_500_000_000);
        assert_eq!(nano_cpus("3/2", "--cpus").unwrap(), 1_500_000_000);
        assert_eq!(nano_cpus("1e-1", "--cpus").unwrap(), 100_000_000);
        assert_eq!(nano_cpus(".5", "--cpus").unwrap(), 500_000_000);
        assert_eq!(nano_cpus("2", "--cpus").unwrap(), 2_000_000_000);
        assert_eq!(nano_cpus("0.000000001", "--cpus").unwrap(), 1);
        assert_eq!(
            nano_cpus("0.0000000001", "--cpus").unwrap_err(),
            r#"invalid argument "0.0000000001" for "--cpus" flag: value is too precise"#
        );
        assert_eq!(
            nano_cpus("x", "--cpus").unwrap_err(),
            r#"invalid argument "x" for "--cpus" flag: failed to parse x as a rational number"#
        );
        assert!(nano_cpus("1/0", "--cpus").is_err());
        assert!(nano_cpus("", "--cpus").is_err());
        assert!(nano_cpus("1.2.3", "--cpus").is_err());
    }

    #[test]
    fn integers_as_go_parses_them() {
        assert_eq!(int("100000", "--cpu-quota").unwrap(), 100_000);
        assert_eq!(int("-500", "--oom-score-adj").unwrap(), -500);
        assert_eq!(int("0x10", "--cpu-period").unwrap(), 16);
        assert_eq!(int("010", "--cpu-period").unwrap(), 8);
        assert_eq!(int("0", "--cpu-period").unwrap(), 0);
        assert_eq!(
            int("x", "-c, --cpu-shares").unwrap_err(),
            r#"invalid argument "x" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing "x": invalid syntax"#
        );
        assert!(int("99999999999999999999", "--cpu-quota")
            .unwrap_err()
            .ends_with("value out of range"));
        assert!(int("", "--cpu-quota").is_err());
        assert!(int("1.5", "--cpu-quota").is_err());
    }

    #[test]
    fn devices_as_the_docker_cli_sends_them() {
        let d = |spec| device(spec).unwrap();
        assert_eq!(
            d("/dev/null"),
            json!({"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"})
        );
        assert_eq!(
            d("/dev/zero:/dev/z"),
            json!({"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "rwm"})
        );
        assert_eq!(
            d("/dev/full:r"),
            json!({"PathOnHost": "/dev/full", "PathInContainer": "/dev/full", "CgroupPermissions": "r"})
        );
        assert_eq!(
            d("/dev/random:/dev/rr:rw"),
            json!({"PathOnHost": "/dev/random", "PathInContainer": "/dev/rr", "CgroupPermissions": "rw"})
        );
        assert_eq!(d("/dev//null")["PathInContainer"], "/dev/null");
        assert_eq!(d("/dev/zero:/dev/a/../z")["PathInContainer"], "/dev/z");
        assert_eq!(
            device("/dev/null:rx").unwrap_err(),
            "rx is not an absolute path"
        );
        assert_eq!(
            device("dev/null").unwrap_err(),
            "dev/null is not an absolute path"
        );
        assert_eq!(
            device("/dev/null:/a:/b:c").unwrap_err(),
            "bad format for path: /dev/null:/a:/b:c"
        );
        assert_eq!(
            device("/dev/null:/dev/x:rx").unwrap_err(),
            "bad mode specified: rx"
        );
        assert_eq!(
            device("/dev/null:/dev/x:rr").unwrap_err(),
            "bad mode specified: rr"
        );
        assert_eq!(
            device(":/dev/x").unwrap_err(),
            "bad format for path: :/dev/x"
        );
        assert!(is_cdi_name("vendor.com/class=name"));
        assert!(!is_cdi_name("/dev/null"));
        assert!(!is_cdi_name("/dev/a=b/c"));
    }

    #[test]
    fn device_cgroup_rules() {
        for ok in ["c 1:3 mr", "b *:* m", "a 7:* rwm", "c 10:200 rwm"] {
            assert_eq!(device_cgroup_rule(ok).unwrap(), ok);
        }
        for bad in [
            "foo",
            "x 1:3 r",
            "c 1:3",
            "c 1:3 rwmr",
            "c a:3 r",
            "c 1:3 rx",
            "c  1:3 r",
        ] {
            assert_eq!(
                device_cgroup_rule(bad).unwrap_err(),
                format!(
                    "invalid argument \"{bad}\" for \"--device-cgroup-rule\" flag: invalid device cgroup format '{bad}'"
                )
            );
        }
    }

    #[test]
    fn namespace_modes() {
        assert!(pid_mode("").is_ok() && pid_mode("host").is_ok());
        assert!(pid_mode("container:web").is_ok());
        assert_eq!(
            pid_mode("container:").unwrap_err(),
            "--pid: invalid PID mode"
        );
        assert_eq!(pid_mode("foo").unwrap_err(), "--pid: invalid PID mode");
        assert!(uts_mode("host").is_ok());
        assert_eq!(
            uts_mode("container:x").unwrap_err(),
            "--uts: invalid UTS mode"
        );
        assert!(userns_mode("host").is_ok());
        assert_eq!(
            userns_mode("private").unwrap_err(),
            "--userns: invalid USER mode"
        );
        assert!(cgroupns_mode("private").is_ok() && cgroupns_mode("host").is_ok());
        assert_eq!(
            cgroupns_mode("foo").unwrap_err(),
            "--cgroupns: invalid CGROUP mode"
        );
    }

    #[test]
    fn swappiness_and_pull() {
        assert_eq!(swappiness("-1").unwrap(), -1);
        assert_eq!(swappiness("60").unwrap(), 60);
        assert_eq!(
            swappiness("101").unwrap_err(),
            "invalid value: 101. Valid memory swappiness range is 0-100"
        );
        assert!(swappiness("x")
            .unwrap_err()
            .contains("\"--memory-swappiness\""));
        assert!(pull_policy("never").is_ok());
        assert_eq!(
            pull_policy("foo").unwrap_err(),
            r#"invalid pull option: 'foo': must be one of "always", "missing" or "never""#
        );
    }

    #[test]
    fn label_files() {
        assert_eq!(
            key_value_lines("\u{feff}# c\n\n  a=1\nb\nc=x y\n").unwrap(),
            ["a=1", "b", "c=x y"]
        );
        assert_eq!(
            key_value_lines("a b=1\n").unwrap_err(),
            "variable 'a b' contains whitespaces"
        );
    }
}

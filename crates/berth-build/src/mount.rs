//! `RUN --mount=…` values, read as BuildKit reads them: comma-separated `key=value` fields
//! (CSV, so a field may be quoted), `type` one of bind (the default), cache, tmpfs, secret, ssh.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// `from=`: a stage, image or (for cache) where to seed it from.
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub readonly: bool,
    /// tmpfs `size=` in bytes.
    pub size: Option<u64>,
    /// cache/secret/ssh `id=`.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    /// secret/ssh `required`.
    pub required: bool,
    /// secret `env=`: expose the secret as this variable.
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

fn e<T>(s: impl Into<String>) -> Result<T, MountError> {
    Err(MountError(s.into()))
}

/// Splits a CSV record (Go's csv reader: fields may be double-quoted, `""` is a quote).
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start => quoted = true,
            '"' => {
                return e(format!(
                    "failed to parse csv mounts: bare \" in non-quoted-field in {s:?}"
                ))
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return e(format!(
            "failed to parse csv mounts: extraneous or missing \" in quoted-field in {s:?}"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => e(format!("invalid value for {key}: {v}")),
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `512kb`, plain bytes.
fn ram_in_bytes(v: &str) -> Option<u64> {
    let lower = v.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let n: f64 = lower[..num_end].parse().ok()?;
    let mult: u64 = match lower[num_end..].trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// Expands a variable-holding value (the builder's lexer, bound to the current env).
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

impl Mount {
    /// Reads a `--mount` value. With `expand` each value is expanded first; without it
    /// (parse time) values that hold a `$` are left for later and only the rest is checked.
    pub fn parse(val: &str, expand: Option<Expander<'_>>) -> Result<Mount, MountError> {
        let mut m = Mount {
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            readonly: false,
            size: None,
            id: None,
            sharing: None,
            required: false,
            env: None,
            mode: None,
            uid: None,
            gid: None,
        };
        let mut ro_auto = true;
        for field in csv_fields(val)? {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(mut value) = value else {
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return e(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ))
                    }
                    _ => return e(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };
            match expand {
                Some(f) => value = f(&value).map_err(MountError)?,
                None if key == "from" => {
                    if let Some(i) = value.find('$') {
                        if i != value.len() - 1 {
                            return e(format!(
                                "'{key}' doesn't support variable expansion, define alias stage instead"
                            ));
                        }
                    }
                }
                None if value.contains('$') => continue,
                None => {}
            }
            match key.as_str() {
                "type" => {
                    m.kind = match value.to_ascii_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => return e(format!("unsupported mount type \"{value}\"")),
                    }
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    m.readonly = parse_bool(&key, &value)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = !parse_bool(&key, &value)?;
                    ro_auto = false;
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return e(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ));
                    }
                    m.required = parse_bool(&key, &value)?;
                }
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return e(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ));
                    }
                    m.size =
                        Some(ram_in_bytes(&value).ok_or_else(|| {
                            MountError(format!("invalid value for {key}: {value}"))
                        })?);
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return e(format!("unsupported sharing value \"{value}\"")),
                    })
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(&value, 8)
                            .map_err(|_| MountError(format!("invalid value {value} for mode")))?,
                    )
                }
                "uid" => {
                    m.uid = Some(
                        value
                            .parse()
                            .map_err(|_| MountError(format!("invalid value {value} for uid")))?,
                    )
                }
                "gid" => {
                    m.gid = Some(
                        value
                            .parse()
                            .map_err(|_| MountError(format!("invalid value {value} for gid")))?,
                    )
                }
                "env" => m.env = Some(value),
                _ => return e(format!("unexpected key '{key}' in '{field}'")),
            }
        }
        let file_info_allowed = matches!(
            m.kind,
            MountType::Secret | MountType::Ssh | MountType::Cache
        );
        if !file_info_allowed {
            for (set, what) in [
                (m.mode.is_some(), "mode"),
                (m.uid.is_some(), "uid"),
                (m.gid.is_some(), "gid"),
            ] {
                if set {
                    return e(format!("{what} not allowed for \"{}\" type mounts", m.kind));
                }
            }
        }
        if ro_auto {
            m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if m.kind == MountType::Secret {
            if m.from.is_some() {
                return e("secret mount should not have a from");
            }
            if m.sharing.is_some() {
                return e("secret mount should not define sharing");
            }
            if expand.is_some() && m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return e("invalid secret mount. one of source, target required");
            }
            if m.source.is_some() && m.id.is_some() {
                return e("both source and id can't be set");
            }
        }
        if m.sharing.is_some() && m.kind != MountType::Cache {
            return e(format!("invalid cache sharing set for {} mount", m.kind));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> Result<Mount, MountError> {
        let id = |v: &str| -> Result<String, String> { Ok(v.to_owned()) };
        Mount::parse(s, Some(&id))
    }

    #[test]
    fn mount_types_and_defaults() {
        let m = full("type=cache,target=/root/.cache,id=pip,sharing=locked").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert!(!m.readonly);
        let m = full("target=/src,from=build,source=/out").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly, "bind mounts are read-only unless rw");
        assert!(!full("type=bind,target=/src,rw").unwrap().readonly);
        let m = full("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = full("type=secret,id=token,env=TOKEN,required").unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = full("type=cache,target=/x,mode=0755,uid=1000").unwrap();
        assert_eq!((m.mode, m.uid), (Some(0o755), Some(1000)));
    }

    #[test]
    fn mount_errors() {
        for (s, msg) in [
            ("type=nfs", "unsupported mount type \"nfs\""),
            (
                "type=bind,target=/x,mode=0755",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=bind,required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=secret,from=x,id=a",
                "secret mount should not have a from",
            ),
            ("type=secret", "invalid secret mount"),
            (
                "type=tmpfs,sharing=shared",
                "invalid cache sharing set for tmpfs mount",
            ),
            ("type=cache,bogus=1", "unexpected key 'bogus'"),
            (
                "type=cache,target",
                "invalid field 'target' must be a key=value pair",
            ),
            ("type=cache,\"target=/x", "failed to parse csv mounts"),
        ] {
            let err = full(s).unwrap_err();
            assert!(err.0.contains(msg), "{s}: {err}");
        }
        // At parse time values with variables wait for the expansion, except from=.
        assert!(Mount::parse("type=cache,target=$DIR", None).is_ok());
        assert!(Mount::parse("type=bind,from=$STAGE,target=/x", None).is_err());
    }

    #[test]
    fn values_are_expanded() {
        let exp = |v: &str| -> Result<String, String> { Ok(v.replace("$DIR", "/cache")) };
        let m = Mount::parse("type=cache,target=$DIR", Some(&exp)).unwrap();
        assert_eq!(m.target.as_deref(), Some("/cache"));
    }
}

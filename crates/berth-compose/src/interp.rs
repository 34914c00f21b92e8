//! Variable interpolation in compose files, as the Compose Specification and compose-go
//! define it: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}`
//! (unset), `${VAR:?message}` / `${VAR?message}` (required), `${VAR:+other}` /
//! `${VAR+other}` (replacement when set), `$$` for a literal `$`. Defaults and replacements
//! are interpolated themselves, so they nest. A `$` that starts none of these stays as it is.
//! An unset variable without a default becomes empty and is reported back, so the caller can
//! warn as v2 does.

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// A `${` that is not closed or holds something other than a name and an operator.
    #[error("invalid interpolation format")]
    Invalid,
    /// `${VAR?message}` or `${VAR:?message}` with the variable missing.
    #[error("required variable {name} is missing a value{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Required { name: String, message: String },
}

/// The result of interpolating one string.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    pub text: String,
    /// Variables used without a value or default, in order of use.
    pub unset: Vec<String>,
}

/// Interpolates `input`, reading variables through `lookup`.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpError> {
    let mut out = Interpolated::default();
    expand(input, lookup, &mut out)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
) -> Result<(), InterpError> {
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let next = after.chars().next();
        match next {
            Some('$') => {
                out.text.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_and_rest = &after[1..];
                let end = closing_brace(body_and_rest).ok_or(InterpError::Invalid)?;
                braced(&body_and_rest[..end], lookup, out)?;
                rest = &body_and_rest[end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after
                    .char_indices()
                    .find(|(_, c)| !is_name_char(*c))
                    .map_or(after.len(), |(i, _)| i);
                let name = &after[..len];
                substitute(name, lookup, out);
                rest = &after[len..];
            }
            _ => {
                out.text.push('$');
                rest = after;
            }
        }
    }
    out.text.push_str(rest);
    Ok(())
}

/// The index of the `}` that closes a `${`, counting nested `${…}`.
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn substitute(name: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Interpolated) {
    match lookup(name) {
        Some(v) => out.text.push_str(&v),
        None => out.unset.push(name.to_owned()),
    }
}

/// The inside of `${…}`.
fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
) -> Result<(), InterpError> {
    let name_len = body
        .char_indices()
        .find(|(_, c)| !is_name_char(*c))
        .map_or(body.len(), |(i, _)| i);
    let name = &body[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(InterpError::Invalid);
    }
    let op = &body[name_len..];
    if op.is_empty() {
        substitute(name, lookup, out);
        return Ok(());
    }
    let value = lookup(name);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    // With a colon, an empty value counts as missing.
    let present = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let (kind, arg) = op.split_at(op.chars().next().map_or(0, char::len_utf8));
    match kind {
        "-" => {
            if present {
                out.text.push_str(value.as_deref().unwrap_or_default());
            } else {
                expand(arg, lookup, out)?;
            }
        }
        "+" => {
            if present {
                expand(arg, lookup, out)?;
            }
        }
        "?" => {
            if present {
                out.text.push_str(value.as_deref().unwrap_or_default());
            } else {
                let mut message = Interpolated::default();
                expand(arg, lookup, &mut message)?;
                return Err(InterpError::Required {
                    name: name.to_owned(),
                    message: message.text,
                });
            }
        }
        _ => return Err(InterpError::Invalid),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Result<String, InterpError> {
        let env = |k: &str| match k {
            "X" => Some("xv".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        interpolate(s, &env).map(|i| i.text)
    }

    #[test]
    fn every_form_of_the_spec() {
        let cases = [
            ("$$X", "$X"),
            ("a $ b", "a $ b"),
            ("$1", "$1"),
            ("${X}", "xv"),
            ("$X.y", "xv.y"),
            ("${X:-d}", "xv"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${U-d}", "d"),
            ("${X:+r}", "r"),
            ("${E:+r}", ""),
            ("${E+r}", "r"),
            ("${U+r}", ""),
            ("${U:-${X}-x}", "xv-x"),
            ("${X:?boom}", "xv"),
            ("$${X}", "${X}"),
            ("${U}", ""),
            ("a${X}b$X", "axvbxv"),
        ];
        for (input, want) in cases {
            assert_eq!(run(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn malformed_templates_are_invalid() {
        for input in ["${", "${}", "${X:x}", "${X/a/b}", "${1}", "${X"] {
            assert_eq!(run(input), Err(InterpError::Invalid), "{input}");
        }
    }

    #[test]
    fn required_variables_name_themselves() {
        assert_eq!(
            run("${U:?}").unwrap_err().to_string(),
            "required variable U is missing a value"
        );
        assert_eq!(
            run("${U?boom}").unwrap_err().to_string(),
            "required variable U is missing a value: boom"
        );
        assert_eq!(
            run("${E:?empty}").unwrap_err().to_string(),
            "required variable E is missing a value: empty"
        );
        assert_eq!(run("${E?empty}"), Ok(String::new()));
    }

    #[test]
    fn unset_variables_are_reported() {
        let r = interpolate("${A}${B:-x}$C", &|_| None).unwrap();
        assert_eq!(r.text, "x");
        assert_eq!(r.unset, ["A", "C"]);
    }
}

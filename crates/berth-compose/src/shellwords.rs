//! Splits a `command:`/`entrypoint:` string into words as compose-go does (go-shellwords,
//! no variable or backtick expansion): blanks separate words, single quotes are literal,
//! double quotes and backslashes escape. Like compose-go, the words end at the first
//! unquoted `;`, `&`, `|`, `<` or `>`: `echo a && echo b` is `["echo", "a"]` there, and it
//! must be the same here or the two tools would disagree on the service's config hash.

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid command line string")]
pub struct SplitError;

pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut buf = String::new();
    let mut in_word = false;
    let mut escaped = false;
    let mut single = false;
    let mut double = false;
    for c in line.chars() {
        if escaped {
            buf.push(c);
            escaped = false;
            in_word = true;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => {
                single = !single;
                in_word = true;
            }
            '"' if !single => {
                double = !double;
                in_word = true;
            }
            c if c.is_whitespace() && !single && !double => {
                if in_word {
                    words.push(std::mem::take(&mut buf));
                    in_word = false;
                }
            }
            ';' | '&' | '|' | '<' | '>' if !single && !double => break,
            c => {
                buf.push(c);
                in_word = true;
            }
        }
    }
    if single || double || escaped {
        return Err(SplitError);
    }
    if in_word {
        words.push(buf);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_compose_go() {
        let cases: &[(&str, &[&str])] = &[
            ("echo a && echo b", &["echo", "a"]),
            ("echo a;b", &["echo", "a"]),
            (r#"a\ b "c \" d" e\\f"#, &["a b", "c \" d", "e\\f"]),
            ("x 'y z' \"\"", &["x", "y z", ""]),
            ("echo `date`", &["echo", "`date`"]),
            ("p=1 q", &["p=1", "q"]),
            ("  spaced   out ", &["spaced", "out"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(split(line).unwrap(), *want, "{line}");
        }
        assert_eq!(split("a \"b"), Err(SplitError));
    }
}

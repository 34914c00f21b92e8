//! Builder flags (`--mount=…`, `--from=…`, `--link`): [`Flags`] checks the ones given against
//! those an instruction accepts (unknown, duplicate, missing or non-boolean values, with
//! BuildKit's texts) and reads their values.

/// The builder flags an instruction accepts.
#[derive(Default)]
pub(super) struct Flags {
    values: Vec<(String, Kind, Vec<String>, bool)>,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Bool,
    Str,
    Strs,
}

impl Flags {
    pub(super) fn new(spec: &[(&str, Kind)]) -> Flags {
        Flags {
            values: spec
                .iter()
                .map(|(n, k)| ((*n).to_owned(), *k, Vec::new(), false))
                .collect(),
        }
    }

    pub(super) fn parse(mut self, given: &[String]) -> Result<Flags, String> {
        for a in given {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(slot) = self.values.iter_mut().find(|f| f.0 == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            if slot.3 && slot.1 != Kind::Strs {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            slot.3 = true;
            match slot.1 {
                Kind::Bool => {
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None => "true",
                        Some("") => return Err(format!("missing a value on flag: --{name}")),
                        Some("true") => "true",
                        Some("false") => "false",
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            ))
                        }
                    };
                    slot.2 = vec![v.to_owned()];
                }
                Kind::Str | Kind::Strs => {
                    let Some(v) = value else {
                        return Err(format!("missing a value on flag: --{name}"));
                    };
                    if slot.1 == Kind::Str {
                        slot.2 = vec![v.to_owned()];
                    } else {
                        slot.2.push(v.to_owned());
                    }
                }
            }
        }
        Ok(self)
    }

    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|f| f.0 == name && f.3)
            .and_then(|f| f.2.first().cloned())
    }

    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|f| f.0 == name)
            .map(|f| f.2.clone())
            .unwrap_or_default()
    }

    pub(super) fn boolean(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

pub(super) fn no_flags(flags: &[String]) -> Result<(), String> {
    Flags::new(&[]).parse(flags).map(|_| ())
}

#[cfg(test)]
mod tests {
    use crate::parser::testutil::{cmd, parse};
    use crate::parser::{Command, CommandLine, Dockerfile};

    #[test]
    fn flags() {
        let d = parse(
            "FROM a\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none make\n",
        );
        match &d.instructions[1].command {
            Command::Run(r) => {
                assert_eq!(r.mounts.len(), 2);
                assert_eq!(r.network.as_deref(), Some("none"));
                assert_eq!(r.command, CommandLine::Shell("make".into()));
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            d.instructions[1].flags[0],
            "--mount=type=cache,target=/root/.cache"
        );
        for (text, msg) in [
            ("FROM a\nRUN --bogus x\n", "unknown flag: --bogus"),
            (
                "FROM a\nRUN --network=wifi x\n",
                "unsupported network mode \"wifi\"",
            ),
            (
                "FROM a\nRUN --mount=type=nfs,target=/x x\n",
                "unsupported mount type \"nfs\"",
            ),
            (
                "FROM a\nCOPY --link=maybe a b\n",
                "expecting boolean value for flag --link, not: maybe",
            ),
            (
                "FROM a\nCOPY --from a b\n",
                "missing a value on flag: --from",
            ),
            (
                "FROM a\nCOPY --chown=1 --chown=2 a b\n",
                "duplicate flag specified: --chown",
            ),
            ("FROM a\nENV --x=1 a=b\n", "unknown flag: --x"),
            ("FROM --plat=x a\n", "unknown flag: --plat"),
        ] {
            let e = Dockerfile::parse(text).unwrap_err();
            assert!(e.message.contains(msg), "{text:?}: {e}");
            assert_eq!(e.line, text.lines().count(), "{text:?}");
        }
        match cmd(
            "FROM a\nCOPY --from=build --chown=app:app --chmod=755 --link --exclude=*.md src/ /app/\n",
            1,
        ) {
            Command::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.chown.as_deref(), Some("app:app"));
                assert_eq!(c.chmod.as_deref(), Some("755"));
                assert!(c.link);
                assert_eq!(c.exclude, vec!["*.md"]);
                assert_eq!(c.sources, vec!["src/"]);
                assert_eq!(c.dest, "/app/");
            }
            c => panic!("{c:?}"),
        }
        match cmd(
            "FROM a\nADD --checksum=sha256:abc --keep-git-dir=false https://x/y.tgz /z\n",
            1,
        ) {
            Command::Add(c) => {
                assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
                assert_eq!(c.keep_git_dir, Some(false));
            }
            c => panic!("{c:?}"),
        }
    }
}

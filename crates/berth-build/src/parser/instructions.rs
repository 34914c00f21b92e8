//! The second pass: one logical line into its typed [`Command`] — BuildKit's line parsers and
//! `instructions.Parse*`: per instruction, the flags it accepts, the argument form it takes
//! (JSON array or shell form, `key=value` pairs or the legacy `ENV key value`, …) and the checks
//! on them; unknown keywords get a "did you mean" suggestion. [`parse_command`] dispatches to
//! one function per instruction.

use crate::gofmt;

use super::ast::{
    ArgDecl, Command, CommandLine, CopyCmd, FromCmd, Healthcheck, HealthcheckCmd, InlineSource,
    Instruction, KeyValue, OnbuildCmd, RunCmd,
};
use super::flags::{no_flags, Flags, Kind};
use super::heredoc::{chomp_tabs, parse_heredoc_word, Heredoc};
use super::words::{
    is_sep, maybe_json, maybe_json_list, parse_words, split_command, split_ws, Logical,
};
use super::INSTRUCTIONS;

/// Reads one instruction's arguments (BuildKit's line parsers and `instructions.Parse*`).
pub(super) fn parse_command(
    l: &Logical,
    original: &str,
    heredocs: &[Heredoc],
    escape: char,
    start: usize,
    end: usize,
) -> Result<Command, String> {
    let name = l.keyword.to_ascii_uppercase();
    let rest = l.args.as_str();
    match name.as_str() {
        "FROM" => parse_from(l, rest),
        "RUN" => parse_run(l, rest),
        "CMD" => Ok(Command::Cmd(parse_command_line(l, rest, &name)?)),
        "ENTRYPOINT" => Ok(Command::Entrypoint(parse_command_line(l, rest, &name)?)),
        "COPY" => parse_copy(l, rest, heredocs),
        "ADD" => parse_add(l, rest, heredocs),
        "WORKDIR" => Ok(Command::Workdir(parse_one_argument(l, rest, &name)?)),
        "USER" => Ok(Command::User(parse_one_argument(l, rest, &name)?)),
        "MAINTAINER" => Ok(Command::Maintainer(parse_one_argument(l, rest, &name)?)),
        "STOPSIGNAL" => Ok(Command::StopSignal(parse_one_argument(l, rest, &name)?)),
        "ENV" => parse_env(l, rest, escape),
        "LABEL" => parse_label(l, rest, escape),
        "ARG" => parse_arg(l, rest, escape),
        "EXPOSE" => parse_expose(l, rest),
        "VOLUME" => parse_volume(l, rest),
        "SHELL" => parse_shell(l, rest),
        "HEALTHCHECK" => parse_healthcheck(l, rest),
        "ONBUILD" => parse_onbuild(l, original, heredocs, escape, start, end),
        _ => Err(unknown_instruction(l, &name)),
    }
}

/// `FROM [--platform=p] image [AS name]`.
fn parse_from(l: &Logical, rest: &str) -> Result<Command, String> {
    let f = Flags::new(&[("platform", Kind::Str)]).parse(&l.flags)?;
    let args = split_ws(rest);
    let stage_name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let n = args[2].to_ascii_lowercase();
            if !valid_stage_name(&n) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    gofmt::go_quote(&args[2])
                ));
            }
            Some(n)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    Ok(Command::From(FromCmd {
        image: args[0].clone(),
        stage_name,
        platform: f.string("platform"),
    }))
}

/// `RUN [--mount=…] [--network=…] [--security=…] command`, the mounts checked here.
fn parse_run(l: &Logical, rest: &str) -> Result<Command, String> {
    let f = Flags::new(&[
        ("mount", Kind::Strs),
        ("network", Kind::Str),
        ("security", Kind::Str),
    ])
    .parse(&l.flags)?;
    let Some(command) = maybe_json(rest)? else {
        return Err(at_least_one("RUN"));
    };
    let mounts = f.strings("mount");
    for m in &mounts {
        crate::mount::Mount::parse(m, None).map_err(|e| e.to_string())?;
    }
    let network = f.string("network");
    if let Some(n) = &network {
        if !matches!(n.as_str(), "default" | "none" | "host") {
            return Err(format!("unsupported network mode {}", gofmt::go_quote(n)));
        }
    }
    let security = f.string("security");
    if let Some(s) = &security {
        if !matches!(s.as_str(), "sandbox" | "insecure") {
            return Err(format!("unsupported security mode {}", gofmt::go_quote(s)));
        }
    }
    Ok(Command::Run(RunCmd {
        command,
        mounts,
        network,
        security,
    }))
}

/// CMD and ENTRYPOINT: no flags, a command in shell or exec form.
fn parse_command_line(l: &Logical, rest: &str, name: &str) -> Result<CommandLine, String> {
    no_flags(&l.flags)?;
    let Some(c) = maybe_json(rest)? else {
        return Err(at_least_one(name));
    };
    Ok(c)
}

/// `COPY [--from=…] [--chown=…] [--chmod=…] [--link] [--exclude=…] [--parents] src… dest`.
fn parse_copy(l: &Logical, rest: &str, heredocs: &[Heredoc]) -> Result<Command, String> {
    let f = Flags::new(&[
        ("chown", Kind::Str),
        ("from", Kind::Str),
        ("chmod", Kind::Str),
        ("link", Kind::Bool),
        ("exclude", Kind::Strs),
        ("parents", Kind::Bool),
    ])
    .parse(&l.flags)?;
    Ok(Command::Copy(copy_like("COPY", rest, heredocs, &f)?))
}

/// `ADD [--chown=…] [--chmod=…] [--link] [--keep-git-dir] [--checksum=…] [--unpack]
/// [--exclude=…] src… dest`.
fn parse_add(l: &Logical, rest: &str, heredocs: &[Heredoc]) -> Result<Command, String> {
    let f = Flags::new(&[
        ("chown", Kind::Str),
        ("chmod", Kind::Str),
        ("link", Kind::Bool),
        ("keep-git-dir", Kind::Bool),
        ("checksum", Kind::Str),
        ("unpack", Kind::Bool),
        ("exclude", Kind::Strs),
    ])
    .parse(&l.flags)?;
    Ok(Command::Add(copy_like("ADD", rest, heredocs, &f)?))
}

/// WORKDIR, USER, MAINTAINER, STOPSIGNAL: no flags, the rest of the line as one value.
fn parse_one_argument(l: &Logical, rest: &str, name: &str) -> Result<String, String> {
    no_flags(&l.flags)?;
    if rest.is_empty() {
        return Err(exactly_one(name));
    }
    Ok(rest.to_owned())
}

/// `ENV k=v…` or the legacy `ENV k v`.
fn parse_env(l: &Logical, rest: &str, escape: char) -> Result<Command, String> {
    no_flags(&l.flags)?;
    Ok(Command::Env(key_values(rest, "ENV", escape)?))
}

/// `LABEL k=v…` or the legacy `LABEL k v`.
fn parse_label(l: &Logical, rest: &str, escape: char) -> Result<Command, String> {
    no_flags(&l.flags)?;
    Ok(Command::Label(key_values(rest, "LABEL", escape)?))
}

/// `ARG name[=default]…`.
fn parse_arg(l: &Logical, rest: &str, escape: char) -> Result<Command, String> {
    no_flags(&l.flags)?;
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(at_least_one("ARG"));
    }
    let mut decls = Vec::new();
    for w in words {
        let d = match w.split_once('=') {
            Some(("", _)) => return Err("ARG names can not be blank".into()),
            Some((k, v)) => ArgDecl {
                name: k.to_owned(),
                default: Some(v.to_owned()),
            },
            None => ArgDecl {
                name: w,
                default: None,
            },
        };
        decls.push(d);
    }
    Ok(Command::Arg(decls))
}

/// `EXPOSE port…`, sorted as written (BuildKit sorts before expanding).
fn parse_expose(l: &Logical, rest: &str) -> Result<Command, String> {
    no_flags(&l.flags)?;
    let mut ports = split_ws(rest);
    if ports.is_empty() {
        return Err(at_least_one("EXPOSE"));
    }
    ports.sort();
    Ok(Command::Expose(ports))
}

/// `VOLUME path…` or `VOLUME ["path", …]`.
fn parse_volume(l: &Logical, rest: &str) -> Result<Command, String> {
    no_flags(&l.flags)?;
    let (vols, _) = maybe_json_list(rest)?;
    if vols.is_empty() {
        return Err(at_least_one("VOLUME"));
    }
    let mut out = Vec::new();
    for v in vols {
        let v = v.trim();
        if v.is_empty() {
            return Err("VOLUME specified can not be an empty string".into());
        }
        out.push(v.to_owned());
    }
    Ok(Command::Volume(out))
}

/// `SHELL ["exe", "arg", …]`: JSON form only.
fn parse_shell(l: &Logical, rest: &str) -> Result<Command, String> {
    no_flags(&l.flags)?;
    match maybe_json(rest)? {
        None => Err(at_least_one("SHELL")),
        Some(CommandLine::Exec(v)) if v.is_empty() => Err(at_least_one("SHELL")),
        Some(CommandLine::Exec(v)) => Ok(Command::Shell(v)),
        Some(CommandLine::Shell(_)) => {
            Err("SHELL requires the arguments to be in JSON form".into())
        }
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] [--timeout=…] [--start-period=…]
/// [--start-interval=…] [--retries=…] CMD command`.
fn parse_healthcheck(l: &Logical, rest: &str) -> Result<Command, String> {
    let (typ, after) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ_up = typ.to_ascii_uppercase();
    if typ_up == "NONE" {
        if !after.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Command::Healthcheck(HealthcheckCmd::None));
    }
    let f = Flags::new(&[
        ("interval", Kind::Str),
        ("timeout", Kind::Str),
        ("start-period", Kind::Str),
        ("start-interval", Kind::Str),
        ("retries", Kind::Str),
    ])
    .parse(&l.flags)?;
    if typ_up != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            gofmt::go_quote(&typ_up)
        ));
    }
    let test = match maybe_json(after)? {
        None => return Err("Missing command after HEALTHCHECK CMD".into()),
        Some(CommandLine::Exec(v)) if v.is_empty() => {
            return Err("Missing command after HEALTHCHECK CMD".into())
        }
        Some(CommandLine::Exec(v)) => std::iter::once("CMD".to_owned()).chain(v).collect(),
        Some(CommandLine::Shell(s)) => vec!["CMD-SHELL".to_owned(), s],
    };
    let retries = retries_flag(&f)?;
    Ok(Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
        test,
        interval: duration_flag(&f, "interval")?,
        timeout: duration_flag(&f, "timeout")?,
        start_period: duration_flag(&f, "start-period")?,
        start_interval: duration_flag(&f, "start-interval")?,
        retries,
    })))
}

/// HEALTHCHECK `--retries`, 0 when not given; Go's `strconv.ParseInt` texts.
fn retries_flag(f: &Flags) -> Result<u32, String> {
    Ok(match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    gofmt::go_quote(&v)
                )
            })?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            u32::try_from(n).map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    gofmt::go_quote(&v)
                )
            })?
        }
    })
}

/// `ONBUILD instruction`: the trigger parsed (it shares the ONBUILD's lines and heredocs) and
/// kept as the expression the image stores.
fn parse_onbuild(
    l: &Logical,
    original: &str,
    heredocs: &[Heredoc],
    escape: char,
    start: usize,
    end: usize,
) -> Result<Command, String> {
    let rest = l.args.as_str();
    no_flags(&l.flags)?;
    if rest.is_empty() {
        return Err(at_least_one("ONBUILD"));
    }
    let sub = split_command(rest, escape);
    let trigger_name = sub.keyword.to_ascii_uppercase();
    match trigger_name.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!(
                "{trigger_name} isn't allowed as an ONBUILD trigger"
            ))
        }
        _ => {}
    }
    let command = parse_command(&sub, rest, heredocs, escape, start, end)?;
    if command == Command::Invalid || !INSTRUCTIONS.contains(&trigger_name.as_str()) {
        return Err(format!("unknown instruction: {}", sub.keyword));
    }
    let mut expression = strip_keyword(original, "ONBUILD").to_owned();
    for h in heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Command::Onbuild(OnbuildCmd {
        expression,
        trigger: Box::new(Instruction {
            keyword: sub.keyword.clone(),
            line: start,
            end_line: end,
            original: rest.to_owned(),
            source: String::new(),
            flags: sub.flags.clone(),
            heredocs: heredocs.to_vec(),
            comments: Vec::new(),
            command,
        }),
    }))
}

/// A keyword Docker does not know, with the closest known one as a hint.
fn unknown_instruction(l: &Logical, name: &str) -> String {
    let mut msg = format!("unknown instruction: {}", l.keyword);
    if let Some(s) = suggest(name) {
        msg.push_str(&format!(" (did you mean {}?)", s.to_ascii_lowercase()));
    }
    msg
}

fn at_least_one(name: &str) -> String {
    format!("{name} requires at least one argument")
}

fn exactly_one(name: &str) -> String {
    format!("{name} requires exactly one argument")
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}

fn key_values(rest: &str, name: &str, escape: char) -> Result<Vec<KeyValue>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(at_least_one(name));
    }
    if !words[0].contains('=') {
        let mut parts = rest.splitn(2, is_sep);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(is_sep));
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(format!("{name} must have two arguments"));
        };
        return Ok(vec![KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
            legacy: true,
        }]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                gofmt::go_quote(&w)
            ));
        };
        if k.is_empty() {
            return Err(format!("{name} names can not be blank"));
        }
        out.push(KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
            legacy: false,
        });
    }
    Ok(out)
}

fn duration_flag(flags: &Flags, name: &str) -> Result<i64, String> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let d = berth_core::duration::parse(&v).map_err(|e| e.to_string())?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
    }
    Ok(d)
}

fn copy_like(
    name: &str,
    rest: &str,
    heredocs: &[Heredoc],
    flags: &Flags,
) -> Result<CopyCmd, String> {
    let (args, json) = maybe_json_list(rest)?;
    if args.len() < 2 {
        return Err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let (dest, srcs) = args.split_last().unwrap_or((&args[0], &[]));
    if !json && parse_heredoc_word(dest).ok().flatten().is_some() {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in srcs {
        match (!json)
            .then(|| parse_heredoc_word(s).ok().flatten())
            .flatten()
        {
            Some(h) => {
                let doc = heredocs.iter().find(|d| d.name == h.name);
                let mut content = doc.map(|d| d.content.clone()).unwrap_or_default();
                if h.chomp {
                    content = chomp_tabs(&content);
                }
                inline.push(InlineSource {
                    name: h.name,
                    content,
                    expand: h.expand,
                });
            }
            None => sources.push(s.clone()),
        }
    }
    Ok(CopyCmd {
        sources,
        inline,
        dest: dest.clone(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.boolean("link").unwrap_or(false),
        parents: flags.boolean("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack: flags.boolean("unpack"),
        json,
    })
}

fn strip_keyword<'s>(original: &'s str, kw: &str) -> &'s str {
    let t = original.trim_start();
    match t.get(..kw.len()) {
        Some(head) if head.eq_ignore_ascii_case(kw) => t[kw.len()..].trim_start(),
        _ => t,
    }
}

/// The known instruction closest to an unknown one (a third of its letters off at most), as
/// BuildKit suggests.
fn suggest(name: &str) -> Option<&'static str> {
    fn dist(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if name.len() > 32 {
        return None;
    }
    let limit = (name.chars().count() / 3).max(1);
    INSTRUCTIONS
        .iter()
        .map(|i| (dist(name, i), *i))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use crate::parser::testutil::{cmd, parse};
    use crate::parser::*;

    #[test]
    fn from_with_platform_and_stage_name() {
        let d = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM scratch\n");
        assert_eq!(
            d.instructions[0].command,
            Command::From(FromCmd {
                image: "golang:1.22".into(),
                stage_name: Some("build".into()),
                platform: Some("$BUILDPLATFORM".into()),
            })
        );
        assert_eq!(d.froms(), vec![0, 1]);
        let e = Dockerfile::parse("FROM a AS 1x\n").unwrap_err();
        assert!(e.message.contains("invalid name for build stage"), "{e}");
        let e = Dockerfile::parse("FROM a b\n").unwrap_err();
        assert_eq!(e.message, "FROM requires either one or three arguments");
    }

    #[test]
    fn run_shell_and_exec_forms() {
        assert_eq!(
            cmd("FROM a\nRUN echo hi\n", 1),
            Command::Run(RunCmd {
                command: CommandLine::Shell("echo hi".into()),
                mounts: vec![],
                network: None,
                security: None,
            })
        );
        match cmd("FROM a\nRUN [\"echo\", \"hi\"]\n", 1) {
            Command::Run(r) => {
                assert_eq!(
                    r.command,
                    CommandLine::Exec(vec!["echo".into(), "hi".into()])
                )
            }
            c => panic!("{c:?}"),
        }
        // Not JSON: shell form, as Docker runs `[ -f x ]`.
        match cmd("FROM a\nRUN [ -f /etc/passwd ]\n", 1) {
            Command::Run(r) => assert!(r.command.is_shell()),
            c => panic!("{c:?}"),
        }
        let e = Dockerfile::parse("FROM a\nRUN [\"a\", 1]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("strings only"));
    }

    #[test]
    fn env_label_arg_forms() {
        assert_eq!(
            cmd("FROM a\nENV a=b c=\"d e\" f=g\\ h\n", 1),
            Command::Env(vec![
                KeyValue {
                    key: "a".into(),
                    value: "b".into(),
                    legacy: false
                },
                KeyValue {
                    key: "c".into(),
                    value: "\"d e\"".into(),
                    legacy: false
                },
                KeyValue {
                    key: "f".into(),
                    value: "g\\ h".into(),
                    legacy: false
                },
            ])
        );
        assert_eq!(
            cmd("FROM a\nENV PATH /usr/bin:/bin  with space\n", 1),
            Command::Env(vec![KeyValue {
                key: "PATH".into(),
                value: "/usr/bin:/bin  with space".into(),
                legacy: true
            }])
        );
        assert_eq!(
            Dockerfile::parse("FROM a\nENV a\n").unwrap_err().message,
            "ENV must have two arguments"
        );
        assert!(Dockerfile::parse("FROM a\nENV a=b c\n")
            .unwrap_err()
            .message
            .starts_with("Syntax error - can't find = in \"c\""));
        assert_eq!(
            cmd(
                "FROM a\nLABEL \"com.example.vendor\"=\"ACME\" version=1.0\n",
                1
            ),
            Command::Label(vec![
                KeyValue {
                    key: "\"com.example.vendor\"".into(),
                    value: "\"ACME\"".into(),
                    legacy: false
                },
                KeyValue {
                    key: "version".into(),
                    value: "1.0".into(),
                    legacy: false
                },
            ])
        );
        let d = parse("ARG V=1 W\nFROM a:$V\nARG V\n");
        assert_eq!(d.global_args().len(), 2);
        assert_eq!(
            d.instructions[0].command,
            Command::Arg(vec![
                ArgDecl {
                    name: "V".into(),
                    default: Some("1".into())
                },
                ArgDecl {
                    name: "W".into(),
                    default: None
                },
            ])
        );
    }

    #[test]
    fn other_instructions() {
        assert_eq!(
            cmd("FROM a\nEXPOSE 8080 80/tcp 53/udp\n", 1),
            Command::Expose(vec!["53/udp".into(), "80/tcp".into(), "8080".into()])
        );
        assert_eq!(
            cmd("FROM a\nVOLUME [\"/data\", \"/logs\"]\n", 1),
            Command::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            cmd("FROM a\nVOLUME /data /logs\n", 1),
            Command::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            cmd("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n", 1),
            Command::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert!(Dockerfile::parse("FROM a\nSHELL /bin/bash -c\n")
            .unwrap_err()
            .message
            .contains("JSON form"));
        assert_eq!(
            cmd("FROM a\nUSER app:app\n", 1),
            Command::User("app:app".into())
        );
        assert_eq!(
            cmd("FROM a\nSTOPSIGNAL SIGTERM\n", 1),
            Command::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            cmd("FROM a\nMAINTAINER Me <me@x>\n", 1),
            Command::Maintainer("Me <me@x>".into())
        );
        assert_eq!(
            cmd("FROM a\nENTRYPOINT [\"/app\"]\n", 1),
            Command::Entrypoint(CommandLine::Exec(vec!["/app".into()]))
        );
        assert_eq!(
            cmd("FROM a\nCMD [\"--help\"]\n", 1),
            Command::Cmd(CommandLine::Exec(vec!["--help".into()]))
        );
        assert!(Dockerfile::parse("FROM a\nWORKDIR\n").is_err());
    }

    #[test]
    fn healthcheck() {
        assert_eq!(
            cmd("FROM a\nHEALTHCHECK NONE\n", 1),
            Command::Healthcheck(HealthcheckCmd::None)
        );
        assert_eq!(
            cmd(
                "FROM a\nHEALTHCHECK --interval=5m --timeout=3s --start-period=10s --start-interval=1s --retries=4 CMD curl -f http://localhost/ || exit 1\n",
                1
            ),
            Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
                test: vec!["CMD-SHELL".into(), "curl -f http://localhost/ || exit 1".into()],
                interval: 300_000_000_000,
                timeout: 3_000_000_000,
                start_period: 10_000_000_000,
                start_interval: 1_000_000_000,
                retries: 4,
            }))
        );
        assert_eq!(
            cmd("FROM a\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n", 1),
            Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
                test: vec!["CMD".into(), "/bin/check".into(), "-q".into()],
                ..Default::default()
            }))
        );
        for (t, msg) in [
            ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            (
                "HEALTHCHECK RUN x",
                "Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
            ),
            (
                "HEALTHCHECK --interval=1 CMD x",
                "time: missing unit in duration \"1\"",
            ),
            (
                "HEALTHCHECK --interval=1ns CMD x",
                "cannot be less than 1ms",
            ),
            (
                "HEALTHCHECK --retries=-1 CMD x",
                "--retries cannot be negative (-1)",
            ),
            ("HEALTHCHECK --retries=x CMD x", "invalid syntax"),
        ] {
            let e = Dockerfile::parse(&format!("FROM a\n{t}\n")).unwrap_err();
            assert!(e.message.contains(msg), "{t}: {e}");
        }
    }

    #[test]
    fn onbuild() {
        match cmd("FROM a\nONBUILD RUN echo hi\n", 1) {
            Command::Onbuild(o) => {
                assert_eq!(o.expression, "RUN echo hi");
                assert!(matches!(o.trigger.command, Command::Run(_)));
            }
            c => panic!("{c:?}"),
        }
        match cmd("FROM a\nONBUILD COPY <<EOF /x\nhello\nEOF\n", 1) {
            Command::Onbuild(o) => assert_eq!(o.expression, "COPY <<EOF /x\nhello\nEOF"),
            c => panic!("{c:?}"),
        }
        for (t, msg) in [
            ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("ONBUILD FOO x", "unknown instruction: FOO"),
        ] {
            let e = Dockerfile::parse(&format!("FROM a\n{t}\n")).unwrap_err();
            assert!(e.message.contains(msg), "{t}: {e}");
        }
        let t = parse_trigger("RUN <<EOF\nhello\nEOF", '\\').unwrap();
        assert_eq!(t.heredocs[0].content, "hello\n");
    }
}

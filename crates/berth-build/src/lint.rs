//! `berth lint`: Dockerfile best practices, each rule with an id, a severity, a line and a fix
//! hint. The Dockerfile is read leniently, so one bad line does not hide the rest.
//!
//! | id | severity | finding |
//! |---|---|---|
//! | BL000 | error | the Dockerfile does not parse (bad flags, arguments, heredocs…) |
//! | BL001 | warning | FROM an image without a tag, or with `latest` |
//! | BL002 | warning | `apt-get install` without `--no-install-recommends` |
//! | BL003 | warning | `apt-get install` without removing `/var/lib/apt/lists` in the same RUN |
//! | BL004 | warning | a secret-looking ENV/ARG name (PASSWORD, TOKEN, SECRET, KEY…) |
//! | BL005 | info | ADD of a local file that is not an archive: COPY suffices |
//! | BL006 | warning | the final stage runs as root (no USER, or USER root) |
//! | BL007 | info | consecutive RUNs that could be one |
//! | BL008 | info | `cd` in RUN instead of WORKDIR |
//! | BL009 | info | EXPOSE without HEALTHCHECK in the final stage |
//! | BL010 | warning | shell-form ENTRYPOINT (signals do not reach the process) |
//! | BL011 | warning | MAINTAINER is deprecated |
//! | BL012 | error | unknown instruction |
//! | BL013 | warning | a command that looks like a JSON array but is not one (run by the shell) |

use std::fmt;

use crate::parser::{Command, CommandLine, Dockerfile, Instruction};
use crate::shell::Lexer;

/// How bad a finding is; ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            _ => Err(format!(
                "invalid severity {s:?}: use info, warning or error"
            )),
        }
    }
}

/// A rule of the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub hint: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule {
        id: "BL000",
        severity: Severity::Error,
        summary: "the Dockerfile does not parse",
        hint: "fix the instruction; the message says what Docker expects",
    },
    Rule {
        id: "BL001",
        severity: Severity::Warning,
        summary: "FROM without a tag or with `latest`",
        hint: "pin the base image: FROM image:1.2.3 (or @sha256:…) so builds repeat",
    },
    Rule {
        id: "BL002",
        severity: Severity::Warning,
        summary: "apt-get install without --no-install-recommends",
        hint: "add --no-install-recommends to install only what you asked for",
    },
    Rule {
        id: "BL003",
        severity: Severity::Warning,
        summary: "apt-get install without cleaning the package lists",
        hint: "end the same RUN with `&& rm -rf /var/lib/apt/lists/*`",
    },
    Rule {
        id: "BL004",
        severity: Severity::Warning,
        summary: "a secret in an ENV or ARG",
        hint: "values of ENV and ARG stay in the image and its history: use RUN --mount=type=secret",
    },
    Rule {
        id: "BL005",
        severity: Severity::Info,
        summary: "ADD where COPY suffices",
        hint: "use COPY for local files; ADD is for URLs and archives to unpack",
    },
    Rule {
        id: "BL006",
        severity: Severity::Warning,
        summary: "the image runs as root",
        hint: "add `USER <name or uid>` (not root) to the final stage",
    },
    Rule {
        id: "BL007",
        severity: Severity::Info,
        summary: "consecutive RUN instructions",
        hint: "join them with && into one RUN: one layer instead of several",
    },
    Rule {
        id: "BL008",
        severity: Severity::Info,
        summary: "cd in RUN",
        hint: "use WORKDIR to change directory; it holds for the following instructions",
    },
    Rule {
        id: "BL009",
        severity: Severity::Info,
        summary: "EXPOSE without HEALTHCHECK",
        hint: "add a HEALTHCHECK so the engine can tell when the service is ready",
    },
    Rule {
        id: "BL010",
        severity: Severity::Warning,
        summary: "shell-form ENTRYPOINT",
        hint: "use the JSON form ENTRYPOINT [\"prog\", \"arg\"]: signals then reach the program",
    },
    Rule {
        id: "BL011",
        severity: Severity::Warning,
        summary: "MAINTAINER is deprecated",
        hint: "use LABEL org.opencontainers.image.authors=\"…\"",
    },
    Rule {
        id: "BL012",
        severity: Severity::Error,
        summary: "unknown instruction",
        hint: "check the spelling; Docker knows ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER ONBUILD RUN SHELL STOPSIGNAL USER VOLUME WORKDIR",
    },
    Rule {
        id: "BL013",
        severity: Severity::Warning,
        summary: "not a valid JSON array: run by the shell",
        hint: "use double quotes and commas: [\"prog\", \"arg\"]",
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub line: usize,
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    pub hint: &'static str,
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn finding(id: &'static str, line: usize, message: impl Into<String>) -> Finding {
    let r = rule(id).unwrap_or(&RULES[0]);
    Finding {
        line,
        rule: r.id,
        severity: r.severity,
        message: message.into(),
        hint: r.hint,
    }
}

/// Lints a Dockerfile's text. Findings come sorted by line, then rule.
pub fn lint(text: &str) -> Vec<Finding> {
    let (df, errors) = Dockerfile::parse_lenient(text);
    let mut out = Vec::new();
    for e in &errors {
        if e.message.starts_with("unknown instruction:") {
            out.push(finding("BL012", e.line, e.message.clone()));
        } else {
            out.push(finding("BL000", e.line, e.message.clone()));
        }
    }
    let stages = stage_ranges(&df);
    let stage_names: Vec<String> = df
        .instructions
        .iter()
        .filter_map(|i| match &i.command {
            Command::From(f) => f.stage_name.clone(),
            _ => None,
        })
        .collect();
    let global: Vec<(String, String)> = df
        .global_args()
        .iter()
        .filter_map(|a| a.default.clone().map(|d| (a.name.clone(), d)))
        .collect();

    let mut prev_run: Option<&Instruction> = None;
    for ins in &df.instructions {
        let line = ins.line;
        match &ins.command {
            Command::From(f) => check_from(&f.image, &stage_names, &global, line, &mut out),
            Command::Run(r) => {
                if let CommandLine::Shell(s) = &r.command {
                    let script = run_script(s, ins);
                    check_apt(&script, line, &mut out);
                    if has_cd(&script) {
                        out.push(finding(
                            "BL008",
                            line,
                            "RUN changes directory with cd; use WORKDIR",
                        ));
                    }
                    check_json_like("RUN", s, line, &mut out);
                }
                if let Some(p) = prev_run {
                    if p.flags.is_empty() && ins.flags.is_empty() {
                        out.push(finding(
                            "BL007",
                            line,
                            format!(
                                "RUN follows the RUN of line {}; they could be one instruction",
                                p.line
                            ),
                        ));
                    }
                }
            }
            Command::Env(kvs) => {
                for kv in kvs {
                    if looks_secret(&kv.key) {
                        out.push(finding(
                            "BL004",
                            line,
                            format!("ENV {} may hold a secret; it stays in the image", kv.key),
                        ));
                    }
                }
            }
            Command::Arg(decls) => {
                for d in decls {
                    if looks_secret(&d.name) {
                        out.push(finding(
                            "BL004",
                            line,
                            format!(
                                "ARG {} may hold a secret; build args show in the image history",
                                d.name
                            ),
                        ));
                    }
                }
            }
            Command::Add(c) => {
                for s in &c.sources {
                    if !is_remote(s) && !is_archive(s) {
                        out.push(finding(
                            "BL005",
                            line,
                            format!(
                                "ADD {s}: a local file that is not an archive; COPY does the same"
                            ),
                        ));
                    }
                }
            }
            Command::Entrypoint(CommandLine::Shell(s))
                if !check_json_like("ENTRYPOINT", s, line, &mut out) =>
            {
                out.push(finding(
                    "BL010",
                    line,
                    "ENTRYPOINT in shell form runs under /bin/sh -c: the program is not PID 1 and gets no signals",
                ));
            }
            Command::Cmd(CommandLine::Shell(s)) => {
                check_json_like("CMD", s, line, &mut out);
            }
            Command::Maintainer(_) => {
                out.push(finding("BL011", line, "MAINTAINER is deprecated"));
            }
            _ => {}
        }
        prev_run = match &ins.command {
            Command::Run(_) => Some(ins),
            _ => None,
        };
    }

    // The final stage: its user, and EXPOSE without HEALTHCHECK.
    if let Some(&(start, end)) = stages.last() {
        let final_ins = &df.instructions[start..end];
        let from_line = df.instructions[start].line;
        let last_user = final_ins.iter().rev().find_map(|i| match &i.command {
            Command::User(u) => Some((u.clone(), i.line)),
            _ => None,
        });
        let from_scratch = matches!(&df.instructions[start].command, Command::From(f) if f.image.eq_ignore_ascii_case("scratch"));
        match last_user {
            None if !from_scratch => out.push(finding(
                "BL006",
                from_line,
                "the final stage sets no USER: the container runs as root",
            )),
            Some((u, l)) if is_root_user(&u) => out.push(finding(
                "BL006",
                l,
                format!("USER {u}: the container runs as root"),
            )),
            _ => {}
        }
        let has_health = final_ins
            .iter()
            .any(|i| matches!(i.command, Command::Healthcheck(_)));
        if !has_health {
            if let Some(e) = final_ins
                .iter()
                .find(|i| matches!(i.command, Command::Expose(_)))
            {
                out.push(finding(
                    "BL009",
                    e.line,
                    "the image exposes a port but has no HEALTHCHECK",
                ));
            }
        }
    }
    out.sort_by(|a, b| (a.line, a.rule).cmp(&(b.line, b.rule)));
    out
}

/// (first, end) instruction indexes of each stage.
fn stage_ranges(df: &Dockerfile) -> Vec<(usize, usize)> {
    let froms = df.froms();
    froms
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            (
                s,
                froms.get(i + 1).copied().unwrap_or(df.instructions.len()),
            )
        })
        .collect()
}

fn check_from(
    image: &str,
    stages: &[String],
    global: &[(String, String)],
    line: usize,
    out: &mut Vec<Finding>,
) {
    let env: Vec<String> = global.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let Ok(image) = Lexer::new('\\').process_word(image, &env) else {
        return;
    };
    if image.is_empty()
        || image.contains('$')
        || image.eq_ignore_ascii_case("scratch")
        || stages.iter().any(|s| s.eq_ignore_ascii_case(&image))
        || image.contains('@')
    {
        return;
    }
    let last = image.rsplit('/').next().unwrap_or(&image);
    match last.split_once(':') {
        None => out.push(finding(
            "BL001",
            line,
            format!("FROM {image} has no tag: it means latest, whatever that is at build time"),
        )),
        Some((_, "latest")) => out.push(finding(
            "BL001",
            line,
            format!("FROM {image}: latest changes under you"),
        )),
        _ => {}
    }
}

/// The RUN's script: for `RUN <<EOF`, the heredoc's content too.
fn run_script(s: &str, ins: &Instruction) -> String {
    let mut out = s.to_owned();
    for h in &ins.heredocs {
        out.push('\n');
        out.push_str(&h.body());
    }
    out
}

/// Commands of a shell script, split on `&&`, `||`, `;`, `|` and newlines (roughly: enough
/// for the rules, which look at command words).
fn commands(script: &str) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let normalized = script
        .replace("&&", "\n")
        .replace("||", "\n")
        .replace([';', '|'], "\n");
    for part in normalized.lines() {
        let words: Vec<String> = part.split_whitespace().map(str::to_owned).collect();
        if !words.is_empty() {
            cmds.push(words);
        }
    }
    cmds
}

fn check_apt(script: &str, line: usize, out: &mut Vec<Finding>) {
    let cmds = commands(script);
    let installs: Vec<&Vec<String>> = cmds
        .iter()
        .filter(|w| {
            let i = w.iter().position(|x| x == "apt-get" || x == "apt");
            i.is_some_and(|i| w[i + 1..].iter().any(|x| x == "install"))
        })
        .collect();
    if installs.is_empty() {
        return;
    }
    if installs.iter().any(|w| {
        !w.iter().any(|x| {
            x == "--no-install-recommends"
                || x.starts_with("-o=APT::Install-Recommends=")
                || x == "APT::Install-Recommends=false"
        })
    }) {
        out.push(finding(
            "BL002",
            line,
            "apt-get install without --no-install-recommends pulls in recommended packages too",
        ));
    }
    let cleans = cmds.iter().any(|w| {
        w.first().is_some_and(|c| c == "rm")
            && w.iter().any(|x| x.starts_with("/var/lib/apt/lists"))
    });
    if !cleans {
        out.push(finding(
            "BL003",
            line,
            "apt-get install leaves /var/lib/apt/lists in the layer",
        ));
    }
}

fn has_cd(script: &str) -> bool {
    commands(script)
        .iter()
        .any(|w| w.first().is_some_and(|c| c == "cd"))
}

/// BL013 when `s` looks like a JSON array but is not one; returns whether it did.
fn check_json_like(what: &str, s: &str, line: usize, out: &mut Vec<Finding>) -> bool {
    let t = s.trim();
    if t.starts_with('[') && t.ends_with(']') && t.contains('"') || t.starts_with("['") {
        out.push(finding(
            "BL013",
            line,
            format!("{what} {t} is not valid JSON, so Docker runs it with /bin/sh -c"),
        ));
        return true;
    }
    false
}

const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD_SECRET",
    "SECRET",
    "TOKEN",
    "KEY",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "PRIVATE",
];

/// A name whose parts (split on `_`, `-`, `.`) include a secret word, unless marked public.
fn looks_secret(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    let parts: Vec<&str> = up
        .split(['_', '-', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.contains(&"PUBLIC") {
        return false;
    }
    parts.iter().any(|p| SECRET_WORDS.contains(p))
        || ["PASSWORD", "SECRET", "TOKEN", "APIKEY"]
            .iter()
            .any(|w| up.contains(w))
}

fn is_remote(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://")
        || l.starts_with("https://")
        || l.starts_with("git@")
        || l.ends_with(".git")
}

fn is_archive(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst",
        ".tzst", ".gz", ".bz2", ".xz", ".zst",
    ]
    .iter()
    .any(|e| l.ends_with(e))
        || s.contains(['$', '*', '?'])
}

fn is_root_user(u: &str) -> bool {
    let user = u.split(':').next().unwrap_or(u);
    user == "root" || user == "0"
}

/// `Dockerfile:3 BL002 warning: … (hint: …)`, one line per finding.
pub fn format_text(file: &str, findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{file}:{} {} {}: {} (hint: {})\n",
                f.line, f.rule, f.severity, f.message, f.hint
            )
        })
        .collect()
}

/// A JSON array of `{file, line, rule, severity, message, hint}`.
pub fn format_json(file: &str, findings: &[Finding]) -> String {
    let v: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "file": file,
                "line": f.line,
                "rule": f.rule,
                "severity": f.severity.as_str(),
                "message": f.message,
                "hint": f.hint,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[]".into())
}

/// 1 when any finding is at or above `min`, else 0.
pub fn exit_code(findings: &[Finding], min: Severity) -> i32 {
    i32::from(findings.iter().any(|f| f.severity >= min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        lint(text).into_iter().map(|f| f.rule).collect()
    }

    fn has(text: &str, id: &str) -> bool {
        ids(text).contains(&id)
    }

    /// A Dockerfile that breaks no rule.
    const CLEAN: &str = "\
FROM debian:12 AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY . .
FROM debian:12-slim
COPY --from=build /src/app /usr/local/bin/app
EXPOSE 8080
HEALTHCHECK CMD [\"app\", \"--check\"]
USER 1000
ENTRYPOINT [\"app\"]
";

    #[test]
    fn clean_dockerfile_has_no_findings() {
        assert_eq!(lint(CLEAN), vec![]);
    }

    /// Each rule: (id, a Dockerfile that triggers it, one that does not).
    #[test]
    fn every_rule_positive_and_negative() {
        let cases: &[(&str, &str, &str)] = &[
            ("BL000", "FROM a:1\nCOPY onlyone\nUSER x\n", "FROM a:1\nCOPY a b\nUSER x\n"),
            ("BL001", "FROM alpine\nUSER x\n", "FROM alpine:3.20\nUSER x\n"),
            ("BL001", "FROM alpine:latest\nUSER x\n", "FROM alpine@sha256:0000\nUSER x\n"),
            ("BL001", "ARG V=latest\nFROM alpine:$V\nUSER x\n", "ARG V=3\nFROM alpine:$V\nUSER x\n"),
            ("BL001", "FROM registry:5000/app\nUSER x\n", "FROM registry:5000/app:1\nUSER x\n"),
            (
                "BL002",
                "FROM a:1\nRUN apt-get install -y curl && rm -rf /var/lib/apt/lists/*\nUSER x\n",
                "FROM a:1\nRUN apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\nUSER x\n",
            ),
            (
                "BL003",
                "FROM a:1\nRUN apt-get update && apt-get install -y --no-install-recommends curl\nUSER x\n",
                "FROM a:1\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends curl \\\n && rm -rf /var/lib/apt/lists/*\nUSER x\n",
            ),
            ("BL004", "FROM a:1\nENV DB_PASSWORD=x\nUSER x\n", "FROM a:1\nENV DB_HOST=x\nUSER x\n"),
            ("BL004", "FROM a:1\nARG GITHUB_TOKEN\nUSER x\n", "FROM a:1\nARG PUBLIC_KEY\nUSER x\n"),
            ("BL004", "FROM a:1\nENV api-key value\nUSER x\n", "FROM a:1\nENV KEYBOARD=us\nUSER x\n"),
            (
                "BL005",
                "FROM a:1\nADD app.py /app/\nUSER x\n",
                "FROM a:1\nADD rootfs.tar.gz /\nADD https://example.com/f /f\nUSER x\n",
            ),
            ("BL006", "FROM a:1\nRUN make\n", "FROM a:1\nUSER app\n"),
            ("BL006", "FROM a:1\nUSER app\nUSER root\n", "FROM a:1\nUSER root\nRUN x\nUSER app\n"),
            (
                "BL007",
                "FROM a:1\nRUN a\nRUN b\nUSER x\n",
                "FROM a:1\nRUN a\nWORKDIR /x\nRUN b\nUSER x\n",
            ),
            ("BL008", "FROM a:1\nRUN cd /src && make\nUSER x\n", "FROM a:1\nWORKDIR /src\nRUN make\nUSER x\n"),
            (
                "BL009",
                "FROM a:1\nEXPOSE 80\nUSER x\n",
                "FROM a:1\nEXPOSE 80\nHEALTHCHECK CMD [\"check\"]\nUSER x\n",
            ),
            (
                "BL010",
                "FROM a:1\nUSER x\nENTRYPOINT /app --serve\n",
                "FROM a:1\nUSER x\nENTRYPOINT [\"/app\", \"--serve\"]\n",
            ),
            ("BL011", "FROM a:1\nMAINTAINER me\nUSER x\n", "FROM a:1\nLABEL org.opencontainers.image.authors=me\nUSER x\n"),
            ("BL012", "FROM a:1\nFOO bar\nUSER x\n", "FROM a:1\nRUN bar\nUSER x\n"),
            (
                "BL013",
                "FROM a:1\nUSER x\nCMD ['sh', '-c', 'x']\n",
                "FROM a:1\nUSER x\nCMD [\"sh\", \"-c\", \"x\"]\n",
            ),
        ];
        for (id, pos, neg) in cases {
            assert!(has(pos, id), "{id} should fire on {pos:?}: {:?}", lint(pos));
            assert!(
                !has(neg, id),
                "{id} should not fire on {neg:?}: {:?}",
                lint(neg)
            );
        }
        // Every rule is covered.
        for r in RULES {
            assert!(cases.iter().any(|c| c.0 == r.id), "no test for {}", r.id);
        }
    }

    #[test]
    fn lines_and_outputs() {
        let text = "FROM alpine\nMAINTAINER me\nFOO x\nRUN cd /x\n";
        let f = lint(text);
        let lines: Vec<(usize, &str)> = f.iter().map(|f| (f.line, f.rule)).collect();
        assert_eq!(
            lines,
            vec![
                (1, "BL001"),
                (1, "BL006"),
                (2, "BL011"),
                (3, "BL012"),
                (4, "BL008")
            ]
        );
        let t = format_text("Dockerfile", &f);
        assert!(
            t.contains("Dockerfile:2 BL011 warning: MAINTAINER is deprecated (hint: use LABEL"),
            "{t}"
        );
        assert!(
            t.contains("Dockerfile:3 BL012 error: unknown instruction: FOO"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&format_json("Dockerfile", &f)).unwrap();
        assert_eq!(j[0]["rule"], "BL001");
        assert_eq!(j[0]["line"], 1);
        assert_eq!(j[0]["severity"], "warning");
        assert_eq!(exit_code(&f, Severity::Error), 1);
        let no_err: Vec<Finding> = f
            .iter()
            .filter(|x| x.severity < Severity::Error)
            .cloned()
            .collect();
        assert_eq!(exit_code(&no_err, Severity::Error), 0);
        assert_eq!(exit_code(&no_err, Severity::Warning), 1);
        assert_eq!(exit_code(&[], Severity::Info), 0);
        assert_eq!("WARNING".parse::<Severity>(), Ok(Severity::Warning));
        assert!("loud".parse::<Severity>().is_err());
    }

    #[test]
    fn heredoc_runs_are_checked_too() {
        assert!(has(
            "FROM a:1\nRUN <<EOF\napt-get install -y x\nEOF\nUSER u\n",
            "BL002"
        ));
    }
}

//! What each instruction does to the stage's image config and history (the classic builder's
//! dispatchers): metadata instructions change the config and are committed at once as an
//! empty-layer entry; RUN, COPY/ADD and WORKDIR come back as steps for the engine.

use std::collections::BTreeMap;

use berth_image::oci::History;

use crate::gofmt;
use crate::mount::Mount;
use crate::parser::{
    self, ArgDecl, Command, CommandLine, CopyCmd, HealthcheckCmd, InlineSource, Instruction,
};
use crate::shell::Lexer;

use super::graph::resolve_source;
use super::values::{normalize_dest, normalize_workdir, port_keys, valid_signal};
use super::{expand, CopyStep, PlanError, RunStep, StageBuilder, Step, StepKind, PROXY_ARGS};

impl StageBuilder<'_> {
    pub(super) fn dispatch(&mut self, ins: &Instruction) -> Result<Step, PlanError> {
        let line = ins.line;
        let index = self.step_index;
        self.step_index += 1;
        let step = |kind: StepKind, history: History, cache_text: String| Step {
            index,
            line,
            end_line: ins.end_line,
            text: ins.original.trim().to_owned(),
            kind,
            history,
            cache_text,
        };
        match &ins.command {
            Command::Env(pairs) => {
                let mut text = String::from("ENV");
                for kv in pairs {
                    let k = self.word(&kv.key, line)?;
                    let v = self.word(&kv.value, line)?;
                    text.push_str(&format!(" {k}={v}"));
                    let env = self.image.config.env.get_or_insert_with(Vec::new);
                    let new = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(e) => *e = new,
                        None => env.push(new),
                    }
                }
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Label(pairs) => {
                let mut text = String::from("LABEL");
                for kv in pairs {
                    let k = self.word(&kv.key, line)?;
                    let v = self.word(&kv.value, line)?;
                    text.push_str(&format!(" {k}={v}"));
                    self.image
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, v);
                }
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Maintainer(m) => {
                self.image.author = Some(m.clone());
                let text = format!("MAINTAINER {m}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Arg(decls) => {
                let mut parts = Vec::new();
                for ArgDecl { name, default } in decls {
                    let name = self.word(name, line)?;
                    let default = self.opt_word(default, line)?;
                    parts.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    self.args.declared.insert(name, default);
                }
                let text = format!("ARG {}", parts.join(" "));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Cmd(c) => {
                let cmd = self.resolve(c);
                self.image.config.cmd = Some(cmd.clone());
                self.image.config.args_escaped = None;
                self.cmd_set = true;
                let text = format!("CMD {}", gofmt::quote_list(&cmd));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Entrypoint(c) => {
                let ep = match c {
                    CommandLine::Exec(v) if v.is_empty() => None,
                    c => Some(self.resolve(c)),
                };
                self.image.config.entrypoint = ep.clone();
                self.image.config.args_escaped = None;
                // An ENTRYPOINT drops the CMD inherited from the base, not one set here.
                if !self.cmd_set {
                    self.image.config.cmd = None;
                }
                let text = format!("ENTRYPOINT {}", gofmt::quote_list(&ep.unwrap_or_default()));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Expose(ports) => {
                let env = self.expansion_env();
                let mut words = Vec::new();
                for p in ports {
                    let w = self
                        .lex
                        .process_words(p, &env)
                        .map_err(|e| PlanError::at(line, e.0))?;
                    words.extend(w);
                }
                let exposed = self
                    .image
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for w in &words {
                    for port in port_keys(w).map_err(|e| PlanError::at(line, e))? {
                        exposed.insert(port, serde_json::json!({}));
                    }
                }
                let text = format!("EXPOSE {}", words.join(" "));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::User(u) => {
                let u = self.word(u, line)?;
                self.image.config.user = Some(u.clone());
                let text = format!("USER {u}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    let v = self.word(v, line)?;
                    if v.is_empty() {
                        return Err(PlanError::at(
                            line,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    out.push(v);
                }
                let map = self.image.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &out {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                let text = format!("VOLUME {}", gofmt::plain_list(&out));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::StopSignal(s) => {
                let s = self.word(s, line)?;
                if !valid_signal(&s) {
                    return Err(PlanError::at(line, format!("Invalid signal: {s}")));
                }
                self.image.config.stop_signal = Some(s.clone());
                let text = format!("STOPSIGNAL {s}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Healthcheck(hc) => {
                let (json, text) = healthcheck_config(hc);
                self.image.config.healthcheck = Some(json);
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Shell(s) => {
                self.image.config.shell = Some(s.clone());
                let text = format!("SHELL {}", gofmt::plain_list(s));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Onbuild(o) => {
                self.image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.expression.clone());
                let text = format!("ONBUILD {}", o.expression);
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Workdir(w) => {
                let w = self.word(w, line)?;
                let current = self.image.config.working_dir.clone().unwrap_or_default();
                let dir = normalize_workdir(&current, &w);
                self.image.config.working_dir = Some(dir.clone());
                let h = History {
                    created_by: Some(format!("{} #(nop) WORKDIR {dir}", self.shell().join(" "))),
                    empty_layer: false,
                    ..Default::default()
                };
                let cache = format!("WORKDIR {dir}");
                Ok(step(StepKind::Workdir(dir), h, cache))
            }
            Command::Run(r) => {
                let env_now = self.expansion_env();
                let lex = self.lex;
                let exp = |v: &str| -> Result<String, String> {
                    lex.process_word(v, &env_now).map_err(|e| e.0)
                };
                let mut mounts = Vec::new();
                for m in &r.mounts {
                    mounts.push(Mount::parse(m, Some(&exp)).map_err(|e| PlanError::at(line, e.0))?);
                }
                let (cmdline, script) = run_command_line(&r.command, ins);
                let argv = self.resolve(&cmdline);
                let args = self.build_arg_env();
                // History shows the build args the Dockerfile uses (not bare proxy args).
                let shown: Vec<String> = args
                    .iter()
                    .filter(|kv| {
                        let k = kv.split('=').next().unwrap_or("");
                        self.args.declared.contains_key(k) || !PROXY_ARGS.contains(&k)
                    })
                    .cloned()
                    .collect();
                let mut save = Vec::new();
                if !args.is_empty() {
                    save.push(format!("|{}", shown.len()));
                    save.extend(shown);
                }
                save.extend(argv.iter().cloned());
                let created_by = save.join(" ");
                let mut env = self.image.config.env.clone().unwrap_or_default();
                env.extend(args);
                let mut cache = created_by.clone();
                for m in &r.mounts {
                    cache.push_str(&format!(" --mount={m}"));
                }
                if let Some(n) = &r.network {
                    cache.push_str(&format!(" --network={n}"));
                }
                if let Some((name, data)) = &script {
                    cache.push_str(&format!(" <<{name}\n{data}"));
                }
                let h = History {
                    created_by: Some(created_by),
                    ..Default::default()
                };
                let run = RunStep {
                    argv,
                    env,
                    user: self.image.config.user.clone().filter(|u| !u.is_empty()),
                    workdir: self
                        .image
                        .config
                        .working_dir
                        .clone()
                        .filter(|w| !w.is_empty()),
                    mounts,
                    network: r.network.clone(),
                    security: r.security.clone(),
                    script,
                };
                Ok(step(StepKind::Run(run), h, cache))
            }
            Command::Copy(c) | Command::Add(c) => {
                let add = matches!(ins.command, Command::Add(_));
                let cs = self.copy_step(c, add, line)?;
                let text = cs.created_by(&self.shell(), &cs.sources.join(" "));
                let mut cache = format!(
                    "{} {:?} {:?} {:?} {} {} {:?} {:?}",
                    if add { "ADD" } else { "COPY" },
                    cs.from,
                    cs.chown,
                    cs.chmod,
                    cs.link,
                    cs.parents,
                    cs.exclude,
                    cs.checksum
                );
                cache.push_str(&format!(" {:?} -> {}", cs.sources, cs.dest));
                for i in &cs.inline {
                    cache.push_str(&format!(" <<{}\n{}", i.name, i.content));
                }
                let h = History {
                    created_by: Some(text),
                    ..Default::default()
                };
                Ok(step(StepKind::Copy(cs), h, cache))
            }
            Command::From(_) => Err(PlanError::at(line, "FROM inside a stage")),
            Command::Invalid => Err(PlanError::at(
                line,
                format!("unknown instruction: {}", ins.keyword),
            )),
        }
    }

    fn copy_step(&self, c: &CopyCmd, add: bool, line: usize) -> Result<CopyStep, PlanError> {
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(self.word(s, line)?);
        }
        let mut body = Lexer::new('\\');
        body.skip_process_quotes = true;
        let env = self.expansion_env();
        let mut inline = Vec::new();
        for i in &c.inline {
            let content = if i.expand {
                body.process_word(&i.content, &env)
                    .map_err(|e| PlanError::at(line, e.0))?
            } else {
                i.content.clone()
            };
            inline.push(InlineSource {
                content,
                ..i.clone()
            });
        }
        let dest = self.word(&c.dest, line)?;
        let workdir = self.image.config.working_dir.clone().unwrap_or_default();
        let dest = normalize_dest(&workdir, &dest);
        let from = match &c.from {
            Some(f) => {
                let f = expand(&self.lex, f, &self.plan.meta_args, line)?;
                Some(
                    resolve_source(&self.plan.stages[..self.stage], self.stage, &f)
                        .map_err(|e| PlanError::at(line, e))?,
                )
            }
            None => None,
        };
        Ok(CopyStep {
            add,
            sources,
            inline,
            dest,
            from,
            chown: self.opt_word(&c.chown, line)?,
            chmod: self.opt_word(&c.chmod, line)?,
            link: c.link,
            parents: c.parents,
            exclude: c.exclude.clone(),
            checksum: self.opt_word(&c.checksum, line)?,
            keep_git_dir: c.keep_git_dir,
            unpack: c.unpack,
        })
    }
}

/// The command a RUN runs, with BuildKit's heredoc handling: a RUN whose whole command is one
/// heredoc runs the heredoc's content (or, when it starts with `#!`, the heredoc as a script
/// file); otherwise the heredocs are appended to the command line for the shell to read.
fn run_command_line(c: &CommandLine, ins: &Instruction) -> (CommandLine, Option<(String, String)>) {
    let CommandLine::Shell(line) = c else {
        return (c.clone(), None);
    };
    if ins.heredocs.is_empty() {
        return (c.clone(), None);
    }
    if let Ok(Some(h)) = parser::parse_heredoc_word(line) {
        let doc = ins
            .heredocs
            .iter()
            .find(|d| d.name == h.name)
            .unwrap_or(&ins.heredocs[0]);
        let data = doc.body();
        if data.starts_with("#!") {
            let path = format!("/dev/pipes/{}", doc.name);
            return (
                CommandLine::Exec(vec![path]),
                Some((doc.name.clone(), data)),
            );
        }
        return (CommandLine::Shell(data), None);
    }
    let mut s = line.clone();
    for d in &ins.heredocs {
        s.push('\n');
        s.push_str(&d.content);
        s.push_str(&d.name);
    }
    (CommandLine::Shell(s), None)
}

/// The config's `Healthcheck` (Docker's JSON, durations in ns, zero values left out) and the
/// history text (Go's `%+v` of the struct).
fn healthcheck_config(hc: &HealthcheckCmd) -> (serde_json::Value, String) {
    let c = match hc {
        HealthcheckCmd::None => parser::Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        },
        HealthcheckCmd::Check(c) => c.clone(),
    };
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), serde_json::json!(c.test));
    for (k, v) in [
        ("Interval", c.interval),
        ("Timeout", c.timeout),
        ("StartPeriod", c.start_period),
        ("StartInterval", c.start_interval),
    ] {
        if v != 0 {
            m.insert(k.into(), serde_json::json!(v));
        }
    }
    if c.retries != 0 {
        m.insert("Retries".into(), serde_json::json!(c.retries));
    }
    let text = format!(
        "HEALTHCHECK &{{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        gofmt::plain_list(&c.test),
        gofmt::format_duration(c.interval),
        gofmt::format_duration(c.timeout),
        gofmt::format_duration(c.start_period),
        gofmt::format_duration(c.start_interval),
        c.retries
    );
    (serde_json::Value::Object(m), text)
}

#[cfg(test)]
mod tests {
    use crate::parser::Dockerfile;
    use crate::plan::testutil::{base_with, build, opts, plan};
    use crate::plan::*;

    #[test]
    fn run_history_with_build_args() {
        let text = "FROM a\nARG V=1\nRUN make\nRUN [\"echo\", \"hi\"]\n";
        let o = opts().with_build_args(["HTTP_PROXY=http://proxy"], |_| None);
        let p = plan(text, &o);
        let (cfg, steps) = build(&p, 0, None);
        match &steps[1].kind {
            StepKind::Run(r) => {
                assert_eq!(r.argv, vec!["/bin/sh", "-c", "make"]);
                assert!(r.env.contains(&"V=1".to_owned()));
                assert!(r.env.contains(&"HTTP_PROXY=http://proxy".to_owned()));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            steps[1].history.created_by.as_deref(),
            Some("|1 V=1 /bin/sh -c make")
        );
        assert_eq!(
            steps[2].history.created_by.as_deref(),
            Some("|1 V=1 echo hi")
        );
        let h: Vec<_> = cfg
            .history
            .iter()
            .map(|h| (h.created_by.clone().unwrap(), h.empty_layer))
            .collect();
        assert_eq!(h[0], ("/bin/sh -c #(nop)  ARG V=1".into(), true));
        assert_eq!(h[1].0, "|1 V=1 /bin/sh -c make");
        assert!(h[1].1, "committed with no layer: empty");
        assert!(cfg
            .history
            .iter()
            .all(|h| h.created.as_deref() == Some("2024-01-01T00:00:00Z")));
        // Without build args: the plain command.
        let p = plan("FROM a\nRUN make\n", &opts());
        assert_eq!(
            build(&p, 0, None).1[0].history.created_by.as_deref(),
            Some("/bin/sh -c make")
        );
    }

    #[test]
    fn cmd_entrypoint_interplay() {
        let base = base_with(|c| c.cmd = Some(vec!["sh".into()]));
        // ENTRYPOINT resets the base's CMD.
        let p = plan("FROM a\nENTRYPOINT [\"/app\"]\n", &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(c.config.entrypoint, Some(vec!["/app".into()]));
        assert_eq!(c.config.cmd, None);
        assert_eq!(
            steps[0].history.created_by.as_deref(),
            Some("/bin/sh -c #(nop)  ENTRYPOINT [\"/app\"]")
        );
        // …but not a CMD of this Dockerfile, whatever the order.
        let p = plan("FROM a\nCMD [\"--help\"]\nENTRYPOINT /app run\n", &opts());
        let (c, _) = build(&p, 0, Some(&base));
        assert_eq!(c.config.cmd, Some(vec!["--help".into()]));
        assert_eq!(
            c.config.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "/app run".into()])
        );
        // Shell form uses SHELL.
        let p = plan(
            "FROM a\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nCMD echo $HOME\n",
            &opts(),
        );
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(
            c.config.cmd,
            Some(vec![
                "/bin/bash".into(),
                "-eu".into(),
                "-c".into(),
                "echo $HOME".into()
            ])
        );
        assert_eq!(
            steps[1].history.created_by.as_deref(),
            Some("/bin/bash -eu -c #(nop)  CMD [\"/bin/bash\" \"-eu\" \"-c\" \"echo $HOME\"]")
        );
        // The classic builder writes SHELL's entry with the new shell already in effect.
        assert_eq!(
            steps[0].history.created_by.as_deref(),
            Some("/bin/bash -eu -c #(nop)  SHELL [/bin/bash -eu -c]")
        );
        // ENTRYPOINT [] clears it.
        let base = base_with(|c| c.entrypoint = Some(vec!["/x".into()]));
        let p = plan("FROM a\nENTRYPOINT []\n", &opts());
        assert_eq!(build(&p, 0, Some(&base)).0.config.entrypoint, None);
    }

    #[test]
    fn config_of_metadata_instructions() {
        let text = "\
FROM a
MAINTAINER Jane <j@x>
ENV A=1 B=\"two words\"
ENV A 3
LABEL org.x=\"$B\" plain=1
EXPOSE 80 53/udp ${PORTS}
USER app:app
VOLUME [\"/data\", \"$A\"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/
ONBUILD RUN echo triggered
WORKDIR /srv
WORKDIR app/../www
";
        let base = base_with(|c| c.env = Some(vec!["PORTS=8000-8001".into()]));
        let p = plan(text, &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        let rc = &c.config;
        assert_eq!(c.author.as_deref(), Some("Jane <j@x>"));
        assert_eq!(
            rc.env.as_ref().unwrap(),
            &vec![
                "PORTS=8000-8001".to_owned(),
                format!("PATH={DEFAULT_PATH}"),
                "A=3".into(),
                "B=two words".into()
            ]
        );
        assert_eq!(rc.labels.as_ref().unwrap()["org.x"], "two words");
        let ports: Vec<_> = rc.exposed_ports.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(rc.user.as_deref(), Some("app:app"));
        let vols: Vec<_> = rc.volumes.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(vols, vec!["/data", "3"]);
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            rc.healthcheck.as_ref().unwrap(),
            &serde_json::json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000i64, "Retries": 3})
        );
        assert_eq!(
            rc.on_build.as_ref().unwrap(),
            &vec!["RUN echo triggered".to_owned()]
        );
        assert_eq!(rc.working_dir.as_deref(), Some("/srv/www"));
        let by: Vec<String> = steps
            .iter()
            .map(|s| s.history.created_by.clone().unwrap())
            .collect();
        assert_eq!(by[0], "/bin/sh -c #(nop)  MAINTAINER Jane <j@x>");
        assert_eq!(by[1], "/bin/sh -c #(nop)  ENV A=1 B=two words");
        // Sorted as written (`$` first), then expanded, as the classic builder does.
        assert_eq!(by[4], "/bin/sh -c #(nop)  EXPOSE 8000-8001 53/udp 80");
        assert_eq!(by[6], "/bin/sh -c #(nop)  VOLUME [/data 3]");
        assert_eq!(
            by[8],
            "/bin/sh -c #(nop)  HEALTHCHECK &{Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}"
        );
        assert_eq!(by[9], "/bin/sh -c #(nop)  ONBUILD RUN echo triggered");
        assert_eq!(by[11], "/bin/sh -c #(nop) WORKDIR /srv/www");
        assert!(matches!(steps[10].kind, StepKind::Workdir(ref d) if d == "/srv"));
        // Every metadata entry is an empty layer; history author is the maintainer.
        assert!(c.history.iter().all(|h| h.empty_layer));
        assert_eq!(c.history[1].author.as_deref(), Some("Jane <j@x>"));

        let e = BuildPlan::new(
            &Dockerfile::parse("FROM a\nSTOPSIGNAL SIGFOO\n").unwrap(),
            &opts(),
        )
        .unwrap()
        .stage_builder(0, None)
        .unwrap()
        .next_step()
        .unwrap()
        .unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:2: Invalid signal: SIGFOO");
    }

    #[test]
    fn copy_steps_expand_and_join_workdir() {
        let text = "\
FROM a AS build
FROM a
ARG SRC=src
WORKDIR /app
COPY --chown=${U:-app} $SRC/ ./out/
ADD --chmod=644 https://example.com/x.tgz rel
COPY --from=build /bin/x /usr/bin/
COPY <<EOF <<'RAW' conf/
v=$SRC
EOF
v=$SRC
RAW
";
        let p = plan(text, &opts());
        let (_, steps) = build(&p, 1, None);
        let copies: Vec<&CopyStep> = steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Copy(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(copies[0].sources, vec!["src/"]);
        assert_eq!(copies[0].dest, "/app/out/");
        assert_eq!(copies[0].chown.as_deref(), Some("app"));
        assert!(copies[1].add);
        assert_eq!(copies[1].dest, "/app/rel");
        assert_eq!(copies[2].from, Some(Source::Stage(0)));
        assert_eq!(copies[3].inline[0].content, "v=src\n");
        assert_eq!(copies[3].inline[1].content, "v=$SRC\n");
        assert_eq!(copies[3].dest, "/app/conf/");
        assert_eq!(
            copies[0].created_by(&["/bin/sh".into(), "-c".into()], "dir:abc"),
            "/bin/sh -c #(nop) COPY --chown=app dir:abc in /app/out/ "
        );
    }

    #[test]
    fn run_heredocs_and_mounts() {
        let text = "\
FROM a
ENV DIR=/cache
RUN <<EOF
echo one
echo two
EOF
RUN <<EOF
#!/usr/bin/env python3
print(1)
EOF
RUN cat <<A > /x
hello
A
RUN --mount=type=cache,target=$DIR --network=none make
";
        let p = plan(text, &opts());
        let (_, steps) = build(&p, 0, None);
        let runs: Vec<&RunStep> = steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Run(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(runs[0].argv, vec!["/bin/sh", "-c", "echo one\necho two\n"]);
        assert_eq!(runs[1].argv, vec!["/dev/pipes/EOF"]);
        assert_eq!(
            runs[1].script,
            Some(("EOF".into(), "#!/usr/bin/env python3\nprint(1)\n".into()))
        );
        assert_eq!(
            runs[2].argv,
            vec!["/bin/sh", "-c", "cat <<A > /x\nhello\nA"]
        );
        assert_eq!(runs[3].mounts[0].target.as_deref(), Some("/cache"));
        assert_eq!(runs[3].network.as_deref(), Some("none"));
    }
}

//! What each instruction does to the stage's image config and history (the classic builder's
//! dispatchers): [`StageBuilder::dispatch`] sends each instruction to its own function.
//! Metadata instructions (here) change the config and are committed at once as an
//! empty-layer entry; WORKDIR (here), RUN (`run`) and COPY/ADD (`copy`) come back as steps
//! for the engine.

use std::collections::BTreeMap;

use berth_image::oci::History;

use crate::gofmt;
use crate::parser::{
    self, ArgDecl, Command, CommandLine, HealthcheckCmd, Instruction, KeyValue, OnbuildCmd,
};

use super::values::{normalize_workdir, port_keys, valid_signal};
use super::{PlanError, StageBuilder, Step, StepKind};

/// A step for the engine as dispatched: what to do, the history entry to commit, the text the
/// cache key hashes.
pub(super) type Dispatched = (StepKind, History, String);

impl StageBuilder<'_> {
    /// Dispatches one instruction (see the module docs); the step is numbered even when it
    /// fails.
    pub(super) fn dispatch(&mut self, ins: &Instruction) -> Result<Step, PlanError> {
        let line = ins.line;
        let index = self.step_index;
        self.step_index += 1;
        let step = |(kind, history, cache_text): Dispatched| Step {
            index,
            line,
            end_line: ins.end_line,
            text: ins.original.trim().to_owned(),
            kind,
            history,
            cache_text,
        };
        let text = match &ins.command {
            Command::Env(pairs) => self.dispatch_env(pairs, line)?,
            Command::Label(pairs) => self.dispatch_label(pairs, line)?,
            Command::Maintainer(m) => self.dispatch_maintainer(m),
            Command::Arg(decls) => self.dispatch_arg(decls, line)?,
            Command::Cmd(c) => self.dispatch_cmd(c),
            Command::Entrypoint(c) => self.dispatch_entrypoint(c),
            Command::Expose(ports) => self.dispatch_expose(ports, line)?,
            Command::User(u) => self.dispatch_user(u, line)?,
            Command::Volume(vols) => self.dispatch_volume(vols, line)?,
            Command::StopSignal(s) => self.dispatch_stopsignal(s, line)?,
            Command::Healthcheck(hc) => self.dispatch_healthcheck(hc),
            Command::Shell(s) => self.dispatch_shell(s),
            Command::Onbuild(o) => self.dispatch_onbuild(o),
            Command::Workdir(w) => return self.dispatch_workdir(w, line).map(step),
            Command::Run(r) => return self.dispatch_run(r, ins).map(step),
            Command::Copy(c) => return self.dispatch_copy(c, false, line).map(step),
            Command::Add(c) => return self.dispatch_copy(c, true, line).map(step),
            Command::From(_) => return Err(PlanError::at(line, "FROM inside a stage")),
            Command::Invalid => {
                return Err(PlanError::at(
                    line,
                    format!("unknown instruction: {}", ins.keyword),
                ))
            }
        };
        // A metadata instruction, its config change made: its history entry, committed now.
        let h = self.nop(&text);
        Ok(step((StepKind::Metadata, h, text)))
    }

    /// `ENV k=v…`: expanded, each replacing the variable in the config's Env or appended.
    fn dispatch_env(&mut self, pairs: &[KeyValue], line: usize) -> Result<String, PlanError> {
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
        Ok(text)
    }

    /// `LABEL k=v…`: expanded, into the config's labels.
    fn dispatch_label(&mut self, pairs: &[KeyValue], line: usize) -> Result<String, PlanError> {
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
        Ok(text)
    }

    /// `MAINTAINER name`: the image's author (and so of the history entries from here on).
    fn dispatch_maintainer(&mut self, m: &str) -> String {
        self.image.author = Some(m.to_owned());
        format!("MAINTAINER {m}")
    }

    /// `ARG name[=default]…`: expanded, declared in the stage's scope.
    fn dispatch_arg(&mut self, decls: &[ArgDecl], line: usize) -> Result<String, PlanError> {
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
        Ok(format!("ARG {}", parts.join(" ")))
    }

    /// `CMD`: not expanded; shell form wrapped in the SHELL.
    fn dispatch_cmd(&mut self, c: &CommandLine) -> String {
        let cmd = self.resolve(c);
        self.image.config.cmd = Some(cmd.clone());
        self.image.config.args_escaped = None;
        self.cmd_set = true;
        format!("CMD {}", gofmt::quote_list(&cmd))
    }

    /// `ENTRYPOINT`: like CMD (`[]` clears it); drops a CMD inherited from the base.
    fn dispatch_entrypoint(&mut self, c: &CommandLine) -> String {
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
        format!("ENTRYPOINT {}", gofmt::quote_list(&ep.unwrap_or_default()))
    }

    /// `EXPOSE port…`: expanded into words, each a port spec into the exposed ports.
    fn dispatch_expose(&mut self, ports: &[String], line: usize) -> Result<String, PlanError> {
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
        Ok(format!("EXPOSE {}", words.join(" ")))
    }

    /// `USER`: expanded.
    fn dispatch_user(&mut self, u: &str, line: usize) -> Result<String, PlanError> {
        let u = self.word(u, line)?;
        self.image.config.user = Some(u.clone());
        Ok(format!("USER {u}"))
    }

    /// `VOLUME`: each path expanded, none empty, into the config's volumes.
    fn dispatch_volume(&mut self, vols: &[String], line: usize) -> Result<String, PlanError> {
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
        Ok(format!("VOLUME {}", gofmt::plain_list(&out)))
    }

    /// `STOPSIGNAL`: expanded, a signal Docker knows.
    fn dispatch_stopsignal(&mut self, s: &str, line: usize) -> Result<String, PlanError> {
        let s = self.word(s, line)?;
        if !valid_signal(&s) {
            return Err(PlanError::at(line, format!("Invalid signal: {s}")));
        }
        self.image.config.stop_signal = Some(s.clone());
        Ok(format!("STOPSIGNAL {s}"))
    }

    /// `HEALTHCHECK`: not expanded; `NONE` turns the base's off.
    fn dispatch_healthcheck(&mut self, hc: &HealthcheckCmd) -> String {
        let (json, text) = healthcheck_config(hc);
        self.image.config.healthcheck = Some(json);
        text
    }

    /// `SHELL`: for the shell forms that follow (and this entry's own history text).
    fn dispatch_shell(&mut self, s: &[String]) -> String {
        self.image.config.shell = Some(s.to_vec());
        format!("SHELL {}", gofmt::plain_list(s))
    }

    /// `ONBUILD`: the trigger stored unexpanded, for the stages built on this image.
    fn dispatch_onbuild(&mut self, o: &OnbuildCmd) -> String {
        self.image
            .config
            .on_build
            .get_or_insert_with(Vec::new)
            .push(o.expression.clone());
        format!("ONBUILD {}", o.expression)
    }

    /// `WORKDIR`: expanded, joined to the current one; a step (the engine creates it).
    fn dispatch_workdir(&mut self, w: &str, line: usize) -> Result<Dispatched, PlanError> {
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
        Ok((StepKind::Workdir(dir), h, cache))
    }
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
        berth_core::duration::format(c.interval),
        berth_core::duration::format(c.timeout),
        berth_core::duration::format(c.start_period),
        berth_core::duration::format(c.start_interval),
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
}

//! RUN: its `--mount`s expanded, the command (heredocs as BuildKit runs them, shell form
//! wrapped in the SHELL), the environment with the build args in effect, and the classic
//! builder's history text (`|1 V=2 /bin/sh -c make`).

use berth_image::oci::History;

use crate::mount::Mount;
use crate::parser::{self, CommandLine, Instruction, RunCmd};

use super::dispatch::Dispatched;
use super::{PlanError, RunStep, StageBuilder, StepKind, PROXY_ARGS};

impl StageBuilder<'_> {
    /// `RUN`: a step for the engine to run (only the `--mount` values are expanded).
    pub(super) fn dispatch_run(
        &self,
        r: &RunCmd,
        ins: &Instruction,
    ) -> Result<Dispatched, PlanError> {
        let line = ins.line;
        let env_now = self.expansion_env();
        let lex = self.lex;
        let exp =
            |v: &str| -> Result<String, String> { lex.process_word(v, &env_now).map_err(|e| e.0) };
        let mut mounts = Vec::new();
        for m in &r.mounts {
            mounts.push(Mount::parse(m, Some(&exp)).map_err(|e| PlanError::at(line, e.0))?);
        }
        let (cmdline, script) = run_command_line(&r.command, ins);
        let argv = self.resolve(&cmdline);
        let args = self.build_arg_env();
        let created_by = self.run_created_by(&argv, &args);
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
        Ok((StepKind::Run(run), h, cache))
    }

    /// RUN's history text: `argv`, after `|N K=V…` when build args (`args`) are in effect.
    fn run_created_by(&self, argv: &[String], args: &[String]) -> String {
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
        save.join(" ")
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

#[cfg(test)]
mod tests {
    use crate::plan::testutil::{build, opts, plan};
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

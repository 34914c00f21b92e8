//! Phase 2 of a build: [`StageBuilder`] walks one stage on its base image's config — the base's
//! ONBUILD triggers first, PATH added when missing, `--label`s at the end of the target — and
//! keeps the config, the ARGs in scope and the history as instructions are dispatched
//! (`dispatch`) and layer steps committed.

use std::collections::{BTreeMap, VecDeque};

use berth_core::Digest;
use berth_image::oci::{History, ImageConfig, RootFs, RunConfig};

use crate::parser::{self, CommandLine, Instruction};
use crate::shell::Lexer;

use super::args::Args;
use super::{expand, BuildPlan, PlanError, Stage, Step, StepKind, DEFAULT_PATH};

impl BuildPlan {
    /// Starts dispatching stage `index` on its base image's config (`None` for scratch; for a
    /// stage base, the config that stage produced).
    pub fn stage_builder(
        &self,
        index: usize,
        base: Option<&ImageConfig>,
    ) -> Result<StageBuilder<'_>, PlanError> {
        let stage = self
            .stages
            .get(index)
            .ok_or_else(|| PlanError::new(format!("no stage {index}")))?;
        let platform = self.stage_platform(index);
        let mut image = match base {
            Some(b) => b.clone(),
            None => ImageConfig {
                created: None,
                author: None,
                comment: None,
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                config: RunConfig::default(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                history: Vec::new(),
                docker: Default::default(),
            },
        };
        image.created = None;
        image.comment = None;
        // What the base was committed from is not what this image is built from.
        image.docker = Default::default();
        if image.architecture.is_empty() {
            image.architecture = platform.architecture.clone();
        }
        if image.os.is_empty() {
            image.os = platform.os.clone();
        }
        let env = image.config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let mut queue = VecDeque::new();
        if let Some(triggers) = image.config.on_build.take() {
            for t in triggers {
                let ins = parser::parse_trigger(&t, self.escape).map_err(|e| {
                    PlanError::at(
                        stage.from.line,
                        format!("onbuild trigger {t:?}: {}", e.message),
                    )
                })?;
                let mut ins = ins;
                ins.line = stage.from.line;
                ins.end_line = stage.from.end_line;
                queue.push_back(ins);
            }
        }
        queue.extend(stage.instructions.iter().cloned());
        let history_base = image.history.len();
        Ok(StageBuilder {
            plan: self,
            stage: index,
            lex: Lexer::new(self.escape),
            image,
            args: Args::default(),
            queue,
            cmd_set: false,
            labels_done: index != self.target || self.options.labels.is_empty(),
            pending: None,
            step_index: 0,
            history_base,
        })
    }
}

/// Dispatches one stage's instructions onto an image config (see the module docs).
#[derive(Debug)]
pub struct StageBuilder<'p> {
    pub(super) plan: &'p BuildPlan,
    pub(super) stage: usize,
    pub(super) lex: Lexer,
    pub(super) image: ImageConfig,
    pub(super) args: Args,
    queue: VecDeque<Instruction>,
    pub(super) cmd_set: bool,
    labels_done: bool,
    pending: Option<usize>,
    pub(super) step_index: usize,
    history_base: usize,
}

impl StageBuilder<'_> {
    /// The image config so far.
    pub fn config(&self) -> &ImageConfig {
        &self.image
    }

    /// The stage being built.
    pub fn stage(&self) -> &Stage {
        &self.plan.stages[self.stage]
    }

    /// The shell for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        match &self.image.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// The build args in effect that the config's Env does not override, as `K=V`, sorted.
    pub fn build_arg_env(&self) -> Vec<String> {
        let env = self.image.config.env.clone().unwrap_or_default();
        self.args
            .all(&self.plan.options.build_args, &self.plan.meta_args)
            .into_iter()
            .filter(|(k, _)| !env.iter().any(|e| e.split('=').next() == Some(k.as_str())))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// What `$VAR` means now: the config's Env, then build args it does not override.
    pub(super) fn expansion_env(&self) -> Vec<String> {
        let mut env = self.image.config.env.clone().unwrap_or_default();
        env.extend(self.build_arg_env());
        env
    }

    pub(super) fn word(&self, w: &str, line: usize) -> Result<String, PlanError> {
        expand(&self.lex, w, &self.expansion_env(), line)
    }

    pub(super) fn opt_word(
        &self,
        w: &Option<String>,
        line: usize,
    ) -> Result<Option<String>, PlanError> {
        w.as_ref().map(|v| self.word(v, line)).transpose()
    }

    /// Records a metadata step's history entry: `<shell> #(nop)  <comment>`.
    pub(super) fn nop(&mut self, comment: &str) -> History {
        let h = History {
            created: None,
            created_by: Some(format!("{} #(nop)  {comment}", self.shell().join(" "))),
            author: self.image.author.clone(),
            comment: None,
            empty_layer: true,
        };
        self.image.history.push(h.clone());
        h
    }

    /// The next step, or `None` when the stage is done. Metadata steps are applied and
    /// committed here; a RUN/COPY/ADD/WORKDIR step must be [`commit`](Self::commit)ted before
    /// the next call.
    pub fn next_step(&mut self) -> Option<Result<Step, PlanError>> {
        if self.pending.is_some() {
            return Some(Err(PlanError::new(
                "the previous step was not committed before the next one",
            )));
        }
        let ins = match self.queue.pop_front() {
            Some(i) => i,
            None if !self.labels_done => {
                self.labels_done = true;
                return Some(Ok(self.option_labels()));
            }
            None => return None,
        };
        let r = self.dispatch(&ins);
        if let Ok(s) = &r {
            if s.kind != StepKind::Metadata {
                self.pending = Some(s.index);
            }
        }
        Some(r)
    }

    /// Records the result of a RUN/COPY/ADD/WORKDIR step: the diff ID of the layer it made,
    /// or `None` when it changed nothing (Docker then marks the history entry `empty_layer`).
    /// `created_by` overrides the step's history text (COPY/ADD: see
    /// [`CopyStep::created_by`](super::CopyStep::created_by)).
    pub fn commit(&mut self, step: &Step, diff_id: Option<Digest>, created_by: Option<String>) {
        let mut h = step.history.clone();
        if let Some(c) = created_by {
            h.created_by = Some(c);
        }
        h.author = self.image.author.clone();
        h.empty_layer = diff_id.is_none();
        if let Some(d) = diff_id {
            self.image.rootfs.diff_ids.push(d);
        }
        self.image.history.push(h);
        self.pending = None;
    }

    /// The finished image config; `created` (RFC 3339) stamps it and the history entries this
    /// stage added.
    pub fn finish(mut self, created: Option<&str>) -> ImageConfig {
        if let Some(c) = created {
            self.image.created = Some(c.to_owned());
            for h in &mut self.image.history[self.history_base..] {
                h.created = Some(c.to_owned());
            }
        }
        self.image
    }

    fn option_labels(&mut self) -> Step {
        let labels = self.plan.options.labels.clone();
        let map = self.image.config.labels.get_or_insert_with(BTreeMap::new);
        let mut text = String::from("LABEL");
        for (k, v) in &labels {
            map.insert(k.clone(), v.clone());
            text.push_str(&format!(" {k}={v}"));
        }
        let history = self.nop(&text);
        let index = self.step_index;
        self.step_index += 1;
        Step {
            index,
            line: 0,
            end_line: 0,
            text: text.clone(),
            kind: StepKind::Metadata,
            history,
            cache_text: text,
        }
    }

    /// Shell form gets the shell prepended; exec form is taken as is.
    pub(super) fn resolve(&self, c: &CommandLine) -> Vec<String> {
        match c {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_core::Digest;

    use crate::plan::testutil::{base_with, build, opts, plan};
    use crate::plan::*;

    #[test]
    fn onbuild_triggers_of_the_base_run_first_and_are_not_inherited() {
        let base = base_with(|c| {
            c.on_build = Some(vec!["ENV FROM_TRIGGER=1".into(), "RUN echo hi".into()])
        });
        let p = plan("FROM a\nUSER x\n", &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(steps.len(), 3);
        assert!(matches!(steps[1].kind, StepKind::Run(_)));
        assert_eq!(c.config.on_build, None);
        assert!(c.config.env.unwrap().contains(&"FROM_TRIGGER=1".to_owned()));
    }

    #[test]
    fn scratch_gets_path_and_platform_and_labels_from_options() {
        let mut o = opts();
        o.labels.insert("built.by".into(), "berth".into());
        let p = plan("FROM scratch\nCOPY a /a\n", &o);
        let (c, steps) = build(&p, 0, None);
        assert_eq!(c.architecture, "amd64");
        assert_eq!(c.config.env, Some(vec![format!("PATH={DEFAULT_PATH}")]));
        assert_eq!(c.config.labels.unwrap()["built.by"], "berth");
        assert_eq!(steps.last().unwrap().text, "LABEL built.by=berth");
        assert_eq!(p.step_count(), 2);
    }

    #[test]
    fn layer_steps_must_be_committed() {
        let p = plan("FROM a\nRUN x\nRUN y\n", &opts());
        let mut b = p.stage_builder(0, None).unwrap();
        let s = b.next_step().unwrap().unwrap();
        assert!(b.next_step().unwrap().is_err());
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        b.commit(&s, Some(d.clone()), None);
        assert!(b.next_step().unwrap().is_ok());
        assert_eq!(b.config().rootfs.diff_ids, vec![d]);
        assert!(!b.config().history[0].empty_layer);
    }

    /// Which instructions expand variables (Docker's list) and which leave them to the shell.
    #[test]
    fn expansion_per_instruction() {
        let text = "\
FROM a
ENV V=val D=/dir U=app S=SIGTERM
WORKDIR $D
USER $U
STOPSIGNAL $S
LABEL l=$V
VOLUME $D/vol
EXPOSE 80$V
COPY $V.txt $D/
ONBUILD RUN echo $V
RUN echo $V
CMD echo $V
ENTRYPOINT [\"echo\", \"$V\"]
HEALTHCHECK CMD echo $V
SHELL [\"/bin/sh\", \"-c\", \"$V\"]
";
        let p = plan(&text.replace("EXPOSE 80$V\n", ""), &opts());
        let (c, steps) = build(&p, 0, None);
        let rc = &c.config;
        assert_eq!(rc.working_dir.as_deref(), Some("/dir"));
        assert_eq!(rc.user.as_deref(), Some("app"));
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(rc.labels.as_ref().unwrap()["l"], "val");
        assert!(rc.volumes.as_ref().unwrap().contains_key("/dir/vol"));
        let copy = steps.iter().find_map(|s| match &s.kind {
            StepKind::Copy(c) => Some(c.clone()),
            _ => None,
        });
        let copy = copy.unwrap();
        assert_eq!(
            (copy.sources[0].as_str(), copy.dest.as_str()),
            ("val.txt", "/dir/")
        );
        // Not expanded by the builder:
        assert_eq!(rc.on_build.as_ref().unwrap()[0], "RUN echo $V");
        let run = steps.iter().find_map(|s| match &s.kind {
            StepKind::Run(r) => Some(r.clone()),
            _ => None,
        });
        assert_eq!(run.unwrap().argv, vec!["/bin/sh", "-c", "echo $V"]);
        assert_eq!(rc.cmd.as_ref().unwrap()[2], "echo $V");
        assert_eq!(rc.entrypoint.as_ref().unwrap()[1], "$V");
        assert_eq!(rc.healthcheck.as_ref().unwrap()["Test"][1], "echo $V");
        assert_eq!(rc.shell.as_ref().unwrap()[2], "$V");
        // EXPOSE expands into words.
        let p = plan("FROM a\nENV P=\"80 443/udp\"\nEXPOSE $P\n", &opts());
        let ports: Vec<_> = build(&p, 0, None)
            .0
            .config
            .exposed_ports
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(ports, vec!["443/udp", "80/tcp"]);
        // Single quotes and escapes keep a `$`.
        let p = plan("FROM a\nENV V=x\nENV A='$V' B=\\$V C=\"$V\"\n", &opts());
        let env = build(&p, 0, None).0.config.env.unwrap();
        assert!(
            env.ends_with(&["A=$V".to_owned(), "B=$V".to_owned(), "C=x".to_owned()]),
            "{env:?}"
        );
    }
}

//! COPY and ADD: sources, destination and flags expanded, the destination joined to the
//! working directory, `--from` resolved, heredoc sources expanded unless quoted; the step's
//! cache text (its history text needs the source hash: see [`super::CopyStep::created_by`]).

use berth_image::oci::History;

use crate::parser::{CopyCmd, InlineSource};
use crate::shell::Lexer;

use super::dispatch::Dispatched;
use super::graph::resolve_source;
use super::values::normalize_dest;
use super::{expand, CopyStep, PlanError, StageBuilder, StepKind};

impl StageBuilder<'_> {
    /// `COPY` (`add` false) or `ADD`: a step for the engine to copy.
    pub(super) fn dispatch_copy(
        &self,
        c: &CopyCmd,
        add: bool,
        line: usize,
    ) -> Result<Dispatched, PlanError> {
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
        Ok((StepKind::Copy(cs), h, cache))
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

#[cfg(test)]
mod tests {
    use crate::plan::testutil::{build, opts, plan};
    use crate::plan::*;

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
}

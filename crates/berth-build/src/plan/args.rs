//! ARG scoping within a stage: which build args the stage has declared, and the value each
//! resolves to (Docker's `getBuildArg`: `--build-arg`, else the default, else the global value).

use std::collections::BTreeMap;

use super::PROXY_ARGS;

/// The declared ARGs of a scope and the values they resolve to.
#[derive(Debug, Clone, Default)]
pub(super) struct Args {
    /// Declared name → its default (None: declared without one).
    pub(super) declared: BTreeMap<String, Option<String>>,
}

impl Args {
    /// Docker's `getBuildArg`: an override from `--build-arg`, else the declared default, else
    /// (declared without one) the global value.
    fn value(
        &self,
        name: &str,
        opts: &BTreeMap<String, Option<String>>,
        meta: &BTreeMap<String, String>,
    ) -> Option<String> {
        if let Some(Some(v)) = opts.get(name) {
            return Some(v.clone());
        }
        match self.declared.get(name) {
            Some(Some(d)) => Some(d.clone()),
            Some(None) => meta.get(name).cloned(),
            None => None,
        }
    }

    /// Every arg in effect: the declared ones with a value, and proxy args given by the user.
    pub(super) fn all(
        &self,
        opts: &BTreeMap<String, Option<String>>,
        meta: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in self.declared.keys() {
            if let Some(v) = self.value(name, opts, meta) {
                out.insert(name.clone(), v);
            }
        }
        for p in PROXY_ARGS {
            if let Some(Some(v)) = opts.get(*p) {
                out.entry((*p).to_owned()).or_insert_with(|| v.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::testutil::{build, opts, plan};
    use crate::plan::*;

    #[test]
    fn arg_scoping() {
        let text = "\
ARG V=global
ARG ONLY_GLOBAL=g
FROM alpine
RUN echo $V
ARG V
ARG LOCAL=l
ENV E=$V-$LOCAL-$ONLY_GLOBAL
FROM alpine
ARG V=second
ENV E=$V
";
        let p = plan(text, &opts());
        let (c0, steps) = build(&p, 0, None);
        let env = c0.config.env.unwrap();
        // Redeclared without a value: takes the global one; ONLY_GLOBAL not redeclared: empty.
        assert!(env.contains(&"E=global-l-".to_owned()), "{env:?}");
        // The RUN before `ARG V` does not see V in its environment.
        match &steps[0].kind {
            StepKind::Run(r) => assert!(!r.env.iter().any(|e| e.starts_with("V=")), "{:?}", r.env),
            k => panic!("{k:?}"),
        }
        let (c1, _) = build(&p, 1, None);
        assert!(c1.config.env.unwrap().contains(&"E=second".to_owned()));
        // --build-arg overrides the default.
        let o = opts().with_build_args(["V=cli"], |_| None);
        let p = plan(text, &o);
        let (c1, _) = build(&p, 1, None);
        assert!(c1.config.env.unwrap().contains(&"E=cli".to_owned()));
        // Automatic platform args need a redeclaration inside a stage.
        let p = plan(
            "FROM a\nENV A=x$TARGETARCH\nARG TARGETARCH\nENV B=$TARGETARCH\n",
            &opts(),
        );
        let env = build(&p, 0, None).0.config.env.unwrap();
        assert!(env.contains(&"A=x".to_owned()));
        assert!(env.contains(&"B=amd64".to_owned()));
    }
}

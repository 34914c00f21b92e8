//! Helpers for the plan's tests: options for linux/amd64, a plan from Dockerfile text, a whole
//! stage dispatched, a base image config.

use berth_image::oci::{ImageConfig, RootFs, RunConfig};

use crate::parser::Dockerfile;

use super::{BuildOptions, BuildPlan, Platform, Step, StepKind};

pub(super) fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

pub(super) fn opts() -> BuildOptions {
    BuildOptions {
        platform: amd64(),
        build_platform: amd64(),
        ..Default::default()
    }
}

pub(super) fn plan(text: &str, o: &BuildOptions) -> BuildPlan {
    let df = Dockerfile::parse(text).unwrap();
    BuildPlan::new(&df, o).unwrap()
}

/// Dispatches every step of a stage, committing layer steps with no layer.
pub(super) fn build(
    p: &BuildPlan,
    stage: usize,
    base: Option<&ImageConfig>,
) -> (ImageConfig, Vec<Step>) {
    let mut b = p.stage_builder(stage, base).unwrap();
    let mut steps = Vec::new();
    while let Some(s) = b.next_step() {
        let s = s.unwrap();
        if s.kind != StepKind::Metadata {
            b.commit(&s, None, None);
        }
        steps.push(s);
    }
    (b.finish(Some("2024-01-01T00:00:00Z")), steps)
}

pub(super) fn base_with(f: impl FnOnce(&mut RunConfig)) -> ImageConfig {
    let mut c = ImageConfig {
        created: None,
        author: None,
        comment: None,
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
        config: RunConfig::default(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![],
        },
        history: vec![],
        docker: Default::default(),
    };
    f(&mut c.config);
    c
}

//! The loader against the corpus in `tests/config`: every project Docker Compose v2.40.3
//! accepts must load to the JSON v2 printed for it (`expected.json`, compared as JSON),
//! and every project v2 refuses must be refused, with a message that names where.
//! `tests/config/compare.sh` runs the same judgement through the `berth` binary, and
//! `regen.sh` remakes the expected files with a v2 binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_compose::load::{self, Options};
use berth_compose::shellwords;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no {kind} cases");
    dirs
}

/// The options a case's `args` and `osenv` give, as the scripts run them.
fn options(dir: &Path) -> Options {
    let args = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
    let words = shellwords::split(args.trim()).unwrap();
    let mut environment: BTreeMap<String, String> = [
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), "/nonexistent".to_owned()),
    ]
    .into();
    if let Ok(text) = std::fs::read_to_string(dir.join("osenv")) {
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').unwrap();
            environment.insert(k.to_owned(), v.to_owned());
        }
    }
    let mut opts = Options {
        environment,
        cwd: dir.to_path_buf(),
        ..Default::default()
    };
    let mut it = words.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "-f" | "--file" => opts.files.push(value().into()),
            "-p" | "--project-name" => opts.project_name = Some(value()),
            "--project-directory" => opts.project_directory = Some(value().into()),
            "--env-file" => opts.env_files.push(value().into()),
            "--profile" => opts.profiles.push(value()),
            other => panic!("{}: flag {other} not understood by the test", dir.display()),
        }
    }
    opts
}

#[test]
fn every_project_v2_accepts_loads_to_the_same_json() {
    let mut failures = Vec::new();
    let good = cases("good");
    for dir in &good {
        let loaded = match load::load(&options(dir)) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{}: refused: {e}", dir.display()));
                continue;
            }
        };
        let ours = loaded
            .project
            .to_config_json()
            .replace(&dir.display().to_string(), "@DIR@");
        let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        if ours != want {
            failures.push(format!(
                "{}: differs\n ours: {ours}\n v2:   {want}",
                dir.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        good.len(),
        failures.join("\n")
    );
}

#[test]
fn every_project_v2_refuses_is_refused() {
    let mut accepted = Vec::new();
    for dir in cases("bad") {
        if load::load(&options(&dir)).is_ok() {
            accepted.push(dir.display().to_string());
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

#[test]
fn schema_errors_name_file_line_and_key() {
    for (case, want) in [
        ("02-unknown-service-key", "compose.yaml:"),
        ("03-ports-wrong-type", "services.app.ports"),
        ("05-restart-wrong-type", "services.app.restart"),
        ("13-invalid-interpolation", "services.app.image"),
        ("14-yaml-syntax-error", "yaml: line"),
        ("19-invalid-port", "services.app.ports[0]"),
    ] {
        let dir = corpus().join("bad").join(case);
        let err = load::load(&options(&dir)).unwrap_err().message;
        assert!(err.contains(want), "{case}: {err:?} lacks {want:?}");
        if case != "14-yaml-syntax-error" {
            assert!(
                err.contains(&format!("{}:", dir.join("compose.yaml").display())),
                "{case}: {err:?} names no file:line"
            );
        }
    }
}

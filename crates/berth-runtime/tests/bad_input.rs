//! Bad input gets one clear line on stderr, a non-zero exit, and leaves no state, cgroup or
//! mount behind; an existing container is untouched by a clashing create.

#[macro_use]
mod common;

use common::*;

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

fn assert_nothing_left(sb: &Sandbox, id: &str) {
    assert!(!sb.root.join(id).exists(), "state dir of {id} left behind");
    assert!(
        !sb.root.join(".bundles").join(id).exists(),
        "shadow bundle left behind"
    );
    for dir in cgroup_dirs(id) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(
        !mounts_mention(sb.dir.path().to_str().unwrap()),
        "mount left behind"
    );
}

#[test]
fn missing_bundle() {
    root_only!();
    let sb = Sandbox::new();
    let id = sb.id("nobundle");
    let missing = sb.dir.path().join("nowhere");
    let out = sb.rt(&["run", "-b", missing.to_str().unwrap(), &id]);
    assert_one_line_error(&out, "no config.json");
    assert_nothing_left(&sb, &id);
}

#[test]
fn malformed_config() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("bad", sh("true"));
    std::fs::write(
        b.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": [",
    )
    .unwrap();
    let id = sb.id("bad");
    let out = sb.rt(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_one_line_error(&out, "malformed config.json");
    assert_nothing_left(&sb, &id);

    // Valid JSON that no container can run: a command that does not exist. This fails inside
    // the container process, after cgroups and mounts were made: they must all be undone.
    let b = sb.bundle("nocmd", argv(&["/no/such/binary"]));
    let id = sb.id("nocmd");
    let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_one_line_error(&out, "/no/such/binary");
    assert_nothing_left(&sb, &id);
}

#[test]
fn unknown_container_id() {
    root_only!();
    let sb = Sandbox::new();
    for args in [
        vec!["state", "ghost"],
        vec!["start", "ghost"],
        vec!["kill", "ghost", "KILL"],
        vec!["delete", "ghost"],
        vec!["pause", "ghost"],
        vec!["exec", "ghost", "true"],
    ] {
        let out = sb.rt(&args);
        assert_one_line_error(&out, "container \"ghost\" does not exist");
    }
    // runc semantics: a forced delete of nothing succeeds.
    assert!(sb.rt(&["delete", "--force", "ghost"]).status.success());
    let bad = sb.rt(&["state", "../etc"]);
    assert_one_line_error(&bad, "invalid container id");
}

#[test]
fn id_already_in_use() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("first", sh("sleep 100"));
    let id = sb.id("dup");
    let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid_before = stdout(&sb.rt(&["state", &id]));

    let b2 = sb.bundle("second", sh("true"));
    let out = sb.rt(&["create", "-b", b2.to_str().unwrap(), &id]);
    assert_one_line_error(&out, "already exists");
    // The first container is untouched.
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    assert_eq!(stdout(&sb.rt(&["state", &id])), pid_before);
    for dir in cgroup_dirs(&id) {
        assert!(dir.is_dir());
    }
}

#[test]
fn unknown_signal_is_refused() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("sig", sh("sleep 100"));
    let id = sb.id("sig");
    assert!(sb
        .rt(&["run", "-d", "-b", b.to_str().unwrap(), &id])
        .status
        .success());
    let out = sb.rt(&["kill", &id, "SIGNOPE"]);
    assert_one_line_error(&out, "unknown signal");
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
}

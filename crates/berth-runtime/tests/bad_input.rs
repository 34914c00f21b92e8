//! Bad input gets one clear line on stderr, a non-zero exit, and leaves no state, cgroup or
//! mount behind; an existing container is untouched by a clashing create.

#[macro_use]
mod common;

use common::*;

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert_one_line_error_code(out, 1, needle);
}

fn assert_one_line_error_code(out: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stdout {}", stdout(out));
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
    assert_one_line_error_code(
        &out,
        127,
        "exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory",
    );
    assert_nothing_left(&sb, &id);
}

/// Docker's words and exit codes for a command that cannot run, found before `create` returns:
/// 127 when there is no such command, 126 when it cannot be invoked (`run` and `exec`; `create`
/// exits 1 like runc, with the same message).
#[test]
fn commands_that_cannot_run() {
    root_only!();
    let sb = Sandbox::new();
    let cases: [(&str, &[&str], i32, &str); 5] = [
        (
            "notinpath",
            &["nonexistent", "arg"],
            127,
            "exec: \"nonexistent\": executable file not found in $PATH",
        ),
        (
            "missing",
            &["/bin/nope"],
            127,
            "exec: \"/bin/nope\": stat /bin/nope: no such file or directory",
        ),
        (
            "noexec",
            &["/etc/passwd"],
            126,
            "exec: \"/etc/passwd\": permission denied",
        ),
        ("dir", &["/bin"], 126, "exec: \"/bin\": is a directory"),
        // A file that is not on PATH as an executable is not found, even if it exists.
        (
            "notexecutable",
            &["passwd"],
            127,
            "exec: \"passwd\": executable file not found in $PATH",
        ),
    ];
    for (name, args, code, message) in cases {
        let mut opts = argv(args);
        if name == "notexecutable" {
            opts.env = vec!["PATH=/etc".into()];
        }
        let b = sb.bundle(name, opts);
        let id = sb.id(name);
        let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
        assert_one_line_error_code(&out, code, message);
        assert!(
            stderr(&out).contains("unable to start container process: "),
            "{}",
            stderr(&out)
        );
        assert_nothing_left(&sb, &id);

        // create: runc's exit status, the same words.
        let id = sb.id(name);
        let out = sb.rt(&["create", "-b", b.to_str().unwrap(), &id]);
        assert_one_line_error_code(&out, 1, message);
        assert_nothing_left(&sb, &id);
    }

    // The check is made as the container's user: root may run a file only root may execute,
    // another user may not.
    let b = sb.bundle("rootonly", argv(&["/bin/mine"]));
    std::fs::write(
        b.join("rootfs/bin/mine"),
        "#!/bin/sh\necho ran as $(id -u)\n",
    )
    .unwrap();
    std::fs::set_permissions(
        b.join("rootfs/bin/mine"),
        std::os::unix::fs::PermissionsExt::from_mode(0o744),
    )
    .unwrap();
    let id = sb.id("rootonly");
    let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(stdout(&out), "ran as 0\n", "{}", stderr(&out));
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    // As Docker specifies a non-root process: capabilities in the bounding set only.
    spec["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    let bounding = spec["process"]["capabilities"]["bounding"].clone();
    spec["process"]["capabilities"] = serde_json::json!({ "bounding": bounding });
    std::fs::write(b.join("config.json"), spec.to_string()).unwrap();
    let id = sb.id("rootonly");
    let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_one_line_error_code(&out, 126, "exec: \"/bin/mine\": permission denied");
    assert_nothing_left(&sb, &id);

    // exec into a running container: the same words and codes, and the container is fine.
    let b = sb.bundle("running", sh("sleep 100"));
    let id = sb.id("running");
    let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (args, code, message) in [
        (
            &["nonexistent"][..],
            127,
            "exec: \"nonexistent\": executable file not found in $PATH",
        ),
        (
            &["/bin/nope"][..],
            127,
            "exec: \"/bin/nope\": stat /bin/nope: no such file or directory",
        ),
        (
            &["/etc/passwd"][..],
            126,
            "exec: \"/etc/passwd\": permission denied",
        ),
    ] {
        let mut cmd = vec!["exec", id.as_str()];
        cmd.extend(args);
        let out = sb.rt(&cmd);
        assert_one_line_error_code(&out, code, message);
        let mut detached = vec!["exec", "-d", id.as_str()];
        detached.extend(args);
        assert_one_line_error_code(&sb.rt(&detached), code, message);
    }
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    let ok = sb.rt(&["exec", &id, "sh", "-c", "exit 4"]);
    assert_eq!(ok.status.code(), Some(4), "{}", stderr(&ok));
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

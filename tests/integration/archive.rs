//! A container's files, end to end: `cp` both ways (berth's CLI and docker's), running,
//! stopped and never-started containers, symlinks in the container that point at `/`, `..` or
//! host paths (the copy stays inside the container, the host is untouched), bad input;
//! `commit` (the change and a deletion survive, `-c` changes the config), `diff`, `export`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_testutil::*;

fn fails(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        text(out)
    );
    err(out)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

/// Runs a detached container named `name` that prepares its files with `script` and stays up.
fn running(d: &TestDaemon, name: &str, script: &str) {
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        name,
        "bb",
        "sh",
        "-c",
        &format!("{script} && echo ready > /ready && exec sleep 1000"),
    ]));
    eventually("the container to be ready", Duration::from_secs(20), || {
        d.berth(&["exec", name, "cat", "/ready"]).status.success()
    });
}

/// The mounts under the daemon's root (a stopped container's rootfs must not stay mounted).
fn mounts_under(d: &TestDaemon, what: &str) -> Vec<String> {
    let root = d.dir.path().join("root").join("containers");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&root.display().to_string()) && p.contains(what))
        .filter(|p| p.ends_with("/rootfs"))
        .map(str::to_owned)
        .collect()
}

fn inspect(d: &TestDaemon, what: &str) -> serde_json::Value {
    let out = ok(&d.berth(&["inspect", what]));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.tar");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("tar").arg("-tf").arg(&f).output().unwrap();
    assert!(out.status.success(), "not a tar: {}", err(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A tar of `dir`'s content (made by the system's tar, so not by berth's own code).
fn system_tar(dir: &Path, entries: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg("-")
        .args(entries)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn cp_both_ways_running_stopped_and_created() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let p = |x: &str| s.join(x).display().to_string();
    running(
        &d,
        "c",
        "echo hi > /tmp/x && mkdir -p /data/sub && echo deep > /data/sub/f && busybox ln -sf sub/f /data/link",
    );

    // Out of the container: a file, a directory, a directory's content, a symlink as itself.
    ok(&d.berth(&["cp", "c:/tmp/x", &p("x")]));
    assert_eq!(read(s.join("x")), "hi\n");
    ok(&d.berth(&["cp", "c:/data", &p("")]));
    assert_eq!(read(s.join("data/sub/f")), "deep\n");
    assert_eq!(
        std::fs::read_link(s.join("data/link")).unwrap(),
        PathBuf::from("sub/f")
    );
    ok(&d.berth(&["cp", "c:/data/.", &p("content")]));
    assert_eq!(read(s.join("content/sub/f")), "deep\n");
    // Into an existing directory, and onto an existing file (which it replaces).
    std::fs::create_dir(s.join("into")).unwrap();
    ok(&d.berth(&["cp", "c:/data", &p("into")]));
    assert_eq!(read(s.join("into/data/sub/f")), "deep\n");
    std::fs::write(s.join("old"), "old").unwrap();
    ok(&d.berth(&["cp", "c:/tmp/x", &p("old")]));
    assert_eq!(read(s.join("old")), "hi\n");
    // -L follows the link; without it the link is copied.
    ok(&d.berth(&["cp", "-L", "c:/data/link", &p("followed")]));
    assert_eq!(read(s.join("followed")), "deep\n");
    // A directory onto a file, or a file to a missing directory: docker's refusals.
    assert!(fails(&d.berth(&["cp", "c:/data", &p("old")])).contains("cannot copy directory"));
    assert!(fails(&d.berth(&["cp", "c:/tmp/x", &p("missing/")])).contains("no such directory"));
    // To stdout as a tar.
    let out = d.berth(&["cp", "c:/data", "-"]);
    assert!(out.status.success(), "{}", err(&out));
    let names = tar_names(&out.stdout);
    assert!(names.contains(&"data/sub/f".to_owned()), "{names:?}");

    // Into the container: a file, a directory, a directory's content, a tar on stdin.
    std::fs::create_dir_all(s.join("src/dir/sub")).unwrap();
    std::fs::write(s.join("src/f1"), "one").unwrap();
    std::fs::write(s.join("src/dir/sub/f2"), "two").unwrap();
    ok(&d.berth(&["cp", &p("src/f1"), "c:/tmp/"]));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/tmp/f1"])), "one");
    ok(&d.berth(&["cp", &p("src/f1"), "c:/tmp/renamed"]));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/tmp/renamed"])), "one");
    ok(&d.berth(&["cp", &p("src/dir"), "c:/tmp/newdir"]));
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", "/tmp/newdir/sub/f2"])),
        "two"
    );
    ok(&d.berth(&["cp", &p("src/dir/."), "c:/data"]));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/data/sub/f2"])), "two");
    let tar = system_tar(&s.join("src"), &["f1"]);
    let out = d.berth_with_stdin(&["cp", "-", "c:/"], &tar);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/f1"])), "one");

    // A stopped container: its rootfs is mounted for the copy and unmounted after.
    ok(&d.berth(&["stop", "-t", "1", "c"]));
    let id = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "c"]));
    ok(&d.berth(&["cp", "c:/tmp/f1", &p("from-stopped")]));
    assert_eq!(read(s.join("from-stopped")), "one");
    ok(&d.berth(&["cp", &p("src/dir"), "c:/while-stopped"]));
    assert!(
        mounts_under(&d, &id).is_empty(),
        "the stopped container's rootfs stayed mounted: {:?}",
        mounts_under(&d, &id)
    );
    ok(&d.berth(&["start", "c"]));
    eventually("the restarted container", Duration::from_secs(20), || {
        d.berth(&["exec", "c", "cat", "/while-stopped/sub/f2"])
            .status
            .success()
    });

    // A container never started.
    ok(&d.berth(&["create", "--name", "fresh", "bb", "cat", "/f1"]));
    ok(&d.berth(&["cp", &p("src/f1"), "fresh:/"]));
    ok(&d.berth(&["cp", "fresh:/f1", &p("from-fresh")]));
    assert_eq!(read(s.join("from-fresh")), "one");
    assert_eq!(ok(&d.berth(&["start", "-a", "fresh"])), "one");
}

#[test]
fn symlinks_in_the_container_never_reach_the_host() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let p = |x: &str| s.join(x).display().to_string();
    // A host directory with a secret, which the container points its links at.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "host secret").unwrap();
    let h = host.path().display().to_string();
    // A name that must never appear in the host's /tmp or /etc.
    let marker = format!("berth-archive-test-{}", std::process::id());
    running(
        &d,
        "c",
        &format!(
            "echo container shadow > /etc/shadow && busybox ln -s / /escape && \
             mkdir -p /a/b && busybox ln -s ../../.. /a/b/up && busybox ln -s {h} /hostdir && \
             busybox ln -s {h}/secret /secret && busybox ln -s /etc /a/etc"
        ),
    );

    // Reads through links to /, to .. and above: the container's files.
    for path in [
        "c:/escape/etc/shadow",
        "c:/a/b/up/etc/shadow",
        "c:/a/b/up/../../../../etc/shadow",
        "c:/escape/escape/a/etc/shadow",
    ] {
        let dest = p("shadow");
        let _ = std::fs::remove_file(&dest);
        ok(&d.berth(&["cp", path, &dest]));
        assert_eq!(read(&dest), "container shadow\n", "{path}");
    }
    // Following a link to a host path reads that path in the container, which has none.
    let e = fails(&d.berth(&["cp", "-L", "c:/secret", &p("leak")]));
    assert!(e.contains("Could not find the file"), "{e}");
    let e = fails(&d.berth(&["cp", "c:/hostdir/secret", &p("leak")]));
    assert!(e.contains("Could not find the file"), "{e}");
    assert!(!s.join("leak").exists());
    // The whole root through /escape, followed: the container's, not the host's.
    ok(&d.berth(&["cp", "-L", "c:/escape", &p("root")]));
    assert_eq!(read(s.join("root/etc/shadow")), "container shadow\n");
    assert!(s.join("root/bin/busybox").exists());
    assert!(!s.join("root/usr").exists(), "the host's /usr came along");

    // Writes through links: they land inside the container.
    std::fs::write(s.join(&marker), "payload").unwrap();
    ok(&d.berth(&["cp", &p(&marker), "c:/escape/tmp/"]));
    ok(&d.berth(&["cp", &p(&marker), "c:/a/b/up/etc/"]));
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", &format!("/tmp/{marker}")])),
        "payload"
    );
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", &format!("/etc/{marker}")])),
        "payload"
    );
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!Path::new("/etc").join(&marker).exists());
    // Onto a link to a host file: that path in the container, whose directory it lacks.
    let e = fails(&d.berth(&["cp", &p(&marker), "c:/secret"]));
    assert!(e.contains("Could not find the file"), "{e}");
    assert_eq!(read(host.path().join("secret")), "host secret");
    // Into a link to a host directory: made inside the container.
    ok(&d.berth(&["cp", &p(&marker), "c:/hostdir"]));
    assert_eq!(read(host.path().join("secret")), "host secret");
    let listing: Vec<_> = std::fs::read_dir(host.path()).unwrap().collect();
    assert_eq!(listing.len(), 1, "the host directory changed");
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", &h])), "payload");
    // The same with docker's CLI.
    ok(&d.docker(&["cp", &p(&marker), "c:/escape/tmp/from-docker"]));
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", "/tmp/from-docker"])),
        "payload"
    );
    assert!(!Path::new("/tmp/from-docker").exists());
    let e = fails(&d.docker(&["cp", "c:/hostdir/secret", &p("leak")]));
    assert!(e.contains("Could not find the file"), "{e}");
    assert!(!s.join("leak").exists());

    // An archive whose entries climb out of the directory is refused, and nothing is written.
    let evil = tempfile::tempdir().unwrap();
    let evil_name = format!("evil-{marker}");
    std::fs::write(evil.path().join(&evil_name), "x").unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(evil.path())
        .arg("-cf")
        .arg("-")
        .arg("--transform")
        .arg("s,^,../../../../tmp/,")
        .arg(&evil_name)
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = d.berth_with_stdin(&["cp", "-", "c:/a/b"], &out.stdout);
    assert!(fails(&r).contains("is outside of"), "{}", err(&r));
    let found = d.berth(&["exec", "c", "busybox", "find", "/", "-name", &evil_name]);
    assert_eq!(text(&found), "", "the entry was written somewhere");
    assert!(!Path::new("/tmp").join(&evil_name).exists());
    assert!(!Path::new("/tmp").join(&marker).exists());
}

#[test]
fn docker_cp_against_berth() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let p = |x: &str| s.join(x).display().to_string();
    running(
        &d,
        "c",
        "mkdir -p /srv/www && echo page > /srv/www/index.html && busybox ln -s www /srv/site",
    );
    ok(&d.docker(&["cp", "c:/srv/www/index.html", &p("index.html")]));
    assert_eq!(read(s.join("index.html")), "page\n");
    ok(&d.docker(&["cp", "c:/srv", &p("srv")]));
    assert_eq!(read(s.join("srv/www/index.html")), "page\n");
    assert_eq!(
        std::fs::read_link(s.join("srv/site")).unwrap(),
        PathBuf::from("www")
    );
    ok(&d.docker(&["cp", "c:/srv/www/.", &p("content")]));
    assert_eq!(read(s.join("content/index.html")), "page\n");
    ok(&d.docker(&["cp", "-L", "c:/srv/site", &p("followed")]));
    assert_eq!(read(s.join("followed/index.html")), "page\n");
    let out = d.docker(&["cp", "c:/srv/www", "-"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(tar_names(&out.stdout).contains(&"www/index.html".to_owned()));

    std::fs::create_dir_all(s.join("up/conf")).unwrap();
    std::fs::write(s.join("up/conf/app.ini"), "[app]").unwrap();
    std::fs::write(s.join("up/one"), "1").unwrap();
    ok(&d.docker(&["cp", &p("up/one"), "c:/srv/"]));
    ok(&d.docker(&["cp", &p("up/conf"), "c:/srv/conf"]));
    ok(&d.docker(&["cp", &p("up/conf"), "c:/srv/site"]));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/srv/one"])), "1");
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", "/srv/conf/app.ini"])),
        "[app]"
    );
    // Through the link: into its target directory.
    assert_eq!(
        ok(&d.berth(&["exec", "c", "cat", "/srv/www/conf/app.ini"])),
        "[app]"
    );
    // A stopped container too.
    ok(&d.berth(&["stop", "-t", "1", "c"]));
    ok(&d.docker(&["cp", &p("up/one"), "c:/srv/two"]));
    ok(&d.docker(&["cp", "c:/srv/two", &p("two")]));
    assert_eq!(read(s.join("two")), "1");
}

#[test]
fn cp_bad_input_is_a_clear_error_and_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let p = |x: &str| s.join(x).display().to_string();
    std::fs::write(s.join("f"), "f").unwrap();
    let before = || {
        let mut v: Vec<_> = std::fs::read_dir(s)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let listing = before();
    let e = fails(&d.berth(&["cp", &p("f"), "nope:/tmp/"]));
    assert!(e.contains("No such container: nope"), "{e}");
    for cli in ["berth", "docker"] {
        let run = |args: &[&str]| {
            if cli == "berth" {
                d.berth(args)
            } else {
                d.docker(args)
            }
        };
        let e = fails(&run(&["cp", &p("f"), "nope:/tmp"]));
        assert!(e.contains("No such container: nope"), "{cli}: {e}");
        let e = fails(&run(&["cp", "nope:/etc/passwd", &p("out")]));
        assert!(e.contains("No such container: nope"), "{cli}: {e}");
    }
    assert_eq!(before(), listing, "a failed copy left something");

    running(&d, "c", "true");
    let e = fails(&d.berth(&["cp", "c:/nonexistent", &p("out")]));
    assert!(
        e.contains("Could not find the file /nonexistent in container c"),
        "{e}"
    );
    let e = fails(&d.berth(&["cp", &p("nonexistent"), "c:/tmp/"]));
    assert!(
        e.contains("no such file or directory") || e.contains("No such file"),
        "{e}"
    );
    assert!(fails(&d.berth(&["cp", &p("f"), &p("g")])).contains("at least one container"));
    assert!(fails(&d.berth(&["cp", "c:/a", "c:/b"])).contains("between containers"));
    assert_eq!(before(), listing);
    // The API's answers: a file where a directory is expected, a missing path.
    let (status, body) = d.request_body("PUT", "/containers/c/archive?path=/ready", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("extraction point is not a directory"),
        "{body}"
    );
    let (status, _) = d.request("HEAD", "/containers/c/archive?path=/nonexistent");
    assert_eq!(status, 404);
    let (status, body) = d.request("GET", "/containers/c/archive");
    assert_eq!(status, 400, "{body}");
    // A read-only rootfs refuses writes (docker's words), and reads still work.
    ok(&d.berth(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "ro",
        "bb",
        "sleep",
        "1000",
    ]));
    let e = fails(&d.berth(&["cp", &p("f"), "ro:/tmp/"]));
    assert!(e.contains("container rootfs is marked read-only"), "{e}");
    let e = fails(&d.docker(&["cp", &p("f"), "ro:/tmp/"]));
    assert!(e.contains("container rootfs is marked read-only"), "{e}");
    ok(&d.berth(&["cp", "ro:/etc/passwd", &p("passwd")]));
    assert!(!d.berth(&["exec", "ro", "ls", "/tmp/f"]).status.success());
}

#[test]
fn commit_diff_export() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    ok(&d.berth(&[
        "run",
        "--name",
        "c",
        "bb",
        "sh",
        "-c",
        "echo new > /added && busybox rm /etc/passwd && mkdir /d && echo x > /d/f",
    ]));

    // diff: docker's letters, parents of additions and deletions as changed.
    let diff = ok(&d.berth(&["diff", "c"]));
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines,
        vec!["A /added", "A /d", "A /d/f", "C /etc", "D /etc/passwd"],
        "{diff}"
    );
    assert_eq!(ok(&d.docker(&["diff", "c"])), diff);

    // commit: the change is there, the deleted file stays deleted.
    let id = ok(&d.berth(&["commit", "c", "snap:1"]));
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "snap:1", "cat", "/added", "/d/f"])),
        "new\nx"
    );
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "[ -e /etc/passwd ] && echo present || echo gone"
        ])),
        "gone"
    );
    let img = inspect(&d, "snap:1");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // Where it came from, as Docker records it: the image and container it was made of
    // (ContainerConfig and Container only before API 1.45, which dropped them).
    // `image inspect`: a bare `inspect bb` takes a container whose ID starts with "bb" first,
    // as docker's does.
    let base =
        serde_json::from_str::<serde_json::Value>(&ok(&d.berth(&["image", "inspect", "bb"])))
            .unwrap()[0]
            .clone();
    let api = |version: &str| -> serde_json::Value {
        let (status, body) = d.request("GET", &format!("/{version}/images/snap:1/json"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let old = api("v1.41");
    assert_eq!(old["Parent"], base["Id"]);
    assert_eq!(old["Container"], inspect(&d, "c")["Id"]);
    assert_eq!(old["ContainerConfig"]["Image"], "bb");
    assert_eq!(old["VirtualSize"], old["Size"]);
    let new = api("v1.45");
    assert_eq!(new["Parent"], base["Id"]);
    assert!(new.get("ContainerConfig").is_none(), "{new}");
    assert_eq!(base["Parent"], "");

    // -c, -m, -a: the config changes, the message and author are recorded.
    let id2 = ok(&d.berth(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/added\"]",
        "-c",
        "ENV GREETING=hello",
        "-m",
        "a message",
        "-a",
        "someone",
        "c",
        "snap:2",
    ]));
    assert_ne!(id, id2);
    assert_eq!(ok(&d.berth(&["run", "--rm", "snap:2"])), "new");
    let img = inspect(&d, "snap:2");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/added"]));
    assert!(img["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("GREETING=hello")));
    assert_eq!(img["Comment"], "a message");
    assert_eq!(img["Author"], "someone");

    // A second generation: a file of the first commit deleted, a directory replaced whole
    // (an opaque directory in overlayfs, `.wh..wh..opq` in the layer).
    ok(&d.berth(&[
        "run",
        "--name",
        "c2",
        "snap:1",
        "sh",
        "-c",
        "busybox rm /added && busybox rm -r /d && mkdir /d && echo y > /d/g",
    ]));
    let diff2 = ok(&d.berth(&["diff", "c2"]));
    assert!(diff2.lines().any(|l| l == "D /added"), "{diff2}");
    ok(&d.berth(&["commit", "c2", "snap:3"]));
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "snap:3",
            "sh",
            "-c",
            "ls /d; [ -e /added ] && echo present || echo gone"
        ])),
        "g\ngone"
    );

    // A running container is paused for the commit and runs on after it.
    running(&d, "live", "echo r > /r");
    ok(&d.berth(&["commit", "live", "snap:live"]));
    let st = inspect(&d, "live");
    assert_eq!(st["State"]["Running"], true);
    assert_eq!(st["State"]["Paused"], false);
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "snap:live", "cat", "/r"])),
        "r"
    );
    // docker's CLI commits through the same API.
    ok(&d.docker(&["commit", "-c", "ENV X=1", "c", "dsnap"]));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "dsnap", "sh", "-c", "echo $X; cat /added"])),
        "1\nnew"
    );
    let e = fails(&d.berth(&["commit", "-c", "RUN true", "c", "bad"]));
    assert!(e.contains("RUN is not a valid change command"), "{e}");
    assert!(fails(&d.berth(&["commit", "nope"])).contains("No such container: nope"));

    // export: the container's whole filesystem as a tar.
    let out = s.join("c.tar");
    ok(&d.berth(&["export", "-o", out.to_str().unwrap(), "c"]));
    let names = tar_names(&std::fs::read(&out).unwrap());
    for want in ["added", "bin/busybox", "d/f", "etc/"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "etc/passwd"), "{names:?}");
    let piped = d.berth(&["export", "c"]);
    assert!(piped.status.success());
    assert_eq!(tar_names(&piped.stdout), names);
    let docker = d.docker(&["export", "c"]);
    assert!(docker.status.success(), "{}", err(&docker));
    assert_eq!(tar_names(&docker.stdout), names);
    // Not onto a terminal.
    let mut cmd = Command::new(berth_bin());
    cmd.args(["-H", &d.host(), "export", "c"])
        .env("BERTH_NO_AUTOSTART", "1");
    let (status, shown) = run_in_pty(cmd, 24, 80, Duration::from_millis(0), b"");
    assert!(!status.success());
    assert!(
        shown.contains("cowardly refusing to save to a terminal"),
        "{shown}"
    );
}

#[test]
fn cp_reaches_volumes_and_bind_mounts() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let p = |x: &str| s.join(x).display().to_string();
    let bind = tempfile::tempdir().unwrap();
    std::fs::write(bind.path().join("from-host"), "bound").unwrap();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "c",
        "-v",
        "vol:/srv/data",
        "-v",
        "rovol:/srv/ro:ro",
        "-v",
        &format!("{}:/mnt/bind", bind.path().display()),
        "bb",
        "sh",
        "-c",
        "echo in-volume > /srv/data/v && echo ready > /ready && exec sleep 1000",
    ]));
    eventually("the container to be ready", Duration::from_secs(20), || {
        d.berth(&["exec", "c", "cat", "/ready"]).status.success()
    });
    std::fs::write(s.join("f"), "copied").unwrap();

    // Into a volume: the container sees it (it is not hidden under the mount point).
    ok(&d.berth(&["cp", &p("f"), "c:/srv/data/"]));
    assert_eq!(ok(&d.berth(&["exec", "c", "cat", "/srv/data/f"])), "copied");
    ok(&d.docker(&["cp", &p("f"), "c:/mnt/bind/from-docker"]));
    assert_eq!(read(bind.path().join("from-docker")), "copied");
    // Out of a volume and a bind mount, and a directory holding a volume includes it.
    ok(&d.berth(&["cp", "c:/srv/data/v", &p("v")]));
    assert_eq!(read(s.join("v")), "in-volume\n");
    ok(&d.berth(&["cp", "c:/mnt/bind/from-host", &p("h")]));
    assert_eq!(read(s.join("h")), "bound");
    ok(&d.berth(&["cp", "c:/srv", &p("srv")]));
    assert_eq!(read(s.join("srv/data/v")), "in-volume\n");
    // A read-only volume refuses writes with docker's words.
    let e = fails(&d.berth(&["cp", &p("f"), "c:/srv/ro/"]));
    assert!(e.contains("mounted volume is marked read-only"), "{e}");
    // A stopped container's volumes too.
    ok(&d.berth(&["stop", "-t", "1", "c"]));
    ok(&d.berth(&["cp", &p("f"), "c:/srv/data/while-stopped"]));
    ok(&d.berth(&["start", "c"]));
    eventually("the restarted container", Duration::from_secs(20), || {
        d.berth(&["exec", "c", "cat", "/srv/data/while-stopped"])
            .status
            .success()
    });
}

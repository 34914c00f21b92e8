//! `berth build` end to end (issue 7): real Dockerfiles built on a test daemon from the
//! busybox fixture, the images run, the cache observed through the build output, bad input
//! refused with the line and nothing tagged, and the docker CLI's legacy builder on berth's
//! socket.

use berth_testutil::*;

use std::path::Path;
use std::process::{Command, Output};

/// A build context with these files.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("berth-build-ctx-")
        .tempdir()
        .unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn build(d: &TestDaemon, ctx: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let path = ctx.display().to_string();
    all.push(&path);
    d.berth(&all)
}

/// The docker CLI's legacy builder (`DOCKER_BUILDKIT=0 docker build ARGS CTX`) on `d`.
fn docker_build(d: &TestDaemon, ctx: &Path, args: &[&str]) -> Output {
    Command::new(DOCKER)
        .arg("-H")
        .arg(d.host())
        .arg("build")
        .args(args)
        .arg(ctx)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .unwrap()
}

/// The output lines of the step whose header contains `what`, up to the next step.
fn step<'a>(out: &'a str, what: &str) -> Vec<&'a str> {
    let mut lines = out
        .lines()
        .skip_while(|l| !(l.starts_with("Step ") && l.contains(what)));
    let mut v: Vec<&str> = lines.next().into_iter().collect();
    v.extend(lines.take_while(|l| !l.starts_with("Step ") && !l.starts_with("Successfully")));
    v
}

fn cached(out: &str, what: &str) -> bool {
    let lines = step(out, what);
    assert!(!lines.is_empty(), "no step {what:?} in:\n{out}");
    lines.iter().any(|l| l.ends_with(" CACHED"))
}

#[test]
fn app_layers_are_cached_and_a_change_invalidates_only_what_follows() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // The classic example: dependencies first (rarely change), the code after.
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM bb\nWORKDIR /app\nCOPY requirements.txt .\n\
             RUN sh -c 'while read p; do echo \"installed $p\"; done < requirements.txt > deps'\n\
             COPY . .\nCMD [\"sh\", \"/app/main.sh\"]\n",
        ),
        ("requirements.txt", "flask\nrequests\n"),
        ("main.sh", "cat /app/deps; echo main v1\n"),
    ]);
    let first = stdout(&build(&d, ctx.path(), &["-t", "app:1"]));
    assert!(!cached(&first, "RUN"), "{first}");
    assert!(first.contains("Successfully tagged app:1"), "{first}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "app:1"])),
        "installed flask\ninstalled requests\nmain v1"
    );
    let id = ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "app:1"]));

    // Nothing changed: every step comes from the cache, and the image is the same one.
    let again = stdout(&build(&d, ctx.path(), &["-t", "app:1"]));
    for s in ["WORKDIR", "COPY requirements.txt", "RUN", "COPY . ."] {
        assert!(cached(&again, s), "{s} not cached:\n{again}");
    }
    assert_eq!(
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "app:1"])),
        id
    );

    // The code changes: the dependencies stay cached, the copy of the code runs again.
    write(ctx.path(), "main.sh", "cat /app/deps; echo main v2\n");
    let third = stdout(&build(&d, ctx.path(), &["-t", "app:1"]));
    assert!(cached(&third, "COPY requirements.txt"), "{third}");
    assert!(cached(&third, "RUN"), "{third}");
    assert!(!cached(&third, "COPY . ."), "{third}");
    assert!(
        ok(&d.berth(&["run", "--rm", "app:1"])).ends_with("main v2"),
        "the new code is in the image"
    );

    // The requirements change: from that step on, nothing is cached.
    write(ctx.path(), "requirements.txt", "flask\n");
    let fourth = stdout(&build(&d, ctx.path(), &["-t", "app:1"]));
    assert!(cached(&fourth, "WORKDIR"), "{fourth}");
    assert!(!cached(&fourth, "COPY requirements.txt"), "{fourth}");
    assert!(!cached(&fourth, "RUN"), "{fourth}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "app:1"])),
        "installed flask\nmain v2"
    );

    // --no-cache runs everything.
    let fifth = stdout(&build(&d, ctx.path(), &["--no-cache", "-t", "app:1"]));
    assert!(!cached(&fifth, "RUN"), "{fifth}");
}

#[test]
fn multi_stage_builds_keep_only_the_final_stage_and_honour_target_and_args() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "ARG BASE=bb\n\
         FROM $BASE AS build\n\
         ARG VERSION=0.1\n\
         RUN sh -c 'mkdir /out && echo \"app $VERSION\" > /out/app && echo junk > /scratch-file'\n\
         FROM $BASE AS test\n\
         RUN echo tested > /tested\n\
         FROM $BASE\n\
         COPY --from=build /out/app /usr/local/app\n\
         COPY --from=bb /etc/passwd /from-image/passwd\n\
         CMD [\"cat\", \"/usr/local/app\"]\n",
    )]);
    let out = build(
        &d,
        ctx.path(),
        &["-t", "ms:1", "--build-arg", "VERSION=2.5"],
    );
    let text = stdout(&out);
    ok(&out);
    // The test stage is not needed by the final one: skipped.
    assert!(!text.contains("echo tested"), "{text}");
    assert_eq!(ok(&d.berth(&["run", "--rm", "ms:1"])), "app 2.5");
    // COPY --from an image (not a stage).
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "ms:1", "cat", "/from-image/passwd"])),
        "root:x:0:0:root:/root:/bin/sh"
    );
    // Only the final stage's files: the build stage's leftovers are not in the image.
    let ls = d.berth(&["run", "--rm", "ms:1", "ls", "/scratch-file", "/out"]);
    assert!(!ls.status.success(), "{}", stdout(&ls));

    // --target stops at a stage; the build arg's default applies without --build-arg.
    ok(&build(
        &d,
        ctx.path(),
        &["-t", "ms:build", "--target", "build"],
    ));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "ms:build", "cat", "/out/app"])),
        "app 0.1"
    );
    let bad = build(&d, ctx.path(), &["--target", "nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err_text(&bad).contains("nope"), "{}", err_text(&bad));

    // ARG before FROM picks the base.
    ok(&d.berth(&["tag", "bb", "other-base"]));
    ok(&build(
        &d,
        ctx.path(),
        &["-t", "ms:2", "--build-arg", "BASE=other-base"],
    ));
    assert_eq!(ok(&d.berth(&["run", "--rm", "ms:2"])), "app 0.1");
}

#[test]
fn independent_stages_build_at_the_same_time() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // Each stage waits for the other's mark in a shared cache mount: built one after the
    // other, the first would give up waiting and fail.
    let wait = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,id=sync,target=/sync sh -c 'echo > /sync/{mine}; \
             i=0; while [ ! -f /sync/{theirs} ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; \
             sleep 0.1; done; echo {mine} > /{mine}'\n"
        )
    };
    let df = format!(
        "FROM bb AS a\n{}FROM bb AS b\n{}FROM bb\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n\
         CMD [\"cat\", \"/a\", \"/b\"]\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let ctx = context(&[("Dockerfile", &df)]);
    ok(&build(&d, ctx.path(), &["-t", "par"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "par"])), "a\nb");
}

#[test]
fn heredocs_dockerignore_copy_options_and_add_archives() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM bb\n\
             RUN <<EOF\n\
             echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> /etc/passwd\n\
             echo 'nogroup:x:65534:' >> /etc/group\n\
             EOF\n\
             ENV WHO=world\n\
             COPY <<EOF /etc/motd\n\
             hello $WHO\n\
             EOF\n\
             RUN <<EOF\n\
             #!/bin/sh\n\
             echo \"script as $0\" > /script-ran\n\
             EOF\n\
             COPY . /ctx/\n\
             COPY --chown=nobody:nogroup --chmod=640 keep.txt /owned/\n\
             COPY --exclude=*.tmp --exclude=secret . /filtered/\n\
             COPY --parents secret/public /kept-path/\n\
             ADD layer.tar /unpacked/\n",
        ),
        (".dockerignore", "*.log\nsecret/\n!secret/public\n"),
        ("keep.txt", "kept\n"),
        ("notes.tmp", "scratch\n"),
        ("debug.log", "no\n"),
        ("secret/key", "no\n"),
        ("secret/public", "yes\n"),
    ]);
    let inner = context(&[("inside/file", "from the archive\n")]);
    let st = Command::new("tar")
        .arg("-C")
        .arg(inner.path())
        .arg("-cf")
        .arg(ctx.path().join("layer.tar"))
        .arg("inside")
        .status()
        .unwrap();
    assert!(st.success());
    ok(&build(&d, ctx.path(), &["-t", "feat"]));
    let run = |cmd: &str| ok(&d.berth(&["run", "--rm", "feat", "sh", "-c", cmd]));
    assert_eq!(run("cat /etc/motd"), "hello world");
    // A heredoc starting with #! runs as a script of its own (BuildKit's way).
    assert!(
        run("cat /script-ran").starts_with("script as /dev/pipes/"),
        "{}",
        run("cat /script-ran")
    );
    assert_eq!(
        run("ls -A /ctx"),
        ".dockerignore\nDockerfile\nkeep.txt\nlayer.tar\nnotes.tmp\nsecret"
    );
    assert_eq!(run("ls -A /ctx/secret"), "public");
    // --exclude leaves out what its patterns match; --parents keeps the source's path.
    assert_eq!(
        run("ls -A /filtered"),
        ".dockerignore\nDockerfile\nkeep.txt\nlayer.tar"
    );
    assert_eq!(run("cat /kept-path/secret/public"), "yes");
    assert_eq!(
        run("/bin/busybox stat -c '%A' /owned/keep.txt"),
        "-rw-r-----"
    );
    assert_eq!(
        run("/bin/busybox stat -c '%u:%g' /owned/keep.txt /ctx/keep.txt"),
        "65534:65534\n0:0"
    );
    assert_eq!(run("cat /unpacked/inside/file"), "from the archive");
}

#[test]
fn image_config_history_and_cli_options_are_dockers() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\n\
         LABEL org.example.name=demo\n\
         ENV GREETING=hi PATH=/usr/bin:/bin\n\
         WORKDIR /srv\n\
         USER 0:0\n\
         EXPOSE 8080/tcp 53/udp\n\
         VOLUME /data\n\
         HEALTHCHECK --interval=5s CMD [\"true\"]\n\
         STOPSIGNAL SIGINT\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         ONBUILD RUN echo child\n\
         ENTRYPOINT [\"sh\", \"-c\"]\n\
         CMD [\"echo $GREETING from $(pwd)\"]\n",
    )]);
    let iid = ctx.path().join("iid");
    let out = build(
        &d,
        ctx.path(),
        &[
            "-q",
            "--iidfile",
            iid.to_str().unwrap(),
            "--label",
            "from.cli=yes",
            "-t",
            "cfg",
        ],
    );
    let id = ok(&out);
    assert!(
        id.starts_with("sha256:") && !id.contains('\n'),
        "-q prints the ID only: {id}"
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(ok(&d.berth(&["run", "--rm", "cfg"])), "hi from /srv");
    let inspect = |f: &str| ok(&d.docker(&["image", "inspect", "-f", f, "cfg"]));
    assert_eq!(inspect("{{json .Config.Entrypoint}}"), r#"["sh","-c"]"#);
    assert_eq!(
        inspect("{{.Config.WorkingDir}} {{.Config.User}}"),
        "/srv 0:0"
    );
    assert_eq!(
        inspect("{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"8080/tcp":{}}"#
    );
    assert_eq!(inspect("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    assert_eq!(
        inspect(
            "{{index .Config.Labels \"org.example.name\"}} {{index .Config.Labels \"from.cli\"}}"
        ),
        "demo yes"
    );
    assert_eq!(inspect("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(inspect("{{json .Config.Shell}}"), r#"["/bin/sh","-ec"]"#);
    assert_eq!(inspect("{{json .Config.OnBuild}}"), r#"["RUN echo child"]"#);
    assert_eq!(
        inspect("{{json .Config.Healthcheck.Test}}"),
        r#"["CMD","true"]"#
    );
    assert!(inspect("{{json .Config.Env}}").contains("GREETING=hi"));
    // One history entry per instruction; metadata ones are empty layers (0B).
    let history = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Size}}\t{{.CreatedBy}}",
        "cfg",
    ]));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 1 + 13, "{history}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("0B\t") && l.contains("ENV GREETING=hi")),
        "{history}"
    );
    assert!(
        lines.iter().any(|l| l.contains("WORKDIR /srv")),
        "{history}"
    );

    // A Dockerfile on stdin, no context.
    ok(&d.berth_with_stdin(
        &["build", "-t", "stdin-df", "-"],
        b"FROM bb\nRUN echo from-stdin > /s\n",
    ));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "stdin-df", "cat", "/s"])),
        "from-stdin"
    );

    // ONBUILD triggers run in a child image.
    let child_ctx = context(&[("Dockerfile", "FROM cfg\nRUN true\n")]);
    let out = stdout(&build(&d, child_ctx.path(), &["-t", "cfg-child"]));
    assert!(out.contains("child"), "{out}");
}

fn err_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_fails_with_the_line_and_tags_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // A good image holds the tag first: a failed build must leave it alone.
    let good = context(&[("Dockerfile", "FROM bb\nRUN echo good > /v\n")]);
    ok(&build(&d, good.path(), &["-t", "app:stable"]));
    let before = ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "app:stable"]));
    let images_before = ok(&d.berth(&["images", "-q", "--no-trunc"]));
    for (df, extra, want) in [
        (
            "FROM bb\nFOO bar\n",
            None,
            vec!["Dockerfile:2", "unknown instruction: FOO"],
        ),
        (
            "FROM bb\nRUN <<EOF\necho never ends\n",
            None,
            vec!["Dockerfile:2", "unterminated heredoc"],
        ),
        (
            "FROM bb\nCOPY ../outside /x\n",
            None,
            vec!["Dockerfile:2", "outside the build context"],
        ),
        (
            "FROM bb\nCOPY missing.txt /x\n",
            None,
            vec!["Dockerfile:2", "missing.txt", "not found"],
        ),
        (
            "FROM bb\nRUN echo step one\nRUN sh -c 'exit 3'\nRUN echo never\n",
            None,
            vec!["Dockerfile:3", "returned a non-zero code: 3"],
        ),
        (
            "FROM bb\nCOPY a b c\n",
            Some(("a", "x")),
            vec!["Dockerfile:2", "must be a directory"],
        ),
    ] {
        let ctx = context(&[("Dockerfile", df)]);
        if let Some((n, t)) = extra {
            write(ctx.path(), n, t);
            write(ctx.path(), "b", t);
        }
        let out = build(&d, ctx.path(), &["-t", "app:stable"]);
        // A failed RUN exits with its command's code, as the docker CLI does; others with 1.
        let code = if df.contains("exit 3") { 3 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{df}: {}", err_text(&out));
        let e = err_text(&out);
        for w in want {
            assert!(e.contains(w), "{df}: {w:?} not in {e:?}");
        }
        assert!(!stdout(&out).contains("Successfully"), "{df}");
    }
    assert_eq!(
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "app:stable"])),
        before,
        "a failed build tagged its half"
    );
    assert_eq!(
        ok(&d.berth(&["images", "-q", "--no-trunc"])),
        images_before,
        "a failed build left an image"
    );
    // No step container is left behind.
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn the_docker_cli_builds_with_the_legacy_builder() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM bb\nCOPY hello.txt /\nRUN cat /hello.txt > /copy\nCMD [\"cat\", \"/copy\"]\n",
        ),
        ("hello.txt", "hello via docker\n"),
        (".dockerignore", "ignored\n"),
        ("ignored", "x"),
    ]);
    let docker_build = |args: &[&str]| docker_build(&d, ctx.path(), args);
    let out = docker_build(&["-t", "viadocker:1"]);
    let text = stdout(&out);
    ok(&out);
    assert!(
        text.contains("Step 3/4 : RUN cat /hello.txt > /copy"),
        "{text}"
    );
    // Under FROM, the base image's ID, as Docker shows it.
    let bb = ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "bb"]));
    assert!(
        text.contains(&format!("Step 1/4 : FROM bb\n ---> {}\n", &bb[7..19])),
        "{text}"
    );
    assert!(text.contains("Successfully tagged viadocker:1"), "{text}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "viadocker:1"])),
        "hello via docker"
    );
    // The uploaded context hashes the same as the one read in place: the berth CLI's build
    // of the same directory is all cache.
    let again = stdout(&build(&d, ctx.path(), &["-t", "viadocker:2"]));
    assert!(cached(&again, "COPY hello.txt"), "{again}");
    assert!(cached(&again, "RUN"), "{again}");
    // -q prints the ID.
    let q = ok(&docker_build(&["-q"]));
    assert!(q.starts_with("sha256:"), "{q}");
    // A failing build: the daemon's message, and the RUN's exit code as the CLI's (it reads
    // errorDetail.code; Docker's exits 4 here too).
    write(ctx.path(), "Dockerfile", "FROM bb\nRUN sh -c 'exit 4'\n");
    let out = docker_build(&[]);
    assert_eq!(out.status.code(), Some(4));
    let out = build(&d, ctx.path(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", err_text(&out));
    assert!(
        err_text(&out).contains("returned a non-zero code: 4"),
        "{}",
        err_text(&out)
    );
}

#[test]
fn builder_prune_frees_the_cache() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nRUN sh -c 'i=0; while [ $i -lt 64 ]; do echo $i$i$i$i$i$i$i$i > /f$i; i=$((i+1)); done'\n",
    )]);
    ok(&build(&d, ctx.path(), &["-t", "cached"]));
    // Without -a only dangling entries go: this one's layer is the image's, so it stays.
    let out = ok(&d.berth(&["builder", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    ok(&d.berth(&["rmi", "cached"]));
    // The image is gone; its layer is kept by the cache: a rebuild is all cache.
    let again = stdout(&build(&d, ctx.path(), &["-t", "cached"]));
    assert!(cached(&again, "RUN"), "{again}");
    ok(&d.berth(&["rmi", "cached"]));
    // system df counts the cache (the docker CLI reads the same records).
    let df = ok(&d.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Reclaimable}}",
    ]));
    let fields: Vec<&str> = df
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache "))
        .unwrap_or_else(|| panic!("no Build Cache line in {df}"))
        .split(' ')
        .collect();
    assert!(fields[0].parse::<u32>().unwrap() >= 1, "{df}");
    assert_ne!(
        fields[1], "0B",
        "the image is gone: its layer is reclaimable\n{df}"
    );
    // Now the entry is dangling: a plain prune takes it and frees its layer.
    let out = ok(&d.berth(&["builder", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    let after = stdout(&build(&d, ctx.path(), &["-t", "cached"]));
    assert!(!cached(&after, "RUN"), "{after}");
    // -a takes the entries of layers images still use too (the next build runs again).
    ok(&d.berth(&["builder", "prune", "-a", "-f"]));
    let after_all = stdout(&build(&d, ctx.path(), &["-t", "cached"]));
    assert!(!cached(&after_all, "RUN"), "{after_all}");
    // The docker CLI's prune reaches the same endpoint.
    ok(&d.docker(&["builder", "prune", "-a", "-f"]));
    // system prune -a takes the build cache too (a running container keeps the base image).
    ok(&d.berth(&["run", "-d", "--name", "keeps-bb", "bb", "sleep", "60"]));
    ok(&build(&d, ctx.path(), &["-t", "cached"]));
    let out = ok(&d.berth(&["system", "prune", "-a", "-f"]));
    assert!(out.contains("Deleted build cache objects"), "{out}");
    let last = stdout(&build(&d, ctx.path(), &["-t", "cached"]));
    assert!(!cached(&last, "RUN"), "{last}");
    ok(&d.berth(&["rm", "-f", "keeps-bb"]));
}

#[test]
fn run_mounts_secrets_globs_and_remote_add() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let port = HttpServer::serve(
        &["Last-Modified: Tue, 15 Nov 1994 08:12:31 GMT"],
        b"remote content\n".to_vec(),
    )
    .port;
    let df = format!(
        "FROM bb\n\
         ADD http://127.0.0.1:{port}/files/remote.txt /dl/\n\
         COPY conf/*.conf /confs/\n\
         RUN --mount=type=secret,id=tok sh -c 'cat /run/secrets/tok > /seen-secret && echo >> /seen-secret'\n\
         RUN --mount=type=secret,id=tok,env=TOK sh -c 'echo \"${{#TOK}}\" > /env-length'\n\
         RUN --mount=type=cache,target=/var/cache/tool sh -c 'echo run >> /var/cache/tool/runs; cat /var/cache/tool/runs | /bin/busybox wc -l > /runs'\n\
         RUN --mount=type=bind,source=conf,target=/mnt/conf sh -c 'cat /mnt/conf/a.conf > /from-bind'\n\
         RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/x && echo tmpfs-ok > /tmpfs'\n\
         RUN --mount=type=cache,target=/var/cache/owned,uid=65534,mode=0700 sh -c '/bin/busybox stat -c \"%u %a\" /var/cache/owned > /cache-owner'\n"
    );
    let ctx = context(&[
        ("Dockerfile", &df),
        ("conf/a.conf", "a\n"),
        ("conf/b.conf", "b\n"),
        ("conf/c.txt", "c\n"),
        ("token", "s3cret"),
    ]);
    let token = ctx.path().join("token").display().to_string();
    let secret = format!("id=tok,src={token}");
    ok(&build(
        &d,
        ctx.path(),
        &["--secret", &secret, "-t", "mounts"],
    ));
    let run = |cmd: &str| ok(&d.berth(&["run", "--rm", "mounts", "sh", "-c", cmd]));
    assert_eq!(run("cat /dl/remote.txt"), "remote content");
    // Downloaded files get mode 0600 and the server's Last-Modified time.
    assert_eq!(
        run("/bin/busybox stat -c '%a %Y' /dl/remote.txt"),
        "600 784887151"
    );
    assert_eq!(run("ls /confs"), "a.conf\nb.conf");
    // The secret was readable during the build, and is nowhere in the image.
    assert_eq!(run("cat /seen-secret"), "s3cret");
    assert_eq!(run("cat /env-length"), "6");
    let leaked = d.berth(&["run", "--rm", "mounts", "ls", "/run/secrets"]);
    assert!(!leaked.status.success(), "{}", stdout(&leaked));
    // Mount points made for the mounts are not left in the layers either.
    for p in ["/var/cache/tool", "/mnt/conf", "/scratch"] {
        let st = d.berth(&["run", "--rm", "mounts", "ls", "-d", p]);
        assert!(!st.status.success(), "{p} was left in the image");
    }
    assert_eq!(run("cat /runs /from-bind /tmpfs"), "1\na\ntmpfs-ok");
    assert_eq!(run("cat /cache-owner"), "65534 700");
    // The cache mount keeps its content between builds (the step runs again with --no-cache).
    ok(&build(
        &d,
        ctx.path(),
        &["--no-cache", "--secret", &secret, "-t", "mounts"],
    ));
    assert_eq!(run("cat /runs"), "2");
    // Without the secret, the step that reads it fails (the mount is skipped, as BuildKit does).
    let out = build(&d, ctx.path(), &["--no-cache", "-t", "mounts"]);
    assert_eq!(out.status.code(), Some(1));
    // ADD --checksum: the right digest passes, a wrong one stops the build with both named.
    let sum = "sha256:4d1a4c0e1c0e6f6e0d8b5e7b4a0f1a0cfb3a6f0d0b2c1d9a8e7f6a5b4c3d2e1f";
    let good = "sha256:c18243bcea0987f0dabe57a6714acda33fe58db2d6096c58a8b5be13ed378588";
    for (checksum, passes) in [(sum, false), (good, true)] {
        let df =
            format!("FROM bb\nADD --checksum={checksum} http://127.0.0.1:{port}/r.txt /r.txt\n");
        let c = context(&[("Dockerfile", &df)]);
        let out = build(&d, c.path(), &["-t", "checked"]);
        if passes {
            ok(&out);
        } else {
            assert_eq!(out.status.code(), Some(1));
            assert!(
                err_text(&out).contains("digest mismatch"),
                "{}",
                err_text(&out)
            );
        }
    }
}

#[test]
fn the_cache_stays_within_its_bound() {
    if !root_or_skip() {
        return;
    }
    // Room for about one of the two 64 KiB layers: building the second evicts the first
    // (least recently used), and the first then builds again.
    let d = TestDaemon::with_busybox_and(&["--builder-cache-max", "100k"]);
    let layer = |name: &str| {
        format!(
            "FROM bb\nRUN sh -c 'i=0; while [ $i -lt 16 ]; do /bin/busybox head -c 4096 /dev/urandom > /{name}$i; i=$((i+1)); done'\n"
        )
    };
    let a = context(&[("Dockerfile", &layer("a"))]);
    let b = context(&[("Dockerfile", &layer("b"))]);
    ok(&build(&d, a.path(), &["-t", "a"]));
    let again = stdout(&build(&d, a.path(), &["-t", "a"]));
    assert!(
        cached(&again, "RUN"),
        "within the bound, a rebuild is cached:\n{again}"
    );
    ok(&build(&d, b.path(), &["-t", "b"]));
    let evicted = stdout(&build(&d, a.path(), &["-t", "a"]));
    assert!(
        !cached(&evicted, "RUN"),
        "over the bound, the older entry went:\n{evicted}"
    );
}

#[test]
fn an_image_of_many_layers_builds_and_runs() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // 46 layers: their lower dirs no longer fit in one page of mount options.
    let mut df = String::from("FROM bb\n");
    for i in 0..45 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    let ctx = context(&[("Dockerfile", &df)]);
    ok(&build(&d, ctx.path(), &["-t", "tall"]));
    let layers = ok(&d.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "tall"]));
    assert_eq!(layers, "46");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "tall", "cat", "/f0", "/f44"])),
        "0\n44"
    );
}

#[test]
fn a_client_that_goes_away_cancels_the_build() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN sleep 60\n")]);
    let mut client = Command::new(berth_bin())
        .args(["-H", &d.host(), "build", "-t", "never"])
        .arg(ctx.path())
        .env("BERTH_NO_AUTOSTART", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = d.dir.path().join("root");
    // Entries named by a container or step ID (the runtime also keeps a filter cache there).
    let listed = |dir: &str| {
        std::fs::read_dir(root.join(dir))
            .map(|r| r.flatten().filter(|e| e.file_name().len() >= 64).count())
            .unwrap_or(0)
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait("the RUN step to start", &|| listed("runtime") > 0);
    client.kill().unwrap();
    client.wait().unwrap();
    // The step's container is killed and everything of the step goes; nothing is tagged.
    wait("the step's container to go", &|| listed("runtime") == 0);
    wait("the step's files to go", &|| listed("build/work") == 0);
    assert!(!d.berth(&["image", "inspect", "never"]).status.success());
}

#[test]
fn a_daemon_killed_mid_build_leaves_nothing_behind() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN sleep 60\n")]);
    let client = Command::new(berth_bin())
        .args(["-H", &d.host(), "build", "-t", "never"])
        .arg(ctx.path())
        .env("BERTH_NO_AUTOSTART", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = d.dir.path().join("root");
    let ids = |dir: &str| -> Vec<String> {
        std::fs::read_dir(root.join(dir))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() >= 64)
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ids("runtime").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let step = ids("runtime").remove(0);
    let bridge_state = || std::fs::read_to_string(root.join("networks/bridge.json")).unwrap();
    assert!(bridge_state().contains(&step), "the step has an endpoint");

    // SIGKILL: no chance to clean anything up.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let mut client = client;
    let _ = client.wait();
    d.start_again();
    // The step's container, work dir, address and endpoint are gone.
    assert!(ids("runtime").is_empty(), "{:?}", ids("runtime"));
    assert!(ids("build/work").is_empty(), "{:?}", ids("build/work"));
    assert!(!bridge_state().contains(&step), "{}", bridge_state());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.join("build").display().to_string()),
        "{mounts}"
    );
    assert!(!d.berth(&["image", "inspect", "never"]).status.success());
}

#[test]
fn cache_mounts_locked_and_private_between_parallel_stages() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // Both stages run at once (they meet through a shared `sync` cache). With `locked`, the
    // second writer waits for the first: the log never interleaves. With `private`, the second
    // gets a cache of its own: each reads back what it wrote.
    let stage = |me: &str, other: &str| {
        format!(
            "FROM bb AS {me}\n\
             RUN --mount=type=cache,id=sync,target=/sync \
                 --mount=type=cache,id=priv,target=/p,sharing=private \
                 sh -c 'echo {me} > /p/who; echo > /sync/{me}; i=0; \
                 while [ ! -f /sync/{other} ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done; \
                 cat /p/who > /who-{me}'\n\
             RUN --mount=type=cache,id=log,target=/log,sharing=locked \
                 sh -c 'echo start-{me} >> /log/log; sleep 0.3; echo end-{me} >> /log/log'\n\
             RUN --mount=type=cache,id=log,target=/log sh -c 'cat /log/log > /log-{me}'\n"
        )
    };
    let df = format!(
        "{}{}FROM bb\nCOPY --from=a /who-a /log-a /\nCOPY --from=b /who-b /log-b /\n",
        stage("a", "b"),
        stage("b", "a")
    );
    let ctx = context(&[("Dockerfile", &df)]);
    ok(&build(&d, ctx.path(), &["-t", "sharing"]));
    let run = |cmd: &str| ok(&d.berth(&["run", "--rm", "sharing", "sh", "-c", cmd]));
    assert_eq!(run("cat /who-a /who-b"), "a\nb");
    // The later of the two logs holds both writers, one after the other.
    let log = run("cat /log-a; echo; cat /log-b");
    let longest = log
        .split("\n\n")
        .max_by_key(|l| l.len())
        .unwrap()
        .to_owned();
    let lines: Vec<&str> = longest.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(
        lines[0].starts_with("start-") && lines[1].starts_with("end-"),
        "{log}"
    );
    assert_eq!(lines[0][6..], lines[1][4..], "interleaved: {log}");
    assert_eq!(lines[2][6..], lines[3][4..], "interleaved: {log}");
}

#[test]
fn a_dockerfile_can_bring_its_own_dockerignore() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let df = "FROM bb\nCOPY . /c/\nCMD [\"ls\", \"-A\", \"/c\"]\n";
    let ctx = context(&[
        ("Dockerfile", df),
        ("dev.Dockerfile", df),
        (".dockerignore", "a.txt\n"),
        ("dev.Dockerfile.dockerignore", "b.txt\n*ignore\n"),
        ("a.txt", "a"),
        ("b.txt", "b"),
    ]);
    let dev = ctx.path().join("dev.Dockerfile");
    ok(&build(&d, ctx.path(), &["-t", "plain"]));
    ok(&build(
        &d,
        ctx.path(),
        &["-f", dev.to_str().unwrap(), "-t", "dev"],
    ));
    let listed = |img: &str| ok(&d.berth(&["run", "--rm", img]));
    assert_eq!(
        listed("plain"),
        ".dockerignore\nDockerfile\nb.txt\ndev.Dockerfile\ndev.Dockerfile.dockerignore"
    );
    // dev.Dockerfile's own ignore file wins over the context's (BuildKit's rule).
    assert_eq!(listed("dev"), "Dockerfile\na.txt\ndev.Dockerfile");
    // The same when the context is sent as a tar.
    let mut cmd = Command::new(berth_bin());
    cmd.args([
        "-H",
        &d.host(),
        "build",
        "-f",
        dev.to_str().unwrap(),
        "-t",
        "dev-up",
    ])
    .arg(ctx.path())
    .env("BERTH_BUILD_UPLOAD", "1")
    .env("BERTH_NO_AUTOSTART", "1");
    ok(&cmd.output().unwrap());
    assert_eq!(listed("dev-up"), "Dockerfile\na.txt\ndev.Dockerfile");
}

#[test]
fn add_host_reaches_run_steps_from_both_clis() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nRUN sh -c 'while read ip name; do if [ \"$name\" = db ]; then echo $ip; fi; done < /etc/hosts > /db'\nCMD [\"cat\", \"/db\"]\n",
    )]);
    ok(&build(
        &d,
        ctx.path(),
        &["--add-host", "db:10.9.8.7", "-t", "hosts1"],
    ));
    assert_eq!(ok(&d.berth(&["run", "--rm", "hosts1"])), "10.9.8.7");
    let out = docker_build(
        &d,
        ctx.path(),
        &["--no-cache", "--add-host", "db:10.9.8.8", "-t", "hosts2"],
    );
    ok(&out);
    assert_eq!(ok(&d.berth(&["run", "--rm", "hosts2"])), "10.9.8.8");
}

#[test]
fn the_same_build_twice_at_once() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM bb\nCOPY data /data\nRUN sh -c 'cat /data/* > /all; sleep 0.5'\nCMD [\"cat\", \"/all\"]\n",
        ),
        ("data/a", "a\n"),
        ("data/b", "b\n"),
    ]);
    // Both run every step (nothing is cached yet), store the same layers and snapshots, and
    // both succeed with the same result.
    let path = ctx.path().to_path_buf();
    let host = d.host();
    let builds: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|tag| {
            let (path, host) = (path.clone(), host.clone());
            std::thread::spawn(move || berth(&host, &["build", "-t", tag, path.to_str().unwrap()]))
        })
        .collect();
    for b in builds {
        ok(&b.join().unwrap());
    }
    assert_eq!(ok(&d.berth(&["run", "--rm", "one"])), "a\nb");
    assert_eq!(ok(&d.berth(&["run", "--rm", "two"])), "a\nb");
    // And a third, all cached, gives the image one of them made.
    let id = ok(&d.berth(&["build", "-q", "-t", "three", path.to_str().unwrap()]));
    let ids = [
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "one"])),
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "two"])),
    ];
    assert!(ids.contains(&id), "{id} / {ids:?}");
}

#[test]
fn run_steps_get_the_builds_memory_limit() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // cgroup v1 shows the limit in memory.limit_in_bytes, v2 in memory.max.
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nRUN sh -c '(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max) > /limit'\nCMD [\"cat\", \"/limit\"]\n",
    )]);
    ok(&build(
        &d,
        ctx.path(),
        &["--memory", "96m", "-t", "limited"],
    ));
    assert_eq!(ok(&d.berth(&["run", "--rm", "limited"])), "100663296");
    // The docker CLI's parameter too.
    let out = docker_build(
        &d,
        ctx.path(),
        &["--no-cache", "-m", "80m", "-t", "limited2"],
    );
    ok(&out);
    assert_eq!(ok(&d.berth(&["run", "--rm", "limited2"])), "83886080");
}

#[test]
fn context_symlinks_never_reach_the_host() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[("Dockerfile", "FROM bb\n")]);
    std::os::unix::fs::symlink("/etc", ctx.path().join("etclink")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ctx.path().join("pw")).unwrap();
    std::fs::create_dir(ctx.path().join("d")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", ctx.path().join("d/up")).unwrap();
    // Each source resolves inside the context (where there is no etc/), so nothing of the
    // host's /etc is read: not found.
    for copy in [
        "COPY etclink/hostname /x",
        "COPY pw /x",
        "COPY d/up/hostname /x",
    ] {
        write(ctx.path(), "Dockerfile", &format!("FROM bb\n{copy}\n"));
        let out = build(&d, ctx.path(), &["-t", "escape"]);
        assert_eq!(out.status.code(), Some(1), "{copy}: {}", stdout(&out));
        assert!(
            err_text(&out).contains("not found"),
            "{copy}: {}",
            err_text(&out)
        );
    }
    // Copying the directory holding the links copies the links, not their targets.
    write(ctx.path(), "Dockerfile", "FROM bb\nCOPY d /d/\n");
    ok(&build(&d, ctx.path(), &["-t", "links"]));
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "links",
            "sh",
            "-c",
            "/bin/busybox readlink /d/up"
        ])),
        "../../../../../../etc"
    );
}

#[test]
fn cache_from_trusts_only_those_images_and_config_steps_hit_the_cache_too() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nENV FOO=bar\nRUN touch /baz\nRUN touch /bax\n",
    )]);
    let using_cache = |out: &Output| {
        assert!(out.status.success(), "{}", err(out));
        stdout(out).matches(" ---> Using cache").count()
    };
    let first = docker_build(&d, ctx.path(), &["-t", "build1"]);
    assert_eq!(using_cache(&first), 0, "{}", stdout(&first));
    // ENV, RUN, RUN: all three from the cache, as Docker's builder says.
    let again = docker_build(&d, ctx.path(), &["-t", "build2", "--cache-from", "build1"]);
    assert_eq!(using_cache(&again), 3, "{}", stdout(&again));
    let plain = docker_build(&d, ctx.path(), &["-t", "build3"]);
    assert_eq!(using_cache(&plain), 3, "{}", stdout(&plain));
    // A cache source that is no image: nothing is trusted, everything is built again.
    let none = docker_build(
        &d,
        ctx.path(),
        &["-t", "build4", "--cache-from", "nosuchtag"],
    );
    assert_eq!(using_cache(&none), 0, "{}", stdout(&none));
    // Moby's Go client sends unset maps as null.
    let (status, body) = d.request("POST", "/build?buildargs=null&labels=null&cachefrom=null");
    assert_ne!(status, 500, "{body}");
    assert!(!body.contains("invalid buildargs"), "{body}");
}

#[test]
fn run_steps_stderr_is_marked_red_as_dockers_builder_marks_it() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\nRUN sh -c 'echo to-stdout; echo to-stderr >&2'\n",
    )]);
    let out = docker_build(&d, ctx.path(), &["--no-cache", "-t", "red"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", err(&out));
    assert!(text.contains("\u{1b}[91mto-stderr\n\u{1b}[0m"), "{text:?}");
    // stdout plain (the two streams may come in either order).
    assert!(text.contains("to-stdout\n"), "{text:?}");
    assert!(!text.contains("\u{1b}[91mto-stdout"), "{text:?}");

    // A RUN that fails: Docker's 200 stream (even quiet), its last message naming the exit
    // code in errorDetail.code (docker-py checks it).
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN sh -c 'exit 3'\n")]);
    let tar = d.dir.path().join("ctx.tar");
    let made = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(ctx.path())
        .arg("Dockerfile")
        .status()
        .unwrap();
    assert!(made.success());
    // A tar of ASCII names and text is itself ASCII.
    let body = String::from_utf8(std::fs::read(&tar).unwrap()).unwrap();
    let (status, answer) = d.request_body("POST", "/v1.41/build?q=1", &body);
    assert_eq!(status, 200, "{answer}");
    let last: serde_json::Value =
        serde_json::from_str(answer.trim().lines().last().unwrap()).unwrap();
    assert_eq!(last["errorDetail"]["code"], 3, "{answer}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("returned a non-zero code: 3"),
        "{answer}"
    );
}

#[test]
fn run_steps_join_a_user_network_or_another_containers() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let net_id = ok(&d.docker(&["network", "create", "buildnet"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "target",
        "--hostname",
        "target-host",
        "--network",
        "buildnet",
        "--network-alias",
        "pingtarget",
        "bb",
        "sleep",
        "60",
    ]));
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN ping -c1 -W3 pingtarget\n")]);
    // By ID, as docker-py's test names it.
    let out = docker_build(&d, ctx.path(), &["--network", &net_id, "-t", "pinged"]);
    assert!(out.status.success(), "{}{}", stdout(&out), err(&out));
    let ctx = context(&[("Dockerfile", "FROM bb\nRUN cat /etc/hostname\n")]);
    let out = docker_build(
        &d,
        ctx.path(),
        &["--network", "container:target", "--no-cache"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("\ntarget-host\n"), "{}", stdout(&out));
    let out = docker_build(&d, ctx.path(), &["--network", "nosuchnet", "--no-cache"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("network nosuchnet not found"),
        "{}",
        err(&out)
    );
    ok(&d.docker(&["rm", "-f", "target"]));
    ok(&d.docker(&["network", "rm", "buildnet"]));
}

#[test]
fn squash_merges_the_new_layers_into_one_over_the_base() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // Adds, changes, deletes (a base file and one of its own) and replaces a directory.
    let ctx = context(&[(
        "Dockerfile",
        "FROM bb\n\
         RUN echo one > /one && echo tmp > /tmp/scratch && mkdir -p /d && echo old > /d/old\n\
         RUN echo two > /two && echo changed > /one && busybox rm /tmp/scratch /etc/passwd\n\
         RUN busybox rm -r /d && mkdir /d && echo new > /d/new\n\
         ENV SQUASHED=1\n",
    )]);
    let layers = |image: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            image,
        ])))
        .unwrap();
        v.as_array().unwrap().len()
    };
    let base = layers("bb");
    ok(&docker_build(&d, ctx.path(), &["-t", "plain"]));
    assert_eq!(layers("plain"), base + 3);
    // (The docker CLI sends --squash only to a daemon that says it is experimental, as
    // berth does not: its API takes `squash=1` all the same.)
    let out = build(&d, ctx.path(), &["--squash", "-t", "squashed"]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(layers("squashed"), base + 1);
    // The same files as without squashing, the base's deleted file still gone.
    let show =
        "cat /one /two /d/new; ls /d; ls /tmp; [ -e /etc/passwd ] && echo passwd; echo $SQUASHED";
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "squashed", "sh", "-c", show])),
        ok(&d.docker(&["run", "--rm", "plain", "sh", "-c", show]))
    );
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "squashed", "sh", "-c", show])),
        "changed\ntwo\nnew\nnew\n1"
    );
    // History keeps every step; only one of the stage's entries has a layer.
    let history = ok(&d.docker(&["history", "--format", "{{.Size}}", "squashed"]));
    assert_eq!(
        history.lines().count(),
        ok(&d.docker(&["history", "-q", "plain"])).lines().count()
    );
}

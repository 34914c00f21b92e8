//! The `berth` CLI against a real daemon: docker's commands, tables, templates, streams,
//! terminals and exit codes, and the API's answers to bad input.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testutil::*;

#[test]
fn run_ps_logs_exec_inspect_rm() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();

    // Attached run: output, stderr kept apart, the container's exit code.
    let out = d.berth(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out), "out");
    assert_eq!(err(&out), "err");
    // Flags after the image belong to the command.
    let out = d.berth(&["run", "--rm", "-e", "A=1", "bb", "sh", "-c", "echo $A -n"]);
    assert_eq!(ok(&out), "1 -n");
    // stdin with -i.
    let mut child = Command::new(berth_bin())
        .args(["-H", &d.host(), "run", "-i", "--rm", "bb", "cat"])
        .env("BERTH_NO_AUTOSTART", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"through stdin\n").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out), "through stdin");

    // Detached, named, labelled.
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "tier=front",
        "bb",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]));
    assert_eq!(id.len(), 64, "{id}");
    let ps = ok(&d.berth(&["ps"]));
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID   IMAGE     COMMAND                  CREATED"),
        "{header:?}"
    );
    assert!(header.ends_with("NAMES"), "{header:?}");
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(
        row.contains("\"sh -c 'echo started…\"") || row.contains("\"sh -c echo started;…\""),
        "{row}"
    );
    assert!(row.contains("Up ") && row.ends_with("web"), "{row}");
    assert_eq!(
        ok(&d.berth(&[
            "ps",
            "--format",
            "{{.Names}}|{{.Image}}|{{.State}}|{{.Labels}}"
        ])),
        "web|bb|running|tier=front"
    );
    assert_eq!(ok(&d.berth(&["ps", "-q"])), &id[..12]);
    assert_eq!(ok(&d.berth(&["ps", "-q", "--no-trunc"])), id);
    assert_eq!(ok(&d.berth(&["container", "ls", "-q"])), &id[..12]);
    let json = ok(&d.berth(&["ps", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["Names"], "web");

    eventually("the first log line", Duration::from_secs(20), || {
        text(&d.berth(&["logs", "web"])) == "started"
    });
    let out = d.berth(&["logs", "-t", "web"]);
    let line = text(&out);
    assert!(
        line.ends_with(" started") && line.starts_with("20"),
        "{line}"
    );

    // exec: output, exit code, user, env and workdir.
    assert_eq!(ok(&d.berth(&["exec", "web", "echo", "hi"])), "hi");
    assert_eq!(
        d.berth(&["exec", "web", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        ok(&d.berth(&[
            "exec",
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "-u",
            "1:1",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ])),
        "y /tmp 1"
    );

    assert_eq!(
        ok(&d.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Name}} {{.Config.Labels.tier}}",
            "web"
        ])),
        "running /web front"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&ok(&d.berth(&["container", "inspect", "web"]))).unwrap();
    assert_eq!(inspected[0]["Id"], id);
    let out = d.berth(&["inspect", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err(&out), "Error: No such object: nothing-here");

    let top = ok(&d.berth(&["top", "web"]));
    assert!(top.starts_with("UID") && top.contains("sh -c"), "{top}");

    ok(&d.berth(&["rename", "web", "web2"]));
    // A running container is not removed without -f, with Docker's message and status.
    let out = d.berth(&["rm", "web2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("cannot remove container \"/web2\": container is running"),
        "{}",
        err(&out)
    );
    // stop sends SIGTERM: the trap runs and the exit code is the script's.
    assert_eq!(ok(&d.berth(&["stop", "web2"])), "web2");
    assert_eq!(ok(&d.berth(&["wait", "web2"])), "0");
    assert_eq!(text(&d.berth(&["logs", "web2"])), "started\nbye");
    assert!(ok(&d.berth(&[
        "ps",
        "-a",
        "--filter",
        "name=web2",
        "--format",
        "{{.Status}}"
    ]))
    .starts_with("Exited (0) "));
    assert_eq!(ok(&d.berth(&["rm", "web2"])), "web2");
    let out = d.berth(&["rm", "web2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err(&out),
        "Error response from daemon: No such container: web2"
    );
}

#[test]
fn exit_codes_and_bad_input_follow_docker() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let count = || text(&d.berth(&["ps", "-aq"])).lines().count();

    // 125: the engine could not do it (and nothing is left behind).
    let out = d.berth(&["run", "--rm", "nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err(&out).contains("Unable to find image 'nosuchimage:latest' locally"),
        "{}",
        err(&out)
    );
    let out = d.berth(&["run", "--rm", "bb:bad:ref"]);
    assert_eq!(out.status.code(), Some(125), "{}", err(&out));
    let out = d.berth(&["run", "--memory", "lots", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(err(&out).contains("invalid size: 'lots'"), "{}", err(&out));
    let out = d.berth(&["run", "--restart", "sometimes", "bb"]);
    assert_eq!(out.status.code(), Some(125));
    let out = d.berth(&["run", "--cap-add", "NOT_A_CAP", "bb"]);
    assert_eq!(out.status.code(), Some(125), "{}", err(&out));
    let out = d.berth(&["run", "--no-such-flag", "bb"]);
    assert_eq!(out.status.code(), Some(125), "{}", err(&out));
    // A command group alone is not an error: its usage, on stderr, and 0 (docker's too).
    for group in ["container", "image", "network", "volume", "system"] {
        let out = d.berth(&[group]);
        assert_eq!(out.status.code(), Some(0), "{group}: {}", err(&out));
        assert!(err(&out).contains("Usage:"), "{group}: {}", err(&out));
    }
    let out = d.berth(&[
        "run",
        "--mount",
        "type=bind,source=/no/such/dir,target=/data",
        "bb",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err(&out).contains("bind source path does not exist"),
        "{}",
        err(&out)
    );
    assert_eq!(count(), 0, "failed runs left containers behind");

    // 127: the command does not exist; 126: it cannot be invoked.
    let out = d.berth(&["run", "--rm", "bb", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", err(&out));
    let out = d.berth(&["run", "--rm", "bb", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", err(&out));
    assert_eq!(count(), 0, "--rm containers that never ran are left behind");

    // The API: malformed JSON is a 400 naming the problem, and creates nothing.
    let (status, body) = d.request_body("POST", "/v1.45/containers/create", "{\"Image\": ");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"message\""), "{body}");
    let (status, _) = d.request_body("POST", "/v1.45/containers/create", "{\"Image\": 42}");
    assert_eq!(status, 400);
    let (status, body) = d.request_body(
        "POST",
        "/v1.45/containers/create",
        "{\"Image\": \"bb\", \"HostConfig\": {\"Memory\": -5}}",
    );
    assert!(status == 400, "{status} {body}");
    let (status, _) = d.request("GET", "/v1.45/containers/json?filters=%7Bnope");
    assert_eq!(status, 400);
    let (status, body) = d.request(
        "GET",
        "/v1.45/containers/json?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
    );
    assert_eq!(status, 400);
    assert!(body.contains("invalid filter 'colour'"), "{body}");
    assert_eq!(count(), 0);
}

#[test]
fn run_it_is_a_terminal_that_resizes_and_detaches() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let mut cmd = Command::new(berth_bin());
    cmd.args(["-H", &d.host(), "run", "-it", "--rm", "bb", "sh", "-c"])
        .arg("sleep 0.3; stty size; tty; read x; echo got:$x; exit 4")
        .env("BERTH_NO_AUTOSTART", "1");
    let (status, text) = run_in_pty(cmd, 30, 90, Duration::from_millis(1500), b"typed\r");
    assert_eq!(status.code(), Some(4), "{text:?}");
    assert!(
        text.contains("30 90"),
        "window size not passed on: {text:?}"
    );
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("got:typed"), "{text:?}");

    // exec -it: a terminal of the caller's size, input, and the exit code; the docker CLI
    // gets the same.
    ok(&d.berth(&["run", "-d", "--name", "box", "bb", "sleep", "100"]));
    for cli in [berth_bin(), std::path::Path::new(DOCKER)] {
        let mut cmd = Command::new(cli);
        let cli = cli.display();
        cmd.args(["-H", &d.host(), "exec", "-it", "box", "sh", "-c"])
            .arg("sleep 0.5; stty size; tty; read x; echo got:$x; exit 5")
            .env("BERTH_NO_AUTOSTART", "1")
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
        let (status, text) = run_in_pty(cmd, 33, 101, Duration::from_millis(1500), b"keys\r");
        assert_eq!(status.code(), Some(5), "{cli}: {text:?}");
        assert!(
            text.contains("33 101"),
            "{cli}: window size not passed on: {text:?}"
        );
        assert!(text.contains("/dev/pts/"), "{cli}: {text:?}");
        assert!(text.contains("got:keys"), "{cli}: {text:?}");
    }
    ok(&d.berth(&["rm", "-f", "box"]));

    // ctrl-p ctrl-q detaches: the CLI ends, the container keeps running.
    let mut cmd = Command::new(berth_bin());
    cmd.args(["-H", &d.host(), "run", "-it", "--name", "stay", "bb", "sh"])
        .env("BERTH_NO_AUTOSTART", "1");
    let (status, text) = run_in_pty(cmd, 24, 80, Duration::from_millis(1500), b"\x10\x11");
    assert_eq!(status.code(), Some(0), "{text:?}");
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.State.Running}}", "stay"])),
        "true"
    );
    ok(&d.berth(&["rm", "-f", "stay"]));
}

#[test]
fn logs_follow_since_and_rotation() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // A container that writes 1 KiB records into a log limited to 2 files of 4 KiB.
    ok(&d.berth(&[
        "run", "-d", "--name", "chatty", "--log-opt", "max-size=4k", "--log-opt", "max-file=2",
        "bb", "sh", "-c",
        "i=0; while [ $i -lt 40 ]; do echo \"$i $(printf '%01000d' 0)\"; i=$((i+1)); sleep 0.05; done",
    ]));
    // follow ends when the container does, and shows the last line.
    let out = d.berth(&["logs", "-f", "chatty"]);
    let shown = text(&out);
    assert!(
        shown.lines().last().unwrap_or("").starts_with("39 "),
        "{shown}"
    );
    let dir = d.dir.path().join("root/containers");
    let cdir = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let logs: Vec<_> = std::fs::read_dir(&cdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert_eq!(logs.len(), 2, "max-file=2 keeps two files");
    for l in &logs {
        assert!(
            l.metadata().unwrap().len() <= 4096 + 2048,
            "log file too big"
        );
    }
    // since in the future: nothing; until in the past: nothing; tail.
    assert_eq!(
        text(&d.berth(&["logs", "--since", "2999-01-01", "chatty"])),
        ""
    );
    assert_eq!(
        text(&d.berth(&["logs", "--until", "2000-01-01", "chatty"])),
        ""
    );
    assert_eq!(
        text(&d.berth(&["logs", "--tail", "1", "chatty"]))
            .lines()
            .count(),
        1
    );
    let out = d.berth(&["logs", "--since", "yesterday-ish", "chatty"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("invalid value for \"since\""),
        "{}",
        err(&out)
    );
    // The docker CLI follows too.
    let out = d.docker(&["logs", "--tail", "2", "chatty"]);
    assert_eq!(text(&out).lines().count(), 2);
}

#[test]
fn ps_filters_events_pause_kill_restart() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let out = d.berth(&[
        "run", "--name", "done3", "-l", "k=v", "bb", "sh", "-c", "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    ok(&d.berth(&["run", "-d", "--name", "live", "bb", "sleep", "100"]));
    ok(&d.berth(&["create", "--name", "fresh", "bb"]));
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = text(&d.berth(&a)).lines().map(str::to_owned).collect();
        v.sort();
        v.join(",")
    };
    assert_eq!(names(&[]), "live");
    assert_eq!(names(&["-a"]), "done3,fresh,live");
    assert_eq!(names(&["--filter", "status=exited"]), "done3");
    assert_eq!(names(&["--filter", "status=created"]), "fresh");
    assert_eq!(names(&["--filter", "exited=3"]), "done3");
    assert_eq!(names(&["-a", "--filter", "label=k=v"]), "done3");
    assert_eq!(names(&["-a", "--filter", "name=liv"]), "live");
    assert_eq!(
        names(&["-a", "--filter", "ancestor=bb"]),
        "done3,fresh,live"
    );
    assert_eq!(names(&["-n", "1"]), "fresh");
    assert_eq!(names(&["-l"]), "fresh");
    assert_eq!(names(&["-a", "--filter", "before=fresh"]), "done3,live");
    let out = d.berth(&["ps", "--filter", "status=sleepy"]);
    assert_eq!(out.status.code(), Some(1));

    ok(&d.berth(&["pause", "live"]));
    assert!(ok(&d.berth(&["ps", "--format", "{{.Status}}"])).ends_with("(Paused)"));
    let out = d.berth(&["pause", "live"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("is already paused"), "{}", err(&out));
    ok(&d.berth(&["unpause", "live"]));
    ok(&d.berth(&["restart", "-t", "1", "live"]));
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.State.Running}}", "live"])),
        "true"
    );
    ok(&d.berth(&["kill", "-s", "TERM", "live"]));
    ok(&d.berth(&["kill", "live"]));
    assert_eq!(ok(&d.berth(&["wait", "live"])), "137");

    // Everything above is in the event log, in order.
    let out = d.berth(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=live",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<String> = text(&out).lines().map(str::to_owned).collect();
    let want = [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "start", "restart", "kill",
    ];
    let mut it = actions.iter();
    for w in want {
        assert!(
            it.any(|a| a == w),
            "{w} missing or out of order in {actions:?}"
        );
    }
    assert!(
        actions.iter().filter(|a| *a == "die").count() >= 2,
        "{actions:?}"
    );
    // The docker CLI reads the same stream.
    let out = d.docker(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "event=rename",
    ]);
    assert!(out.status.success(), "{}", err(&out));
}

/// A container without a restart policy that ends while no request looks at it: the daemon
/// notices by itself (its rootfs is unmounted, `die` is sent with the exit code) within a
/// moment, not at the next `ps` or `inspect`; and `ps` shows the end without acting on it.
#[test]
fn an_exit_nobody_asks_about_is_cleaned_up_and_announced() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.berth(&["run", "-d", "bb", "sh", "-c", "sleep 1; exit 3"]));
    let rootfs = d
        .dir
        .path()
        .join("root/containers")
        .join(&id)
        .join("rootfs");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
    };
    assert!(mounted(), "the rootfs is mounted while it runs");
    // Only the event log is read until the end is seen: no request refreshes the container.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let died = loop {
        let out = d.berth(&[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.ID}} {{.Actor.Attributes.exitCode}}",
        ]);
        let t = text(&out);
        if !t.is_empty() || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(died, format!("{id} 3"));
    assert!(
        !mounted(),
        "the rootfs is unmounted once the daemon saw the exit"
    );
    let status = ok(&d.berth(&[
        "ps",
        "-a",
        "--format",
        "{{.Status}}",
        "--filter",
        &format!("id={id}"),
    ]));
    assert!(status.starts_with("Exited (3) "), "{status}");
}

#[test]
fn init_is_pid_1_and_forwards_stop_signals() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "--init", "bb", "cat", "/proc/1/comm"])),
        "berth-init"
    );
    // Without an init, pid 1 `sleep` ignores SIGTERM and stop has to SIGKILL it (137); with
    // one, SIGTERM reaches `sleep` and ends it at once (143). The docker CLI's --init too.
    let out = d.docker(&["run", "-d", "--init", "--name", "i", "bb", "sleep", "100"]);
    assert!(out.status.success(), "{}", err(&out));
    let started = Instant::now();
    ok(&d.berth(&["stop", "-t", "5", "i"]));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "SIGTERM was not forwarded"
    );
    assert_eq!(ok(&d.berth(&["wait", "i"])), "143");
}

#[test]
fn image_commands_save_load_rmi_prune() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.berth(&["images", "-q", "bb"]));
    assert_eq!(id.len(), 12, "{id}");
    ok(&d.berth(&["tag", "bb", "localhost:5000/team/bb:v1"]));
    let table = ok(&d.berth(&["images"]));
    assert!(
        table.starts_with("REPOSITORY               TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    assert!(
        table.contains("localhost:5000/team/bb   v1        "),
        "{table}"
    );
    assert_eq!(
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "bb"]))[7..19],
        id
    );
    let history = ok(&d.berth(&["history", "bb"]));
    assert!(history.starts_with("IMAGE          CREATED"), "{history}");

    // rmi is refused while a container uses the image, with Docker's message.
    ok(&d.berth(&["create", "--name", "user", "bb"]));
    let out = d.berth(&["rmi", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("must be forced"), "{}", err(&out));
    // One of two names goes; the last one stays while the container needs it.
    assert_eq!(
        ok(&d.berth(&["rmi", "localhost:5000/team/bb:v1"])),
        "Untagged: localhost:5000/team/bb:v1"
    );
    let out = d.berth(&["rmi", "bb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("is using its referenced image"),
        "{}",
        err(&out)
    );
    ok(&d.berth(&["rm", "user"]));

    // save -> rmi -> load gives the same image back, and it runs.
    let archive = d.dir.path().join("bb.tar");
    ok(&d.berth(&["save", "-o", archive.to_str().unwrap(), "bb"]));
    let removed = ok(&d.berth(&["rmi", "bb"]));
    assert!(
        removed.contains("Untagged: bb:latest") && removed.contains("Deleted: sha256:"),
        "{removed}"
    );
    assert_eq!(text(&d.berth(&["images", "-q"])), "");
    let loaded = ok(&d.berth(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(loaded, "Loaded image: bb:latest");
    assert_eq!(ok(&d.berth(&["images", "-q", "bb"])), id);
    assert_eq!(ok(&d.berth(&["run", "--rm", "bb", "echo", "back"])), "back");

    // A dangling image after re-tagging, removed by prune.
    let tarball = busybox_tarball(&d.dir.path().join("second"));
    ok(&d.berth(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-m",
        "two",
        tarball.to_str().unwrap(),
        "bb",
    ]));
    assert_eq!(
        ok(&d.berth(&[
            "images",
            "--filter",
            "dangling=true",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ])),
        format!("<none>:<none> {id}")
    );
    let pruned = ok(&d.berth(&["image", "prune", "-f"]));
    assert!(
        pruned.contains(&format!("deleted: sha256:{id}")),
        "{pruned}"
    );
    assert!(pruned.contains("Total reclaimed space: "), "{pruned}");
    assert_eq!(text(&d.berth(&["images", "-q"])).lines().count(), 1);

    // Image events.
    let out = d.berth(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}}",
    ]);
    let actions = text(&out);
    for a in ["tag", "untag", "delete", "load", "import"] {
        assert!(
            actions.lines().any(|l| l == a),
            "{a} missing from {actions:?}"
        );
    }
}

#[test]
fn restarting_containers_show_it_and_rm_never_races_the_supervisor() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let mut refused_restarting = 0;
    for i in 0..5 {
        let name = format!("flappy{i}");
        ok(&d.berth(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            &name,
            "bb",
            "sh",
            "-c",
            "exit 1",
        ]));
        eventually("the restarting state", Duration::from_secs(20), || {
            let st = text(&d.berth(&[
                "ps",
                "-a",
                "--filter",
                &format!("name={name}"),
                "--format",
                "{{.State}} {{.Status}}",
            ]));
            st.starts_with("restarting Restarting (1) ")
        });
        assert_eq!(
            ok(&d.berth(&[
                "inspect",
                "-f",
                "{{.State.Restarting}} {{.State.Status}}",
                &name
            ])),
            "true restarting"
        );
        // Without force, Docker refuses (in its words); it may just be running again, which
        // is refused too.
        let out = d.berth(&["rm", &name]);
        assert!(!out.status.success(), "a restarting container was removed");
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains(&format!("You cannot remove a restarting container {}. Stop the container before attempting removal or force remove", ok(&d.berth(&["inspect", "-f", "{{.Id}}", &name])))) {
            refused_restarting += 1;
        } else {
            assert!(err.contains("container is running"), "{err}");
        }
        // Removal while the supervisor may be starting it again: it goes, and stays gone.
        ok(&d.berth(&["rm", "-f", &name]));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            text(&d.berth(&["ps", "-aq"])),
            "",
            "a removed container came back"
        );
    }
    assert!(refused_restarting > 0, "never refused as restarting");
    // Nothing of theirs is left mounted or on disk.
    let containers = d.dir.path().join("root/containers");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0);
}

#[test]
fn run_flags_reach_the_container() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let env_file = d.dir.path().join("env");
    std::fs::write(&env_file, "# a comment\nFROMFILE=yes\n\nSPACED=a b\n").unwrap();
    let out = d.berth(&[
        "run", "--rm", "--env-file", env_file.to_str().unwrap(), "--entrypoint", "sh",
        "--hostname", "hh", "--read-only", "--cpus", "0.5", "--pids-limit", "50",
        "--memory", "64m", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--ulimit",
        "nofile=100:200", "--security-opt", "no-new-privileges", "-w", "/tmp", "-u", "1:1",
        "bb", "-c",
        "echo $FROMFILE $SPACED; hostname; pwd; id -u; touch /x 2>/dev/null || echo read-only; ulimit -n; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status",
    ]);
    let shown = ok(&out);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[..6],
        ["yes a b", "hh", "/tmp", "1", "read-only", "100"],
        "{shown}"
    );
    assert!(shown.contains("CapBnd:\t0000000000000001"), "{shown}");
    assert!(shown.contains("NoNewPrivs:\t1"), "{shown}");
    let limits = ok(&d.berth(&[
        "run",
        "--rm",
        "--privileged",
        "bb",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]));
    // --privileged: every capability this host has.
    let host_caps = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_owned()))
        .unwrap();
    assert_eq!(limits, format!("CapEff:\t{host_caps}"));
    // The inspect view of the same settings.
    ok(&d.berth(&[
        "create",
        "--name",
        "c",
        "--memory",
        "64m",
        "--cpus",
        "1.5",
        "--pids-limit",
        "9",
        "--stop-signal",
        "SIGUSR1",
        "--restart",
        "on-failure:2",
        "bb",
    ]));
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.Config.StopSignal}}", "c"])),
        "67108864 1500000000 9 SIGUSR1"
    );
    // --stop-signal and --stop-timeout: stop sends USR1, which the script turns into exit 7.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "s",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "30",
        "bb",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.1; done",
    ]));
    let started = Instant::now();
    ok(&d.berth(&["stop", "s"]));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stop signal was not used"
    );
    assert_eq!(ok(&d.berth(&["wait", "s"])), "7");
}

#[test]
fn a_run_rm_container_goes_even_when_its_client_died() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let mut client = Command::new(berth_bin())
        .args([
            "-H",
            &d.host(),
            "run",
            "--rm",
            "--name",
            "orphan",
            "bb",
            "sleep",
            "1",
        ])
        .env("BERTH_NO_AUTOSTART", "1")
        .spawn()
        .unwrap();
    eventually("the container to run", Duration::from_secs(20), || {
        ok(&d.berth(&["ps", "-q", "--filter", "name=orphan"])).len() == 12
    });
    // The client is killed before the container ends: nobody waits to remove it.
    client.kill().unwrap();
    client.wait().unwrap();
    eventually("the container to end", Duration::from_secs(20), || {
        ok(&d.berth(&[
            "ps",
            "-aq",
            "--filter",
            "status=exited",
            "--filter",
            "name=orphan",
        ]))
        .len()
            == 12
    });
    // The daemon removes it by itself (after its grace period).
    eventually("the daemon to remove it", Duration::from_secs(20), || {
        ok(&d.berth(&["ps", "-aq", "--filter", "name=orphan"])).is_empty()
    });
}

/// `berth create` and `docker create` with the same resource, device, namespace and runtime
/// flags make the same HostConfig; a container run with some of them shows them in effect.
#[test]
fn create_flags_match_the_docker_cli() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let cid = |who: &str| d.dir.path().join(format!("{who}.cid"));
    let flags = |who: &str| -> Vec<String> {
        [
            "--pid",
            "host",
            "--ipc",
            "shareable",
            "--uts",
            "host",
            "--cgroupns",
            "private",
            "--userns",
            "host",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "-c",
            "512",
            "-m",
            "64m",
            "--memory-swap",
            "128m",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--oom-score-adj",
            "-100",
            "--shm-size",
            "8m",
            "--device",
            "/dev/null",
            "--device",
            "/dev/zero:/dev/z",
            "--device",
            "/dev/full:/dev/f:r",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "--group-add",
            "1234",
            "--group-add",
            "audio",
            "--runtime",
            "runc",
            "--isolation",
            "default",
            "--log-driver",
            "local",
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "chown",
            "-p",
            "8080:80",
            "--init",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--pids-limit",
            "50",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--cidfile".into(), cid(who).to_str().unwrap().to_owned()])
        .chain(["bb".into()])
        .collect()
    };
    let args = |f: &[String]| -> Vec<String> {
        ["create".to_owned()]
            .into_iter()
            .chain(f.iter().cloned())
            .collect()
    };
    let by_berth = args(&flags("berth"));
    let by_docker = args(&flags("docker"));
    let b = ok(&d.berth(&by_berth.iter().map(String::as_str).collect::<Vec<_>>()));
    let k = ok(&d.docker(&by_docker.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(std::fs::read_to_string(cid("berth")).unwrap(), b);
    assert_eq!(std::fs::read_to_string(cid("docker")).unwrap(), k);
    let inspect = |id: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", id]))).unwrap();
        let mut v = v[0].clone();
        // Differs by nature: the file each CLI was told to write.
        v["HostConfig"]["ContainerIDFile"] = serde_json::Value::Null;
        // The container's own name for itself.
        v["Config"]["Hostname"] = serde_json::Value::Null;
        v
    };
    let (bv, kv) = (inspect(&b), inspect(&k));
    assert_eq!(bv["HostConfig"], kv["HostConfig"]);
    assert_eq!(bv["Config"], kv["Config"]);
    assert_eq!(bv["HostConfig"]["ShmSize"], 8 << 20);
    assert_eq!(
        bv["HostConfig"]["GroupAdd"],
        serde_json::json!(["1234", "audio"])
    );
    // A second create with the same --cidfile is refused, as docker refuses it.
    let again = d.berth(&by_berth.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.status.code(), Some(125));
    assert!(
        err(&again).contains("container ID file found"),
        "{}",
        err(&again)
    );
    ok(&d.berth(&["rm", &b, &k]));

    // In effect: the extra group, the /dev/shm size, the CPU set, a device, the OOM score
    // (a negative score fails in the engine today, "io error", from either CLI).
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--group-add",
        "1234",
        "--shm-size",
        "8m",
        "--cpuset-cpus",
        "0",
        "--device",
        "/dev/zero:/dev/z:r",
        "--oom-score-adj",
        "100",
        "bb",
        "sh",
        "-c",
        "id -G; df -k /dev/shm | tail -1; grep Cpus_allowed_list /proc/self/status; \
         head -c 3 /dev/z | od -An -tx1; cat /proc/self/oom_score_adj",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].split(' ').any(|g| g == "1234"), "{out}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("8192"), "{out}");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0"), "{out}");
    assert_eq!(lines[3].trim(), "00 00 00", "{out}");
    assert_eq!(lines[4], "100", "{out}");

    // Bad values and settings berth does not apply: docker's words or the flag named, 125.
    for (args, words) in [
        (
            &["--cpus", "x"][..],
            r#"invalid argument "x" for "--cpus" flag: failed to parse x as a rational number"#,
        ),
        (
            &["--shm-size", "lots"][..],
            r#"invalid argument "lots" for "--shm-size" flag: invalid size: 'lots'"#,
        ),
        (
            &["--memory-swappiness", "101"][..],
            "invalid value: 101. Valid memory swappiness range is 0-100",
        ),
        (&["--pid", "nope"][..], "--pid: invalid PID mode"),
        (
            &["--device", "/dev/null:/dev/x:rx"][..],
            "bad mode specified: rx",
        ),
        (
            &["--blkio-weight", "300"][..],
            "--blkio-weight flag is not supported",
        ),
        (
            &["--storage-opt", "size=1G"][..],
            "--storage-opt flag is not supported",
        ),
    ] {
        let out = d.berth(&[&["create"][..], args, &["bb"]].concat());
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(err(&out).contains(words), "{args:?}: {}", err(&out));
    }
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "", "nothing was left behind");
}

//! A thousand cycles each of volumes, exec, build RUN steps and health checks leave nothing
//! behind: no mount, bridge port, nftables rule, shim, daemon file descriptor, temporary file
//! or cgroup beyond what there was before (`BERTH_LEAK_CYCLES` sets fewer for a quick local
//! run; containers' cycles are in `network::create_and_remove_cycles_leak_nothing`).

use std::time::{Duration, Instant};

use berth_testutil::*;

fn cycles() -> usize {
    std::env::var("BERTH_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits (10 s at most: a stopped container's namespace goes in the background) until the
/// footprint is within `before` again; fails with both when it is not.
fn settles_to(d: &TestDaemon, before: &Footprint) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = Footprint::of(d);
        if now.within(before) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the footprint grew:\nbefore {before:#?}\nafter {now:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// POSTs `body` to `path`, wants `status`; the answer's JSON (null when empty).
fn post(d: &TestDaemon, path: &str, body: &str, status: u16) -> serde_json::Value {
    let (got, text) = d.request_body("POST", path, body);
    assert_eq!(got, status, "POST {path}: {text}");
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        json(&text)
    }
}

fn delete(d: &TestDaemon, path: &str) {
    let (status, text) = d.request("DELETE", path);
    assert_eq!(status, 204, "DELETE {path}: {text}");
}

/// Create a volume, fill it from a container, remove both: a thousand times.
#[test]
fn volume_cycles_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let cycle = |i: usize| -> String {
        post(&d, "/volumes/create", r#"{"Name":"cycled"}"#, 201);
        let body = r#"{"Image":"bb","Cmd":["sh","-c","echo kept > /v/f"],
            "HostConfig":{"Binds":["cycled:/v"],"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}"#;
        let id = post(&d, "/containers/create", body, 201)["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        post(&d, &format!("/containers/{id}/start"), "", 204);
        let waited = post(&d, &format!("/containers/{id}/wait"), "", 200);
        assert_eq!(waited["StatusCode"], 0, "cycle {i}: {waited}");
        delete(&d, &format!("/containers/{id}?v=1"));
        delete(&d, "/volumes/cycled");
        id
    };
    cycle(0);
    let before = Footprint::of(&d);
    let ids: Vec<String> = (1..=cycles()).map(cycle).collect();
    settles_to(&d, &before);
    for id in &ids {
        assert_eq!(cgroups_of(id), Vec::<String>::new(), "container {id}");
    }
    let volumes = std::fs::read_dir(d.dir.path().join("root/volumes"))
        .unwrap()
        .count();
    assert_eq!(volumes, 0, "no volume is left");
}

/// A thousand execs in one container: each one's process, pipes and record go.
#[test]
fn exec_cycles_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100000"]));
    let exec = |i: usize| {
        let created = post(
            &d,
            &format!("/containers/{id}/exec"),
            r#"{"Cmd":["echo","cycled"],"AttachStdout":true,"AttachStderr":true}"#,
            201,
        );
        let eid = created["Id"].as_str().unwrap().to_owned();
        let (status, out) = d.request_body(
            "POST",
            &format!("/exec/{eid}/start"),
            r#"{"Detach":false,"Tty":false}"#,
        );
        assert_eq!(status, 200, "cycle {i}: {out}");
        assert!(out.contains("cycled"), "cycle {i}: {out:?}");
    };
    exec(0);
    let processes = |d: &TestDaemon| ok(&d.docker(&["top", &id])).lines().count();
    let (before, procs_before) = (Footprint::of(&d), processes(&d));
    for i in 1..=cycles() {
        exec(i);
    }
    settles_to(&d, &before);
    assert_eq!(processes(&d), procs_before, "no exec process is left");
    ok(&d.docker(&["rm", "-f", &id]));
}

/// A thousand RUN steps (ten builds of a hundred, each build's argument changing them all).
#[test]
fn build_run_step_cycles_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    let per_build = 100.min(cycles().max(1));
    let mut dockerfile = String::from("FROM bb\nARG N\n");
    for step in 0..per_build {
        dockerfile.push_str(&format!("RUN echo $N {step}\n"));
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let build = |n: usize| {
        ok(&d.docker(&[
            "build",
            "-q",
            "--build-arg",
            &format!("N={n}"),
            "-t",
            "cycled",
            ctx.path().to_str().unwrap(),
        ]));
    };
    build(0);
    let before = Footprint::of(&d);
    for n in 1..=cycles().div_ceil(per_build) {
        build(n);
    }
    settles_to(&d, &before);
    // The runtime keeps no state and no bundle copy of a step's container (`.seccomp` is
    // its cache of compiled filters, one per profile).
    let runtime = d.dir.path().join("root/runtime");
    let names = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let state: Vec<String> = names(&runtime)
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let bundles = names(&runtime.join(".bundles"));
    assert!(bundles.is_empty(), "bundle copies left: {bundles:?}");
}

/// A thousand health checks of one container: the shim's descriptors stay as they were, no
/// probe's process is left, and once the container is gone nothing of it is.
#[test]
fn health_check_cycles_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let before = Footprint::of(&d);
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--health-cmd",
        "echo x >> /tmp/probes",
        "--health-interval",
        "5ms",
        "--health-timeout",
        "5s",
        "bb",
        "sleep",
        "100000",
    ]));
    let probes = || {
        let out = d.docker(&["exec", &id, "busybox", "wc", "-l", "/tmp/probes"]);
        stdout(&out)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let shim_fds = || {
        let shim = shim_pid(&d, &id);
        std::fs::read_dir(format!("/proc/{shim}/fd"))
            .unwrap()
            .count()
    };
    eventually("ten probes", Duration::from_secs(30), || probes() >= 10);
    // A probe in flight holds a few descriptors of its own: the fewest of many looks.
    let fds_early = (0..20).map(|_| shim_fds()).min().unwrap();
    let top_before = ok(&d.docker(&["top", &id]));
    let limit = Duration::from_secs(60 + cycles() as u64 / 5);
    eventually("the probes", limit, || probes() >= cycles());
    eventually(
        "the shim's descriptors as they were",
        Duration::from_secs(10),
        || shim_fds() <= fds_early,
    );
    let health = ok(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &id]));
    assert_eq!(health, "healthy");
    // A probe may be running at any look (one every 5 ms, slower under load): a process
    // left behind is one that is still there, same PID, after the probe timeout (5 s).
    let pids = |top: &str| -> std::collections::BTreeSet<String> {
        top.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect()
    };
    let first = ok(&d.docker(&["top", &id]));
    let started = std::time::Instant::now();
    let mut extra: std::collections::BTreeSet<String> = pids(&first)
        .difference(&pids(&top_before))
        .cloned()
        .collect();
    while !extra.is_empty() && started.elapsed() < Duration::from_secs(7) {
        std::thread::sleep(Duration::from_millis(200));
        let now = pids(&ok(&d.docker(&["top", &id])));
        extra.retain(|p| now.contains(p));
    }
    assert!(
        extra.is_empty(),
        "a probe's process is left: {extra:?}\nfirst look\n{first}\nbefore the probes\n{top_before}"
    );
    ok(&d.docker(&["rm", "-f", &id]));
    settles_to(&d, &before);
    assert_eq!(cgroups_of(&id), Vec::<String>::new());
}

/// The pid of the shim of container `id`.
fn shim_pid(d: &TestDaemon, id: &str) -> u32 {
    shims_of(&d.dir.path().join("root/containers"))
        .into_iter()
        .find(|(c, _)| c == id)
        .unwrap_or_else(|| panic!("no shim runs for {id}"))
        .1
}

//! Resource use and clean-up against a real daemon: `stats` (berth's and docker's CLI, the
//! API's JSON, one sample or a stream, a terminal redrawn), `update` of a running and a
//! stopped container (the cgroup and the record), `system df`, `container prune` and
//! `system prune`, with the space freed measured by `du` on the daemon's root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_testutil::*;

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes of docker's binary sizes ("52.38MiB", "1GiB", "0B").
fn binary_bytes(text: &str) -> f64 {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .unwrap_or_else(|_| panic!("not a size: {text:?}"));
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB,
        "GiB" => MIB * 1024.0,
        "TiB" => MIB * MIB,
        other => panic!("unit {other:?} in {text:?}"),
    };
    n * mult
}

/// `du -sb` of `path`.
fn du(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    assert!(out.status.success(), "{}", err(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A container's cgroup file (`v1` under the controller's hierarchy, else `v2`), found from
/// its init's `/proc/<pid>/cgroup` and the mount table, as the engine finds it.
fn cgroup_file(d: &TestDaemon, name: &str, controller: &str, v1: &str, v2: &str) -> String {
    let pid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", name]));
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let unified = Command::new("stat")
        .args(["-f", "-c", "%T", "/sys/fs/cgroup"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "cgroup2fs")
        .unwrap();
    let mount_of = |want: &dyn Fn(&str, &str) -> bool| -> PathBuf {
        mounts
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let point = left.split(' ').nth(4)?;
                let mut r = right.split(' ');
                let (fs, opts) = (r.next()?, r.nth(1)?);
                want(fs, opts).then(|| PathBuf::from(point))
            })
            .expect("a cgroup mount")
    };
    let path = if unified {
        let rel = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        mount_of(&|fs, _| fs == "cgroup2")
            .join(rel.trim_start_matches('/'))
            .join(v2)
    } else {
        let rel = own
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
                ctrls.split(',').any(|c| c == controller).then_some(path)
            })
            .unwrap();
        mount_of(&|fs, opts| fs == "cgroup" && opts.split(',').any(|o| o == controller))
            .join(rel.trim_start_matches('/'))
            .join(v1)
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// One stats sample through the API (`stream=0`: two samples a second apart).
fn api_stats(d: &TestDaemon, name: &str) -> serde_json::Value {
    let (status, body) = d.request("GET", &format!("/containers/{name}/stats?stream=0"));
    assert_eq!(status, 200, "{body}");
    json(&body)
}

/// A container that holds 50 MiB: a file in its /dev/shm (tmpfs pages are charged to the
/// container's memory cgroup and cannot be reclaimed without swap).
fn run_holding_50mib(d: &TestDaemon, name: &str) {
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        name,
        "bb",
        "sh",
        "-c",
        "busybox dd if=/dev/zero of=/dev/shm/fill bs=1M count=50 2>/dev/null; echo filled; sleep 1000",
    ]));
    eventually(
        "the container to fill its memory",
        Duration::from_secs(30),
        || text(&d.berth(&["logs", name])).contains("filled"),
    );
}

#[test]
fn stats_show_what_a_container_uses() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    run_holding_50mib(&d, "mem");

    // The CLI: docker's memory figure (usage without the inactive page cache).
    let usage = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "mem"]));
    let (used, limit) = usage.split_once(" / ").unwrap();
    assert!(binary_bytes(used) >= 50.0 * MIB, "{usage}");
    assert!(binary_bytes(limit) > binary_bytes(used), "{usage}");

    // The table, with every running container.
    let table = ok(&d.berth(&["stats", "--no-stream"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.contains(" mem ") && row.contains('%'), "{row}");

    // The API's JSON.
    let s = api_stats(&d, "mem");
    assert!(
        s["name"] == "/mem" && s["id"].as_str().unwrap().len() == 64,
        "{s}"
    );
    assert!(
        s["memory_stats"]["usage"].as_f64().unwrap() >= 50.0 * MIB,
        "{s}"
    );
    assert!(s["memory_stats"]["limit"].as_u64().unwrap() > 0, "{s}");
    assert!(s["memory_stats"]["stats"].is_object(), "{s}");
    assert!(s["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0,
        "{s}"
    );
    // Without streaming, the sample before it is a second earlier (so CPU % means something).
    let (sys, presys) = (
        s["cpu_stats"]["system_cpu_usage"].as_u64().unwrap(),
        s["precpu_stats"]["system_cpu_usage"].as_u64().unwrap(),
    );
    assert!(presys > 0 && sys > presys, "{s}");
    assert!(s["pids_stats"]["current"].as_u64().unwrap() >= 1, "{s}");
    assert_ne!(s["read"], s["preread"]);
    // one-shot: at once, with no sample before.
    let (_, body) = d.request("GET", "/containers/mem/stats?stream=0&one-shot=1");
    assert_eq!(json(&body)["preread"], "0001-01-01T00:00:00Z");
    let (status, _) = d.request("GET", "/containers/nothing/stats?stream=0");
    assert_eq!(status, 404);

    // Streaming: a sample a second, each with the one before as its `pre…` figures.
    let mut conn = UnixStream::connect(d.socket()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET /v1.45/containers/mem/stats HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    let mut samples = Vec::new();
    for _ in 0..2 {
        line.clear();
        r.read_line(&mut line).unwrap();
        samples.push(json(&line));
    }
    assert_eq!(samples[1]["preread"], samples[0]["read"]);
    assert_eq!(samples[1]["precpu_stats"], samples[0]["cpu_stats"]);
    drop(r);

    // The docker CLI against berth.
    let out = d.docker(&["stats", "--no-stream"]);
    let table = ok(&out);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("mem"), "{table}");
    let out = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "mem",
    ]);
    let line = ok(&out);
    let used = line
        .strip_prefix("mem ")
        .and_then(|l| l.split(" / ").next())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(binary_bytes(used) >= 50.0 * MIB, "{line}");

    // A stopped container shows zeros; a missing one is an error.
    ok(&d.berth(&["create", "--name", "idle", "bb", "sh"]));
    assert_eq!(
        ok(&d.berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
            "idle"
        ])),
        "idle 0.00% 0B / 0B 0"
    );
    let out = d.berth(&["stats", "--no-stream", "nothing"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err(&out),
        "Error response from daemon: No such container: nothing"
    );
    ok(&d.berth(&["rm", "-f", "mem", "idle"]));
}

#[test]
fn stats_redraw_a_terminal_until_the_container_goes() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.berth(&["run", "-d", "--name", "short", "bb", "sleep", "1000"]));
    let host = d.host();
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        berth(&host, &["rm", "-f", "short"])
    });
    let mut cmd = Command::new(berth_bin());
    cmd.args(["-H", &d.host(), "stats", "short"])
        .env("BERTH_NO_AUTOSTART", "1");
    let (status, screen) = run_in_pty(cmd, 24, 120, Duration::from_secs(30), b"");
    let removed = remover.join().unwrap();
    assert!(
        removed.status.success(),
        "rm -f during stats: {}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(status.success(), "{screen}");
    // Cleared once, then redrawn in place (cursor home, lines erased to their end).
    assert!(screen.starts_with("\x1b[2J"), "{screen:?}");
    assert!(screen.matches("\x1b[H").count() >= 2, "{screen:?}");
    assert!(
        screen.contains("CONTAINER ID") && screen.contains("short"),
        "{screen:?}"
    );
    assert!(screen.contains("\x1b[K"), "{screen:?}");
}

#[test]
fn update_changes_limits_now_and_after_a_restart() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    run_holding_50mib(&d, "lim");
    let limit = |d: &TestDaemon| {
        api_stats(d, "lim")["memory_stats"]["limit"]
            .as_u64()
            .unwrap()
    };

    // Running: the cgroup changes at once, the record too.
    assert_eq!(
        ok(&d.berth(&["update", "--memory", "200m", "--memory-swap", "400m", "lim"])),
        "lim"
    );
    assert_eq!(limit(&d), 200 << 20);
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.HostConfig.Memory}}", "lim"])),
        (200u64 << 20).to_string()
    );
    ok(&d.berth(&[
        "update",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "lim",
    ]));
    assert_eq!(
        api_stats(&d, "lim")["pids_stats"]["limit"].as_u64(),
        Some(50)
    );
    if cgroup_v2() {
        assert_eq!(cgroup_file(&d, "lim", "cpu", "", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            cgroup_file(&d, "lim", "cpu", "cpu.cfs_quota_us", ""),
            "50000"
        );
        assert_eq!(cgroup_file(&d, "lim", "cpu", "cpu.shares", ""), "512");
    }

    // Below what it holds (50 MiB of tmpfs, no swap to push it to): the kernel refuses on
    // v1, and the limits stay as they were. (On v2 the kernel would kill instead, as it
    // does under Docker: not tried there.)
    if !cgroup_v2() {
        let out = d.berth(&["update", "--memory", "20m", "--memory-swap", "20m", "lim"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err(&out).contains("below what the container uses now"),
            "{}",
            err(&out)
        );
        assert_eq!(limit(&d), 200 << 20);
        assert_eq!(
            ok(&d.berth(&["inspect", "-f", "{{.HostConfig.Memory}}", "lim"])),
            (200u64 << 20).to_string()
        );
    }
    // Docker's refusals.
    let out = d.berth(&["update", "--memory", "1m", "lim"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err(&out),
        "Error response from daemon: Minimum memory limit allowed is 6MB"
    );
    let out = d.berth(&["update", "lim"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("you must provide one or more flags"));

    // A restart keeps the new limits.
    ok(&d.berth(&["restart", "-t", "1", "lim"]));
    eventually("the restarted container", Duration::from_secs(30), || {
        ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "lim"])) == "running"
    });
    assert_eq!(limit(&d), 200 << 20);
    assert_eq!(
        api_stats(&d, "lim")["pids_stats"]["limit"].as_u64(),
        Some(50)
    );

    // Stopped: only the record changes, and the next start uses it.
    ok(&d.berth(&["stop", "-t", "1", "lim"]));
    ok(&d.berth(&[
        "update",
        "--memory",
        "100m",
        "--memory-swap",
        "200m",
        "--restart",
        "on-failure:2",
        "lim",
    ]));
    let id = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "lim"]));
    let record = json(
        &std::fs::read_to_string(
            d.dir
                .path()
                .join("root/containers")
                .join(&id)
                .join("config.json"),
        )
        .unwrap(),
    );
    assert_eq!(record["host_config"]["Memory"], 100 << 20);
    assert_eq!(record["host_config"]["MemorySwap"], 200 << 20);
    assert_eq!(record["restart"]["name"], "on-failure");
    assert_eq!(record["restart"]["max"], 2);
    ok(&d.berth(&["start", "lim"]));
    assert_eq!(limit(&d), 100 << 20);

    // The docker CLI's update works too.
    assert_eq!(
        ok(&d.docker(&["update", "--memory", "150m", "--memory-swap", "300m", "lim"])),
        "lim"
    );
    assert_eq!(limit(&d), 150 << 20);
    ok(&d.berth(&["rm", "-f", "lim"]));
}

#[test]
fn df_and_prune_free_what_they_report() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let root = d.dir.path().join("root");
    // Two stopped containers (one with 5 MiB in its writable layer, one labelled), one
    // running.
    ok(&d.berth(&[
        "run",
        "--name",
        "big",
        "bb",
        "sh",
        "-c",
        "busybox dd if=/dev/zero of=/big bs=1M count=5 2>/dev/null",
    ]));
    ok(&d.berth(&[
        "run", "--name", "kept", "-l", "keep=yes", "bb", "sh", "-c", "exit 0",
    ]));
    ok(&d.berth(&["run", "-d", "--name", "live", "bb", "sleep", "1000"]));
    let id = |name: &str| ok(&d.berth(&["inspect", "-f", "{{.Id}}", name]));
    let (big, kept, live) = (id("big"), id("kept"), id("live"));

    // The API's numbers agree with each other.
    let (status, body) = d.request("GET", "/system/df");
    assert_eq!(status, 200, "{body}");
    let df = json(&body);
    let images = df["Images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["Containers"], 3);
    assert_eq!(images[0]["SharedSize"], 0);
    assert_eq!(df["LayersSize"], images[0]["Size"]);
    let containers = df["Containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3);
    let big_rw = containers.iter().find(|c| c["Id"] == big.as_str()).unwrap()["SizeRw"]
        .as_u64()
        .unwrap();
    assert!(big_rw >= 5 << 20, "{big_rw}");
    assert_eq!(df["BuildCache"], serde_json::json!([]));
    let (_, body) = d.request("GET", "/system/df?type=container");
    assert!(json(&body)["Images"].is_null());

    // The table: totals and actives as docker counts them.
    let table = ok(&d.berth(&["system", "df"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("RECLAIMABLE"),
        "{table}"
    );
    fn cells(l: &str) -> Vec<&str> {
        l.split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect()
    }
    assert_eq!(&cells(lines[1])[..3], ["Images", "1", "1"], "{table}");
    assert_eq!(&cells(lines[2])[..3], ["Containers", "3", "1"], "{table}");
    assert!(
        lines[3].starts_with("Local Volumes") && lines[4].starts_with("Build Cache"),
        "{table}"
    );
    let verbose = ok(&d.berth(&["system", "df", "-v"]));
    assert!(
        verbose.contains("Images space usage:") && verbose.contains("big"),
        "{verbose}"
    );
    let out = ok(&d.docker(&["system", "df"]));
    assert!(
        out.contains("Images") && out.contains("Containers"),
        "{out}"
    );

    // container prune: stopped ones only, filtered, and their directories go.
    let before = du(&root);
    let out = ok(&d.berth(&["container", "prune", "-f", "--filter", "label!=keep"]));
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(
        out.contains(&big) && !out.contains(&kept) && !out.contains(&live),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: 5."), "{out}");
    assert!(!root.join("containers").join(&big).exists());
    assert!(root.join("containers").join(&kept).exists());
    let after = du(&root);
    assert!(before - after >= 5 << 20, "du {before} -> {after}");
    // The docker CLI's prune takes the rest that is stopped; the running one stays.
    let out = ok(&d.docker(&["container", "prune", "-f"]));
    assert!(out.contains(&kept), "{out}");
    assert!(!root.join("containers").join(&kept).exists());
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), &live[..12]);
    // Nothing left to prune.
    assert_eq!(
        ok(&d.berth(&["container", "prune", "-f"])),
        "Total reclaimed space: 0B"
    );

    // system prune -a: the image goes once no container uses it, with its snapshots.
    let snapshots = root.join("snapshots");
    let layers = du(&snapshots);
    assert!(layers > 500_000, "{layers}");
    let out = ok(&d.berth(&["system", "prune", "-a", "-f"]));
    assert!(!out.contains("Deleted Images"), "in use: {out}");
    ok(&d.berth(&["rm", "-f", "live"]));
    let before = du(&root);
    let out = ok(&d.berth(&["system", "prune", "-a", "-f"]));
    assert!(
        out.contains("Deleted Images:\nuntagged: bb:latest\ndeleted: sha256:"),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(ok(&d.berth(&["images", "-q"])), "");
    let left: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "snapshots left: {left:?}");
    let after = du(&root);
    assert!(
        before - after >= layers,
        "du {before} -> {after}, layers {layers}"
    );
}

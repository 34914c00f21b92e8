//! The runc-compatible surface beyond the lifecycle: spec, features, --pid-file, --log JSON.

mod common;

use common::*;

#[test]
fn spec_writes_a_runnable_default_and_refuses_to_overwrite() {
    if !root_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let b = sb.bundle("spec", sh("true"));
    std::fs::remove_file(b.join("config.json")).unwrap();
    let out = sb.rt(&[
        "spec",
        "-b",
        b.to_str().unwrap(),
        "--",
        "/bin/echo",
        "from spec",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"][1], "from spec");
    assert_eq!(
        spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
    assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(spec["linux"]["maskedPaths"].as_array().unwrap().len(), 10);

    let again = sb.rt(&["spec", "-b", b.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));

    let id = sb.id("spec");
    let run = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(stdout(&run), "from spec\n", "{}", stderr(&run));
}

#[test]
fn features_describe_the_runtime() {
    let out = std::process::Command::new(BIN)
        .arg("features")
        .output()
        .unwrap();
    assert!(out.status.success());
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert!(f["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("CAP_SYS_ADMIN")));
}

#[test]
fn pid_file_holds_the_init_pid() {
    if !root_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let b = sb.bundle("pidfile", sh("sleep 100"));
    let id = sb.id("pidfile");
    let pid_file = sb.dir.path().join("init.pid");
    let out = sb.rt(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "-b",
        b.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&sb.rt(&["state", &id]).stdout).unwrap();
    assert_eq!(state["pid"].as_i64(), Some(pid));
}

#[test]
fn json_log_records_errors_for_callers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runtime.log");
    let out = std::process::Command::new(BIN)
        .arg("--root")
        .arg(dir.path().join("state"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "nobody-home"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"]
        .as_str()
        .unwrap()
        .contains("\"nobody-home\" does not exist"));
    assert!(last["time"].as_str().unwrap().contains('T'));
}

#[test]
fn exec_process_file_kill_all_and_ps_table() {
    if !root_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    // Init ignores TERM (as pid 1 without a handler); its children do not matter to kill -a.
    let b = sb.bundle("killall", sh("sleep 100 & sleep 100 & wait"));
    let id = sb.id("killall");
    assert!(sb
        .rt(&["run", "-d", "-b", b.to_str().unwrap(), &id])
        .status
        .success());

    // exec --process: a complete process.json.
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-process-json $WHO"],
        "env": ["PATH=/bin", "WHO=file"],
        "cwd": "/"
    });
    let pfile = sb.dir.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let e = sb.rt(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert_eq!(stdout(&e), "from-process-json file\n", "{}", stderr(&e));

    // ps: runc's table is ps(1)'s, filtered to the container's pids.
    let pids: Vec<i32> =
        serde_json::from_slice(&sb.rt(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let table = stdout(&sb.rt(&["ps", &id]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    assert_eq!(
        lines.filter(|l| l.ends_with(" sleep 100")).count(),
        2,
        "{table}"
    );

    // kill --all reaches every process, not just init.
    let k = sb.rt(&["kill", "--all", &id, "KILL"]);
    assert!(k.status.success(), "{}", stderr(&k));
    sb.wait_status(&id, "stopped");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "process {pid} survived kill --all"
        );
    }
}

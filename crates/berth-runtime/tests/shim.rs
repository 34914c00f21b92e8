//! The per-container shim: it outlives whoever started it, logs in json-file format with
//! rotation, relays attach clients, records the exit, and leaves nothing behind.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_runtime::shim::{self, log::read_records, ExitInfo, ShimInfo};
use berth_runtime::spec::ContainerOptions;
use common::*;

fn start_shim(
    sb: &Sandbox,
    bundle: &Path,
    id: &str,
    extra: &[&str],
) -> (std::process::Output, std::path::PathBuf) {
    let state = sb.dir.path().join(format!("state-{id}"));
    let mut args = vec![
        "shim",
        "-b",
        bundle.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    (sb.rt(&args), state)
}

fn wait_exit(state: &Path) -> ExitInfo {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = shim::read_exit(state) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no exit.json in {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shim_logs_records_the_exit_and_cleans_up() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "log",
        sh("echo out1; echo err1 >&2; sleep 0.2; printf tail; exit 3"),
    );
    let id = sb.id("log");
    let (out, state) = start_shim(&sb, &b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut info: ShimInfo = serde_json::from_slice(&out.stdout).unwrap();
    // The report times the shim's steps; its record keeps only the processes.
    let steps: Vec<&str> = info.steps.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "start.shim.sockets",
            "start.shim.create",
            "start.shim.attach",
            "start.shim.start",
            "start.shim.record"
        ]
    );
    info.steps.clear();
    assert_eq!(shim::read_shim(&state), Some(info.clone()));

    let exit = wait_exit(&state);
    assert_eq!(exit.exit_code, 3);
    assert!(exit.finished_at.ends_with('Z'));
    let records = read_records(&state.join(format!("{id}-json.log"))).unwrap();
    let got: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.stream.as_str(), r.log.as_str()))
        .collect();
    assert!(got.contains(&("stdout", "out1\n")), "{got:?}");
    assert!(got.contains(&("stderr", "err1\n")), "{got:?}");
    assert_eq!(got.last(), Some(&("stdout", "tail")));

    // The shim ends with its container and removes the runtime's state for it.
    wait_gone(info.shim_pid);
    assert!(!sb.root.join(&id).exists());
    assert!(!state.join(shim::ATTACH_SOCKET).exists());
}

#[test]
fn container_outlives_the_process_that_started_it() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("detached", sh("sleep 100"));
    let id = sb.id("detached");
    let (out, state) = start_shim(&sb, &b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `out` is from a process that has exited; the shim and the container run on.
    let info = shim::read_shim(&state).unwrap();
    assert!(pid_alive(info.shim_pid) && pid_alive(info.init_pid));
    assert!(shim::shim_alive(&state));
    // Its own session, so a terminal hang-up or the engine's process group does not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", info.shim_pid)).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], info.shim_pid.to_string(), "session id");
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    // The shim has handed over to the small relay binary (same process, still the parent of
    // the container's init), built beside berth-runtime.
    let exe = std::fs::read_link(format!("/proc/{}/exe", info.shim_pid)).unwrap();
    assert!(exe.ends_with("berth-shim"), "{}", exe.display());
    let ppid = std::fs::read_to_string(format!("/proc/{}/stat", info.init_pid)).unwrap();
    let ppid = ppid
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(
        ppid,
        info.shim_pid.to_string(),
        "the container's init is the shim's child"
    );

    assert!(sb.rt(&["kill", &id, "KILL"]).status.success());
    assert_eq!(wait_exit(&state).exit_code, 137);
    wait_gone(info.shim_pid);
    assert!(!shim::shim_alive(&state));
}

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[test]
fn an_idle_shim_gives_its_file_pages_back() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("idle", sh("echo hello; sleep 100"));
    let id = sb.id("idle");
    let (out, state) = start_shim(&sb, &b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = shim::read_shim(&state).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let busy = status_kib(info.shim_pid, "RssFile:");
    // Its memory is looked at every 10 s; the first look after no wake drops the file pages.
    let deadline = Instant::now() + Duration::from_secs(22);
    let idle = loop {
        let now = status_kib(info.shim_pid, "RssFile:");
        if now * 4 < busy * 3 || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let rss = status_kib(info.shim_pid, "VmRSS:");
    assert!(sb.rt(&["kill", &id, "KILL"]).status.success());
    assert_eq!(wait_exit(&state).exit_code, 137);
    wait_gone(info.shim_pid);
    eprintln!("shim file pages: {busy} KiB running, {idle} KiB idle; RSS idle {rss} KiB");
    // A quarter at least (a release build's shim drops about two thirds, a debug build's,
    // whose code faulted back is larger, about 40%).
    assert!(
        idle * 4 < busy * 3,
        "file pages {busy} KiB -> {idle} KiB after 22 s idle"
    );
    // And the output before the idle spell was logged as usual.
    let records = read_records(&state.join(format!("{id}-json.log"))).unwrap();
    assert_eq!(records.first().map(|r| r.log.as_str()), Some("hello\n"));
}

#[test]
fn log_rotates_within_its_bounds() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "rotate",
        sh("i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"),
    );
    let id = sb.id("rotate");
    let (out, state) = start_shim(
        &sb,
        &b,
        &id,
        &["--log-max-size", "2000", "--log-max-file", "2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(wait_exit(&state).exit_code, 0);
    let log = state.join(format!("{id}-json.log"));
    let rotated = state.join(format!("{id}-json.log.1"));
    assert!(rotated.exists());
    assert!(!state.join(format!("{id}-json.log.2")).exists());
    for f in [&log, &rotated] {
        assert!(std::fs::metadata(f).unwrap().len() <= 2000);
    }
    let last = read_records(&log).unwrap();
    assert_eq!(last.last().unwrap().log, "line-399\n");
}

#[test]
fn attach_gets_framed_output_and_feeds_stdin() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("attach", sh("read line; echo got:$line; echo bye >&2"));
    let id = sb.id("attach");
    let (out, state) = start_shim(&sb, &b, &id, &["--interactive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut conn = UnixStream::connect(state.join(shim::ATTACH_SOCKET)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"ping\n").unwrap();
    let mut frames = Vec::new();
    let _ = conn.read_to_end(&mut frames);
    // Docker's framing: [stream, 0, 0, 0, len(be32)] + payload.
    let mut streams = Vec::new();
    let mut rest = &frames[..];
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        streams.push((
            rest[0],
            String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
        ));
        rest = &rest[8 + len..];
    }
    assert!(
        streams.contains(&(1, "got:ping\n".to_owned())),
        "{streams:?}"
    );
    assert!(streams.contains(&(2, "bye\n".to_owned())), "{streams:?}");
    assert_eq!(wait_exit(&state).exit_code, 0);
}

#[test]
fn terminal_output_is_logged_and_attached_raw() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "shimtty",
        ContainerOptions {
            tty: true,
            ..sh("read line; echo got:$line; tty")
        },
    );
    let id = sb.id("shimtty");
    let (out, state) = start_shim(&sb, &b, &id, &["--interactive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut conn = UnixStream::connect(state.join(shim::ATTACH_SOCKET)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"hi\r").unwrap();
    let mut text = Vec::new();
    let _ = conn.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("got:hi"), "{text:?}");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    wait_exit(&state);
    let logged: String = read_records(&state.join(format!("{id}-json.log")))
        .unwrap()
        .into_iter()
        .map(|r| r.log)
        .collect();
    assert!(logged.contains("/dev/pts/0"), "{logged:?}");
}

#[test]
fn a_container_that_cannot_start_leaves_nothing() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("noshim", argv(&["/no/such/program"]));
    let id = sb.id("noshim");
    let (out, state) = start_shim(&sb, &b, &id, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/program"), "{err}");
    assert!(shim::read_shim(&state).is_none());
    assert!(!sb.root.join(&id).exists());
}

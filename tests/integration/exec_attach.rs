//! What docker-py's suite observes of kill, commit, remove, exec and attach
//! (docs/compat/docker-py.md): a SIGKILL answered once the exit is recorded, a commit that
//! ignores a failed pause, exec output framed by the start request's `Tty`, detach keys on
//! attach and exec streams, and an attach with `logs=1&stream=0` that ends.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_testutil::*;

/// A hijacked connection: the request is sent with `Upgrade: tcp`, the answer's head read
/// (its status checked); what follows is the stream.
fn hijack(d: &TestDaemon, path: &str, body: &str) -> UnixStream {
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "the answer ended in its head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Everything until the server ends the stream (a timeout fails).
fn read_to_end(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("the stream did not end: {e}; read {out:?}"));
    out
}

/// Reads until `want` appears in what came (a timeout fails).
fn read_until(s: &mut UnixStream, want: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(want.len()).any(|w| w == want) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("no {want:?}: {e}; read {out:?}"));
        assert!(n > 0, "the stream ended before {want:?}: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn inspect(d: &TestDaemon, id: &str) -> serde_json::Value {
    let (status, body) = d.request("GET", &format!("/v1.41/containers/{id}/json"));
    assert_eq!(status, 200, "{body}");
    json(&body)
}

fn create_exec(d: &TestDaemon, id: &str, config: serde_json::Value) -> String {
    let (status, body) = d.request_body(
        "POST",
        &format!("/v1.41/containers/{id}/exec"),
        &config.to_string(),
    );
    assert_eq!(status, 201, "{body}");
    json(&body)["Id"].as_str().unwrap().to_owned()
}

#[test]
fn sigkill_is_answered_once_the_exit_is_recorded() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for _ in 0..5 {
        let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100"]));
        let (status, body) = d.request("POST", &format!("/v1.41/containers/{id}/kill"));
        assert_eq!(status, 204, "{body}");
        let v = inspect(&d, &id);
        assert_eq!(v["State"]["Status"], "exited", "{v}");
        assert_eq!(v["State"]["ExitCode"], 137, "{v}");
        // A remove without force at once: it is not running any more.
        let (status, body) = d.request("DELETE", &format!("/v1.41/containers/{id}"));
        assert_eq!(status, 204, "{body}");
    }
    // `stop` too.
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100"]));
    let (status, body) = d.request("POST", &format!("/v1.41/containers/{id}/stop?t=0"));
    assert_eq!(status, 204, "{body}");
    assert_eq!(inspect(&d, &id)["State"]["Status"], "exited");
    ok(&d.docker(&["rm", &id]));
}

#[test]
fn commit_with_pause_ignores_a_container_that_just_exited() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for i in 0..5 {
        let id = ok(&d.docker(&["run", "-d", "bb", "sh", "-c", "echo x > /test"]));
        let (status, body) = d.request(
            "POST",
            &format!("/v1.41/commit?container={id}&pause=True&repo=committed{i}"),
        );
        assert_eq!(status, 201, "{body}");
        ok(&d.docker(&["rm", "-f", &id]));
        ok(&d.docker(&["rmi", &format!("committed{i}")]));
    }
}

#[test]
fn exec_output_is_framed_unless_the_start_request_says_tty() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100"]));
    for (create_tty, start_tty) in [(true, false), (true, true), (false, false), (false, true)] {
        let exec = create_exec(
            &d,
            &id,
            serde_json::json!({"Tty": create_tty, "AttachStdout": true, "Cmd": ["echo", "hello"]}),
        );
        let mut s = hijack(
            &d,
            &format!("/v1.41/exec/{exec}/start"),
            &serde_json::json!({"Tty": start_tty, "Detach": false}).to_string(),
        );
        let out = read_to_end(&mut s);
        // A terminal ends lines with CR LF.
        let line: &[u8] = if create_tty { b"hello\r\n" } else { b"hello\n" };
        let want = if start_tty {
            line.to_vec()
        } else {
            let mut f = vec![1, 0, 0, 0, 0, 0, 0, line.len() as u8];
            f.extend_from_slice(line);
            f
        };
        assert_eq!(
            out,
            want,
            "create Tty {create_tty}, start Tty {start_tty}: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    ok(&d.docker(&["rm", "-f", &id]));
}

#[test]
fn detach_keys_end_an_attach_and_the_container_runs_on() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for (query, keys) in [("", &b"\x10\x11"[..]), ("&detachKeys=ctrl-x", b"\x18")] {
        let id = ok(&d.docker(&["run", "-d", "-i", "-t", "bb", "cat"]));
        let mut s = hijack(
            &d,
            &format!("/v1.41/containers/{id}/attach?stdin=1&stdout=1&stderr=1&stream=1{query}"),
            "",
        );
        // What comes before the keys reaches the container (the tty echoes it, cat repeats it).
        s.write_all(b"hi\n").unwrap();
        read_until(&mut s, b"hi\r\nhi\r\n");
        s.write_all(keys).unwrap();
        let rest = read_to_end(&mut s);
        assert!(
            !rest.contains(&b'^'),
            "the keys reached the container: {rest:?}"
        );
        assert_eq!(inspect(&d, &id)["State"]["Status"], "running");
        ok(&d.docker(&["rm", "-f", &id]));
    }
    // Keys Docker cannot read are refused.
    let id = ok(&d.docker(&["run", "-d", "-i", "-t", "bb", "cat"]));
    let (status, body) = d.request(
        "POST",
        &format!("/v1.41/containers/{id}/attach?stdin=1&stream=1&detachKeys=ctrl-1"),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        json(&body)["message"],
        "Invalid detach keys (ctrl-1) provided"
    );
    ok(&d.docker(&["rm", "-f", &id]));
}

#[test]
fn detach_keys_end_an_exec_stream() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100"]));
    for (detach_keys, keys) in [(None, &b"\x10\x11"[..]), (Some("ctrl-x"), b"\x18")] {
        let mut config = serde_json::json!({
            "AttachStdin": true, "AttachStdout": true, "Tty": true, "Cmd": ["cat"]
        });
        if let Some(k) = detach_keys {
            config["DetachKeys"] = k.into();
        }
        let exec = create_exec(&d, &id, config);
        let mut s = hijack(
            &d,
            &format!("/v1.41/exec/{exec}/start"),
            r#"{"Tty": true, "Detach": false}"#,
        );
        s.write_all(b"hi\n").unwrap();
        read_until(&mut s, b"hi\r\nhi\r\n");
        s.write_all(keys).unwrap();
        let rest = read_to_end(&mut s);
        // Output of the terminal still on its way may come first; then the detach ends it.
        let rest = String::from_utf8_lossy(&rest).into_owned();
        let message = "exec attach failed: error on attach stdin: read escape sequence\r\n";
        assert!(rest.ends_with(message), "{rest:?}");
        assert!(
            rest[..rest.len() - message.len()]
                .split_terminator("\r\n")
                .all(|l| l == "hi"),
            "{rest:?}"
        );
        let (status, body) = d.request("GET", &format!("/v1.41/exec/{exec}/json"));
        assert_eq!(status, 200);
        assert_eq!(json(&body)["DetachKeys"], detach_keys.unwrap_or(""));
    }
    let (status, body) = d.request_body(
        "POST",
        &format!("/v1.41/containers/{id}/exec"),
        r#"{"Cmd": ["cat"], "DetachKeys": "ctrl-1"}"#,
    );
    assert_eq!(status, 400, "{body}");
    ok(&d.docker(&["rm", "-f", &id]));
}

#[test]
fn attach_with_logs_and_no_stream_returns_the_logs_and_ends() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "echo", "hello"]));
    eventually("the exit", Duration::from_secs(10), || {
        inspect(&d, &id)["State"]["Status"] == "exited"
    });
    let started = Instant::now();
    let mut s = hijack(
        &d,
        &format!("/v1.41/containers/{id}/attach?logs=1&stream=0&stdout=1&stderr=1"),
        "",
    );
    assert_eq!(read_to_end(&mut s), b"\x01\0\0\0\0\0\0\x06hello\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    ok(&d.docker(&["rm", &id]));
}

/// `exec -i` with more input than a pipe holds: `cat` stops reading its stdin until its stdout
/// is read, so a relay that waits on the one while not reading the other stalls both (the
/// stream used to end with 32 KiB of 4 MiB). Both CLIs, byte for byte.
#[test]
fn exec_with_more_input_than_a_pipe_holds_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&["run", "-d", "--name", "c", "bb", "sleep", "300"]));
    // 4 MiB that no two blocks of which are alike.
    let input: Vec<u8> = (0u32..1 << 20).flat_map(|i| i.to_le_bytes()).collect();
    let out = d.docker_with_stdin(&["exec", "-i", "c", "cat"], &input);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout.len(), input.len(), "docker exec -i: bytes back");
    assert!(out.stdout == input, "docker exec -i: the bytes differ");
    let out = d.berth_with_stdin(&["exec", "-i", "c", "cat"], &input);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout.len(), input.len(), "berth exec -i: bytes back");
    assert!(out.stdout == input, "berth exec -i: the bytes differ");
}

/// docker-py's `containers.run(…, remove=True)`: start, follow the logs at once, wait,
/// remove, and only then read the followed stream. The output must all be there, however
/// soon after the start the logs were asked for (the log file used to appear only once the
/// relay ran, and a follower that came before it held nothing to read after the removal).
#[test]
fn logs_followed_at_start_and_read_after_remove_are_whole() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for round in 0..10 {
        let (status, body) = d.request_body(
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"bb","Cmd":["echo","hello sdk"]}"#,
        );
        assert_eq!(status, 201, "{body}");
        let id = json(&body)["Id"].as_str().unwrap().to_owned();
        let (status, body) = d.request("POST", &format!("/v1.41/containers/{id}/start"));
        assert_eq!(status, 204, "{body}");
        let mut follow = UnixStream::connect(d.socket()).unwrap();
        follow
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            follow,
            "GET /v1.41/containers/{id}/logs?follow=1&stdout=1&stderr=1 HTTP/1.0\r\nHost: berth\r\n\r\n"
        )
        .unwrap();
        // As docker-py's `logs(stream=True)`: the call returns once the answer's head came.
        let mut answer = read_until(&mut follow, b"\r\n\r\n");
        let (status, body) = d.request("POST", &format!("/v1.41/containers/{id}/wait"));
        assert_eq!((status, json(&body)["StatusCode"].as_i64()), (200, Some(0)));
        let (status, body) = d.request("DELETE", &format!("/v1.41/containers/{id}"));
        assert_eq!(status, 204, "{body}");
        answer.extend(read_to_end(&mut follow));
        assert!(
            answer.ends_with(b"\x01\0\0\0\0\0\0\x0ahello sdk\n"),
            "round {round}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}

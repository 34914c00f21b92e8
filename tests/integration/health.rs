//! Health checks: run by the container's shim, healthy then unhealthy as the check starts
//! failing, the last results in inspect, the state in ps; `--restart on-unhealthy` brings an
//! unhealthy container back; checks go on while the daemon is down.

use std::time::Duration;

use berth_testutil::*;

#[test]
fn healthy_then_unhealthy() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // The check passes while /tmp/ok exists; the container removes it after 3 s.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "h",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "bb",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 100",
    ]));
    let status =
        |d: &TestDaemon| text(&d.berth(&["inspect", "-f", "{{.State.Health.Status}}", "h"]));
    eventually("healthy", Duration::from_secs(10), || {
        status(&d) == "healthy"
    });
    assert!(ok(&d.berth(&["ps", "--format", "{{.Status}}"])).ends_with("(healthy)"));
    let log = ok(&d.berth(&["inspect", "-f", "{{json .State.Health.Log}}", "h"]));
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(log.as_array().unwrap().last().unwrap()["Output"], "fine\n");
    eventually("unhealthy", Duration::from_secs(15), || {
        status(&d) == "unhealthy"
    });
    let h: serde_json::Value = serde_json::from_str(&ok(&d.berth(&[
        "inspect",
        "-f",
        "{{json .State.Health}}",
        "h",
    ])))
    .unwrap();
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");
    assert!(ok(&d.berth(&["ps", "--format", "{{.Status}}"])).ends_with("(unhealthy)"));
    // Nothing restarts it without on-unhealthy.
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.State.Running}} {{.RestartCount}}", "h"])),
        "true 0"
    );
}

#[test]
fn on_unhealthy_restarts_and_checks_outlive_the_daemon() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "u",
        "--restart",
        "on-unhealthy",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "bb",
        "sleep",
        "100",
    ]));
    eventually(
        "a restart for unhealthiness",
        Duration::from_secs(15),
        || text(&d.berth(&["inspect", "-f", "{{.RestartCount}}", "u"])) != "0",
    );
    // The docker CLI's flags reach the check too.
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "dk",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "bb",
        "sleep",
        "100",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the daemon down, the shim still checks: the health record keeps changing.
    let dir = std::fs::read_dir(d.dir.path().join("root/containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p.join("config.json"))
                .is_ok_and(|c| c.contains("\"name\": \"dk\""))
        })
        .unwrap();
    eventually("a first result", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join("health.json")).is_ok_and(|h| h.contains("\"healthy\""))
    });
    d.stop();
    let before = std::fs::read_to_string(dir.join("health.json")).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let after = std::fs::read_to_string(dir.join("health.json")).unwrap();
    assert_ne!(
        before, after,
        "no health check ran while the daemon was down"
    );
    // Back up, so the harness can clean up.
    d.start_again();
    ok(&d.berth(&["rm", "-f", "dk", "u"]));
}

/// A container with a health check shows `starting` from the moment it runs, before the
/// first probe, as Docker does: clients that wait for health (Compose's `--wait`) read a
/// missing Health as "no health check" and would stop waiting.
#[test]
fn health_is_starting_before_the_first_probe() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--health-cmd",
        "busybox true",
        "--health-interval",
        "30s",
        "--health-start-period",
        "30s",
        "bb",
        "sleep",
        "60",
    ]));
    let status = ok(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &id]));
    assert_eq!(status, "starting");
    ok(&d.docker(&["rm", "-f", &id]));
}

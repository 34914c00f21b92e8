//! `berth compose` on a real berth daemon: a web server and a client reaching it by service
//! name behind a healthcheck, a one-shot migration gating the app
//! (`service_completed_successfully`), secrets from files, two merged files with `.env`
//! interpolation, `up` twice recreating nothing and a changed service recreated alone,
//! `run --rm`, `exec`, scale 3 and back to 1, profiles, a build from a context, attached
//! `up` with `--exit-code-from`, `down -v` leaving nothing; the same projects handed over
//! to Docker Compose v2.40.3 and back; and bad files refused with file:line, exit 1,
//! nothing created.

use std::path::Path;
use std::process::{Command, Output};

use berth_testutil::*;

/// `berth compose -p bc ARGS` in `dir`.
fn bc(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    Command::new(berth_bin())
        .current_dir(dir)
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .args(["compose", "-p", "bc"])
        .args(args)
        .output()
        .expect("run berth compose")
}

/// Docker Compose v2 (`scripts/deps.sh` fetches it) with the same project name.
fn v2(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    crate::compose::compose_as(d, dir, "bc", args)
}

/// (name, ID) of every container of the daemon, sorted by name.
fn containers(d: &TestDaemon) -> Vec<(String, String)> {
    let out = ok(&d.berth(&["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}"]));
    let mut rows: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect();
    rows.sort();
    rows
}

fn id_of(rows: &[(String, String)], name: &str) -> String {
    rows.iter()
        .find(|r| r.0 == name)
        .map(|r| r.1.clone())
        .unwrap_or_else(|| panic!("no container {name} in {rows:?}"))
}

/// Nothing of project `bc` is left on the daemon.
fn assert_nothing_left(d: &TestDaemon) {
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
    let nets = ok(&d.berth(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!nets.contains("bc_"), "{nets}");
    let vols = ok(&d.berth(&["volume", "ls", "-q"]));
    assert!(!vols.contains("bc_"), "{vols}");
}

const BASE: &str = r#"
services:
  web:
    image: bb
    command: ["sh", "-c", "busybox mkdir -p /www && echo hello > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O-", "http://localhost:8080/"]
      interval: 1s
      retries: 30
  migrate:
    image: bb
    command: ["sh", "-c", "echo migrated > /data/state"]
    volumes:
      - data:/data
  app:
    image: bb
    command: ["sh", "-c", "busybox wget -q -O- http://web:8080/ && cat /data/state /run/secrets/token && echo greeting=$$GREETING && exec sleep 300"]
    depends_on:
      web:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    volumes:
      - data:/data
    secrets: [token]
volumes:
  data: {}
secrets:
  token:
    file: ./token.txt
"#;

fn extra(greeting: &str) -> String {
    format!("services:\n  app:\n    environment:\n      GREETING: \"{greeting} ${{WHO}}\"\n")
}

#[test]
fn an_app_comes_up_in_order_twice_without_change_and_goes_away() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.yaml"), BASE).unwrap();
    std::fs::write(dir.join("extra.yaml"), extra("hi")).unwrap();
    std::fs::write(dir.join(".env"), "WHO=world\n").unwrap();
    std::fs::write(dir.join("token.txt"), "s3cret\n").unwrap();
    let files = ["-f", "base.yaml", "-f", "extra.yaml"];
    let with = |args: &[&str]| -> Vec<String> {
        files.iter().chain(args).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: &[&str]| {
        let a = with(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        bc(&d, &dir, &refs)
    };

    ok(&run(&["up", "-d"]));
    // The app started after web was healthy and migrate had exited 0.
    let logs = ok(&d.berth(&["logs", "bc-app-1"]));
    assert_eq!(logs, "hello\nmigrated\ns3cret\ngreeting=hi world", "{logs}");
    let migrate = ok(&d.berth(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "bc-migrate-1",
    ]));
    assert_eq!(migrate, "exited 0");
    let first = containers(&d);
    assert_eq!(first.len(), 3, "{first:?}");

    // The same project again: nothing recreated.
    let again = run(&["up", "-d"]);
    ok(&again);
    assert!(!stderr(&again).contains("Recreate"), "{}", stderr(&again));
    assert_eq!(containers(&d), first);

    // Only the service whose config changed is recreated.
    std::fs::write(dir.join("extra.yaml"), extra("bye")).unwrap();
    ok(&run(&["up", "-d"]));
    let second = containers(&d);
    assert_ne!(id_of(&second, "bc-app-1"), id_of(&first, "bc-app-1"));
    assert_eq!(id_of(&second, "bc-web-1"), id_of(&first, "bc-web-1"));
    assert_eq!(
        id_of(&second, "bc-migrate-1"),
        id_of(&first, "bc-migrate-1")
    );
    eventually(
        "the new app logs its greeting",
        std::time::Duration::from_secs(20),
        || text(&d.berth(&["logs", "bc-app-1"])).contains("greeting=bye world"),
    );

    // A one-off reaches a service by name and goes (--rm), with its exit code.
    let out = run(&[
        "run",
        "--rm",
        "-T",
        "app",
        "sh",
        "-c",
        "busybox wget -q -O- http://web:8080/; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "hello");
    assert!(!containers(&d).iter().any(|r| r.0.contains("-run-")));
    // exec in a service container.
    assert_eq!(
        ok(&run(&["exec", "-T", "app", "cat", "/data/state"])),
        "migrated"
    );

    // ps lists the running services; JSON has one object per line.
    let ps = ok(&run(&["ps", "--format", "json"]));
    let services: Vec<String> = ps
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Service"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(services, ["app", "web"]);

    // down with only the project's name (no compose file here): found by its labels.
    let elsewhere = d.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    ok(&bc(&d, &elsewhere, &["down", "-v"]));
    assert_nothing_left(&d);
}

#[test]
fn scale_profiles_and_a_build_with_attached_output() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("scale");
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        "FROM bb\nCOPY note /note\nCMD [\"cat\", \"/note\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("ctx/note"), "built here\n").unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"
services:
  worker:
    image: bb
    command: ["sleep", "300"]
    stop_grace_period: 1s
  debug:
    image: bb
    command: ["sleep", "300"]
    profiles: [debug]
  job:
    build: ./ctx
    profiles: [job]
  fail:
    image: bb
    command: ["sh", "-c", "echo failing; exit 7"]
    profiles: [job]
"#,
    )
    .unwrap();

    ok(&bc(&d, &dir, &["up", "-d", "--scale", "worker=3"]));
    let names: Vec<String> = containers(&d).into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["bc-worker-1", "bc-worker-2", "bc-worker-3"]);
    ok(&bc(&d, &dir, &["up", "-d", "--scale", "worker=1"]));
    let names: Vec<String> = containers(&d).into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["bc-worker-1"]);

    // A profile's service only when the profile is on.
    ok(&bc(&d, &dir, &["--profile", "debug", "up", "-d"]));
    assert!(containers(&d).iter().any(|r| r.0 == "bc-debug-1"));

    // Attached: the built image's output with its prefix, and the exit code of the
    // service named by --exit-code-from.
    let out = bc(
        &d,
        &dir,
        &[
            "--profile",
            "job",
            "up",
            "--exit-code-from",
            "fail",
            "job",
            "fail",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let o = stdout(&out);
    assert!(o.contains("job-1   | built here"), "{o}");
    assert!(o.contains("fail-1  | failing"), "{o}");
    assert!(o.contains("fail-1 exited with code 7"), "{o}");

    ok(&bc(
        &d,
        &dir,
        &[
            "--profile",
            "debug",
            "--profile",
            "job",
            "down",
            "-v",
            "--rmi",
            "local",
        ],
    ));
    assert_nothing_left(&d);
    assert!(!ok(&d.berth(&["images", "--format", "{{.Repository}}"])).contains("bc-job"));
}

#[test]
fn projects_change_hands_with_docker_compose_v2() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("hand");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"
services:
  web:
    image: bb
    command: ["sh", "-c", "busybox mkdir -p /www && echo hi > /www/index.html && exec busybox httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1::80"]
    volumes: [data:/data, ./src:/src:ro]
    environment: [A=1, B=two words]
    env_file: web.env
    label_file: web.labels
    healthcheck: {test: "busybox wget -q -O- http://localhost/", interval: 1s, retries: 30}
    deploy: {resources: {limits: {memory: 64m}}}
  client:
    image: bb
    command: ["sleep", "300"]
    depends_on: {web: {condition: service_healthy}}
    networks: [default, back]
    stop_grace_period: 1s
networks:
  back: {}
volumes:
  data: {}
"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("web.env"), "FROM_FILE=yes\nA=overridden\n").unwrap();
    std::fs::write(dir.join("web.labels"), "com.example.team=core\n").unwrap();

    // berth makes it; v2 sees it, recreates nothing, takes it down.
    ok(&bc(&d, &dir, &["up", "-d"]));
    let made = containers(&d);
    let ps = ok(&v2(&d, &dir, &["ps", "--format", "json"]));
    assert_eq!(ps.lines().count(), 2, "{ps}");
    let up = v2(&d, &dir, &["up", "-d"]);
    ok(&up);
    assert!(!stderr(&up).contains("Recreate"), "{}", stderr(&up));
    assert_eq!(containers(&d), made);
    ok(&v2(&d, &dir, &["down", "-v"]));
    assert_nothing_left(&d);

    // v2 makes it; berth sees it, recreates nothing, takes it down.
    ok(&v2(&d, &dir, &["up", "-d"]));
    let made = containers(&d);
    let ps = ok(&bc(&d, &dir, &["ps", "-q"]));
    assert_eq!(ps.lines().count(), 2, "{ps}");
    let up = bc(&d, &dir, &["up", "-d"]);
    ok(&up);
    assert!(!stderr(&up).contains("Recreate"), "{}", stderr(&up));
    assert_eq!(containers(&d), made);
    ok(&bc(&d, &dir, &["down", "-v"]));
    assert_nothing_left(&d);
}

#[test]
fn bad_files_are_refused_with_where_and_nothing_is_created() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let cases: [(&str, &str, &str); 6] = [
        (
            "unknown-key",
            "services:\n  web:\n    image: bb\n    imagee: x\n",
            "compose.yaml:4: services.web: additional property \"imagee\" is not allowed",
        ),
        (
            "wrong-type",
            "services:\n  web:\n    image: bb\n    ports: 80\n",
            "compose.yaml:4: services.web.ports: must be a list",
        ),
        (
            "cycle",
            "services:\n  a:\n    image: bb\n    depends_on: [b]\n  b:\n    image: bb\n    depends_on: [a]\n",
            "compose.yaml:7: dependency cycle detected: a -> b -> a",
        ),
        (
            "undefined-network",
            "services:\n  web:\n    image: bb\n    networks: [back]\n",
            "compose.yaml:4: service \"web\" refers to undefined network back",
        ),
        (
            "undefined-volume",
            "services:\n  web:\n    image: bb\n    volumes:\n      - data:/data\n",
            "compose.yaml:5: service \"web\" refers to undefined volume data",
        ),
        (
            "missing-variable",
            "services:\n  web:\n    image: \"${TAG:?TAG must be set}\"\n",
            "compose.yaml:3: error while interpolating services.web.image: required variable TAG is missing a value: TAG must be set",
        ),
    ];
    for (name, yaml, want) in cases {
        let dir = d.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
        let out = bc(&d, &dir, &["up", "-d"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(
            stderr(&out).contains(want),
            "{name}: {:?} lacks {want:?}",
            stderr(&out)
        );
        assert_nothing_left(&d);
    }
}

#[test]
fn service_fields_reach_the_container_and_what_berth_lacks_is_refused() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("fields");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"
services:
  db:
    image: bb
    command: ["sleep", "300"]
    post_start:
      - command: ["sh", "-c", "echo started > /tmp/hook"]
  app:
    image: bb
    command: ["sleep", "300"]
    links: ["db:database"]
    hostname: apphost
    domainname: example.test
    user: "0:0"
    working_dir: /tmp
    environment: {A: "1"}
    labels: {tier: front}
    ports: ["127.0.0.1::80"]
    expose: ["9000"]
    restart: on-failure:2
    init: true
    stop_signal: SIGINT
    stop_grace_period: 2s
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    read_only: true
    tmpfs: [/run]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    dns: [10.0.0.53]
    extra_hosts: ["somehost=10.1.2.3"]
    shm_size: 32m
    mem_limit: 64m
    pids_limit: 100
    cpus: 0.5
    healthcheck: {test: ["CMD", "busybox", "true"], interval: 1s}
  gpu:
    image: bb
    gpus: all
    profiles: [gpu]
"#,
    )
    .unwrap();
    ok(&bc(&d, &dir, &["up", "-d", "--wait"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d.berth(&["inspect", "bc-app-1"]))).unwrap();
    let c = &inspect[0];
    let (cfg, hc) = (&c["Config"], &c["HostConfig"]);
    assert_eq!(cfg["Hostname"], "apphost");
    assert_eq!(cfg["Domainname"], "example.test");
    assert_eq!(cfg["User"], "0:0");
    assert_eq!(cfg["WorkingDir"], "/tmp");
    assert!(cfg["Env"].as_array().unwrap().iter().any(|e| e == "A=1"));
    assert_eq!(cfg["Labels"]["tier"], "front");
    assert_eq!(cfg["Labels"]["com.docker.compose.service"], "app");
    assert!(
        cfg["ExposedPorts"].get("9000").is_some() || cfg["ExposedPorts"].get("9000/tcp").is_some()
    );
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["StopTimeout"], 2);
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 2);
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["CapAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["MKNOD"]));
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert!(hc["Tmpfs"].get("/run").is_some());
    assert_eq!(hc["Ulimits"][0]["Soft"], 1024);
    assert_eq!(hc["Dns"], serde_json::json!(["10.0.0.53"]));
    assert_eq!(hc["ExtraHosts"], serde_json::json!(["somehost:10.1.2.3"]));
    assert_eq!(hc["ShmSize"], 32 << 20);
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["PidsLimit"], 100);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PortBindings"]["80/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(c["State"]["Health"]["Status"], "healthy");

    // post_start ran; the link's alias resolves; cp goes both ways through a service name.
    assert_eq!(
        ok(&bc(&d, &dir, &["exec", "-T", "db", "cat", "/tmp/hook"])),
        "started"
    );
    ok(&bc(
        &d,
        &dir,
        &[
            "exec", "-T", "app", "busybox", "ping", "-c", "1", "-W", "2", "database",
        ],
    ));
    std::fs::write(dir.join("in.txt"), "copied in\n").unwrap();
    ok(&bc(&d, &dir, &["cp", "in.txt", "db:/tmp/in.txt"]));
    assert_eq!(
        ok(&bc(&d, &dir, &["exec", "-T", "db", "cat", "/tmp/in.txt"])),
        "copied in"
    );
    ok(&bc(&d, &dir, &["cp", "db:/tmp/hook", "out.txt"]));
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "started\n"
    );

    // GPUs: refused by the daemon as dockerd refuses them without a device driver.
    let out = bc(&d, &dir, &["--profile", "gpu", "up", "-d", "gpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("could not select device driver"),
        "{}",
        stderr(&out)
    );

    ok(&bc(&d, &dir, &["--profile", "gpu", "down", "-t", "1"]));
    assert_nothing_left(&d);
}

/// Ctrl-C on an attached `up` stops the app (and exits 130), as v2 does.
#[test]
fn ctrl_c_on_an_attached_up_stops_the_app() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("ctrlc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  loop:\n    image: bb\n    command: [\"sh\", \"-c\", \"echo ready; exec sleep 300\"]\n    stop_grace_period: 1s\n",
    )
    .unwrap();
    let mut child = Command::new(berth_bin())
        .current_dir(&dir)
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .args(["compose", "-p", "bc", "up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(
        "the service runs",
        std::time::Duration::from_secs(20),
        || text(&d.berth(&["ps", "--format", "{{.Names}}"])).contains("bc-loop-1"),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = exits_within(&mut child, std::time::Duration::from_secs(20));
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status.code(), Some(130), "{all}");
    assert!(all.contains("Gracefully Stopping"), "{all}");
    assert!(all.contains("loop-1  | ready"), "{all}");
    let state = ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "bc-loop-1"]));
    assert_eq!(state, "exited");
    ok(&bc(&d, &dir, &["down"]));
    assert_nothing_left(&d);
}

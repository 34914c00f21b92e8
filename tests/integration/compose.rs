//! Docker Compose v2 (the upstream binary, `scripts/deps.sh` fetches it) drives real projects
//! on berth: `up -d --wait` with a health check and a `service_healthy` dependency, a second
//! `up -d` that recreates nothing, `run --rm` reaching a service by name, `exec`, `ps --format
//! json`, `--scale`, profiles, `build:`, `stop`/`start`, and `down -v` leaving nothing. The
//! same kind of project through docker-compose 1.29 (Debian's, Python on docker-py 5).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testutil::*;

const COMPOSE_VERSION: &str = "2.40.3";

/// The Docker Compose v2 binary `scripts/deps.sh` fetched.
pub(crate) fn compose_bin() -> PathBuf {
    let dir =
        std::env::var_os("BERTH_COMPOSE_DIR").unwrap_or_else(|| "/var/cache/berth-test".into());
    let bin = Path::new(&dir).join(format!("docker-compose-{COMPOSE_VERSION}"));
    assert!(
        bin.exists(),
        "Docker Compose {COMPOSE_VERSION} is not at {} (scripts/deps.sh fetches it)",
        bin.display()
    );
    bin
}

/// `docker compose -p bt ARGS` in `dir` against the test daemon.
fn compose(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    compose_as(d, dir, "bt", args)
}

/// Docker Compose v2 with project name `project`, in `dir`, against the test daemon.
pub(crate) fn compose_as(d: &TestDaemon, dir: &Path, project: &str, args: &[&str]) -> Output {
    Command::new(compose_bin())
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("COMPOSE_PROGRESS", "plain")
        // berth has the classic builder API only (no BuildKit session): as with a Docker
        // daemon without BuildKit, Compose must be told to use it.
        .env("DOCKER_BUILDKIT", "0")
        .env("COMPOSE_BAKE", "false")
        .args(["-p", project])
        .args(args)
        .output()
        .expect("run docker compose")
}

const PROJECT: &str = r#"
services:
  web:
    image: bb
    command: ["sh", "-c", "busybox mkdir -p /www && echo hello > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O-", "http://localhost:8080/"]
      interval: 1s
      retries: 20
    volumes:
      - data:/data
  app:
    image: bb
    command: ["sleep", "300"]
    depends_on:
      web:
        condition: service_healthy
  built:
    build: ./ctx
    command: ["sleep", "300"]
  extra:
    image: bb
    command: ["sleep", "300"]
    profiles: ["debug"]
volumes:
  data: {}
"#;

/// The running containers' IDs by service (`ps --format json`), sorted.
fn ps(d: &TestDaemon, dir: &Path) -> Vec<(String, String, String)> {
    let out = ok(&compose(d, dir, &["ps", "--format", "json"]));
    let mut rows: Vec<(String, String, String)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["Service"].as_str().unwrap().to_owned(),
                v["ID"].as_str().unwrap().to_owned(),
                v["State"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_compose_project_comes_up_converges_and_goes_away() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("project");
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("compose.yaml"), PROJECT).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        "FROM bb\nRUN echo built > /built\n",
    )
    .unwrap();

    ok(&compose(&d, &dir, &["up", "-d", "--wait"]));
    let first = ps(&d, &dir);
    let services: Vec<&str> = first.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(services, ["app", "built", "web"], "{first:?}");
    assert!(first.iter().all(|r| r.2 == "running"), "{first:?}");
    let health = ok(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", "bt-web-1"]));
    assert_eq!(health, "healthy");

    // Nothing changed: nothing is recreated.
    ok(&compose(&d, &dir, &["up", "-d"]));
    assert_eq!(ps(&d, &dir), first);

    // A one-off container reaches a service by name, and goes (--rm); exec runs in a
    // service's container.
    let out = ok(&compose(
        &d,
        &dir,
        &[
            "run",
            "--rm",
            "app",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://web:8080/",
        ],
    ));
    assert_eq!(out, "hello");
    eventually(
        "the one-off goes after run --rm",
        std::time::Duration::from_secs(10),
        || !ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"])).contains("-run-"),
    );
    assert_eq!(
        ok(&compose(
            &d,
            &dir,
            &["exec", "-T", "built", "cat", "/built"]
        )),
        "built"
    );

    // Scale up and back down.
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "app=2"]));
    assert_eq!(ps(&d, &dir).iter().filter(|r| r.0 == "app").count(), 2);
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "app=1"]));
    assert_eq!(ps(&d, &dir).iter().filter(|r| r.0 == "app").count(), 1);

    // A profile's service only when asked for.
    ok(&compose(&d, &dir, &["--profile", "debug", "up", "-d"]));
    assert!(ps(&d, &dir).iter().any(|r| r.0 == "extra"));

    // Stop and start keep the containers.
    ok(&compose(&d, &dir, &["stop"]));
    assert!(ps(&d, &dir).is_empty());
    ok(&compose(&d, &dir, &["start"]));
    let web = ps(&d, &dir).into_iter().find(|r| r.0 == "web").unwrap();
    assert_eq!(web.1, first.iter().find(|r| r.0 == "web").unwrap().1);

    let logs = ok(&compose(&d, &dir, &["logs", "--no-color", "web"]));
    assert!(
        logs.is_empty() || logs.lines().all(|l| l.starts_with("web-1")),
        "{logs}"
    );

    // down -v: no container, network or volume of the project is left.
    ok(&compose(&d, &dir, &["--profile", "debug", "down", "-v"]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert!(!ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"])).contains("bt_"));
    assert!(!ok(&d.docker(&["volume", "ls", "-q"])).contains("bt_data"));
}

/// `docker-compose -p bt1 ARGS` (1.29, Debian's) in `dir` against the test daemon.
fn compose_v1(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    let bin = "/usr/bin/docker-compose";
    assert!(
        Path::new(bin).exists(),
        "docker-compose 1.29 is not installed (scripts/deps.sh installs Debian's docker-compose)"
    );
    Command::new(bin)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args(["--no-ansi", "-p", "bt1"])
        .args(args)
        .output()
        .expect("run docker-compose")
}

/// The project's containers: (name, ID), sorted.
fn containers_of(d: &TestDaemon) -> Vec<String> {
    let out = ok(&d.docker(&["ps", "--format", "{{.Names}} {{.ID}} {{.Status}}"]));
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

#[test]
fn docker_compose_1_29_brings_a_project_up_twice_and_down() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let dir = d.dir.path().join("project1");
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), PROJECT).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        "FROM bb\nRUN echo built > /built\n",
    )
    .unwrap();

    ok(&compose_v1(&d, &dir, &["up", "-d"]));
    let first = containers_of(&d);
    let names: Vec<&str> = first.iter().map(|r| r.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        ["bt1_app_1", "bt1_built_1", "bt1_web_1"],
        "{first:?}"
    );
    // app waited for web to be healthy.
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", "bt1_web_1"])),
        "healthy"
    );
    // The second up finds everything up to date: same containers, same network.
    let again = compose_v1(&d, &dir, &["up", "-d"]);
    assert!(again.status.success(), "{}", err(&again));
    assert!(!err(&again).contains("Recreating"), "{}", err(&again));
    let ids = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .map(|r| r.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(ids(&containers_of(&d)), ids(&first));

    let out = ok(&compose_v1(
        &d,
        &dir,
        &[
            "run",
            "--rm",
            "app",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://web:8080/",
        ],
    ));
    assert!(out.ends_with("hello"), "{out}");
    assert_eq!(
        ok(&compose_v1(
            &d,
            &dir,
            &["exec", "-T", "built", "cat", "/built"]
        )),
        "built"
    );
    ok(&compose_v1(&d, &dir, &["up", "-d", "--scale", "app=2"]));
    assert!(containers_of(&d)
        .iter()
        .any(|r| r.starts_with("bt1_app_2 ")));
    ok(&compose_v1(&d, &dir, &["stop"]));
    assert!(containers_of(&d).is_empty());
    ok(&compose_v1(&d, &dir, &["start"]));
    assert_eq!(containers_of(&d).len(), 4);

    ok(&compose_v1(&d, &dir, &["down", "-v"]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert!(!ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"])).contains("bt1_"));
    assert!(!ok(&d.docker(&["volume", "ls", "-q"])).contains("bt1_data"));
}

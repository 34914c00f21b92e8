//! Registries end to end: the berth CLI and the docker CLI push to and pull from Debian's
//! reference registry (`docker-registry`) and `berth registry serve` on 127.0.0.1, through a
//! berth daemon; login against a registry that requires it; Docker's errors for unknown
//! manifests and malformed references.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testutil::*;

/// Debian's reference registry (package docker-registry).
fn reference_registry(dir: &Path) -> RegistryProcess {
    let bin = Path::new("/usr/bin/docker-registry");
    assert!(
        bin.exists(),
        "this test needs Debian's docker-registry (apt-get install docker-registry)"
    );
    let port = free_port();
    let config = dir.join(format!("docker-registry-{port}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join(format!("docker-registry-{port}")).display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    RegistryProcess::listening(child, port)
}

/// The berth CLI with a private credentials file (DOCKER_CONFIG).
fn berth_as_user(d: &TestDaemon, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(berth_bin());
    cmd.arg("-H")
        .arg(d.host())
        .args(args)
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
    output_with_stdin(cmd, stdin.unwrap_or_default().as_bytes())
}

/// Pushes `bb` as `name`, removes it locally, pulls it back with `pull`, runs it.
fn round_trip(d: &TestDaemon, name: &str, pull: &dyn Fn(&str) -> std::process::Output) {
    let id = ok(&d.berth(&["images", "-q", "--no-trunc", "bb"]));
    ok(&d.berth(&["tag", "bb", name]));
    let pushed = ok(&d.berth(&["push", name]));
    assert!(
        pushed.contains(": Pushed") || pushed.contains("Layer already exists"),
        "{pushed}"
    );
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    ok(&d.berth(&["rmi", name]));
    ok(&d.berth(&["rmi", "bb"]));
    assert_eq!(text(&d.berth(&["images", "-q"])), "");
    let out = pull(name);
    let shown = ok(&out);
    assert!(shown.contains("Pull complete"), "{shown}");
    assert!(shown.contains("Digest: sha256:"), "{shown}");
    assert!(
        shown.contains(&format!("Status: Downloaded newer image for {name}")),
        "{shown}"
    );
    // The same image (same ID), with its repo digest, and it runs.
    assert_eq!(ok(&d.berth(&["images", "-q", "--no-trunc", name])), id);
    let digests = ok(&d.berth(&["image", "inspect", "-f", "{{json .RepoDigests}}", name]));
    assert!(digests.contains("@sha256:"), "{digests}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", name, "echo", "pulled"])),
        "pulled"
    );
    // Put bb back for the next round.
    ok(&d.berth(&["tag", name, "bb"]));
    ok(&d.berth(&["rmi", name]));
}

#[test]
fn push_and_pull_through_reference_and_berth_registries() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let reference = reference_registry(d.dir.path());
    let ours = RegistryProcess::berth(d.dir.path(), None);
    for reg in [&reference, &ours] {
        let name = reg.name("team/bb:v1");
        round_trip(&d, &name, &|n| d.berth(&["pull", n]));
        // The docker CLI, through berth's daemon, the same way.
        round_trip(&d, &name, &|n| d.docker(&["pull", n]));
    }
    // A layer the store has is not downloaded again; an image that is there is up to date.
    let name = ours.name("team/bb:v1");
    ok(&d.berth(&["tag", "bb", &name]));
    let again = ok(&d.berth(&["pull", &name]));
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    // Pushing what the registry has uploads nothing; another repository mounts it.
    let pushed = ok(&d.berth(&["push", &name]));
    assert!(pushed.contains("Layer already exists"), "{pushed}");
    let other = ours.name("other/bb:v1");
    ok(&d.berth(&["tag", "bb", &other]));
    let pushed = ok(&d.docker(&["push", &other]));
    assert!(pushed.contains("Mounted from team/bb"), "{pushed}");
    // Pull by digest.
    let digest = ok(&d.berth(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &name]));
    ok(&d.berth(&["rmi", &name, &other]));
    let out = ok(&d.berth(&["pull", &digest]));
    assert!(out.ends_with(&digest), "{out}");
    // Events record it.
    let events = text(&d.berth(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}}",
    ]));
    assert!(
        events.lines().any(|l| l == "pull") && events.lines().any(|l| l == "push"),
        "{events}"
    );
}

#[test]
fn errors_follow_docker_and_change_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ours = RegistryProcess::berth(d.dir.path(), None);
    let before = text(&d.berth(&["images", "-q"]));
    // An unknown manifest: Docker's words, exit 1, for both CLIs.
    let missing = ours.name("team/nothing:v9");
    let out = d.berth(&["pull", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err(&out),
        format!("Error response from daemon: manifest for {missing} not found: manifest unknown: manifest unknown")
    );
    let out = d.docker(&["pull", &missing]);
    assert!(!out.status.success());
    assert!(err(&out).contains("manifest unknown"), "{}", err(&out));
    // A malformed reference is refused before any request.
    let out = d.berth(&["pull", "Bad::Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err(&out), "invalid reference format");
    let (status, body) = d.request(
        "POST",
        "/v1.45/images/create?fromImage=Bad%3A%3AName&tag=latest",
    );
    assert_eq!(status, 400, "{body}");
    // A platform the image does not have.
    let name = ours.name("team/bb:v1");
    ok(&d.berth(&["tag", "bb", &name]));
    ok(&d.berth(&["push", &name]));
    ok(&d.berth(&["rmi", &name]));
    let out = d.berth(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("s390x"), "{}", err(&out));
    // A push of something that is not there.
    let out = d.berth(&["push", &ours.name("team/ghost:1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("An image does not exist locally with the tag"),
        "{}",
        err(&out)
    );
    assert_eq!(
        text(&d.berth(&["images", "-q"])),
        before,
        "a failed pull changed the store"
    );
    let partial = d.dir.path().join("root/content/ingest");
    if partial.exists() {
        assert_eq!(
            std::fs::read_dir(&partial).unwrap().count(),
            0,
            "staging files left behind"
        );
    }
}

#[test]
fn login_to_a_registry_that_requires_it() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let htpasswd = d.dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let reg = RegistryProcess::berth(d.dir.path(), Some(&htpasswd));
    let server = format!("127.0.0.1:{}", reg.port);
    let name = reg.name("alice/bb:1");
    ok(&d.berth(&["tag", "bb", &name]));

    // Without credentials: refused, with Docker's message.
    let out = berth_as_user(&d, &["push", &name], None);
    assert_eq!(out.status.code(), Some(1));
    let out = berth_as_user(&d, &["pull", &name], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains(&format!("pull access denied for {}", reg.name("alice/bb")))
            || err(&out).contains("unauthorized"),
        "{}",
        err(&out)
    );
    // A wrong password is refused and stores nothing.
    let out = berth_as_user(
        &d,
        &["login", "-u", "alice", "--password-stdin", &server],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    let config = d.dir.path().join("docker-config/config.json");
    assert!(!std::fs::read_to_string(&config)
        .unwrap_or_default()
        .contains(&server));
    // login stores the credentials in config.json form; push and pull then work.
    let out = berth_as_user(
        &d,
        &["login", "-u", "alice", "--password-stdin", &server],
        Some("s3cret\n"),
    );
    assert_eq!(text(&out), "Login Succeeded", "{}", err(&out));
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert!(stored["auths"][&server]["auth"].is_string(), "{stored}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = berth_as_user(&d, &["push", &name], None);
    assert!(out.status.success(), "{}", err(&out));
    ok(&d.berth(&["rmi", &name]));
    let out = berth_as_user(&d, &["pull", &name], None);
    assert!(out.status.success(), "{}", err(&out));
    // The docker CLI logs in through berth's daemon too (POST /auth).
    let mut docker = Command::new(DOCKER);
    docker
        .args([
            "-H",
            &d.host(),
            "login",
            "-u",
            "alice",
            "--password-stdin",
            &server,
        ])
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config-2"));
    let out = output_with_stdin(docker, b"s3cret\n");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{}",
        err(&out)
    );
    // logout forgets them.
    let out = berth_as_user(&d, &["logout", &server], None);
    assert_eq!(
        text(&out),
        format!("Removing login credentials for {server}")
    );
    ok(&d.berth(&["rmi", &name]));
    let out = berth_as_user(&d, &["pull", &name], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn built_images_push_to_the_reference_registry_and_pull_back() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let reg = reference_registry(d.dir.path());
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("app.sh"), "echo built and shipped\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb AS build\nRUN echo 1.0 > /version\n\
         FROM bb\nCOPY --from=build /version /version\nCOPY app.sh /app.sh\n\
         CMD [\"sh\", \"/app.sh\"]\n",
    )
    .unwrap();
    let name = reg.name("me/built:1");
    ok(&d.berth(&["build", "-t", &name, ctx.path().to_str().unwrap()]));
    let id = ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", &name]));
    ok(&d.berth(&["push", &name]));
    ok(&d.berth(&["rmi", &name]));
    ok(&d.berth(&["pull", &name]));
    // The same image (config digest), and it runs.
    assert_eq!(
        ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", &name])),
        id
    );
    assert_eq!(ok(&d.berth(&["run", "--rm", &name])), "built and shipped");
}

#[test]
fn search_asks_the_registry_the_term_names() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    // A registry with the v1 search API: it answers every query with three hits and
    // remembers the queries.
    let body = r#"{"num_results":3,"query":"app","results":[
        {"name":"team/app","description":"the app","star_count":12,"is_official":false,"is_automated":false},
        {"name":"app","description":"official","star_count":300,"is_official":true,"is_automated":false},
        {"name":"other/app","description":"","star_count":0,"is_official":false,"is_automated":true}]}"#;
    let registry = HttpServer::serve(
        &["Content-Type: application/json"],
        body.as_bytes().to_vec(),
    );
    let port = registry.port;
    let term = format!("127.0.0.1:{port}/app");
    let names = ok(&d.docker(&["search", "--format", "{{.Name}} {{.StarCount}}", &term]));
    assert_eq!(names, "team/app 12\napp 300\nother/app 0");
    assert!(
        registry.requests()[0].starts_with("GET /v1/search?q=app&n=25 "),
        "{:?}",
        registry.requests()
    );
    let official = ok(&d.docker(&[
        "search",
        "--filter",
        "is-official=true",
        "--format",
        "{{.Name}}",
        &term,
    ]));
    assert_eq!(official, "app");
    let starred = ok(&d.docker(&[
        "search",
        "-f",
        "stars=10",
        "--limit",
        "2",
        "--format",
        "{{.Name}}",
        &term,
    ]));
    assert_eq!(starred, "team/app\napp");
    // Docker's refusals.
    let (status, body) = d.request("GET", &format!("/images/search?term={term}&limit=101"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("limit 101 is outside the range of [1, 100]"),
        "{body}"
    );
    let (status, body) = d.request(
        "GET",
        &format!("/images/search?term={term}&filters=%7B%22stars%22%3A%7B%22x%22%3Atrue%7D%7D"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid filter 'stars=x'"), "{body}");
    // A registry without the search API.
    let closed = free_port();
    let out = d.docker(&["search", &format!("127.0.0.1:{closed}/app")]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains(&format!("Get \"http://127.0.0.1:{closed}/v1/search\"")),
        "{}",
        err(&out)
    );
}

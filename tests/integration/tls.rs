//! The API over TCP and TLS: `berth daemon -H unix://… -H tcp://127.0.0.1:PORT --tlsverify`
//! serves both sockets at once; the real docker CLI and the berth CLI, with flags or with
//! DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, run version, run (an attach) and exec
//! over mutual TLS; a client without a certificate, with one of another CA, or speaking
//! plain HTTP is refused; plain TCP is served on loopback only unless --insecure-tcp says
//! otherwise. Certificates are made here with rcgen; nothing listens beyond 127.0.0.1.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use berth_testutil::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A certificate and its key, as PEM files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

/// The test's PKI: a CA with a server certificate (127.0.0.1, localhost) and a client
/// certificate, and another CA with a client certificate of its own.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server: Pair,
    client: Pair,
    other_ca: PathBuf,
    other_client: Pair,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

fn leaf(
    dir: &Path,
    name: &str,
    sans: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
) -> Pair {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("berth-tls-test-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let (ca_cert, issuer) = ca("berth test CA");
        let (other_cert, other_issuer) = ca("another CA");
        let (ca, other_ca) = (d.join("ca.pem"), d.join("other-ca.pem"));
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&other_ca, other_cert.pem()).unwrap();
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        Pki {
            server: leaf(
                d,
                "server",
                &["127.0.0.1", "localhost"],
                ServerAuth,
                &issuer,
            ),
            client: leaf(d, "client", &[], ClientAuth, &issuer),
            other_client: leaf(d, "intruder", &[], ClientAuth, &other_issuer),
            ca,
            other_ca,
            dir,
        }
    }

    /// The daemon's TLS flags: mutual TLS against our CA.
    fn daemon_flags(&self, port: u16) -> Vec<String> {
        [
            "-H".to_owned(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            s(&self.ca),
            "--tlscert".into(),
            s(&self.server.cert),
            "--tlskey".into(),
            s(&self.server.key),
        ]
        .to_vec()
    }

    /// A client's flags: verify the daemon against `ca`, present `pair` (if any).
    fn client_flags(&self, port: u16, ca: &Path, pair: Option<&Pair>) -> Vec<String> {
        let mut v = vec![
            "-H".to_owned(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            s(ca),
        ];
        if let Some(p) = pair {
            v.extend(["--tlscert".into(), s(&p.cert), "--tlskey".into(), s(&p.key)]);
        }
        v
    }

    /// A DOCKER_CERT_PATH directory with ca.pem, cert.pem and key.pem (our client).
    fn cert_path(&self) -> PathBuf {
        let dir = self.dir.path().join("docker-certs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&self.ca, dir.join("ca.pem")).unwrap();
        std::fs::copy(&self.client.cert, dir.join("cert.pem")).unwrap();
        std::fs::copy(&self.client.key, dir.join("key.pem")).unwrap();
        dir
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A daemon with busybox (`bb`) on its unix socket and on 127.0.0.1:PORT with `flags`.
fn daemon_on_tcp(flags: &[String]) -> TestDaemon {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestDaemon::with_busybox_and(&flags)
}

/// A client command with no daemon address from our own environment.
fn client(program: &Path, d: &TestDaemon) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS")
        .env_remove("BERTH_HOST")
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        // Default certificate files must come from the flags or DOCKER_CERT_PATH only.
        .env("HOME", d.dir.path());
    cmd
}

fn run(mut cmd: Command, flags: &[String], args: &[&str]) -> Output {
    cmd.args(flags).args(args);
    output_with_timeout(cmd, LIMIT)
}

fn run_with_stdin(mut cmd: Command, flags: &[String], args: &[&str], input: &[u8]) -> Output {
    cmd.args(flags).args(args);
    output_with_stdin(cmd, input)
}

/// version, run (attach, with and without stdin) and exec (with and without stdin) through
/// `cmd()`, which carries the address and TLS settings.
fn drive(cmd: &dyn Fn() -> Command, flags: &[String], tag: &str) {
    assert_eq!(
        ok(&run(
            cmd(),
            flags,
            &["version", "--format", "{{.Server.Version}}"]
        )),
        env!("CARGO_PKG_VERSION")
    );
    let said = format!("hello over tls {tag}");
    assert_eq!(
        ok(&run(cmd(), flags, &["run", "--rm", "bb", "echo", &said])),
        said
    );
    // stdin through the hijacked connection, and its end (close_notify, half-close).
    let input = format!("{tag} line 1\n{tag} line 2\n").repeat(2000);
    let out = run_with_stdin(
        cmd(),
        flags,
        &["run", "--rm", "-i", "bb", "cat"],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(stdout(&out), input);
    let name = format!("tls-exec-{tag}");
    ok(&run(
        cmd(),
        flags,
        &["run", "-d", "--name", &name, "bb", "sleep", "300"],
    ));
    assert_eq!(
        ok(&run(cmd(), flags, &["exec", &name, "echo", "from exec"])),
        "from exec"
    );
    let out = run(
        cmd(),
        flags,
        &["exec", &name, "sh", "-c", "echo oops >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(err(&out), "oops");
    let out = run_with_stdin(cmd(), flags, &["exec", "-i", &name, "cat"], b"piped in\n");
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(text(&out), "piped in");
    ok(&run(cmd(), flags, &["rm", "-f", &name]));
}

#[test]
fn docker_cli_over_mutual_tls() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let d = daemon_on_tcp(&pki.daemon_flags(port));
    let docker = || client(Path::new(DOCKER), &d);
    let flags = pki.client_flags(port, &pki.ca, Some(&pki.client));
    drive(&docker, &flags, "docker-flags");
    // The same through the environment, as `docker-machine env` sets it.
    let cert_path = pki.cert_path();
    let docker_env = || {
        let mut cmd = client(Path::new(DOCKER), &d);
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &cert_path);
        cmd
    };
    drive(&docker_env, &[], "docker-env");
}

#[test]
fn berth_cli_over_mutual_tls_and_unix_at_once() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let d = daemon_on_tcp(&pki.daemon_flags(port));
    let berth = || client(berth_bin(), &d);
    let flags = pki.client_flags(port, &pki.ca, Some(&pki.client));
    drive(&berth, &flags, "berth-flags");
    let cert_path = pki.cert_path();
    let berth_env = || {
        let mut cmd = client(berth_bin(), &d);
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &cert_path);
        cmd
    };
    drive(&berth_env, &[], "berth-env");
    // One daemon, two sockets: what is made over TLS is seen on the unix socket, and back.
    ok(&run(
        berth(),
        &flags,
        &["run", "-d", "--name", "both-ways", "bb", "sleep", "300"],
    ));
    assert_eq!(
        ok(&d.docker(&["ps", "--format", "{{.Names}}"])),
        "both-ways"
    );
    ok(&d.docker(&["rename", "both-ways", "renamed-on-unix"]));
    assert_eq!(
        ok(&run(berth(), &flags, &["ps", "--format", "{{.Names}}"])),
        "renamed-on-unix"
    );
    // BERTH_HOST wins over DOCKER_HOST: the unix socket answers though DOCKER_HOST is a port
    // nobody listens on.
    let mut cmd = client(berth_bin(), &d);
    cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", free_port()))
        .env("BERTH_HOST", d.host());
    assert_eq!(
        ok(&run(cmd, &[], &["ps", "--format", "{{.Names}}"])),
        "renamed-on-unix"
    );
}

/// Terminals over TLS: `exec -it` (raw stream both ways, the window size, the exit code) for
/// both CLIs, and the detach keys, which end berth's side of the session (close_notify and
/// a shutdown of both directions) while the container runs on.
#[test]
fn terminals_and_detach_over_tls() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let d = daemon_on_tcp(&pki.daemon_flags(port));
    let flags = pki.client_flags(port, &pki.ca, Some(&pki.client));
    ok(&d.docker(&["run", "-d", "--name", "box", "bb", "sleep", "300"]));
    for program in [berth_bin(), Path::new(DOCKER)] {
        let mut cmd = client(program, &d);
        cmd.args(&flags)
            .args(["exec", "-it", "box", "sh", "-c"])
            .arg("sleep 0.5; stty size; read x; echo got:$x; exit 5");
        let (status, shown) = run_in_pty(cmd, 33, 101, Duration::from_millis(1500), b"keys\r");
        assert_eq!(status.code(), Some(5), "{program:?}: {shown:?}");
        assert!(shown.contains("33 101"), "{program:?}: {shown:?}");
        assert!(shown.contains("got:keys"), "{program:?}: {shown:?}");
    }
    let mut cmd = client(berth_bin(), &d);
    cmd.args(&flags)
        .args(["run", "-it", "--name", "stay", "bb", "sh"]);
    let (status, shown) = run_in_pty(cmd, 24, 80, Duration::from_millis(1500), b"\x10\x11");
    assert_eq!(status.code(), Some(0), "{shown:?}");
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Running}}", "stay"])),
        "true"
    );
}

#[test]
fn clients_without_the_cas_certificate_are_refused() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let d = daemon_on_tcp(&pki.daemon_flags(port));
    let berth = || client(berth_bin(), &d);
    let docker = || client(Path::new(DOCKER), &d);
    // No client certificate.
    let bare = pki.client_flags(port, &pki.ca, None);
    let out = run(berth(), &bare, &["ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err(&out),
        format!("error during connect: Get \"https://127.0.0.1:{port}/v1.45/containers/json\": remote error: tls: certificate required")
    );
    let out = run(docker(), &bare, &["ps"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("tls: certificate required"),
        "{}",
        err(&out)
    );
    // A client certificate of another CA.
    let intruder = pki.client_flags(port, &pki.ca, Some(&pki.other_client));
    let out = run(berth(), &intruder, &["ps"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("remote error: tls: unknown certificate authority"),
        "{}",
        err(&out)
    );
    let out = run(docker(), &intruder, &["ps"]);
    assert!(!out.status.success());
    assert!(err(&out).contains("remote error: tls:"), "{}", err(&out));
    // The client checks the daemon too: against the other CA, ours is unknown.
    let doubting = pki.client_flags(port, &pki.other_ca, Some(&pki.client));
    let out = run(berth(), &doubting, &["ps"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("x509: certificate signed by unknown authority"),
        "{}",
        err(&out)
    );
    // Plain HTTP on the TLS port: Go's 400, no API answer.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.write_all(b"GET /version HTTP/1.0\r\nHost: berth\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 400 Bad Request"), "{answer}");
    assert!(answer.contains("Client sent an HTTP request to an HTTPS server."));
    assert!(!answer.contains("ApiVersion"), "{answer}");
    for program in [berth_bin(), Path::new(DOCKER)] {
        let flags = ["-H".to_owned(), format!("tcp://127.0.0.1:{port}")];
        let out = run(client(program, &d), &flags, &["ps"]);
        assert!(!out.status.success(), "{program:?}");
        assert!(
            err(&out).contains("Client sent an HTTP request to an HTTPS server."),
            "{}",
            err(&out)
        );
    }
    // The unix socket is untouched by all this.
    ok(&d.docker(&["version"]));
}

#[test]
fn tls_without_verify_asks_no_client_certificate() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let flags = [
        "-H".to_owned(),
        format!("tcp://127.0.0.1:{port}"),
        "--tls".into(),
        "--tlscert".into(),
        s(&pki.server.cert),
        "--tlskey".into(),
        s(&pki.server.key),
    ];
    let d = daemon_on_tcp(&flags);
    let client_flags = [
        "-H".to_owned(),
        format!("tcp://127.0.0.1:{port}"),
        "--tls".into(),
        "--tlscacert".into(),
        s(&pki.other_ca),
    ];
    // --tls alone checks nothing: another CA, no client certificate, and still through.
    for program in [berth_bin(), Path::new(DOCKER)] {
        let out = run(
            client(program, &d),
            &client_flags,
            &["version", "--format", "{{.Server.Version}}"],
        );
        assert_eq!(ok(&out), env!("CARGO_PKG_VERSION"), "{program:?}");
    }
}

#[test]
fn plain_tcp_is_served_on_loopback() {
    if !root_or_skip() {
        return;
    }
    let port = free_port();
    let d = TestDaemon::start_with(&["-H", &format!("tcp://127.0.0.1:{port}")]);
    let flags = ["-H".to_owned(), format!("tcp://127.0.0.1:{port}")];
    for program in [berth_bin(), Path::new(DOCKER)] {
        let out = run(
            client(program, &d),
            &flags,
            &["version", "--format", "{{.Server.Version}}"],
        );
        assert_eq!(ok(&out), env!("CARGO_PKG_VERSION"), "{program:?}");
    }
}

/// `berth daemon` with `args` on a root of its own: it must fail; its stderr.
fn failed_start(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["daemon", "--root"])
        .arg(dir.join("root"))
        .args(net_args(dir))
        .args(["-H", &format!("unix://{}", dir.join("b.sock").display())])
        .args(args)
        .env("BERTH_RUNTIME", runtime_bin());
    let out = output_with_timeout(cmd, LIMIT);
    remove_net(dir);
    assert!(!out.status.success(), "the daemon started: {args:?}");
    assert!(!dir.join("b.sock").exists(), "it listened: {args:?}");
    err(&out)
}

#[test]
fn start_errors_name_the_flag_and_the_file() {
    if !root_or_skip() {
        return;
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let missing = dir.path().join("missing.pem");
    let e = failed_start(
        dir.path(),
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &s(&pki.ca),
            "--tlscert",
            &s(&missing),
            "--tlskey",
            &s(&pki.server.key),
        ],
    );
    assert_eq!(
        e,
        format!(
            "berth: --tlscert: open {}: no such file or directory",
            missing.display()
        )
    );
    // A key that is not the certificate's.
    let e = failed_start(
        dir.path(),
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &s(&pki.ca),
            "--tlscert",
            &s(&pki.server.cert),
            "--tlskey",
            &s(&pki.client.key),
        ],
    );
    assert!(e.starts_with("berth: --tlskey: "), "{e}");
    assert!(e.contains("does not match"), "{e}");
    // Not PEM at all.
    let e = failed_start(
        dir.path(),
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &s(&pki.server.key),
            "--tlscert",
            &s(&pki.server.cert),
            "--tlskey",
            &s(&pki.server.key),
        ],
    );
    assert!(e.starts_with("berth: --tlscacert: "), "{e}");
    assert!(e.contains("no PEM certificate found"), "{e}");
}

#[test]
fn plain_tcp_elsewhere_needs_insecure_tcp() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // TEST-NET-1: no interface here has it, so even a daemon that took the address could
    // not listen on it.
    let host = "tcp://192.0.2.1:2375";
    let e = failed_start(dir.path(), &["-H", host]);
    assert!(e.starts_with(&format!("berth: -H {host}: refusing")), "{e}");
    assert!(e.contains("--insecure-tcp"), "{e}");
    // With --insecure-tcp the address is taken, and only the bind fails.
    let e = failed_start(dir.path(), &["-H", host, "--insecure-tcp"]);
    assert!(e.contains("listen on 192.0.2.1:2375"), "{e}");
}

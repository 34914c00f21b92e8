//! Rootless berth (issue 14): `berth daemon` run by an unprivileged user. The tests run as
//! root only to set the stage (a registry, the busybox tarball, copies of the binaries the
//! user may execute); every berth and docker command, the daemon included, runs as the user
//! `berth-rootless` (override with `BERTH_ROOTLESS_USER`), which `scripts/rootless-setup.sh`
//! makes, with subordinate ids, and which CI makes through `scripts/test.sh`.
//!
//! Cleaning up is the daemon's own namespaces ending: its bridges, nft table and mounts live
//! in them. Containers are removed through the API before the daemon is stopped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use berth_testutil::*;

/// The unprivileged user the rootless tests run as: uid, gid and name.
fn test_user() -> Option<(u32, u32, String)> {
    let name = std::env::var("BERTH_ROOTLESS_USER").unwrap_or_else(|_| "berth-rootless".into());
    let user = nix::unistd::User::from_name(&name).ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw(), name))
}

/// Root and the user both there, or (loudly) why not.
fn ready() -> Option<(u32, u32, String)> {
    if !root_or_skip() {
        return None;
    }
    let user = test_user();
    assert!(
        user.is_some(),
        "the rootless tests need an unprivileged user with subordinate ids: run `scripts/rootless-setup.sh berth-rootless` as root (scripts/test.sh does)"
    );
    user
}

/// One user's berth: a home with copies of the binaries, its XDG directories, and the
/// commands run as that user.
struct User {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
    name: String,
}

impl User {
    fn new((uid, gid, name): (u32, u32, String)) -> User {
        let dir = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir_in("/tmp")
            .unwrap();
        for sub in ["bin", "run", "data"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        // The target directory may be where the user cannot go (under /root): the user runs
        // copies (hard links where the filesystem allows).
        runtime_bin();
        for b in ["berth", "berth-runtime", "berth-shim"] {
            let (from, to) = (bin_dir().join(b), dir.path().join("bin").join(b));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        // Not the binaries: a hard link's owner is the target directory's file's too.
        for d in [
            dir.path().to_owned(),
            dir.path().join("run"),
            dir.path().join("data"),
        ] {
            std::os::unix::fs::lchown(&d, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        User {
            dir,
            uid,
            gid,
            name,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn socket(&self) -> PathBuf {
        self.path("run/berth/berth.sock")
    }

    /// `program` as the user, with an environment a login would give it (no sbin on PATH).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("USER", &self.name)
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_DATA_HOME", self.path("data"))
            .current_dir(self.dir.path())
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        cmd
    }

    /// The berth CLI as the user, finding the daemon by itself (no -H).
    fn berth(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(self.path("bin/berth"));
        cmd.args(args);
        output_with_timeout(cmd, Duration::from_secs(120))
    }

    /// The docker CLI as the user, on the rootless socket.
    fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(DOCKER);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args);
        output_with_timeout(cmd, Duration::from_secs(120))
    }

    /// Starts `berth daemon` as the user, with no flags: the XDG places are its defaults.
    fn start_daemon(&self) -> Daemon<'_> {
        self.start_daemon_with(&[])
    }

    fn start_daemon_with(&self, flags: &[&str]) -> Daemon<'_> {
        let log = std::fs::File::create(self.path("daemon.log")).unwrap();
        let mut cmd = self.command(self.path("bin/berth"));
        cmd.arg("daemon")
            .args(flags)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let daemon = Daemon { user: self, child };
        eventually(
            "the rootless daemon answers",
            Duration::from_secs(20),
            || self.socket().exists() && self.berth(&["version"]).status.success(),
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}

/// A rootless daemon (its agent process); on drop its containers are removed and it is
/// stopped (SIGTERM, then SIGKILL).
struct Daemon<'a> {
    user: &'a User,
    child: Child,
}

impl Daemon<'_> {
    /// SIGTERM to the agent, which the daemon gets; its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        exits_within(&mut self.child, Duration::from_secs(40))
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let ids = self.user.berth(&["ps", "-aq"]);
            for id in stdout(&ids).split_whitespace() {
                let _ = self.user.berth(&["rm", "-f", id]);
            }
            self.stop();
        }
    }
}

/// A daemon the CLI started: on drop (a failed test) its containers are removed and its
/// agent gets SIGTERM.
struct Autostarted<'a> {
    user: &'a User,
    agent: i32,
}

impl Drop for Autostarted<'_> {
    fn drop(&mut self) {
        let ids = self.user.berth(&["ps", "-aq"]);
        for id in stdout(&ids).split_whitespace() {
            let _ = self.user.berth(&["rm", "-f", id]);
        }
        let agent = nix::unistd::Pid::from_raw(self.agent);
        let _ = nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..400 {
            if nix::sys::signal::kill(agent, None).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The uid a host process runs as (`/proc/PID/status`).
fn host_uid(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn import_busybox(user: &User) {
    let tar = busybox_tarball(&user.path("fixture"));
    for entry in walk(&user.path("fixture")) {
        std::os::unix::fs::lchown(&entry, Some(user.uid), Some(user.gid)).unwrap();
    }
    ok(&user.berth(&["import", tar.to_str().unwrap(), "bb"]));
}

#[test]
fn a_users_daemon_runs_builds_publishes_and_pushes_as_that_user() {
    let Some(who) = ready() else { return };
    let user = User::new(who);
    // On the host's loopback, started before the daemon (whose namespace reaches the host's
    // loopback ports through pasta).
    let registry = RegistryProcess::berth(user.dir.path(), None);
    let _daemon = user.start_daemon();
    import_busybox(&user);

    // Root inside, the user outside.
    let out = ok(&user.berth(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let first_map: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(first_map, ["0", &user.uid.to_string(), "1"], "{out}");
    let info = ok(&user.berth(&["info", "--format", "{{json .SecurityOptions}}"]));
    assert!(info.contains("name=rootless"), "{info}");

    // The docker CLI on the rootless socket: run, exec, logs.
    ok(&user.docker(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "bb",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]));
    let pid = ok(&user.docker(&["inspect", "--format", "{{.State.Pid}}", "sleeper"]));
    assert_eq!(
        host_uid(pid.trim()),
        Some(user.uid),
        "the container's init on the host"
    );
    assert_eq!(
        ok(&user.docker(&["exec", "sleeper", "echo", "exec-ok"])).trim(),
        "exec-ok"
    );
    eventually("the log line", Duration::from_secs(10), || {
        stdout(&user.docker(&["logs", "sleeper"])).contains("started")
    });

    // A published port, reached from the host.
    let port = free_port();
    ok(&user.berth(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "bb",
        "sh",
        "-c",
        "while true; do echo hello-from-rootless | busybox nc -l -p 8080; done",
    ]));
    let mut answer = String::new();
    eventually(
        "the published port answers",
        Duration::from_secs(15),
        || {
            use std::io::Read;
            answer.clear();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut c| {
                    c.set_read_timeout(Some(Duration::from_secs(2)))?;
                    c.read_to_string(&mut answer)
                })
                .is_ok()
                && answer.contains("hello-from-rootless")
        },
    );

    // Limits without a delegated cgroup are refused, not ignored.
    let limits = ok(&user.berth(&["info", "--format", "{{.MemoryLimit}}"]));
    if limits.trim() == "false" {
        let out = user.berth(&[
            "run",
            "--rm",
            "-m",
            "32m",
            "--pids-limit",
            "10",
            "bb",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{}", text(&out));
        assert!(
            err(&out).contains("--memory, --pids-limit need cgroups"),
            "{}",
            err(&out)
        );
    }

    // A volume, a build with RUN and COPY.
    ok(&user.berth(&["volume", "create", "vol"]));
    ok(&user.berth(&[
        "run",
        "--rm",
        "-v",
        "vol:/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]));
    assert_eq!(
        ok(&user.berth(&["run", "--rm", "-v", "vol:/data", "bb", "cat", "/data/f"])).trim(),
        "kept"
    );
    let ctx = user.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN echo built > /built\nCOPY f /f\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "copied\n").unwrap();
    for entry in walk(&ctx) {
        std::os::unix::fs::lchown(&entry, Some(user.uid), Some(user.gid)).unwrap();
    }
    ok(&user.berth(&["build", "-q", "-t", "built", ctx.to_str().unwrap()]));
    assert_eq!(
        ok(&user.berth(&["run", "--rm", "built", "cat", "/built", "/f"])),
        "built\ncopied"
    );

    // Deletions in a user namespace, with the kernel's overlayfs (`userxattr`: without it
    // removing a lower directory failed with EIO).
    builds_and_commits_deletions(&user);

    // Push to and pull from a registry on the host's 127.0.0.1.
    let name = format!("127.0.0.1:{}/rootless/built", registry.port);
    ok(&user.berth(&["tag", "built", &name]));
    ok(&user.berth(&["push", &name]));
    ok(&user.berth(&["rmi", &name]));
    ok(&user.berth(&["pull", &name]));
    assert_eq!(
        ok(&user.berth(&["run", "--rm", &name, "cat", "/built"])),
        "built"
    );
}

#[test]
fn a_users_containers_stop_with_its_daemon_and_restart_policies_bring_them_back() {
    let Some(who) = ready() else { return };
    let user = User::new(who);
    // The CLI starts the user's daemon itself when none runs (its log goes beside its state).
    ok(&user.berth(&["version"]));
    let agent_of = |pid: &str| -> Option<i32> {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()?
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let pid_file = user.path("data/berth/berth.pid");
    let daemon_pid = std::fs::read_to_string(&pid_file).unwrap();
    let agent = agent_of(daemon_pid.trim()).expect("the daemon's parent, the agent");
    let autostarted = Autostarted { user: &user, agent };
    import_busybox(&user);
    ok(&user.berth(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "bb",
        "sleep",
        "1000",
    ]));
    ok(&user.berth(&["run", "-d", "--name", "once", "bb", "sleep", "1000"]));
    let pids: Vec<String> = ["always", "once"]
        .iter()
        .map(|n| {
            ok(&user.berth(&["inspect", "--format", "{{.State.Pid}}", n]))
                .trim()
                .to_owned()
        })
        .collect();

    // SIGTERM to the agent: the daemon stops its containers (sleep ignores SIGTERM as pid 1,
    // so after the 10 s timeout SIGKILL) and exits cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    eventually("the agent exits", Duration::from_secs(40), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent), None).is_err()
    });
    std::mem::forget(autostarted);
    for pid in &pids {
        assert!(
            host_uid(pid).is_none(),
            "container process {pid} outlived its daemon"
        );
    }

    let mut daemon = user.start_daemon();
    eventually(
        "the always container is up again",
        Duration::from_secs(20),
        || {
            ok(&user.berth(&["inspect", "--format", "{{.State.Running}}", "always"])).trim()
                == "true"
        },
    );
    assert_eq!(
        ok(&user.berth(&["inspect", "--format", "{{.State.Running}}", "once"])).trim(),
        "false"
    );
    for n in ["always", "once"] {
        ok(&user.berth(&["rm", "-f", n]));
    }
    assert!(daemon.stop().success(), "{}", user.log());
}

#[test]
fn a_users_daemon_on_fuse_overlayfs_builds_and_commits_deletions() {
    let Some(who) = ready() else { return };
    assert!(
        std::path::Path::new("/usr/bin/fuse-overlayfs").exists(),
        "this test needs fuse-overlayfs: run scripts/rootless-setup.sh as root"
    );
    let user = User::new(who);
    let _daemon = user.start_daemon_with(&["--storage-driver", "fuse-overlayfs"]);
    assert_eq!(
        ok(&user.berth(&["info", "--format", "{{.Driver}}"])),
        "fuse-overlayfs"
    );
    import_busybox(&user);
    builds_and_commits_deletions(&user);
}

/// A replaced directory (an opaque one) and a removed file (a whiteout), in a build step and
/// in a commit, as the user's daemon stores them; `diff` shows the container's changes, never
/// an overlay's own marks (fuse-overlayfs leaves `.wh..opq` and `.wh..wh..opq` in upper dirs).
fn builds_and_commits_deletions(user: &User) {
    let ctx = user.path("deletions");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN mkdir /data && echo old > /data/old && echo x > /data/x\n\
         RUN rm -rf /data && mkdir /data && echo new > /data/only && rm /bin/ls\n",
    )
    .unwrap();
    for entry in walk(&ctx) {
        std::os::unix::fs::lchown(&entry, Some(user.uid), Some(user.gid)).unwrap();
    }
    ok(&user.berth(&["build", "-q", "-t", "deleted", ctx.to_str().unwrap()]));
    let out = ok(&user.berth(&[
        "run",
        "--rm",
        "deleted",
        "sh",
        "-c",
        "echo /data/* /data/.w*; test -e /bin/ls || echo ls-gone",
    ]));
    assert_eq!(out, "/data/only /data/.w*\nls-gone");
    ok(&user.berth(&[
        "run",
        "--name",
        "replacer",
        "deleted",
        "sh",
        "-c",
        "rm -rf /data && mkdir /data && echo n > /data/n",
    ]));
    let diff = ok(&user.berth(&["diff", "replacer"]));
    assert!(!diff.contains(".wh"), "{diff}");
    ok(&user.berth(&["commit", "replacer", "replaced"]));
    // (ls went in the build above; the shell's glob lists the directory.)
    assert_eq!(
        ok(&user.berth(&[
            "run",
            "--rm",
            "replaced",
            "sh",
            "-c",
            "echo /data/* /data/.w*"
        ])),
        "/data/n /data/.w*"
    );
    ok(&user.berth(&["rm", "replacer"]));
}

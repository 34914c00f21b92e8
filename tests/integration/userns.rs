//! `berth daemon --userns-remap default`: container root is the first subordinate ID of
//! `dockremap` on the host (made by the daemon when missing), seen from inside and outside;
//! what leaves the container through a host bind mount is that unprivileged ID; `--userns
//! host` opts out; volumes, exec, cp, commit, build and networking work in the container's
//! user namespace; image layers are shared (idmapped), not copied or re-owned, except where
//! the fallback copies them per mapping.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use berth_testutil::*;

const REMAP: [&str; 2] = ["--userns-remap", "default"];

/// A remapped daemon with the busybox fixture as `bb`.
fn remapped() -> TestDaemon {
    TestDaemon::with_busybox_and(&REMAP)
}

/// The first range of `dockremap` in `file` (`/etc/subuid`, `/etc/subgid`): (start, count).
fn dockremap_range(file: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("dockremap:"))
        .unwrap_or_else(|| panic!("the daemon gave dockremap no range in {file}:\n{text}"));
    let f: Vec<&str> = line.split(':').collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

/// Container root on the host: (uid, gid).
fn remapped_root() -> (u32, u32) {
    (
        dockremap_range("/etc/subuid").0,
        dockremap_range("/etc/subgid").0,
    )
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

/// A `Uid:`/`Gid:` line of /proc/<pid>/status: its real ID.
fn status_id(pid: &str, key: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every file under `dir` whose owner is not 0:0.
fn not_root_owned(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if (m.uid(), m.gid()) != (0, 0) {
                out.push(format!("{} {}:{}", e.path().display(), m.uid(), m.gid()));
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn container_root_is_the_remapped_id_on_the_host() {
    if !root_or_skip() {
        return;
    }
    let d = remapped();
    let (uid, gid) = remapped_root();
    let (_, size) = dockremap_range("/etc/subuid");
    assert_ne!(uid, 0);
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "bb", "id"])),
        "uid=0(root) gid=0"
    );
    // Inside, the mapping; outside, the container's init is that unprivileged ID.
    let map = ok(&d.docker(&["run", "--rm", "bb", "cat", "/proc/self/uid_map"]));
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0".to_owned(), uid.to_string(), size.to_string()]
    );
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "300"]));
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", &id]));
    assert_eq!(status_id(&pid, "Uid:"), uid);
    assert_eq!(status_id(&pid, "Gid:"), gid);
    // docker info says so, as dockerd's does.
    let info = ok(&d.docker(&["info", "--format", "{{json .SecurityOptions}}"]));
    assert!(info.contains("name=userns"), "{info}");

    // --userns host opts out: root on the host, no mapping.
    let host = ok(&d.docker(&["run", "-d", "--userns", "host", "bb", "sleep", "300"]));
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", &host]));
    assert_eq!(status_id(&pid, "Uid:"), 0);
    let map = ok(&d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "bb",
        "cat",
        "/proc/self/uid_map",
    ]));
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );

    // What Docker refuses under remapping, in its words; --userns host allows it again.
    for (flag, words) in [
        (
            "--privileged",
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ),
        (
            "--network=host",
            "cannot share the host's network namespace when user namespaces are enabled",
        ),
        (
            "--pid=host",
            "cannot share the host PID namespace when user namespaces are enabled",
        ),
    ] {
        let e = err(&d.docker(&["run", "--rm", flag, "bb", "true"]));
        assert!(e.contains(words), "{flag}: {e}");
        ok(&d.docker(&["run", "--rm", "--userns", "host", flag, "bb", "id"]));
    }
}

#[test]
fn a_breakout_through_a_host_bind_mount_is_nobody_on_the_host() {
    if !root_or_skip() {
        return;
    }
    let d = remapped();
    let (uid, gid) = remapped_root();
    // A host directory the container gets by a bind mount, as an escape would reach the
    // host's files: one root's (0755), one anyone may write (1777), a root-only file.
    let hostside = d.dir.path().join("hostside");
    let (locked, shared) = (hostside.join("locked"), hostside.join("shared"));
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&hostside, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(hostside.join("secret"), "s").unwrap();
    std::fs::set_permissions(
        hostside.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let bind = format!("{}:/host", hostside.display());
    let out = text(&d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "bb",
        "sh",
        "-c",
        "touch /host/locked/x && echo wrote-locked; cat /host/secret && echo read-secret; \
         echo y > /host/shared/y && echo wrote-shared; id",
    ]));
    assert!(!out.contains("wrote-locked"), "{out}");
    assert!(!out.contains("read-secret"), "{out}");
    assert!(out.contains("wrote-shared"), "{out}");
    // Root inside, yet the file it made is the unprivileged ID's on the host.
    assert!(out.contains("uid=0(root)"), "{out}");
    assert!(!locked.join("x").exists());
    assert_eq!(owner(&shared.join("y")), (uid, gid));
}

#[test]
fn volumes_exec_cp_and_commit_keep_the_containers_view() {
    if !root_or_skip() {
        return;
    }
    let d = remapped();
    let (uid, gid) = remapped_root();
    let root = d.dir.path().join("root");

    // A named volume is the remapped root's, so container root can write it.
    ok(&d.docker(&["volume", "create", "data"]));
    let data = root.join("volumes/data/_data");
    assert_eq!(owner(&data), (uid, gid));
    let ls = ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "bb",
        "sh",
        "-c",
        "echo x > /data/f && ls -ln /data/f",
    ]));
    assert!(ls.contains(" 0        0 "), "{ls}");
    assert_eq!(owner(&data.join("f")), (uid, gid));

    let id = ok(&d.docker(&["run", "-d", "--name", "c", "bb", "sleep", "300"]));
    let upper = root.join("containers").join(&id).join("upper");
    // exec runs in the container's user namespace: root inside, the remapped ID outside.
    assert_eq!(ok(&d.docker(&["exec", "c", "id"])), "uid=0(root) gid=0");
    assert_eq!(
        ok(&d.docker(&["exec", "c", "cat", "/proc/self/uid_map"]))
            .split_whitespace()
            .nth(1),
        Some(uid.to_string().as_str())
    );
    ok(&d.docker(&["exec", "c", "sh", "-c", "echo e > /from-exec"]));
    assert_eq!(owner(&upper.join("from-exec")), (uid, gid));

    // cp in: root's file from the host is the container root's inside.
    let file = d.dir.path().join("copied");
    std::fs::write(&file, "c").unwrap();
    ok(&d.docker(&["cp", file.to_str().unwrap(), "c:/copied"]));
    assert_eq!(owner(&upper.join("copied")), (uid, gid));
    let ls = ok(&d.docker(&["exec", "c", "ls", "-ln", "/copied"]));
    assert!(ls.contains(" 0        0 "), "{ls}");
    // cp out: the archive has the container's owners.
    let tar = d.dir.path().join("out.tar");
    let archive = d.docker(&["cp", "c:/from-exec", "-"]);
    ok(&archive);
    std::fs::write(&tar, &archive.stdout).unwrap();
    let listing = ok(&std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&tar)
        .output()
        .unwrap());
    assert!(listing.contains(" 0/0 "), "{listing}");

    // commit: the layer holds the container's view (0), not the host's.
    ok(&d.docker(&["commit", "c", "committed"]));
    let ls = ok(&d.docker(&[
        "run",
        "--rm",
        "committed",
        "ls",
        "-ln",
        "/from-exec",
        "/copied",
    ]));
    assert_eq!(ls.matches(" 0        0 ").count(), 2, "{ls}");
    let ls = ok(&d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "committed",
        "ls",
        "-ln",
        "/from-exec",
    ]));
    assert!(ls.contains(" 0        0 "), "{ls}");

    // The image's layers are shared: never re-owned (every snapshot file still 0:0, the
    // committed one too) and never copied for the mapping.
    let odd = not_root_owned(&root.join("snapshots"));
    assert!(odd.is_empty(), "{odd:?}");
    assert!(!root.join("remap").exists(), "layers were copied");
}

#[test]
fn networking_works_in_the_containers_user_namespace() {
    if !root_or_skip() {
        return;
    }
    let d = remapped();
    ok(&d.docker(&["network", "create", "remapnet"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "remapnet",
        "bb",
        "sleep",
        "300",
    ]));
    let ping = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "remapnet",
        "bb",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "peer",
    ]));
    assert!(ping.contains("1 packets received"), "{ping}");
    // A published port reaches the container's listener.
    let port = free_port();
    ok(&d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:8080"),
        "bb",
        "sh",
        "-c",
        "while true; do echo hello | busybox nc -l -p 8080; done",
    ]));
    let mut answer = String::new();
    eventually("the published port", Duration::from_secs(10), || {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        answer.clear();
        s.read_to_string(&mut answer).is_ok() && answer.contains("hello")
    });
}

#[test]
fn build_steps_run_as_the_remapped_root() {
    if !root_or_skip() {
        return;
    }
    let d = remapped();
    let (uid, _) = remapped_root();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN cat /proc/self/uid_map > /map && echo made > /made\n",
    )
    .unwrap();
    ok(&d.berth(&["build", "-t", "built", ctx.to_str().unwrap()]));
    let map = ok(&d.docker(&["run", "--rm", "built", "cat", "/map"]));
    assert_eq!(
        map.split_whitespace().nth(1),
        Some(uid.to_string().as_str())
    );
    let ls = ok(&d.docker(&["run", "--rm", "built", "ls", "-ln", "/made"]));
    assert!(ls.contains(" 0        0 "), "{ls}");
    let odd = not_root_owned(&d.dir.path().join("root/snapshots"));
    assert!(odd.is_empty(), "{odd:?}");
}

#[test]
fn without_idmapped_mounts_layers_are_copied_once_per_mapping() {
    if !root_or_skip() {
        return;
    }
    // The fallback, forced: layers copied into the mapping's range, the originals untouched.
    let d = TestDaemon::start_with_env(&REMAP, &[("BERTH_USERNS_COPY", "1")]).import_busybox();
    let (uid, gid) = remapped_root();
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "bb", "id"])),
        "uid=0(root) gid=0"
    );
    let root = d.dir.path().join("root");
    let copies = root.join("remap").join(format!("{uid}.{gid}"));
    let layers: Vec<_> = std::fs::read_dir(&copies).unwrap().flatten().collect();
    assert_eq!(layers.len(), 1, "one copy of busybox's one layer");
    assert_eq!(owner(&layers[0].path().join("bin/busybox")), (uid, gid));
    let ls = ok(&d.docker(&["run", "--rm", "bb", "ls", "-ln", "/bin/busybox"]));
    assert!(ls.contains(" 0        0 "), "{ls}");
    let odd = not_root_owned(&root.join("snapshots"));
    assert!(odd.is_empty(), "{odd:?}");
}

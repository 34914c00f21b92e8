//! Test harness for the runtime's integration tests: a busybox rootfs made from Debian's
//! `busybox-static` (cached under the target dir, with every applet, a second user and the
//! syscall probe), per-test bundles and state roots, and a guard that force-deletes every
//! container a test made, also when the test fails. The root check, the busybox binary and
//! the process helpers are berth-testutil's, re-exported here.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_runtime::spec::{docker_default, ContainerOptions};
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use berth_testutil::{busybox, output_with_timeout, root_or_skip, stderr, stdout};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Returns from the test early when berth-testutil's root check says to skip it.
#[macro_export]
macro_rules! root_only {
    () => {
        if !berth_testutil::root_or_skip() {
            return;
        }
    };
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures")
}

/// A directory tree with busybox, its applets, /etc/passwd and group, and the probe binary.
/// Built once per target dir; concurrent builders race to an atomic rename.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let done = fixtures_dir().join("busybox-rootfs");
        if done.join("bin/syscall-probe").exists() {
            return done;
        }
        let busybox = busybox();
        std::fs::create_dir_all(fixtures_dir()).unwrap();
        let tmp = fixtures_dir().join(format!("rootfs.tmp.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt", "home",
        ] {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
        }
        std::fs::copy(busybox, tmp.join("bin/busybox")).unwrap();
        let list = Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", tmp.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            tmp.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(tmp.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        let probe_src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/syscall-probe.c");
        let cc = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(tmp.join("bin/syscall-probe"))
            .arg(&probe_src)
            .status()
            .expect("the tests need a C compiler (cc) for the static syscall probe");
        assert!(
            cc.success(),
            "cc -static failed for the syscall probe (need libc6-dev)"
        );
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        if std::fs::rename(&tmp, &done).is_err() {
            // Another process won the race; ours is redundant.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        done
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A private state root and bundle area; force-deletes its containers on drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    ids: Mutex<Vec<String>>,
    children: Mutex<Vec<Child>>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("state");
        Sandbox {
            dir,
            root,
            ids: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
        }
    }

    /// A fresh container id, remembered for cleanup.
    pub fn id(&self, name: &str) -> String {
        let id = format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// A bundle with its own copy of the busybox rootfs and `opts` (rootfs path is set here).
    pub fn bundle(&self, name: &str, mut opts: ContainerOptions) -> PathBuf {
        let bundle = self.dir.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&bundle).unwrap();
        let rootfs = bundle.join("rootfs");
        let cp = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(cp.success());
        opts.rootfs = PathBuf::from("rootfs");
        let spec = docker_default(&opts).unwrap();
        write_spec(&bundle, &spec);
        bundle
    }

    /// Makes a bundle for `opts` and runs it in the foreground (`run`): bundle, id, output.
    pub fn run_new(&self, name: &str, opts: ContainerOptions) -> (PathBuf, String, Output) {
        let bundle = self.bundle(name, opts);
        let id = self.id(name);
        let out = self.rt(&["run", "-b", bundle.to_str().unwrap(), &id]);
        (bundle, id, out)
    }

    /// `berth-runtime --root <ours> ARGS…`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs `berth-runtime ARGS…` to completion (60 s at most).
    pub fn rt(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args).stdin(Stdio::null());
        output_with_timeout(c, Duration::from_secs(60))
    }

    /// Starts `berth-runtime ARGS…` without waiting; killed on drop if still running.
    pub fn spawn(&self, args: &[&str]) -> usize {
        let child = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut children = self.children.lock().unwrap();
        children.push(child);
        children.len() - 1
    }

    /// Waits for a spawned process (30 s at most) and returns its output.
    pub fn wait_spawned(&self, index: usize) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let mut children = self.children.lock().unwrap();
                let child = &mut children[index];
                if child.try_wait().unwrap().is_some() {
                    let mut stdout = Vec::new();
                    let mut stderr = Vec::new();
                    use std::io::Read;
                    child
                        .stdout
                        .take()
                        .unwrap()
                        .read_to_end(&mut stdout)
                        .unwrap();
                    child
                        .stderr
                        .take()
                        .unwrap()
                        .read_to_end(&mut stderr)
                        .unwrap();
                    let status = child.wait().unwrap();
                    return Output {
                        status,
                        stdout,
                        stderr,
                    };
                }
            }
            assert!(
                Instant::now() < deadline,
                "spawned berth-runtime did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The status field of `state ID`, or None if the container is gone.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.rt(&["state", id]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(v["status"].as_str().unwrap().to_owned())
    }

    /// Polls until `state ID` reports `want` (10 s at most).
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.status(id);
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} never became {want} (is {got:?})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = self
                .cmd()
                .args(["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
            // Nothing of the container may outlive it, in any cgroup hierarchy.
            for leaked in cgroups_named(id) {
                let _ = std::fs::remove_dir(&leaked);
                if !std::thread::panicking() {
                    panic!("cgroup {} outlived container {id}", leaked.display());
                }
            }
        }
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn write_spec(bundle: &Path, spec: &oci_spec::runtime::Spec) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(spec).unwrap(),
    )
    .unwrap();
}

/// Options running `sh -c SCRIPT` with defaults.
pub fn sh(script: &str) -> ContainerOptions {
    ContainerOptions::new("rootfs", vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// Options running an exact argv.
pub fn argv(args: &[&str]) -> ContainerOptions {
    ContainerOptions::new("rootfs", args.iter().map(|s| s.to_string()).collect())
}

/// The cgroup directories berth-runtime makes for container `id` on this host.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    match berth_runtime::host::cgroup_mode() {
        berth_runtime::host::CgroupMode::Unified => {
            vec![PathBuf::from(format!("/sys/fs/cgroup/berth/{id}"))]
        }
        berth_runtime::host::CgroupMode::Legacy => ["memory", "pids", "cpu", "freezer", "devices"]
            .iter()
            .map(|c| PathBuf::from(format!("/sys/fs/cgroup/{c}/berth/{id}")))
            .collect(),
    }
}

/// Cgroups under any controller whose name contains `needle` (leaks would show up here).
pub fn cgroups_named(needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().contains(needle) {
                    found.push(e.path());
                }
                if dir.components().count() < 8 {
                    stack.push(e.path());
                }
            }
        }
    }
    found
}

/// True when any mount in our namespace mentions `needle` (a path or id).
pub fn mounts_mention(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(needle)
}

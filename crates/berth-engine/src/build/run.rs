//! RUN: the command runs as a container on the step's root (`berth-runtime run`, in the
//! foreground, Docker's default confinement), its output streamed into the build's, with the
//! classic builder's network (the default bridge unless `--network`/`RUN --network` say
//! `host`, `none`, a user-defined network or `container:NAME`) and the step's `--mount`s: `cache` (a directory kept under
//! `build/mounts/cache`, by id or target), `tmpfs`, and `bind` from the context or from a
//! stage or image (read-only from the context; from a stage, writes are thrown away).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::EngineError;
use berth_build::mount::{MountType, Sharing};
use berth_build::{RunStep, Step};
use berth_oci::spec::{docker_default, ContainerOptions, UserMount, UserNamespace};
use sha2::Digest as _;

use super::stages::Build;
use super::workspace::StepRoot;
use super::{internal, Out, Result};
use crate::confined::{join, Root, View};

/// The PATH a RUN gets when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a RUN step holds while it runs: the roots its `--mount from=` read, and the locks of
/// its `sharing=locked|private` cache mounts.
pub(super) enum Held {
    Root { _mounted: StepRoot },
    Lock { _held: std::fs::File },
}

/// Takes the lock of the cache directory `dir` (waiting for it, or not: then None when it is
/// taken). It is released when the file is closed.
fn lock(dir: &std::path::Path, wait: bool) -> Result<Option<std::fs::File>> {
    let file = std::fs::File::create(dir.with_extension("lock"))
        .map_err(|e| internal("cache mount lock", e))?;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(Some(file));
    }
    let e = std::io::Error::last_os_error();
    if !wait && e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(None);
    }
    Err(internal("cache mount lock", e))
}

impl Build<'_> {
    /// An owner a RUN step names (its IDs), as the host stores it: through the mapping
    /// under `--userns-remap`.
    fn host_owner(&self, uid: Option<u32>, gid: Option<u32>) -> Result<(Option<u32>, Option<u32>)> {
        let Some(remap) = self.engine.remap() else {
            return Ok((uid, gid));
        };
        let map = remap.map();
        let to_host =
            |id: Option<u32>, range: &berth_core::idmap::IdRange| -> Result<Option<u32>> {
                id.map(|id| {
                    range.to_host(id).ok_or_else(|| {
                        EngineError::invalid(format!("{}", berth_core::idmap::Unmapped(id)))
                    })
                })
                .transpose()
            };
        Ok((to_host(uid, &map.uids)?, to_host(gid, &map.gids)?))
    }

    /// The user namespace a RUN step runs in under `--userns-remap`: one of its own, pinned
    /// in the step's directory `dir` (its network namespace is made inside it), or that of
    /// the container whose network it joins. What Docker refuses a container in one is
    /// refused here too.
    fn step_userns(
        &self,
        dir: &std::path::Path,
        network: &str,
        r: &RunStep,
    ) -> Result<std::path::PathBuf> {
        let Some(remap) = self.engine.remap() else {
            return Err(internal("user namespace", "no remapping"));
        };
        if r.security.as_deref() == Some("insecure") {
            return Err(EngineError::invalid(
                "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
            ));
        }
        if network == "host" {
            return Err(EngineError::invalid(
                "cannot share the host's network namespace when user namespaces are enabled",
            ));
        }
        if let Some(name) = network.strip_prefix("container:") {
            return self.engine.donor_userns(name);
        }
        let file = dir.join("userns");
        crate::userns::pin_new_userns(&file, remap.map())?;
        Ok(file)
    }

    /// The host directory `source` (a path in `root`) leads to, resolved inside `root`.
    fn host_path_in(root: &std::path::Path, source: &str) -> std::io::Result<std::path::PathBuf> {
        let view = View::new(Root::open(root)?);
        let comps = view.resolve(source.as_bytes(), true)?;
        let rel = String::from_utf8_lossy(&join(&comps)).into_owned();
        let path = root.join(rel.trim_start_matches('/'));
        std::fs::symlink_metadata(&path)?;
        Ok(path)
    }

    /// The mounts of `RUN --mount`s (and variables secrets become); source roots mounted for
    /// them go to `keep`, secret copies to `dir`.
    fn run_mounts(
        &self,
        stage: usize,
        step: &Step,
        r: &RunStep,
        dir: &std::path::Path,
        keep: &mut Vec<Held>,
        out: &Out,
    ) -> Result<(Vec<UserMount>, Vec<String>)> {
        let fail = |m: String| EngineError::invalid(format!("Dockerfile:{}: {m}", step.line));
        let mut mounts = Vec::new();
        let mut env = Vec::new();
        for m in &r.mounts {
            if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                if m.kind == MountType::Ssh {
                    if m.required {
                        return Err(fail(
                            "--mount type=ssh is not supported by berth build".into(),
                        ));
                    }
                    continue;
                }
                let id = m.id.clone().or_else(|| {
                    m.target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_owned)
                });
                let Some(id) = id.filter(|i| !i.is_empty()) else {
                    return Err(fail("--mount type=secret needs an id or a target".into()));
                };
                let Some(src) = self.req.secrets.get(&id) else {
                    if m.required {
                        return Err(fail(format!(
                            "secret {id} not found: pass it with --secret id={id},src=FILE"
                        )));
                    }
                    continue;
                };
                let value = std::fs::read(src)
                    .map_err(|e| fail(format!("secret {id}: {}: {e}", src.display())))?;
                if let Some(var) = &m.env {
                    env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    if m.target.is_none() {
                        continue;
                    }
                }
                let copy = dir.join(format!("secret-{}", mounts.len()));
                std::fs::write(&copy, &value).map_err(|e| internal("a secret", e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(
                    &copy,
                    std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)),
                )
                .map_err(|e| internal("a secret", e))?;
                let (uid, gid) = self.host_owner(m.uid, m.gid)?;
                let _ = std::os::unix::fs::chown(&copy, uid, gid);
                mounts.push(UserMount::Bind {
                    source: copy,
                    target: m
                        .target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{id}")),
                    readonly: true,
                    propagation: None,
                });
                continue;
            }
            let target = m
                .target
                .clone()
                .ok_or_else(|| fail(format!("--mount type={} needs a target", m.kind)))?;
            match m.kind {
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let hex: String = sha2::Sha256::digest(id.as_bytes())
                        .iter()
                        .take(16)
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let shared = self
                        .engine
                        .build_dir()
                        .join("mounts")
                        .join("cache")
                        .join(hex);
                    if m.from.is_some() || m.source.is_some() {
                        return Err(fail(
                            "--mount type=cache with from= or source= is not supported by berth build"
                                .into(),
                        ));
                    }
                    if !shared.exists() {
                        // A new cache directory gets the mount's owner and mode (BuildKit's
                        // defaults: root, 0755).
                        std::fs::create_dir_all(&shared).map_err(|e| internal("cache mount", e))?;
                        use std::os::unix::fs::PermissionsExt;
                        let mode = std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755));
                        std::fs::set_permissions(&shared, mode)
                            .map_err(|e| internal("cache mount", e))?;
                        let (uid, gid) = self.host_owner(m.uid.or(Some(0)), m.gid.or(Some(0)))?;
                        std::os::unix::fs::chown(&shared, uid, gid)
                            .map_err(|e| internal("cache mount", e))?;
                    }
                    let source = match m.sharing.unwrap_or(Sharing::Shared) {
                        Sharing::Shared => shared,
                        // One writer at a time: the next waits for the lock.
                        Sharing::Locked => {
                            let held = lock(&shared, true)?.expect("a blocking lock");
                            keep.push(Held::Lock { _held: held });
                            shared
                        }
                        // The cache when nobody else has it, else a fresh one of its own.
                        Sharing::Private => match lock(&shared, false)? {
                            Some(held) => {
                                keep.push(Held::Lock { _held: held });
                                shared
                            }
                            None => {
                                let own = dir.join(format!("cache-{}", mounts.len()));
                                std::fs::create_dir_all(&own)
                                    .map_err(|e| internal("cache mount", e))?;
                                let (uid, gid) = self.host_owner(Some(0), Some(0))?;
                                std::os::unix::fs::chown(&own, uid, gid)
                                    .map_err(|e| internal("cache mount", e))?;
                                own
                            }
                        },
                    };
                    mounts.push(UserMount::Bind {
                        source,
                        target,
                        readonly: m.readonly,
                        propagation: None,
                    });
                }
                MountType::Tmpfs => mounts.push(UserMount::Tmpfs {
                    target,
                    options: m.size.map(|s| format!("size={s}")).into_iter().collect(),
                    readonly: false,
                }),
                MountType::Bind => {
                    let source = m.source.clone().unwrap_or_else(|| "/".into());
                    let (root, readonly) = match &m.from {
                        None => (self.context.root().to_path_buf(), true),
                        Some(from) => {
                            let src = self.plan.source(stage, from).map_err(fail)?;
                            let root = self.source_root(&src, out)?;
                            let merged = root.merged();
                            keep.push(Held::Root { _mounted: root });
                            (merged, m.readonly)
                        }
                    };
                    let path = Self::host_path_in(&root, &source)
                        .map_err(|e| fail(format!("--mount type=bind source {source:?}: {e}")))?;
                    mounts.push(UserMount::Bind {
                        source: path,
                        target,
                        readonly,
                        propagation: None,
                    });
                }
                MountType::Secret | MountType::Ssh => unreachable!("handled above"),
            }
        }
        Ok((mounts, env))
    }

    /// Runs a RUN step on `root`; Docker's error for a non-zero exit. Returns the mount
    /// points made for its mounts (see [`remove_stubs`]: call it once `root` is unmounted).
    pub(super) fn run_step(
        &self,
        stage: usize,
        root: &StepRoot,
        step: &Step,
        r: &RunStep,
        network: &str,
        out: &Out,
    ) -> Result<Vec<Stub>> {
        let engine = self.engine;
        let id = berth_core::ContainerId::generate().map_err(|e| internal("an ID", e))?;
        let id = id.as_str().to_owned();
        out.line(&format!(" ---> Running in {}", &id[..12]));
        let dir = root.dir().join("run");
        std::fs::create_dir_all(&dir).map_err(|e| internal("the step's directory", e))?;
        let mut keep = Vec::new();
        let mut stubs = Vec::new();
        let result = (|| {
            let userns = match engine.remap() {
                Some(_) => Some(self.step_userns(&dir, network, r)?),
                None => None,
            };
            let net = engine.build_network_up(
                &id,
                &dir,
                network,
                &self.req.extra_hosts,
                userns.as_deref(),
            )?;
            if let Some(remap) = engine.remap() {
                // The files written for it (hosts, hostname, resolv.conf) are its root's.
                for m in &net.mounts {
                    if let UserMount::Bind { source, .. } = m {
                        crate::userns::give_to_root(remap.map(), source)
                            .map_err(|e| internal("chown the step's files", e))?;
                    }
                }
            }
            let mut mounts = net.mounts.clone();
            let (run_mounts, secret_env) = self.run_mounts(stage, step, r, &dir, &mut keep, out)?;
            // Mount points the runtime will have to make: taken out of the layer afterwards.
            for m in &run_mounts {
                stubs.extend(missing_components(&root.merged(), m.target()));
            }
            mounts.extend(run_mounts);
            if let Some((name, text)) = &r.script {
                let file = dir.join("script");
                std::fs::write(&file, text).map_err(|e| internal("the heredoc script", e))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755));
                mounts.push(UserMount::Bind {
                    source: file,
                    target: format!("/dev/pipes/{name}"),
                    readonly: true,
                    propagation: None,
                });
            }
            let mut env = r.env.clone();
            env.extend(secret_env);
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(0, DEFAULT_PATH.to_owned());
            }
            let opts = ContainerOptions {
                rootfs: root.merged(),
                args: r.argv.clone(),
                env,
                cwd: r.workdir.clone().filter(|w| !w.is_empty()),
                user: r.user.clone().filter(|u| !u.is_empty()),
                hostname: Some(id[..12].to_owned()),
                privileged: r.security.as_deref() == Some("insecure"),
                memory: self.req.memory,
                memory_swap: self.req.memory_swap,
                cpu_shares: self.req.cpu_shares,
                cpus: match (self.req.cpu_quota, self.req.cpu_period) {
                    (Some(q), p) => Some(q as f64 / p.unwrap_or(100_000) as f64),
                    _ => None,
                },
                mounts,
                host_network: net.host_network,
                netns_path: net.netns.clone(),
                userns: engine.remap().map(|remap| UserNamespace {
                    map: *remap.map(),
                    path: userns.clone(),
                }),
                cgroups_path: Some(berth_oci::host::default_cgroups_path(
                    &id,
                    berth_oci::host::systemd_is_init(),
                )),
                ..Default::default()
            };
            let spec = docker_default(&opts).map_err(|e| EngineError::from_kind(&e))?;
            let bundle = dir.join("bundle");
            std::fs::create_dir_all(&bundle).map_err(|e| internal("the bundle", e))?;
            crate::save_json(&bundle.join("config.json"), &spec)?;
            self.run_container(&id, &bundle, step, r, out)
        })();
        engine.build_network_down(&id, &dir, network);
        drop(keep);
        result.map(|()| stubs)
    }

    /// Runs the bundle in the foreground, relaying its output line by line.
    fn run_container(
        &self,
        id: &str,
        bundle: &std::path::Path,
        step: &Step,
        r: &RunStep,
        out: &Out,
    ) -> Result<()> {
        let (reader, writer) = super::pipe().map_err(|e| internal("a pipe", e))?;
        let (err_reader, err_writer) = super::pipe().map_err(|e| internal("a pipe", e))?;
        let mut cmd = self.engine.runtime();
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(err_writer);
        let mut child = cmd.spawn().map_err(|e| internal("run berth-runtime", e))?;
        drop(cmd); // our copies of the pipe's write end
                   // A client that goes away cancels the build: a watcher kills the step's container
                   // (its output may be silent for long, so the relay alone would not notice).
        let done = AtomicBool::new(false);
        let canceled = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut ticks = 0u32;
                while !done.load(Ordering::Relaxed) {
                    ticks += 1;
                    if ticks % 10 == 0 {
                        out.keepalive();
                    }
                    if out.closed() {
                        canceled.store(true, Ordering::Relaxed);
                        let _ = self
                            .engine
                            .runtime()
                            .args(["kill", id, "KILL"])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
            let errors = s.spawn(|| relay_lines(err_reader, out, true));
            relay_lines(reader, out, false);
            let _ = errors.join();
            done.store(true, Ordering::Relaxed);
        });
        let canceled = canceled.into_inner();
        let status = child.wait().map_err(|e| internal("wait for the step", e))?;
        // `run` deletes its container; when that fails (a kill during its start leaves the
        // cgroup busy for a moment, on a loaded host), delete it here, a few times if need be.
        let state = self.engine.runtime_root().join(id);
        for _ in 0..20 {
            if !state.exists() {
                break;
            }
            let _ = self.engine.runtime_op(&["delete", "--force", id]);
            if state.exists() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        out.line(&format!(
            " ---> Removed intermediate container {}",
            &id[..12]
        ));
        if canceled {
            return Err(EngineError::invalid("the build was canceled"));
        }
        let code = status.code().unwrap_or(1);
        if code != 0 {
            return Err(EngineError::CommandFailed {
                message: format!(
                    "The command '{}' returned a non-zero code: {code} (Dockerfile:{}: {})",
                    r.argv.join(" "),
                    step.line,
                    step.text.trim()
                ),
                code: code.into(),
            });
        }
        Ok(())
    }
}

/// A path in the root, as components.
pub(super) type Stub = Vec<Vec<u8>>;

/// The components of `target` (resolved in the root at `merged`) that do not exist yet,
/// shallowest first: the runtime makes them as mount points.
fn missing_components(merged: &std::path::Path, target: &str) -> Vec<Stub> {
    let Ok(root) = Root::open(merged) else {
        return Vec::new();
    };
    let view = View::new(root);
    let Ok(comps) = view.resolve_target(target.as_bytes()) else {
        return Vec::new();
    };
    (1..=comps.len())
        .map(|n| comps[..n].to_vec())
        .filter(|prefix| view.open_at(prefix, libc::O_PATH).is_err())
        .collect()
}

/// Removes the mount points in `stubs` from the upper dir, deepest first, when they are empty
/// (a directory nothing was written to, an empty file), so they do not end up in the layer.
pub(super) fn remove_stubs(upper: &std::path::Path, stubs: &[Stub]) {
    let Ok(root) = Root::open(upper) else {
        return;
    };
    let view = View::new(root);
    let mut stubs = stubs.to_vec();
    stubs.sort_by_key(|s| std::cmp::Reverse(s.len()));
    stubs.dedup();
    for stub in stubs {
        let Some((leaf, parent)) = stub.split_last() else {
            continue;
        };
        let Ok(dir) = view.open_dir(parent) else {
            continue;
        };
        let Ok(name) = crate::confined::cstring(leaf) else {
            continue;
        };
        use std::os::fd::AsRawFd;
        let Ok(st) = crate::confined::lstat_at(dir.as_raw_fd(), &name) else {
            continue;
        };
        let flags = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => libc::AT_REMOVEDIR,
            libc::S_IFREG if st.st_size == 0 => 0,
            _ => continue,
        };
        // SAFETY: `name` is NUL-terminated; `dir` is open. A non-empty directory stays.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) };
    }
}

/// Sends what a step writes to `from` to the client line by line; stderr (`error`) in red, as
/// Docker's classic builder marks it (`\x1b[91m…\x1b[0m`: clients such as docker-py look for
/// it).
fn relay_lines(from: impl std::io::Read, out: &Out, error: bool) {
    let mut lines = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if error => {
                out.text(&format!("\x1b[91m{}\x1b[0m", String::from_utf8_lossy(&buf)))
            }
            Ok(_) => out.text(&String::from_utf8_lossy(&buf)),
        }
    }
}

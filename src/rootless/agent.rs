//! The rootless agent: the process the user started, in the host's namespaces. It starts the
//! daemon in new namespaces, maps ids into them, gives them a network, binds host ports for
//! them, and lives exactly as long as the daemon.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use berth_core::subid::{self, SubIdRange};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{Gid, Pid, Uid, User};

use super::{CHILD_ENV, PORTS_FD};

/// Runs the agent; returns the daemon's exit status.
pub fn run() -> Result<i32> {
    // Signals the agent forwards are blocked here, before any thread exists, and read with
    // sigwait below: the daemon gets them, the agent only follows it out.
    let forwarded = forwarded_signals();
    forwarded
        .thread_block()
        .context("block the signals the agent forwards")?;

    let uid = Uid::current();
    let gid = Gid::current();
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .with_context(|| format!("uid {uid} has no entry in the user database"))?;
    let uids = subordinate("/etc/subuid", &user.name, uid.as_raw(), "uids")?;
    let gids = subordinate("/etc/subgid", &user.name, gid.as_raw(), "gids")?;
    let newuidmap = berth_core::program::find("newuidmap").context(
        "rootless berth maps ids with newuidmap and newgidmap: install them (Debian: apt-get install uidmap)",
    )?;
    let newgidmap = berth_core::program::find("newgidmap").context(
        "rootless berth maps ids with newuidmap and newgidmap: install them (Debian: apt-get install uidmap)",
    )?;

    let (ports_ours, ports_theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("make the ports socket pair")?;

    let mut daemon = spawn_daemon(&ports_theirs)?;
    drop(ports_theirs);
    let pid = daemon.id();

    // The daemon makes its namespaces itself (a process that gets them before it executes
    // loses its capabilities in them at exec) and says `ready`; its ids are mapped then, and
    // it waits for `mapped` before it becomes root there.
    let mapped = expect(&ports_ours, "ready")
        .and_then(|_| map_ids(&newuidmap, pid, uid.as_raw(), uids))
        .and_then(|_| map_ids(&newgidmap, pid, gid.as_raw(), gids))
        .and_then(|_| {
            nix::unistd::write(&ports_ours, b"mapped")
                .map(|_| ())
                .context("tell the daemon its ids are mapped")
        });
    if let Err(e) = mapped {
        let _ = daemon.kill();
        let _ = daemon.wait();
        return Err(e);
    }

    let mut network = start_network(pid);
    std::thread::Builder::new()
        .name("rootless-ports".into())
        .spawn(move || super::ports::serve(ports_ours))
        .context("start the ports thread")?;
    let target = Pid::from_raw(pid as i32);
    std::thread::Builder::new()
        .name("rootless-signals".into())
        .spawn(move || loop {
            if let Ok(sig) = forwarded.wait() {
                let _ = nix::sys::signal::kill(target, sig);
            }
        })
        .context("start the signal forwarder")?;

    let status = daemon.wait().context("wait for the daemon")?;
    if let Some(net) = network.as_mut() {
        let _ = net.kill();
        let _ = net.wait();
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

/// The user's first subordinate range in `file`, or an error that says how to add one.
fn subordinate(file: &str, name: &str, id: u32, what: &str) -> Result<SubIdRange> {
    let ranges = subid::read(Path::new(file)).with_context(|| format!("read {file}"))?;
    subid::first_of(&ranges, name, id)
        .cloned()
        .with_context(|| {
            format!(
                "rootless berth needs subordinate {what} for user {name} in {file} \
             (as root: usermod --add-sub{}s 100000-165535 {name})",
                &what[..3]
            )
        })
}

/// The agent blocks the signals it forwards; a child must not inherit that mask (exec keeps
/// it), or SIGTERM would never reach the daemon.
fn unblock_signals_in(cmd: &mut Command) {
    // SAFETY: sigprocmask is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let empty = SigSet::empty();
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// Reads one message from the daemon and checks it is `want`.
fn expect(sock: &OwnedFd, want: &str) -> Result<()> {
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(sock.as_raw_fd(), &mut buf)
        .with_context(|| format!("wait for the daemon to say {want:?}"))?;
    if &buf[..n] != want.as_bytes() {
        bail!(
            "the daemon exited before its namespaces were made (it said {:?}, not {want:?})",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    Ok(())
}

/// The same binary with the same arguments, with the ports socket at a fixed descriptor
/// number.
fn spawn_daemon(ports: &OwnedFd) -> Result<Child> {
    let exe = std::env::current_exe().context("find the berth binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(CHILD_ENV, PORTS_FD.to_string())
        .stdin(Stdio::null());
    let ports_raw = ports.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes system calls (fcntl, dup2); it
    // allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            // A high copy first (close-on-exec), then dup2 to the fixed number, which clears
            // close-on-exec on the copy (a dup2 onto itself would not).
            let tmp = nix::libc::fcntl(ports_raw, nix::libc::F_DUPFD_CLOEXEC, 10);
            if tmp < 0 || nix::libc::dup2(tmp, PORTS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    unblock_signals_in(&mut cmd);
    cmd.spawn().context("start the daemon")
}

/// Maps the user's own id to 0 and its subordinate range to 1… in the daemon's namespace.
fn map_ids(tool: &Path, pid: u32, own: u32, range: SubIdRange) -> Result<()> {
    let mut cmd = Command::new(tool);
    unblock_signals_in(&mut cmd);
    let out = cmd
        .arg(pid.to_string())
        .args(["0", &own.to_string(), "1"])
        .args(["1", &range.start.to_string(), &range.count.to_string()])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", tool.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            tool.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The daemon namespace's way out: pasta (Debian `passt`), else slirp4netns; without either
/// containers have no network beyond their host's namespace, which the log says.
fn start_network(pid: u32) -> Option<Child> {
    let tun = Path::new("/dev/net/tun");
    if nix::unistd::access(
        tun,
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    )
    .is_err()
    {
        eprintln!(
            "berth: rootless: pasta and slirp4netns need /dev/net/tun readable and writable by you, \
             and it is not (machines without udev leave it 0600): as root, run \
             scripts/rootless-setup.sh or `chmod 0666 /dev/net/tun`; until then containers get no \
             network outside the daemon's namespace"
        );
        return None;
    }
    if let Some(pasta) = berth_core::program::find("pasta") {
        // No inbound forwarding (published ports go through the agent's sockets); the
        // host's loopback ports are reachable on the namespace's loopback (-T/-U auto), so a
        // registry on the host's 127.0.0.1 is one for the daemon too.
        let mut cmd = Command::new(&pasta);
        unblock_signals_in(&mut cmd);
        let started = cmd
            .args(["--config-net", "--foreground", "--quiet"])
            .args(["-t", "none", "-u", "none", "-T", "auto", "-U", "auto"])
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        match started {
            Ok(child) => return Some(child),
            Err(e) => eprintln!("berth: rootless: could not start pasta: {e}"),
        }
    }
    if let Some(slirp) = berth_core::program::find("slirp4netns") {
        let mut cmd = Command::new(&slirp);
        unblock_signals_in(&mut cmd);
        let started = cmd
            .args(["--configure", "--mtu=65520", "--disable-host-loopback"])
            .args([pid.to_string().as_str(), "tap0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        match started {
            Ok(child) => return Some(child),
            Err(e) => eprintln!("berth: rootless: could not start slirp4netns: {e}"),
        }
    }
    eprintln!(
        "berth: rootless: neither pasta (Debian: passt) nor slirp4netns found; containers get no network outside the daemon's namespace"
    );
    None
}

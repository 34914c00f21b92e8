//! Crash consistency: each operation that changes the store is started, and the daemon is
//! killed with SIGKILL at a random moment inside it (drawn from the operation's measured
//! duration). After each kill the daemon starts again (repairing what the crash left), and
//! the root must be whole:
//!
//! - `berth system check --deep`, offline, finds no problem;
//! - every listed image inspects and runs; the container that ran before the crash runs;
//! - no shim without a running container, no veth beyond the running containers', no bridge
//!   of a removed network and the same nftables rules as before;
//! - the operation, run again, succeeds.
//!
//! CI runs two kill points per operation; `bash bench/torture.sh N` runs N rounds and prints
//! the table (operation | rounds | survived | problems found). `BERTH_TORTURE_ROUNDS` and
//! `BERTH_TORTURE_SEED` set the rounds and the random moments; `BERTH_TORTURE_ONLY=network`
//! keeps the operations whose name holds that word (to chase one operation's failure).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::*;

/// What the operations share: the daemon, a registry, a build context, files to copy.
struct Rig {
    d: TestDaemon,
    registry: RegistryProcess,
    work: tempfile::TempDir,
    keeper: String,
    /// The bridge `tnet` gets (its ID, and so its bridge, follow from the name).
    tnet_bridge: String,
}

/// The operations, each with what must hold before it (`prepare`, never interrupted) and
/// the commands that are interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Pull,
    Push,
    Load,
    Save,
    Build,
    Commit,
    Cp,
    RmRunning,
    Rmi,
    VolumeRm,
    Network,
    ImagePrune,
    BuilderPrune,
}

const OPS: [Op; 13] = [
    Op::Pull,
    Op::Push,
    Op::Load,
    Op::Save,
    Op::Build,
    Op::Commit,
    Op::Cp,
    Op::RmRunning,
    Op::Rmi,
    Op::VolumeRm,
    Op::Network,
    Op::ImagePrune,
    Op::BuilderPrune,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Pull => "pull",
            Op::Push => "push",
            Op::Load => "load",
            Op::Save => "save",
            Op::Build => "build (RUN, COPY)",
            Op::Commit => "commit",
            Op::Cp => "cp into a container",
            Op::RmRunning => "rm -f running",
            Op::Rmi => "rmi",
            Op::VolumeRm => "volume rm",
            Op::Network => "network create/connect/disconnect/rm",
            Op::ImagePrune => "image prune",
            Op::BuilderPrune => "builder prune",
        }
    }
}

/// A 2 MiB random layer on busybox, built with the `N` build argument (so each round's RUN
/// runs); the context has a 1 MiB file for COPY.
const DOCKERFILE: &str = "FROM bb\nARG N=0\nCOPY data /data\nRUN echo $N > /n && busybox dd if=/dev/urandom of=/r bs=1k count=2048 2>/dev/null\n";

impl Rig {
    fn new() -> Rig {
        let d = TestDaemon::with_busybox();
        let work = tempfile::tempdir().unwrap();
        let registry = RegistryProcess::berth(work.path(), None);
        let ctx = work.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(ctx.join("data"), random_bytes(1 << 20)).unwrap();
        std::fs::write(work.path().join("payload"), random_bytes(8 << 20)).unwrap();
        let keeper = ok(&d.docker(&["run", "-d", "--name", "keeper", "bb", "sleep", "100000"]));
        let tnet = ok(&d.docker(&["network", "create", "tnet"]));
        ok(&d.docker(&["network", "rm", "tnet"]));
        let rig = Rig {
            d,
            registry,
            work,
            keeper,
            tnet_bridge: format!("br-{}", &tnet[..12]),
        };
        // The image pull and load bring back, in the registry and in an archive.
        rig.build("torture/big:1", 0);
        let remote = rig.remote("big:1");
        ok(&rig.docker(&["tag", "torture/big:1", &remote]));
        ok(&rig.docker(&["push", &remote]));
        let archive = rig.path("big.tar");
        ok(&rig.docker(&["save", "-o", &archive, "torture/big:1"]));
        ok(&rig.docker(&["rmi", &remote, "torture/big:1"]));
        rig
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.d.docker(args)
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).display().to_string()
    }

    fn remote(&self, name: &str) -> String {
        self.registry.name(&format!("torture/{name}"))
    }

    fn build(&self, tag: &str, n: u32) {
        ok(&self.docker(&[
            "build",
            "-q",
            "--build-arg",
            &format!("N={n}"),
            "-t",
            tag,
            &self.path("ctx"),
        ]));
    }

    /// Puts the world in the state the operation starts from (never interrupted).
    fn prepare(&self, op: Op, n: u32) {
        // Failures are expected (nothing to remove); said on stderr, which a failing test shows.
        let quiet = |args: &[&str]| {
            let out = self.docker(args);
            if !out.status.success() {
                eprintln!("prepare {args:?}: {}", err(&out));
            }
        };
        match op {
            Op::Pull => quiet(&["rmi", "-f", &self.remote("big:1")]),
            Op::Push => {
                self.build(&format!("torture/push:{n}"), n + 1000);
                ok(&self.docker(&[
                    "tag",
                    &format!("torture/push:{n}"),
                    &self.remote(&format!("push:{n}")),
                ]));
            }
            Op::Load => quiet(&["rmi", "-f", "torture/big:1"]),
            Op::Save => {
                let _ = std::fs::remove_file(self.path("saved.tar"));
                self.build("torture/save:1", 7);
            }
            Op::Build => {}
            Op::Commit => {
                quiet(&["rm", "-f", "committee"]);
                ok(&self.docker(&[
                    "run", "-d", "--name", "committee", "bb", "sh", "-c",
                    "busybox dd if=/dev/urandom of=/written bs=1k count=4096 2>/dev/null; sleep 100000",
                ]));
                eventually("the container wrote", Duration::from_secs(20), || {
                    self.docker(&["exec", "committee", "ls", "/written"])
                        .status
                        .success()
                });
            }
            Op::Cp => {}
            Op::RmRunning => {
                quiet(&["rm", "-f", "victim"]);
                ok(&self.docker(&["run", "-d", "--name", "victim", "bb", "sleep", "100000"]));
            }
            Op::Rmi => self.build("torture/rmi:1", n + 2000),
            Op::VolumeRm => {
                quiet(&["volume", "rm", "-f", "doomed"]);
                ok(&self.docker(&[
                    "run",
                    "--rm",
                    "-v",
                    "doomed:/v",
                    "bb",
                    "sh",
                    "-c",
                    "busybox dd if=/dev/urandom of=/v/data bs=1k count=4096 2>/dev/null",
                ]));
            }
            Op::Network => {
                quiet(&["network", "disconnect", "-f", "tnet", "keeper"]);
                quiet(&["network", "rm", "tnet"]);
            }
            Op::ImagePrune => {
                // Two builds under one tag: the first becomes dangling.
                self.build("torture/dangle:1", n + 3000);
                self.build("torture/dangle:1", n + 4000);
            }
            Op::BuilderPrune => self.build("torture/cached:1", n + 5000),
        }
    }

    /// The interrupted commands, in order.
    fn commands(&self, op: Op, n: u32) -> Vec<Vec<String>> {
        let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match op {
            Op::Pull => vec![v(&["pull", "-q", &self.remote("big:1")])],
            Op::Push => vec![v(&["push", "-q", &self.remote(&format!("push:{n}"))])],
            Op::Load => vec![v(&["load", "-q", "-i", &self.path("big.tar")])],
            Op::Save => vec![v(&[
                "save",
                "-o",
                &self.path("saved.tar"),
                "torture/save:1",
            ])],
            Op::Build => vec![v(&[
                "build",
                "-q",
                "--build-arg",
                &format!("N={n}"),
                "-t",
                "torture/built:1",
                &self.path("ctx"),
            ])],
            Op::Commit => vec![v(&["commit", "committee", "torture/committed:1"])],
            Op::Cp => vec![v(&["cp", &self.path("payload"), "keeper:/tmp/payload"])],
            Op::RmRunning => vec![v(&["rm", "-f", "victim"])],
            Op::Rmi => vec![v(&["rmi", "torture/rmi:1"])],
            Op::VolumeRm => vec![v(&["volume", "rm", "doomed"])],
            Op::Network => vec![
                v(&["network", "create", "tnet"]),
                v(&["network", "connect", "tnet", "keeper"]),
                v(&["network", "disconnect", "tnet", "keeper"]),
                v(&["network", "rm", "tnet"]),
            ],
            Op::ImagePrune => vec![v(&["image", "prune", "-f"])],
            Op::BuilderPrune => vec![v(&["builder", "prune", "-af"])],
        }
    }

    /// Runs the commands one after the other; the first failure ends it.
    fn run(&self, commands: &[Vec<String>]) -> Result<(), String> {
        for c in commands {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            let out = self.docker(&args);
            if !out.status.success() {
                return Err(format!("{}: {} {}", c.join(" "), text(&out), err(&out)));
            }
        }
        Ok(())
    }

    /// Starts the commands in a child shell, kills the daemon after `after`, and waits for
    /// the child (which may have failed).
    fn run_and_kill(&mut self, commands: &[Vec<String>], after: Duration) {
        let script: Vec<String> = commands
            .iter()
            .map(|c| {
                let quoted: Vec<String> = c.iter().map(|a| format!("'{a}'")).collect();
                format!("{} -H '{}' {}", DOCKER, self.d.host(), quoted.join(" "))
            })
            .collect();
        let mut child = Command::new("sh")
            .args(["-c", &script.join(" && ")])
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let _ = self.d.child.kill();
        let _ = self.d.child.wait();
        let _ = exits_within(&mut child, Duration::from_secs(60));
    }

    /// `berth system check --deep` on the stopped daemon's root: the problems it printed
    /// (repaired, so that the next rounds start whole).
    fn offline_check(&mut self) -> Vec<String> {
        self.d.stop();
        let check = |extra: &[&str]| {
            let out = Command::new(berth_bin())
                .args(["-H", &self.d.host(), "system", "check", "--deep", "--root"])
                .arg(self.d.dir.path().join("root"))
                .args(extra)
                .env("BERTH_NO_AUTOSTART", "1")
                .output()
                .unwrap();
            (out.status.code(), stdout(&out), stderr(&out))
        };
        let (code, out, err) = check(&[]);
        let mut problems = Vec::new();
        if code != Some(0) {
            problems.push(format!("system check ({code:?}): {out}{err}"));
            let (code, out, err) = check(&["--repair"]);
            if code != Some(0) {
                problems.push(format!("system check --repair ({code:?}): {out}{err}"));
            }
        }
        self.d.start_again();
        problems
    }

    /// What must hold after a crash and a restart: images run, the keeper runs, no stray
    /// shim, veth or rule. Returns what does not hold.
    fn whole(&self, rules_before: usize) -> Vec<String> {
        let mut wrong = Vec::new();
        let images = ok(&self.docker(&["images", "-q", "--no-trunc"]));
        let mut ids: Vec<&str> = images.lines().collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            if !self.docker(&["image", "inspect", id]).status.success() {
                wrong.push(format!("image {id} does not inspect"));
                continue;
            }
            let out = self.docker(&["run", "--rm", id, "echo", "runs"]);
            if stdout(&out).trim() != "runs" {
                wrong.push(format!("image {id} does not run: {}", text(&out)));
            }
        }
        let running = ok(&self.docker(&["inspect", "-f", "{{.State.Running}}", &self.keeper]));
        if running != "true" {
            wrong.push(format!("the keeper container no longer runs ({running})"));
        }
        // The shim and the namespace of a container that just ended (the `run --rm`s above)
        // go a moment after it: what is still there after 10 s is left behind.
        let bridge = &net_args(self.d.dir.path())[1];
        let deadline = Instant::now() + Duration::from_secs(10);
        let strays = loop {
            let live = ok(&self.docker(&["ps", "-q", "--no-trunc"]));
            let live: Vec<&str> = live.lines().collect();
            let mut strays: Vec<String> = shims_of(&self.d.dir.path().join("root/containers"))
                .into_iter()
                .filter(|(id, _)| !live.contains(&id.as_str()))
                .map(|(id, _)| format!("a shim runs for {id}, which is not running"))
                .collect();
            let veths = bridge_ports(bridge).len();
            if veths != live.len() {
                strays.push(format!(
                    "{veths} veths on {bridge} for {} running containers",
                    live.len()
                ));
            }
            if strays.is_empty() || Instant::now() > deadline {
                break strays;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        wrong.extend(strays);
        // `tnet` was removed by the run again: a bridge of its is one no record names.
        let left = Command::new("ip")
            .args(["link", "show", &self.tnet_bridge])
            .output()
            .unwrap();
        if left.status.success() {
            wrong.push(format!("the bridge {} of tnet is left", self.tnet_bridge));
        }
        let rules = nft_rule_count(&net_args(self.d.dir.path())[5]);
        if rules != rules_before {
            wrong.push(format!("{rules} nftables rules, {rules_before} before"));
        }
        wrong
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut v).unwrap();
    v
}

/// xorshift64: the kill moments, reproducible from the seed the run prints.
struct Rng(u64);

impl Rng {
    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Tally {
    rounds: usize,
    survived: usize,
    problems: usize,
}

#[test]
fn sigkill_inside_each_operation_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    let rounds: usize = std::env::var("BERTH_TORTURE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2 * OPS.len());
    let seed: u64 = std::env::var("BERTH_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let only = std::env::var("BERTH_TORTURE_ONLY").unwrap_or_default();
    let ops: Vec<Op> = OPS
        .iter()
        .copied()
        .filter(|op| op.name().contains(only.as_str()))
        .collect();
    assert!(
        !ops.is_empty(),
        "BERTH_TORTURE_ONLY={only} names no operation"
    );
    println!("torture: {rounds} rounds, BERTH_TORTURE_SEED={seed}");
    let mut rng = Rng(seed);
    let mut rig = Rig::new();
    let rules_before = nft_rule_count(&net_args(rig.d.dir.path())[5]);

    // Each operation's duration, measured once, uninterrupted.
    let mut durations = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        rig.prepare(*op, i as u32);
        let started = Instant::now();
        rig.run(&rig.commands(*op, i as u32))
            .unwrap_or_else(|e| panic!("{} without a crash: {e}", op.name()));
        durations.push(started.elapsed());
    }

    let mut tally: Vec<Tally> = ops.iter().map(|_| Tally::default()).collect();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let i = round % ops.len();
        let op = ops[i];
        let n = 100 + round as u32;
        rig.prepare(op, n);
        let after = durations[i].mul_f64(rng.fraction());
        rig.run_and_kill(&rig.commands(op, n), after);
        rig.d.start_again();
        let problems = rig.offline_check();
        // Run again first: the round's own objects (a network half made) are then gone, and
        // rules and veths compare with how they were before.
        rig.prepare(op, n + 10_000);
        let mut wrong = Vec::new();
        if let Err(e) = rig.run(&rig.commands(op, n + 10_000)) {
            wrong.push(format!("run again: {e}"));
        }
        wrong.extend(rig.whole(rules_before));
        let t = &mut tally[i];
        t.rounds += 1;
        t.problems += problems.len();
        if problems.is_empty() && wrong.is_empty() {
            t.survived += 1;
        } else {
            failures.push(format!(
                "{} killed after {after:?} (round {round}):\n  {}",
                op.name(),
                problems
                    .iter()
                    .chain(&wrong)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }

    println!(
        "{:<38} {:>6} {:>9} {:>15}",
        "operation", "rounds", "survived", "problems found"
    );
    for (op, t) in ops.iter().zip(&tally) {
        println!(
            "{:<38} {:>6} {:>9} {:>15}",
            op.name(),
            t.rounds,
            t.survived,
            t.problems
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! A running container's cgroup, read directly through cgroupfs, on v1 (one hierarchy per
//! controller, possibly co-mounted like `cpu,cpuacct`) and on v2 (one unified directory).
//! Used by `stats` (Docker's stats JSON) and by `update` for its error messages. The engine
//! never writes a container's cgroup: new limits go through `berth-runtime update` (the one
//! write it makes is `cgroup_warm`'s move of its own thread to where it already is).
//!
//! The cgroup is found from the container's init (`/proc/<pid>/cgroup`, read from the
//! daemon's cgroup namespace, so paths are from the hierarchy's root) and the mount table,
//! so it does not matter whether the runtime placed it at `/berth/<id>` or in a systemd
//! scope. The parsers take the files' text so they can be tested on fixtures.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerPidsStats, ContainerThrottlingData,
};

/// Where a container's cgroup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cgroup {
    /// cgroup v1: the directory of each controller (`memory`, `cpu`, `cpuacct`, `pids`,
    /// `blkio`, …).
    V1(BTreeMap<String, PathBuf>),
    /// cgroup v2: the one directory.
    V2(PathBuf),
}

impl Cgroup {
    /// The cgroup of process `pid` on this host.
    pub(crate) fn of_pid(pid: i64) -> Option<Cgroup> {
        if pid <= 0 {
            return None;
        }
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let unified = berth_oci::host::cgroup_mode() == berth_oci::host::CgroupMode::Unified;
        locate(&own, &mounts, unified)
    }

    fn v1(&self, controller: &str) -> Option<&Path> {
        match self {
            Cgroup::V1(dirs) => dirs.get(controller).map(PathBuf::as_path),
            Cgroup::V2(_) => None,
        }
    }
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup hierarchy.
struct CgroupMount<'a> {
    /// The path inside the hierarchy that is mounted (`/` unless a sub-tree is bind-mounted).
    root: &'a str,
    point: &'a str,
    v2: bool,
    /// For v1: the controllers (and `name=` hierarchies) the mount holds.
    controllers: Vec<&'a str>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount<'_>> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) =
            (fields.get(3), fields.get(4), rfields.first())
        else {
            continue;
        };
        match *fstype {
            "cgroup2" => out.push(CgroupMount {
                root,
                point,
                v2: true,
                controllers: Vec::new(),
            }),
            "cgroup" => out.push(CgroupMount {
                root,
                point,
                v2: false,
                controllers: rfields
                    .get(2)
                    .map(|o| o.split(',').filter(|c| *c != "rw" && *c != "ro").collect())
                    .unwrap_or_default(),
            }),
            _ => {}
        }
    }
    out
}

/// `path` (a cgroup path from `/proc/<pid>/cgroup`) under a mount of `root` at `point`.
fn under(point: &str, root: &str, path: &str) -> Option<PathBuf> {
    let rel = if root == "/" {
        path
    } else {
        path.strip_prefix(root)?
    };
    let rel = rel.trim_start_matches('/');
    // A cgroup path never climbs; refuse anything that could leave the mount.
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(Path::new(point).join(rel))
}

/// Finds the cgroup described by `proc_cgroup` (a `/proc/<pid>/cgroup`) in `mountinfo`.
fn locate(proc_cgroup: &str, mountinfo: &str, unified: bool) -> Option<Cgroup> {
    let mounts = cgroup_mounts(mountinfo);
    if unified {
        let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
        let m = mounts.iter().find(|m| m.v2)?;
        return under(m.point, m.root, path).map(Cgroup::V2);
    }
    let mut dirs = BTreeMap::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            continue; // the (hybrid) v2 line
        }
        let names: Vec<&str> = ctrls.split(',').collect();
        let Some(m) = mounts
            .iter()
            .find(|m| !m.v2 && names.iter().all(|n| m.controllers.contains(n)))
        else {
            continue;
        };
        if let Some(dir) = under(m.point, m.root, path) {
            for n in names {
                dirs.insert(n.to_owned(), dir.clone());
            }
        }
    }
    (!dirs.is_empty()).then_some(Cgroup::V1(dirs))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// A limit file: a number, or `max` (no limit, `None`).
fn parse_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" | "" => None,
        n => n.parse().ok(),
    }
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`, `memory.events`).
pub(crate) fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// v1 blkio files: `MAJ:MIN Op value` lines (and a `Total value` line, left out).
fn parse_blkio_v1(text: &str) -> Vec<ContainerBlkioStatEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(ContainerBlkioStatEntry {
                major: Some(major.parse().ok()?),
                minor: Some(minor.parse().ok()?),
                op: Some(op.to_owned()),
                value: Some(value.parse().ok()?),
            })
        })
        .collect()
}

/// v2 `io.stat`: `MAJ:MIN rbytes=… wbytes=… rios=… …`, as Docker reports it: a `read` and a
/// `write` entry per device.
fn parse_io_stat(text: &str) -> Vec<ContainerBlkioStatEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        let kv: HashMap<&str, u64> = f
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        for (op, key) in [("read", "rbytes"), ("write", "wbytes")] {
            out.push(ContainerBlkioStatEntry {
                major: Some(major),
                minor: Some(minor),
                op: Some(op.to_owned()),
                value: Some(kv.get(key).copied().unwrap_or(0)),
            });
        }
    }
    out
}

/// The host's total memory: a container without a limit is shown this limit, as Docker does.
pub(crate) fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64)
}

/// The host's CPU time in nanoseconds (the first line of `/proc/stat`: user through softirq,
/// as Docker sums it) and the number of online CPUs (`cpuN` lines).
pub(crate) fn parse_proc_stat(text: &str, ticks: u64) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let t: u64 = f.take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
                total = t * 1_000_000_000 / ticks.max(1);
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

pub(crate) fn system_cpu() -> (u64, u32) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_proc_stat(&text, clock_ticks())
}

/// What a cgroup has used, in Docker's stats shapes (without `system_cpu_usage` and
/// `online_cpus`, which are the host's).
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    pub cpu: ContainerCpuStats,
    pub memory: ContainerMemoryStats,
    pub pids: ContainerPidsStats,
    pub blkio: ContainerBlkioStats,
}

/// Reads what `cg` has used. `machine_mem` caps the reported memory limit (an unlimited
/// cgroup shows the host's memory, as in Docker).
pub(crate) fn usage(cg: &Cgroup, machine_mem: u64) -> Usage {
    let cap = |limit: Option<u64>| match limit {
        Some(l) if machine_mem == 0 || l <= machine_mem => l,
        _ => machine_mem,
    };
    match cg {
        Cgroup::V2(dir) => {
            let cpu_stat = read(dir, "cpu.stat")
                .map(|t| parse_flat_keyed(&t))
                .unwrap_or_default();
            let us = |k: &str| cpu_stat.get(k).copied().unwrap_or(0) * 1000;
            let stats: HashMap<String, u64> = read(dir, "memory.stat")
                .map(|t| parse_flat_keyed(&t))
                .unwrap_or_default();
            let events = read(dir, "memory.events")
                .map(|t| parse_flat_keyed(&t))
                .unwrap_or_default();
            let usage = read_u64(dir, "memory.current");
            Usage {
                cpu: ContainerCpuStats {
                    cpu_usage: Some(ContainerCpuUsage {
                        total_usage: Some(us("usage_usec")),
                        percpu_usage: None,
                        usage_in_kernelmode: Some(us("system_usec")),
                        usage_in_usermode: Some(us("user_usec")),
                    }),
                    throttling_data: Some(ContainerThrottlingData {
                        periods: Some(cpu_stat.get("nr_periods").copied().unwrap_or(0)),
                        throttled_periods: Some(cpu_stat.get("nr_throttled").copied().unwrap_or(0)),
                        throttled_time: Some(us("throttled_usec")),
                    }),
                    ..Default::default()
                },
                memory: if usage.is_some() {
                    ContainerMemoryStats {
                        usage,
                        stats: Some(stats),
                        failcnt: Some(events.get("oom").copied().unwrap_or(0)),
                        limit: Some(cap(read(dir, "memory.max").and_then(|t| parse_limit(&t)))),
                        ..Default::default()
                    }
                } else {
                    ContainerMemoryStats::default()
                },
                pids: ContainerPidsStats {
                    current: read_u64(dir, "pids.current"),
                    limit: read(dir, "pids.max").map(|t| parse_limit(&t).unwrap_or(0)),
                },
                blkio: ContainerBlkioStats {
                    io_service_bytes_recursive: Some(
                        read(dir, "io.stat")
                            .map(|t| parse_io_stat(&t))
                            .unwrap_or_default(),
                    ),
                    ..Default::default()
                },
            }
        }
        Cgroup::V1(_) => {
            let mut u = Usage::default();
            let ticks_to_ns = |t: u64| t * 1_000_000_000 / clock_ticks();
            if let Some(dir) = cg.v1("cpuacct") {
                let stat = read(dir, "cpuacct.stat")
                    .map(|t| parse_flat_keyed(&t))
                    .unwrap_or_default();
                u.cpu.cpu_usage = Some(ContainerCpuUsage {
                    total_usage: Some(read_u64(dir, "cpuacct.usage").unwrap_or(0)),
                    percpu_usage: read(dir, "cpuacct.usage_percpu").map(|t| {
                        t.split_whitespace()
                            .filter_map(|v| v.parse().ok())
                            .collect()
                    }),
                    usage_in_kernelmode: Some(ticks_to_ns(
                        stat.get("system").copied().unwrap_or(0),
                    )),
                    usage_in_usermode: Some(ticks_to_ns(stat.get("user").copied().unwrap_or(0))),
                });
            }
            let cpu_stat = cg
                .v1("cpu")
                .and_then(|d| read(d, "cpu.stat"))
                .map(|t| parse_flat_keyed(&t))
                .unwrap_or_default();
            u.cpu.throttling_data = Some(ContainerThrottlingData {
                periods: Some(cpu_stat.get("nr_periods").copied().unwrap_or(0)),
                throttled_periods: Some(cpu_stat.get("nr_throttled").copied().unwrap_or(0)),
                throttled_time: Some(cpu_stat.get("throttled_time").copied().unwrap_or(0)),
            });
            if let Some(dir) = cg.v1("memory") {
                if let Some(usage) = read_u64(dir, "memory.usage_in_bytes") {
                    u.memory = ContainerMemoryStats {
                        usage: Some(usage),
                        max_usage: read_u64(dir, "memory.max_usage_in_bytes"),
                        failcnt: read_u64(dir, "memory.failcnt"),
                        limit: Some(cap(read_u64(dir, "memory.limit_in_bytes"))),
                        stats: Some(
                            read(dir, "memory.stat")
                                .map(|t| parse_flat_keyed(&t))
                                .unwrap_or_default(),
                        ),
                        ..Default::default()
                    };
                }
            }
            if let Some(dir) = cg.v1("pids") {
                u.pids = ContainerPidsStats {
                    current: read_u64(dir, "pids.current"),
                    limit: read(dir, "pids.max").map(|t| parse_limit(&t).unwrap_or(0)),
                };
            }
            if let Some(dir) = cg.v1("blkio") {
                // The CFQ/BFQ files when the scheduler keeps them, else the throttle layer's
                // (which counts every I/O the cgroup did), as containerd reads them.
                let list = |name: &str| {
                    let own = read(dir, &format!("blkio.{name}"))
                        .map(|t| parse_blkio_v1(&t))
                        .unwrap_or_default();
                    if own.is_empty() {
                        read(dir, &format!("blkio.throttle.{name}"))
                            .map(|t| parse_blkio_v1(&t))
                            .unwrap_or_default()
                    } else {
                        own
                    }
                };
                let only = |name: &str| {
                    read(dir, &format!("blkio.{name}"))
                        .map(|t| parse_blkio_v1(&t))
                        .unwrap_or_default()
                };
                u.blkio = ContainerBlkioStats {
                    io_service_bytes_recursive: Some(list("io_service_bytes_recursive")),
                    io_serviced_recursive: Some(list("io_serviced_recursive")),
                    io_queue_recursive: Some(only("io_queued_recursive")),
                    io_service_time_recursive: Some(only("io_service_time_recursive")),
                    io_wait_time_recursive: Some(only("io_wait_time_recursive")),
                    io_merged_recursive: Some(only("io_merged_recursive")),
                    io_time_recursive: Some(only("time_recursive")),
                    sectors_recursive: Some(only("sectors_recursive")),
                };
            }
            u
        }
    }
}

/// The memory a cgroup uses now (for error messages).
pub(crate) fn memory_usage(cg: &Cgroup) -> Option<u64> {
    match cg {
        Cgroup::V2(dir) => read_u64(dir, "memory.current"),
        Cgroup::V1(_) => cg
            .v1("memory")
            .and_then(|d| read_u64(d, "memory.usage_in_bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_dirs_per_controller() {
        let own = "9:name=systemd:/\n8:pids:/berth/abc\n4:memory:/berth/abc\n2:cpu,cpuacct:/berth/abc\n0::/\n";
        let Some(Cgroup::V1(dirs)) = locate(own, MOUNTINFO_HYBRID, false) else {
            panic!("no v1 cgroup")
        };
        assert_eq!(dirs["memory"], Path::new("/sys/fs/cgroup/memory/berth/abc"));
        assert_eq!(
            dirs["cpu"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
        );
        assert_eq!(dirs["cpuacct"], dirs["cpu"]);
        assert_eq!(dirs["pids"], Path::new("/sys/fs/cgroup/pids/berth/abc"));
    }

    #[test]
    fn finds_the_v2_dir_also_under_a_bind_mounted_subtree() {
        let mi = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            locate("0::/system.slice/berth-abc.scope\n", mi, true),
            Some(Cgroup::V2(
                "/sys/fs/cgroup/system.slice/berth-abc.scope".into()
            ))
        );
        let mi = "29 23 0:26 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate("0::/outer/berth/x\n", mi, true),
            Some(Cgroup::V2("/sys/fs/cgroup/berth/x".into()))
        );
        assert_eq!(locate("0::/elsewhere/x\n", mi, true), None);
        assert_eq!(
            locate("0::/../x\n", mi.replace("/outer", "/").as_str(), true),
            None
        );
    }

    #[test]
    fn proc_stat_like_docker() {
        let text = "cpu  100 5 50 1000 10 1 2 7 0 0\ncpu0 50 2 25 500 5 0 1 0 0 0\ncpu1 50 3 25 500 5 1 1 0 0 0\nintr 1\n";
        // user..softirq = 1168 ticks at 100 Hz.
        assert_eq!(parse_proc_stat(text, 100), (11_680_000_000, 2));
    }

    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn reads_v2_files() {
        let d = fixture(&[
            ("cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 30\n"),
            ("memory.current", "52953088\n"),
            ("memory.max", "max\n"),
            ("memory.stat", "anon 1048576\nfile 52428800\nshmem 52428800\ninactive_file 4096\n"),
            ("memory.events", "low 0\nhigh 0\nmax 0\noom 2\noom_kill 1\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
        ]);
        let u = usage(&Cgroup::V2(d.path().into()), 8 << 30);
        let cpu = u.cpu.cpu_usage.unwrap();
        assert_eq!(cpu.total_usage, Some(2_500_000));
        assert_eq!(cpu.usage_in_usermode, Some(2_000_000));
        assert_eq!(cpu.usage_in_kernelmode, Some(500_000));
        assert_eq!(cpu.percpu_usage, None, "v2 has no per-CPU usage");
        let t = u.cpu.throttling_data.unwrap();
        assert_eq!(
            (t.periods, t.throttled_periods, t.throttled_time),
            (Some(4), Some(1), Some(30_000))
        );
        assert_eq!(u.memory.usage, Some(52_953_088));
        assert_eq!(
            u.memory.limit,
            Some(8 << 30),
            "unlimited shows the host's memory"
        );
        assert_eq!(u.memory.max_usage, None);
        assert_eq!(u.memory.failcnt, Some(2));
        assert_eq!(u.memory.stats.as_ref().unwrap()["inactive_file"], 4096);
        assert_eq!((u.pids.current, u.pids.limit), (Some(3), Some(0)));
        let io = u.blkio.io_service_bytes_recursive.unwrap();
        assert_eq!(io.len(), 2);
        assert_eq!(
            (io[0].op.as_deref(), io[0].value),
            (Some("read"), Some(4096))
        );
        assert_eq!(
            (io[1].op.as_deref(), io[1].value),
            (Some("write"), Some(8192))
        );
        assert_eq!(u.blkio.io_serviced_recursive, None, "v2 reports bytes only");
    }

    #[test]
    fn reads_v1_files() {
        let d = fixture(&[
            ("cpuacct.usage", "3000000\n"),
            ("cpuacct.usage_percpu", "1000000 2000000 \n"),
            ("cpuacct.stat", "user 20\nsystem 10\n"),
            ("cpu.stat", "nr_periods 5\nnr_throttled 2\nthrottled_time 700\n"),
            ("memory.usage_in_bytes", "104857600\n"),
            ("memory.max_usage_in_bytes", "209715200\n"),
            ("memory.failcnt", "0\n"),
            ("memory.limit_in_bytes", "134217728\n"),
            ("memory.stat", "cache 52428800\nrss 1048576\ntotal_inactive_file 8192\n"),
            ("pids.current", "2\n"),
            ("pids.max", "20\n"),
            ("blkio.io_service_bytes_recursive", "Total 0\n"),
            ("blkio.throttle.io_service_bytes_recursive", "8:0 Read 512\n8:0 Write 1024\n8:0 Sync 0\n8:0 Async 1536\n8:0 Total 1536\nTotal 1536\n"),
        ]);
        let dirs = ["cpu", "cpuacct", "memory", "pids", "blkio"]
            .iter()
            .map(|c| (c.to_string(), d.path().to_path_buf()))
            .collect();
        let u = usage(&Cgroup::V1(dirs), 8 << 30);
        let cpu = u.cpu.cpu_usage.unwrap();
        assert_eq!(cpu.total_usage, Some(3_000_000));
        assert_eq!(cpu.percpu_usage, Some(vec![1_000_000, 2_000_000]));
        let tick = 1_000_000_000 / clock_ticks();
        assert_eq!(cpu.usage_in_usermode, Some(20 * tick));
        assert_eq!(cpu.usage_in_kernelmode, Some(10 * tick));
        assert_eq!(u.cpu.throttling_data.unwrap().throttled_time, Some(700));
        assert_eq!(u.memory.usage, Some(104_857_600));
        assert_eq!(u.memory.max_usage, Some(209_715_200));
        assert_eq!(u.memory.limit, Some(134_217_728));
        assert_eq!(u.memory.stats.unwrap()["total_inactive_file"], 8192);
        assert_eq!((u.pids.current, u.pids.limit), (Some(2), Some(20)));
        let io = u.blkio.io_service_bytes_recursive.unwrap();
        assert_eq!(io.len(), 5, "the Total line is not a device's");
        assert_eq!(
            (io[1].op.as_deref(), io[1].value),
            (Some("Write"), Some(1024))
        );
    }

    /// The v2 reader on the kernel's own files: a cgroup made on this host's v2 hierarchy
    /// (the whole of it on a v2 host, the `unified` one on a hybrid v1 host, where it holds
    /// few controllers: what it lacks is not checked).
    #[test]
    fn reads_a_real_v2_cgroup() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(point) = cgroup_mounts(&mounts)
            .into_iter()
            .find(|m| m.v2 && m.root == "/")
            .map(|m| PathBuf::from(m.point))
        else {
            return;
        };
        let dir = point.join(format!("berth-stats-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 100",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let moved = std::fs::write(dir.join("cgroup.procs"), pid.to_string());
        // Start the work only once it is in the cgroup.
        use std::io::Write as _;
        let _ = child.stdin.take().unwrap().write_all(b"go\n");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            moved.unwrap();
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            assert_eq!(locate(&own, &mounts, true), Some(Cgroup::V2(dir.clone())));
            let u = usage(&Cgroup::V2(dir.clone()), machine_memory());
            let cpu = u.cpu.cpu_usage.unwrap();
            assert!(cpu.total_usage.unwrap() > 0, "{cpu:?}");
            assert!(cpu.usage_in_usermode.unwrap() + cpu.usage_in_kernelmode.unwrap() > 0);
            if dir.join("memory.current").exists() {
                assert!(u.memory.usage.unwrap() > 0);
                assert!(u.memory.stats.unwrap().contains_key("anon"));
            }
            if dir.join("pids.current").exists() {
                assert!(u.pids.current.unwrap() >= 1);
            }
        }));
        let _ = child.kill();
        let _ = child.wait();
        // Anything else still in it goes too, then the cgroup.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for p in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if std::fs::remove_dir(&dir).is_ok() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}

//! `docker stats`: a sample of what a container uses, in Docker's stats JSON, read from its
//! cgroup (v1 or v2, see `cgroups`) and its network namespace's `/proc/<pid>/net/dev`.

use std::collections::HashMap;

use crate::error::EngineError;
use berth_api::usage::{UsageBackend, ZERO_TIME};
use bollard_stubs::models::{
    ContainerBlkioStats, ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats,
    ContainerPruneResponse, ContainerStatsResponse, ContainerStorageStats,
};

use crate::cgroups::{self, Cgroup};
use crate::Engine;
use berth_api::BackendResult;

/// `/proc/<pid>/net/dev` as Docker's `networks`: every interface but the loopback.
fn parse_net_dev(text: &str) -> HashMap<String, ContainerNetworkStats> {
    let mut out = HashMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_owned(),
            ContainerNetworkStats {
                rx_bytes: Some(v[0]),
                rx_packets: Some(v[1]),
                rx_errors: Some(v[2]),
                rx_dropped: Some(v[3]),
                tx_bytes: Some(v[8]),
                tx_packets: Some(v[9]),
                tx_errors: Some(v[10]),
                tx_dropped: Some(v[11]),
                ..Default::default()
            },
        );
    }
    out
}

/// The interfaces of `pid`'s network namespace, when it has its own (a container on the
/// host's network reports none, as in Docker).
fn networks(pid: i64) -> Option<HashMap<String, ContainerNetworkStats>> {
    let own = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let host = std::fs::read_link("/proc/self/ns/net").ok()?;
    if own == host {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text)).filter(|n| !n.is_empty())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The sample of a container that does not run: its name and ID, zero figures.
fn empty(id: &str, name: &str) -> ContainerStatsResponse {
    ContainerStatsResponse {
        id: Some(id.to_owned()),
        name: Some(format!("/{name}")),
        read: Some(ZERO_TIME.to_owned()),
        cpu_stats: Some(berth_api::usage::zero_cpu()),
        memory_stats: Some(ContainerMemoryStats::default()),
        pids_stats: Some(ContainerPidsStats::default()),
        blkio_stats: Some(ContainerBlkioStats::default()),
        num_procs: Some(0),
        storage_stats: Some(ContainerStorageStats::default()),
        ..Default::default()
    }
}

impl Engine {
    fn stats_sample(&self, key: &str) -> Result<(ContainerStatsResponse, bool), EngineError> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        if !st.running() {
            return Ok((empty(&rec.id, &rec.name), false));
        }
        let Some(cg) = Cgroup::of_pid(st.pid) else {
            // The init is gone this moment: the next look will see the container stopped.
            return Ok((empty(&rec.id, &rec.name), false));
        };
        let (system, cpus) = cgroups::system_cpu();
        let read = now();
        let u = cgroups::usage(&cg, cgroups::machine_memory());
        let mut cpu = u.cpu;
        cpu.system_cpu_usage = Some(system);
        cpu.online_cpus = Some(cpus);
        Ok((
            ContainerStatsResponse {
                id: Some(rec.id.clone()),
                name: Some(format!("/{}", rec.name)),
                read: Some(read),
                cpu_stats: Some(cpu),
                memory_stats: Some(u.memory),
                networks: networks(st.pid),
                pids_stats: Some(u.pids),
                blkio_stats: Some(u.blkio),
                num_procs: Some(0),
                storage_stats: Some(ContainerStorageStats::default()),
                ..Default::default()
            },
            true,
        ))
    }
}

impl UsageBackend for Engine {
    fn container_stats(&self, id: &str) -> BackendResult<(ContainerStatsResponse, bool)> {
        Ok(self.stats_sample(id)?)
    }
    fn update_container(
        &self,
        id: &str,
        body: bollard_stubs::models::ContainerUpdateBody,
    ) -> BackendResult<Vec<String>> {
        Ok(self.update_resources(id, &body)?)
    }
    fn prune_containers(
        &self,
        filters: berth_core::filters::Filters,
    ) -> BackendResult<ContainerPruneResponse> {
        Ok(self.prune_stopped(&filters)?)
    }
    fn disk_usage(&self, types: Vec<String>) -> BackendResult<berth_api::usage::DiskUsage> {
        Ok(self.system_df(&types)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_without_the_loopback() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0
";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (Some(1296), Some(16), Some(1), Some(2))
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (Some(726), Some(9), Some(3), Some(4))
        );
    }
}

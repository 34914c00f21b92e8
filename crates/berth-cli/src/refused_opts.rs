//! `run`/`create` flags of Docker's for settings berth's engine does not apply. They are
//! accepted by the parser, so that a docker command line is understood, and refused before
//! anything is sent, naming the flag: a setting the user asked for is never silently lost
//! (the engine would store these fields and go on without them). A value that asks for
//! nothing (`--blkio-weight 0`, `--volume-driver local`, `--cgroup-parent ""`) is let through.

use clap::Args;

// Docker's flags whose settings berth does not apply (a plain comment: a doc comment would
// replace the help text of the subcommands that flatten it, as their augmentation comes last).
#[derive(Args, Debug, Clone, Default)]
pub struct RefusedOpts {
    /// Add an annotation to the container (passed through to the OCI runtime) [not supported
    /// by berth].
    #[arg(long = "annotation", value_name = "map")]
    pub annotation: Vec<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable [not supported by
    /// berth].
    #[arg(long = "blkio-weight", value_name = "uint16")]
    pub blkio_weight: Option<String>,
    /// Block IO weight (relative device weight) [not supported by berth].
    #[arg(long = "blkio-weight-device", value_name = "list")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device [not supported by berth].
    #[arg(long = "device-read-bps", value_name = "list")]
    pub device_read_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device [not supported by berth].
    #[arg(long = "device-read-iops", value_name = "list")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (bytes per second) to a device [not supported by berth].
    #[arg(long = "device-write-bps", value_name = "list")]
    pub device_write_bps: Vec<String>,
    /// Limit write rate (IO per second) to a device [not supported by berth].
    #[arg(long = "device-write-iops", value_name = "list")]
    pub device_write_iops: Vec<String>,
    /// Optional parent cgroup for the container [not supported by berth].
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Limit CPU real-time period in microseconds [not supported by berth].
    #[arg(long = "cpu-rt-period", value_name = "int")]
    pub cpu_rt_period: Option<String>,
    /// Limit CPU real-time runtime in microseconds [not supported by berth].
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    pub cpu_rt_runtime: Option<String>,
    /// Kernel memory limit [not supported by berth].
    #[arg(long = "kernel-memory", value_name = "bytes")]
    pub kernel_memory: Option<String>,
    /// Container NIS domain name [not supported by berth].
    #[arg(long = "domainname", value_name = "string")]
    pub domainname: Option<String>,
    /// Storage driver options for the container [not supported by berth].
    #[arg(long = "storage-opt", value_name = "list")]
    pub storage_opt: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs) [not supported by berth].
    #[arg(long = "gpus", value_name = "gpu-request")]
    pub gpus: Option<String>,
    /// Optional volume driver for the container (berth has "local" only).
    #[arg(long = "volume-driver", value_name = "string")]
    pub volume_driver: Option<String>,
    /// Container IPv4/IPv6 link-local addresses [not supported by berth].
    #[arg(long = "link-local-ip", value_name = "list")]
    pub link_local_ip: Vec<String>,
    /// Bind mount Docker API socket and required auth [not supported by berth].
    #[arg(long = "use-api-socket")]
    pub use_api_socket: bool,
    /// CPU count (Windows only).
    #[arg(long = "cpu-count", value_name = "int")]
    pub cpu_count: Option<String>,
    /// CPU percent (Windows only).
    #[arg(long = "cpu-percent", value_name = "int")]
    pub cpu_percent: Option<String>,
    /// Maximum IO bandwidth limit for the system drive (Windows only).
    #[arg(long = "io-maxbandwidth", value_name = "bytes")]
    pub io_maxbandwidth: Option<String>,
    /// Maximum IOps limit for the system drive (Windows only).
    #[arg(long = "io-maxiops", value_name = "uint")]
    pub io_maxiops: Option<String>,
}

/// Whether a number flag's value asks for nothing (0, as Docker's default).
fn zero(value: &str) -> bool {
    value
        .trim_start_matches(['+', '-'])
        .trim_start_matches('0')
        .is_empty()
        || berth_core::humanize::parse_ram_bytes(value) == Some(0)
}

impl RefusedOpts {
    /// The first flag given that asks for something berth does not do, as an error line.
    pub fn check(&self) -> Result<(), String> {
        let refused = |flag: &str| {
            Err(format!(
                "the {flag} flag is not supported by berth: its engine does not apply that setting"
            ))
        };
        let windows = |flag: &str| {
            Err(format!(
                "\"{flag}\" is only supported on a Docker daemon running on windows, but the berth daemon is running on linux"
            ))
        };
        for (flag, list) in [
            ("--annotation", &self.annotation),
            ("--blkio-weight-device", &self.blkio_weight_device),
            ("--device-read-bps", &self.device_read_bps),
            ("--device-read-iops", &self.device_read_iops),
            ("--device-write-bps", &self.device_write_bps),
            ("--device-write-iops", &self.device_write_iops),
            ("--storage-opt", &self.storage_opt),
            ("--link-local-ip", &self.link_local_ip),
        ] {
            if !list.is_empty() {
                return refused(flag);
            }
        }
        for (flag, value) in [
            ("--blkio-weight", &self.blkio_weight),
            ("--cpu-rt-period", &self.cpu_rt_period),
            ("--cpu-rt-runtime", &self.cpu_rt_runtime),
            ("--kernel-memory", &self.kernel_memory),
        ] {
            if value.as_deref().is_some_and(|v| !zero(v)) {
                return refused(flag);
            }
        }
        for (flag, value) in [
            ("--cgroup-parent", &self.cgroup_parent),
            ("--domainname", &self.domainname),
            ("--gpus", &self.gpus),
        ] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                return refused(flag);
            }
        }
        if self
            .volume_driver
            .as_deref()
            .is_some_and(|d| !matches!(d, "" | "local"))
        {
            return Err(format!(
                "the --volume-driver flag is not supported by berth: volume driver {:?} is not supported: berth has \"local\"",
                self.volume_driver.as_deref().unwrap_or_default()
            ));
        }
        if self.use_api_socket {
            return refused("--use-api-socket");
        }
        for (flag, value) in [
            ("--cpu-count", &self.cpu_count),
            ("--cpu-percent", &self.cpu_percent),
            ("--io-maxbandwidth", &self.io_maxbandwidth),
            ("--io-maxiops", &self.io_maxiops),
        ] {
            if value.as_deref().is_some_and(|v| !zero(v)) {
                return windows(flag);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_berth_does_not_apply_are_refused_by_name() {
        assert!(RefusedOpts::default().check().is_ok());
        let with = |change: fn(&mut RefusedOpts)| {
            let mut o = RefusedOpts::default();
            change(&mut o);
            o.check()
        };
        let e = with(|o| o.blkio_weight = Some("500".into())).unwrap_err();
        assert!(e.contains("--blkio-weight flag is not supported"), "{e}");
        assert!(with(|o| o.blkio_weight = Some("0".into())).is_ok());
        assert!(with(|o| o.kernel_memory = Some("0".into())).is_ok());
        let e = with(|o| o.kernel_memory = Some("4m".into())).unwrap_err();
        assert!(e.contains("--kernel-memory"), "{e}");
        let e = with(|o| o.storage_opt = vec!["size=1G".into()]).unwrap_err();
        assert!(e.contains("--storage-opt"), "{e}");
        let e = with(|o| o.domainname = Some("example.org".into())).unwrap_err();
        assert!(e.contains("--domainname"), "{e}");
        assert!(with(|o| o.volume_driver = Some("local".into())).is_ok());
        let e = with(|o| o.volume_driver = Some("nfs".into())).unwrap_err();
        assert!(
            e.contains("--volume-driver") && e.contains("\"nfs\""),
            "{e}"
        );
        let e = with(|o| o.cpu_count = Some("2".into())).unwrap_err();
        assert!(
            e.starts_with(
                "\"--cpu-count\" is only supported on a Docker daemon running on windows"
            ),
            "{e}"
        );
        let e = with(|o| o.use_api_socket = true).unwrap_err();
        assert!(e.contains("--use-api-socket"), "{e}");
    }
}

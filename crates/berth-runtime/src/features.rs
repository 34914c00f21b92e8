//! `features`: what this runtime supports, in the OCI runtime-spec features.json shape.

use serde_json::{json, Value};

use crate::spec::caps;
use crate::spec::seccomp::host_arch_family;

pub fn features() -> Value {
    let capabilities: Vec<String> = caps::ALL.iter().map(|c| format!("CAP_{c}")).collect();
    let archs: Vec<String> = host_arch_family()
        .iter()
        .map(|a| match *a {
            "amd64" => "SCMP_ARCH_X86_64",
            "x86" => "SCMP_ARCH_X86",
            "x32" => "SCMP_ARCH_X32",
            "arm64" => "SCMP_ARCH_AARCH64",
            "arm" => "SCMP_ARCH_ARM",
            "s390x" => "SCMP_ARCH_S390X",
            "s390" => "SCMP_ARCH_S390",
            "ppc64le" => "SCMP_ARCH_PPC64LE",
            "riscv64" => "SCMP_ARCH_RISCV64",
            other => other,
        })
        .map(str::to_owned)
        .collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync",
            "exec", "iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime",
            "noexec", "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime",
            "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime", "relatime",
            "remount", "rexec", "rnoatime", "rnodev", "rnodiratime", "rnoexec", "rnorelatime",
            "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro",
            "rrw", "rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable",
            "rw", "shared", "silent", "slave", "strictatime", "suid", "symfollow", "sync",
            "tmpcopyup", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities,
            "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                    "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": archs
            },
            "apparmor": { "enabled": true },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": true }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.runtime": "berth-runtime",
            "io.github.berth.runtime.libcontainer": "0.7",
            "io.github.berth.runtime.version": env!("CARGO_PKG_VERSION")
        }
    })
}

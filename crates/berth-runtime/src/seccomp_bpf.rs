//! Seccomp filters compiled once: an OCI profile is turned into a BPF program with libseccomp
//! and kept under the state root by the hash of the profile, so that a container start loads
//! a ready program with one `seccomp(2)` call instead of building it again (building Docker's
//! profile for x86_64 plus its 32-bit ABI takes libseccomp about 3 ms, a fifth of a start).
//!
//! The translation follows the OCI runtime spec the way libcontainer's does (same actions,
//! operators, architectures, and one rule per comparison when an argument index repeats).

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FilterError {
    #[error("seccomp profile: {0}")]
    Profile(String),
    #[error("libseccomp: {0}")]
    Libseccomp(#[from] libseccomp::error::SeccompError),
    #[error("seccomp filter cache {0}: {1}")]
    Cache(PathBuf, std::io::Error),
}

/// A BPF program ready for `seccomp(SECCOMP_SET_MODE_FILTER)` and the flags to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    /// `struct sock_filter` entries, 8 bytes each, in host byte order.
    pub program: Vec<u8>,
    pub flags: libc::c_ulong,
}

/// Whether the profile hands syscalls to a user-space agent (those need libcontainer's own
/// listener plumbing, so they are not precompiled).
pub fn uses_notify(filter: &LinuxSeccomp) -> bool {
    filter.default_action() == LinuxSeccompAction::ScmpActNotify
        || filter
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

fn arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, FilterError> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno)
                .map_err(|_| FilterError::Profile(format!("trace value {errno} out of range")))?,
        ),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn operator(op: LinuxSeccompOperator, second: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(second.unwrap_or(0)),
    }
}

/// The `seccomp(2)` flags the profile asks for.
fn load_flags(filter: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for flag in filter.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with a notify listener, which precompiled filters never have.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    flags
}

/// Compiles `filter` with libseccomp. Syscall names this architecture does not know are
/// skipped, as runtimes do (profiles list names of every architecture).
pub fn compile(filter: &LinuxSeccomp) -> Result<CompiledFilter, FilterError> {
    if uses_notify(filter) {
        return Err(FilterError::Profile(
            "SCMP_ACT_NOTIFY profiles are not precompiled".into(),
        ));
    }
    let default = action(filter.default_action(), filter.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default)?;
    for a in filter.architectures().iter().flatten() {
        ctx.add_arch(arch(*a))?;
    }
    // The caller decides about no_new_privs; the program itself must not depend on it.
    ctx.set_ctl_nnp(false)?;
    for rule in filter.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            match rule.args() {
                None => {
                    ctx.add_rule(act, sc)?;
                }
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| {
                            ScmpArgCompare::new(
                                a.index() as u32,
                                operator(a.op(), a.value_two()),
                                a.value(),
                            )
                        })
                        .collect();
                    let mut seen = HashSet::new();
                    let repeated = args.iter().any(|a| !seen.insert(a.index()));
                    if repeated {
                        // libseccomp compares each argument once per rule: one rule each.
                        for cmp in &cmps {
                            ctx.add_rule_conditional(act, sc, std::slice::from_ref(cmp))?;
                        }
                    } else {
                        ctx.add_rule_conditional(act, sc, &cmps)?;
                    }
                }
            }
        }
    }
    let mut file = memfd("berth-seccomp")?;
    ctx.export_bpf(&file)?;
    let mut program = Vec::new();
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut program))
        .map_err(|e| FilterError::Cache(PathBuf::from("memfd"), e))?;
    if program.is_empty() || program.len() % 8 != 0 {
        return Err(FilterError::Profile(format!(
            "libseccomp produced a {}-byte program",
            program.len()
        )));
    }
    Ok(CompiledFilter {
        program,
        flags: load_flags(filter),
    })
}

fn memfd(name: &str) -> Result<std::fs::File, FilterError> {
    let cname = std::ffi::CString::new(name).expect("no NUL in name");
    nix::sys::memfd::memfd_create(&cname, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| FilterError::Cache(PathBuf::from("memfd"), e.into()))
}

/// The cache key: the profile as JSON, the libseccomp version, the host architecture and the
/// kernel release (libseccomp adapts some actions to what the kernel supports).
fn key(filter: &LinuxSeccomp) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(filter).unwrap_or_default());
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    h.update(v.as_bytes());
    h.update(std::env::consts::ARCH.as_bytes());
    if let Ok(uts) = nix::sys::utsname::uname() {
        h.update(uts.release().as_encoded_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The compiled program for `filter`, from `cache_dir` when it was built before. A cache
/// entry is written with `write_atomic`, so readers see whole files.
pub fn cached(cache_dir: &Path, filter: &LinuxSeccomp) -> Result<CompiledFilter, FilterError> {
    let flags = load_flags(filter);
    let path = cache_dir.join(format!("{}.bpf", key(filter)));
    if let Ok(program) = std::fs::read(&path) {
        if !program.is_empty() && program.len() % 8 == 0 {
            return Ok(CompiledFilter { program, flags });
        }
    }
    let compiled = compile(filter)?;
    let cache_err = |e| FilterError::Cache(cache_dir.to_path_buf(), e);
    std::fs::create_dir_all(cache_dir).map_err(cache_err)?;
    berth_core::fs::write_atomic(&path, &compiled.program).map_err(cache_err)?;
    Ok(compiled)
}

/// Installs `filter` on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(filter: &CompiledFilter) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: (filter.program.len() / 8) as libc::c_ushort,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` whole sock_filter entries owned by `filter`, which
    // outlives the call; the kernel copies the program before returning.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker() -> LinuxSeccomp {
        crate::spec::seccomp::docker_default(&HashSet::new())
    }

    #[test]
    fn compiles_docker_default_deterministically() {
        let a = compile(&docker()).unwrap();
        let b = compile(&docker()).unwrap();
        assert_eq!(a, b);
        assert!(a.program.len() > 8 * 100, "{} bytes", a.program.len());
    }

    #[test]
    fn cache_round_trips_and_keys_by_profile() {
        let dir = tempfile::tempdir().unwrap();
        let first = cached(dir.path(), &docker()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let again = cached(dir.path(), &docker()).unwrap();
        assert_eq!(first, again);
        let admin =
            crate::spec::seccomp::docker_default(&[oci_spec::runtime::Capability::SysAdmin].into());
        let other = cached(dir.path(), &admin).unwrap();
        assert_ne!(first.program, other.program);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn notify_profiles_are_left_to_libcontainer() {
        let mut p = docker();
        let mut rules = p.syscalls().clone().unwrap();
        rules.push(
            oci_spec::runtime::LinuxSyscallBuilder::default()
                .names(vec!["mkdir".to_owned()])
                .action(LinuxSeccompAction::ScmpActNotify)
                .build()
                .unwrap(),
        );
        p.set_syscalls(Some(rules));
        assert!(uses_notify(&p));
        assert!(compile(&p).is_err());
    }
}

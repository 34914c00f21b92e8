//! Docker's default seccomp profile, expressed as our own rule table.
//!
//! The profile is an allow-list: anything not listed fails with EPERM. Some syscalls are allowed
//! only when the container holds a capability (e.g. `mount` with CAP_SYS_ADMIN), some only on
//! certain architectures, and a few only with particular arguments (`personality`, `clone`
//! without namespace flags, `socket` for every family but AF_VSOCK). [`docker_default`] turns
//! the table into the OCI form for a given capability set and the host architecture, the way
//! Docker does when it creates a container.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// EPERM: what a denied syscall returns.
const EPERM: u32 = 1;
/// ENOSYS: what `clone3` returns without CAP_SYS_ADMIN, so that libc falls back to `clone`,
/// whose flags the filter can inspect.
const ENOSYS: u32 = 38;
/// All `CLONE_NEW*` namespace flags; `clone` is allowed only when none is set.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
const AF_VSOCK: u64 = 40;

/// Always allowed on every architecture (names unknown to an architecture are skipped).
const ALWAYS: &str = "
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create memfd_secret mincore
mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select
semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
process_vm_readv process_vm_writev ptrace
";

/// Allowed only on some architectures (Go's GOARCH names, as Docker's profile uses them).
const BY_ARCH: &[(&[&str], &str)] = &[
    (&["ppc64le"], "sync_file_range2 swapcontext"),
    (
        &["arm", "arm64"],
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (&["amd64", "x32"], "arch_prctl"),
    (&["amd64", "x32", "x86"], "modify_ldt"),
    (
        &["s390", "s390x"],
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ),
    (&["riscv64"], "riscv_flush_icache"),
];

/// Allowed only when the container holds the capability.
const BY_CAPABILITY: &[(Capability, &str)] = &[
    (Capability::DacReadSearch, "open_by_handle_at"),
    (
        Capability::SysAdmin,
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount umount2 unshare",
    ),
    (Capability::SysBoot, "reboot"),
    (Capability::SysChroot, "chroot"),
    (
        Capability::SysModule,
        "delete_module init_module finit_module",
    ),
    (Capability::SysPacct, "acct"),
    (
        Capability::SysPtrace,
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    (Capability::SysRawio, "iopl ioperm"),
    (
        Capability::SysTime,
        "settimeofday stime clock_settime clock_settime64",
    ),
    (Capability::SysTtyConfig, "vhangup"),
    (
        Capability::SysNice,
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    (Capability::Syslog, "syslog"),
    (Capability::Bpf, "bpf"),
    (Capability::Perfmon, "perf_event_open"),
];

/// `personality` is allowed for these personas only: PER_LINUX, PER_LINUX32, UNAME26,
/// UNAME26|PER_LINUX32, and the query value 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The host architecture in Go's naming, with the 32-bit/compat ABIs the kernel also runs
/// (a filter must cover them or a 32-bit binary could bypass it).
pub fn host_arch_family() -> &'static [&'static str] {
    match std::env::consts::ARCH {
        "x86_64" => &["amd64", "x86", "x32"],
        "x86" => &["x86"],
        "aarch64" => &["arm64", "arm"],
        "arm" => &["arm"],
        "s390x" => &["s390x", "s390"],
        "powerpc64" => &["ppc64le"],
        "riscv64" => &["riscv64"],
        _ => &[],
    }
}

/// The seccomp architectures a filter on this host must cover. x32 is left out when the
/// kernel cannot run x32 code at all (see [`crate::host::kernel_runs_x32`]).
pub fn seccomp_arches() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" if !crate::host::kernel_runs_x32() => {
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]
        }
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "x86" => vec![Arch::ScmpArchX86],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "powerpc64" => vec![Arch::ScmpArchPpc64le],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => vec![],
    }
}

/// Removes from a filter the architectures this kernel cannot execute (x32 on most kernels).
pub fn drop_dead_arches(filter: &mut LinuxSeccomp) {
    if crate::host::kernel_runs_x32() {
        return;
    }
    let arches: Option<Vec<Arch>> = filter.architectures().as_ref().map(|a| {
        a.iter()
            .copied()
            .filter(|a| *a != Arch::ScmpArchX32)
            .collect()
    });
    filter.set_architectures(arches);
}

fn names(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

fn allow(list: &str) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names(list))
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()
        .expect("static seccomp rule is complete")
}

fn allow_if_arg(name: &str, index: usize, op: LinuxSeccompOperator, value: u64) -> LinuxSyscall {
    let arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op)
        .build()
        .expect("static seccomp argument is complete");
    LinuxSyscallBuilder::default()
        .names(vec![name.to_owned()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![arg])
        .build()
        .expect("static seccomp rule is complete")
}

/// Docker's default profile for a container that holds `caps` (its bounding set).
pub fn docker_default(caps: &HashSet<Capability>) -> LinuxSeccomp {
    let arch = host_arch_family();
    let on_arch = |list: &[&str]| list.iter().any(|a| arch.contains(a));
    let is_s390 = on_arch(&["s390", "s390x"]);

    let mut rules = vec![allow(ALWAYS)];
    rules.push(allow_if_arg(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpNe,
        AF_VSOCK,
    ));
    for &persona in PERSONALITIES {
        rules.push(allow_if_arg(
            "personality",
            0,
            LinuxSeccompOperator::ScmpCmpEq,
            persona,
        ));
    }
    for (arches, list) in BY_ARCH {
        if on_arch(arches) {
            rules.push(allow(list));
        }
    }
    for (cap, list) in BY_CAPABILITY {
        if caps.contains(cap) {
            rules.push(allow(list));
        }
    }
    if !caps.contains(&Capability::SysAdmin) {
        // clone's flags are its first argument, except on s390 where they are the second.
        let flags_arg: usize = if is_s390 { 1 } else { 0 };
        let arg = LinuxSeccompArgBuilder::default()
            .index(flags_arg)
            .value(CLONE_NAMESPACE_FLAGS)
            .value_two(0u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("static seccomp argument is complete");
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_owned()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![arg])
                .build()
                .expect("static seccomp rule is complete"),
        );
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_owned()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(ENOSYS)
                .build()
                .expect("static seccomp rule is complete"),
        );
    }

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(seccomp_arches())
        .syscalls(rules)
        .build()
        .expect("static seccomp profile is complete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(profile: &LinuxSeccomp, name: &str) -> bool {
        profile.syscalls().as_ref().unwrap().iter().any(|r| {
            r.action() == LinuxSeccompAction::ScmpActAllow
                && r.args().is_none()
                && r.names().iter().any(|n| n == name)
        })
    }

    #[test]
    fn denies_by_default_with_eperm() {
        let p = docker_default(&HashSet::new());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert!(allowed(&p, "read"));
        assert!(allowed(&p, "execve"));
        for denied in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "mount",
            "reboot",
        ] {
            assert!(!allowed(&p, denied), "{denied} must be denied");
        }
    }

    #[test]
    fn capabilities_widen_the_list() {
        let caps: HashSet<_> = [Capability::SysAdmin, Capability::SysTime].into();
        let p = docker_default(&caps);
        assert!(allowed(&p, "mount"));
        assert!(allowed(&p, "unshare"));
        assert!(allowed(&p, "clock_settime"));
        assert!(!allowed(&p, "reboot"));
        // With CAP_SYS_ADMIN clone is unconditional and clone3 is not stubbed out.
        let rules = p.syscalls().as_ref().unwrap();
        assert!(!rules.iter().any(|r| r.names() == &["clone3".to_owned()]
            && r.action() == LinuxSeccompAction::ScmpActErrno));
    }

    #[test]
    fn clone_is_restricted_without_sys_admin() {
        let p = docker_default(&HashSet::new());
        let rules = p.syscalls().as_ref().unwrap();
        let clone = rules
            .iter()
            .find(|r| r.names() == &["clone".to_owned()])
            .expect("clone rule");
        let arg = &clone.args().as_ref().unwrap()[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(arg.value(), CLONE_NAMESPACE_FLAGS);
        assert!(rules
            .iter()
            .any(|r| r.names() == &["clone3".to_owned()] && r.errno_ret() == Some(ENOSYS)));
    }
}

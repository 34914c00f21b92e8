//! The device cgroup of cgroup v2: an eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`) attached to
//! the container's cgroup, which the kernel asks before every open and mknod of a device node.
//! cgroup v1 has a `devices` controller that libcontainer writes the spec's rules to; on v2
//! libcontainer 0.7 only does it with a feature berth does not build (it needs libbpf), so
//! without this a container on a v2 host could open any device it can name: with Docker's
//! CAP_MKNOD, `mknod /dev/sda b 8 0` and read the host's disk.
//!
//! The program is the spec's `linux.resources.devices` compiled by hand: the rules are tried
//! last first, the first that matches decides, and nothing matching means deny. An allow rule
//! matches an access it covers whole (`rwm` covers `rw`); a deny rule matches an access it
//! touches at all (denying `w` denies `rw`), which is what the v1 controller's list does.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One eBPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_MOV_X: u8 = 0xbc; // dst = src (32 bits)
const ALU32_AND_K: u8 = 0x54; // dst &= imm
const ALU32_RSH_K: u8 = 0x74; // dst >>= imm
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto +off
const JMP_JEQ_K: u8 = 0x15; // if dst == imm goto +off
const JMP_EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx: access_type (type | access << 16), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Registers: r1 the context; r3 type, r4 access, r5 major, r6 minor, r7 scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

fn access_bits(access: Option<&str>) -> i32 {
    access.unwrap_or("rwm").chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The checks of one rule, each jumping to the next rule when it fails, then the verdict.
fn rule_block(rule: &LinuxDeviceCgroup) -> Option<Vec<Insn>> {
    let typ = match rule.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        // FIFOs are no device the device cgroup is asked about.
        Some(LinuxDeviceType::P) => return None,
    };
    let access = access_bits(rule.access().as_deref());
    let allow = rule.allow();
    if access == 0 {
        return None;
    }
    // (instruction, whether it jumps to the next rule)
    let mut checks: Vec<(Insn, bool)> = Vec::new();
    if let Some(t) = typ {
        checks.push((insn(JMP_JNE_K, R3, 0, 0, t), true));
    }
    if allow && access != ACC_ALL {
        // Any bit asked for that the rule does not give: not this rule.
        checks.push((insn(ALU32_MOV_X, R7, R4, 0, 0), false));
        checks.push((insn(ALU32_AND_K, R7, 0, 0, !access & ACC_ALL), false));
        checks.push((insn(JMP_JNE_K, R7, 0, 0, 0), true));
    } else if !allow && access != ACC_ALL {
        // No bit asked for that the rule denies: not this rule.
        checks.push((insn(ALU32_MOV_X, R7, R4, 0, 0), false));
        checks.push((insn(ALU32_AND_K, R7, 0, 0, access), false));
        checks.push((insn(JMP_JEQ_K, R7, 0, 0, 0), true));
    }
    if let Some(major) = rule.major().filter(|m| *m >= 0) {
        checks.push((insn(JMP_JNE_K, R5, 0, 0, major as i32), true));
    }
    if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
        checks.push((insn(JMP_JNE_K, R6, 0, 0, minor as i32), true));
    }
    let verdict = [
        insn(ALU64_MOV_K, R0, 0, 0, i32::from(allow)),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ];
    let len = checks.len() + verdict.len();
    let mut block: Vec<Insn> = checks
        .into_iter()
        .enumerate()
        .map(|(i, (mut ins, jumps))| {
            if jumps {
                // Past the rest of this block: to the first instruction of the next.
                ins.off = (len - i - 1) as i16;
            }
            ins
        })
        .collect();
    block.extend(verdict);
    Some(block)
}

/// The program for `rules` (in the spec's order).
fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_MOV_X, R3, R2, 0, 0),
        insn(ALU32_AND_K, R3, 0, 0, 0xffff),
        insn(ALU32_MOV_X, R4, R2, 0, 0),
        insn(ALU32_RSH_K, R4, 0, 0, 16),
        insn(LDX_MEM_W, R5, R1, 4, 0),
        insn(LDX_MEM_W, R6, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        if let Some(block) = rule_block(rule) {
            // A rule without checks decides everything that reaches it: the verifier
            // refuses code after it (unreachable), and there is nothing left to decide.
            let decides_all = block.len() == 2;
            prog.extend(block);
            if decides_all {
                return prog;
            }
        }
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

// bpf(2) commands and types.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialized bpf_attr prefix of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup directory `cgroup` (of a
/// cgroup v2 hierarchy). It stays attached as long as the cgroup exists.
pub fn attach(cgroup: &Path, rules: &[LinuxDeviceCgroup]) -> io::Result<()> {
    let code: Vec<u8> = program(rules).iter().flat_map(Insn::bytes).collect();
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (code.len() / 8) as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    let prog = bpf(BPF_PROG_LOAD, &mut load).map_err(|e| {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        io::Error::new(
            e.kind(),
            format!("load the device cgroup program: {e}; verifier: {text}"),
        )
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let dir = std::fs::File::open(cgroup)?;
    let mut att = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut att).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "attach the device cgroup program to {}: {e}",
                cgroup.display()
            ),
        )
    })?;
    Ok(())
}

/// Gives a container created on a cgroup v2 host its device rules: the spec's
/// `linux.resources.devices`, attached to its cgroup (`cgroups_path`, below the v2 root).
/// Nothing on v1 (libcontainer writes the devices controller), under a systemd cgroup
/// manager, in a user namespace (a rootless runtime may not load the program; the user's
/// own privileges bound its devices), or for a spec without rules.
pub fn apply_for(
    spec: &oci_spec::runtime::Spec,
    cgroups_path: &str,
    systemd: bool,
) -> Result<(), crate::error::RuntimeError> {
    let rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    if rules.is_empty()
        || systemd
        || berth_oci::host::cgroup_mode() != berth_oci::host::CgroupMode::Unified
        || !nix::unistd::geteuid().is_root()
        || berth_core::idmap::in_user_namespace()
    {
        return Ok(());
    }
    let cgroup = Path::new("/sys/fs/cgroup").join(cgroups_path.trim_start_matches('/'));
    attach(&cgroup, &rules).map_err(|e| {
        crate::error::RuntimeError::Io(format!("apply the device rules to {}", cgroup.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        mm: Option<(i64, i64)>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(t) = typ {
            b = b.typ(t);
        }
        if let Some((major, minor)) = mm {
            b = b.major(major).minor(minor);
        }
        b.build().unwrap()
    }

    /// What the program decides for one request, run by a tiny interpreter of the opcodes
    /// it uses.
    fn run(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [(typ | (access << 16)) as u32, major as u32, minor as u32];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[d] = u64::from(ctx[i.off as usize / 4]),
                ALU32_MOV_X => r[d] = r[s] & 0xffff_ffff,
                ALU32_AND_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
                ALU64_MOV_K => r[d] = i.imm as i64 as u64,
                JMP_JNE_K => {
                    if r[d] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_JEQ_K => {
                    if r[d] == i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0] as i64,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn dockers_default_rules_allow_the_standard_devices_and_mknod_only() {
        use LinuxDeviceType::{B, C};
        let rules = vec![
            rule(false, None, None, "rwm"),
            rule(true, Some(C), None, "m"),
            rule(true, Some(B), None, "m"),
            rule(true, Some(C), Some((1, 3)), "rwm"),
            rule(true, Some(C), Some((136, -1)), "rwm"),
        ];
        let p = program(&rules);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 4), 1, "a pty");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod of a disk");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "reading a disk");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD | ACC_READ, 1, 3), 1);
    }

    #[test]
    fn a_later_deny_of_one_access_takes_that_access_away() {
        let rules = vec![
            rule(true, None, None, "rwm"),
            rule(false, Some(LinuxDeviceType::C), Some((1, 3)), "w"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 1);
    }

    #[test]
    fn no_rule_means_deny() {
        assert_eq!(run(&program(&[]), DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        let i = insn(JMP_JNE_K, R5, 0, 3, 136);
        assert_eq!(i.bytes(), [0x55, 0x05, 3, 0, 136, 0, 0, 0]);
        let i = insn(LDX_MEM_W, R6, R1, 8, 0);
        assert_eq!(i.bytes(), [0x61, 0x16, 8, 0, 0, 0, 0, 0]);
    }

    /// The mount point of the cgroup v2 hierarchy: /sys/fs/cgroup on a unified host, the
    /// `unified` one beside the v1 controllers on a hybrid host.
    fn v2_mount() -> Option<std::path::PathBuf> {
        ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|p| {
                nix::sys::statfs::statfs(p.as_path())
                    .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            })
    }

    #[test]
    fn the_kernel_enforces_the_program_on_a_cgroup() {
        if !berth_testutil::root_or_skip() {
            return;
        }
        let v2 = v2_mount().expect("a cgroup v2 hierarchy (unified, or beside v1)");
        let cg = v2.join(format!("berth-devtest-{}", std::process::id()));
        std::fs::create_dir(&cg).unwrap();
        let rules = vec![
            rule(false, None, None, "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some((1, 3)), "rwm"),
        ];
        let attached = attach(&cg, &rules);
        let out = attached.as_ref().ok().map(|_| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "echo $$ > {}/cgroup.procs || exit 9; \
                     (: < /dev/null) 2>/dev/null && echo null-ok || echo null-denied; \
                     (: < /dev/zero) 2>/dev/null && echo zero-ok || echo zero-denied",
                    cg.display()
                ))
                .output()
                .unwrap()
        });
        // The shell has exited: the cgroup (and the program with it) can go.
        std::fs::remove_dir(&cg).unwrap();
        attached.unwrap();
        let out = out.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "null-ok\nzero-denied\n"
        );
    }
}

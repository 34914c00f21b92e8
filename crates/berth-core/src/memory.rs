//! Resident memory of berth's long-lived processes (the daemon, the shims).

/// Gives the allocator's free pages back to the kernel. glibc keeps what a burst of work
/// freed in the arenas of the threads that did it (the daemon serves requests on a thread
/// each, up to 16 on two cores); without this the daemon's RSS after a load stays near its
/// peak (bench/load.sh: 45 MiB ten seconds after, against 17 before).
pub fn release_free_heap() {
    // SAFETY: malloc_trim only returns free memory; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives back the memory the process holds but does not need now: free heap goes back to
/// the kernel, and the file pages faulted in so far (much of the binary and its libraries)
/// are dropped from the process; from then on it faults back the code it runs (with the
/// kernel's fault-around, up to 64 KiB about each fault: MADV_RANDOM stops readahead from
/// the disk, not that), so what stays resident is about what it runs. The pages stay in the
/// page cache, but no longer mapped, they are the first the kernel reclaims when memory runs
/// short. The shim calls it once the container runs (libcontainer's work is done), the daemon
/// once it listens (its RSS after an import and one `run --rm`: 17.5 -> 12.6 MB, of which
/// 2.2 MB anonymous), and both when they have been idle for a while ([`IdleShed`]).
/// Only read-only file mappings none of whose pages was ever written are dropped (smaps says
/// `Anonymous: 0`): their pages read back from the file exactly as they were. Relocated data
/// (RELRO) is written at load time, so it is never touched here.
pub fn shed_resident_memory() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        release_free_heap();
        return;
    };
    // Found first, dropped last: code that runs after a mapping was dropped (the parsing, a
    // read) would fault its pages straight back.
    let ranges = unwritten_file_mappings(&smaps);
    drop(smaps);
    release_free_heap();
    for (start, end) in ranges {
        // SAFETY: the range is one of our own read-only private file mappings with no
        // written (anonymous) page; MADV_RANDOM and MADV_DONTNEED only change which of its
        // pages are resident, and a dropped page reads back unchanged from the file.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The address ranges, in `smaps` (the text of /proc/PID/smaps), of the read-only private
/// file mappings none of whose pages was ever written (`Anonymous: 0 kB`).
fn unwritten_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A new mapping header: "start-end perms offset dev inode path".
            let perms = fields.next().unwrap_or("");
            let path = line.split_whitespace().nth(5).unwrap_or("");
            candidate = match (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (Ok(s), Ok(e))
                    if path.starts_with('/')
                        && perms.starts_with('r')
                        && perms.ends_with('p')
                        && !perms.contains('w') =>
                {
                    Some((s, e))
                }
                _ => None,
            };
        } else if first == "Anonymous:" {
            let written = fields.next().is_none_or(|kb| kb != "0");
            if !written {
                found.extend(candidate);
            }
            candidate = None;
        }
    }
    found
}

/// What a periodic look at a long-lived process's memory gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Free heap only ([`release_free_heap`]): there was work since the last look.
    FreeHeap,
    /// Free heap and file pages ([`shed_resident_memory`]): a whole interval without work.
    All,
    /// Nothing: still idle, and already given back.
    Nothing,
}

/// Decides, at each periodic look, what to give back: file pages only when no work was done
/// since the look before (so a busy process does not fault its code back in again and
/// again), and once per idle spell.
#[derive(Debug)]
pub struct IdleShed {
    last: u64,
    shed: bool,
}

impl IdleShed {
    /// Starts with `work_done` as the count now (the process has just given back what its
    /// start needed).
    pub fn new(work_done: u64) -> IdleShed {
        IdleShed {
            last: work_done,
            shed: false,
        }
    }

    /// Whether the file pages were given back and no work came since.
    pub fn is_shed(&self) -> bool {
        self.shed
    }

    /// `work_done` is a count that grows with the work (the daemon's requests so far).
    pub fn look(&mut self, work_done: u64) -> Release {
        let idle = self.last == work_done;
        self.last = work_done;
        if !idle {
            self.shed = false;
            Release::FreeHeap
        } else if self.shed {
            Release::Nothing
        } else {
            self.shed = true;
            Release::All
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_file_mappings_never_written_are_dropped() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fe:00 1234 /usr/bin/berth
Rss:                 400 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 fe:00 1234 /usr/bin/berth
Anonymous:             0 kB
55d0a0900000-55d0a0a00000 r--p 00900000 fe:00 1234 /usr/bin/berth
Anonymous:           120 kB
55d0a0a00000-55d0a0a10000 rw-p 00a00000 fe:00 1234 /usr/bin/berth
Anonymous:             8 kB
55d0a1000000-55d0a1100000 rw-p 00000000 00:00 0 [heap]
Anonymous:            72 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 77 /dev/shm/x
Anonymous:             0 kB
7fff00000000-7fff00001000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            unwritten_file_mappings(smaps),
            vec![
                (0x55d0a0000000, 0x55d0a0100000),
                (0x55d0a0100000, 0x55d0a0900000)
            ]
        );
    }

    #[test]
    fn file_pages_go_once_per_idle_spell() {
        let mut shed = IdleShed::new(5);
        assert_eq!(shed.look(9), Release::FreeHeap);
        assert!(!shed.is_shed());
        assert_eq!(shed.look(9), Release::All);
        assert!(shed.is_shed());
        assert_eq!(shed.look(9), Release::Nothing);
        assert_eq!(shed.look(9), Release::Nothing);
        assert_eq!(shed.look(10), Release::FreeHeap);
        assert!(!shed.is_shed());
        assert_eq!(shed.look(10), Release::All);
    }
}

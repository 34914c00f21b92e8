//! Resident memory of berth's long-lived processes (the daemon, the shims).

/// Gives back the memory a long-lived process needed only to start: free heap goes back to
/// the kernel, and the file pages faulted in so far (much of the binary and its libraries)
/// are dropped; from then on the process faults back the code it runs (with the kernel's
/// fault-around, up to 64 KiB about each fault: MADV_RANDOM stops readahead from the disk,
/// not that), so what stays resident is about what it runs. The shim calls it once the
/// container runs (libcontainer's work is done), the daemon once it listens (the daemon's
/// RSS after an import and one `run --rm`: 17.5 -> 12.6 MB, of which 2.2 MB anonymous).
/// Only read-only file mappings none of whose pages was ever written are dropped (smaps says
/// `Anonymous: 0`): their pages read back from the file exactly as they were. Relocated data
/// (RELRO) is written at load time, so it is never touched here.
pub fn shed_startup_memory() {
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    let drop_now = |range: Option<(usize, usize)>| {
        if let Some((start, end)) = range {
            let addr = start as *mut libc::c_void;
            // SAFETY: the range is one of our own read-only private file mappings with no
            // written (anonymous) page; MADV_RANDOM and MADV_DONTNEED only change which of
            // its pages are resident, and a dropped page reads back unchanged from the file.
            unsafe {
                libc::madvise(addr, end - start, libc::MADV_RANDOM);
                libc::madvise(addr, end - start, libc::MADV_DONTNEED);
            }
        }
    };
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
                drop_now(candidate.take());
            }
            candidate = None;
        }
    }
}

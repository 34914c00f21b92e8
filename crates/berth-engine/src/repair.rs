//! What a daemon killed mid-operation leaves behind, put right when the next one starts
//! (before it serves anything), each repair logged:
//!
//! - uploads (`<root>/tmp/upload-*`: `load`, `import`, `build` bodies) of requests that died
//!   with the daemon are removed, and so are the image store's interrupted ingests, unpacks
//!   and removals;
//! - a container frozen by `commit` (which marks it `commit-paused` for the freeze) is thawed,
//!   as the commit would have done.

use crate::Engine;

/// The marker `commit` leaves in a container's directory while it holds the container frozen.
pub(crate) const COMMIT_PAUSED: &str = "commit-paused";

impl Engine {
    /// Runs the repairs; called once at start.
    pub(crate) fn repair_after_crash(&self) {
        for path in self.images.clean_leftovers() {
            tracing::warn!(path = %path.display(), "removed what an interrupted write left");
        }
        if let Ok(entries) = std::fs::read_dir(self.upload_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("upload-") && std::fs::remove_file(e.path()).is_ok() {
                    tracing::warn!(file = %e.path().display(), "removed an upload a crash left");
                }
            }
        }
        for rec in self.records() {
            let marker = self.container_dir(&rec.id).join(COMMIT_PAUSED);
            if !marker.exists() {
                continue;
            }
            let st = self.refresh(&rec.id);
            if st.running() && st.paused {
                match self.pause(&rec.id, false) {
                    Ok(()) => {
                        tracing::warn!(container = %rec.id, "thawed a container a crash left frozen by commit")
                    }
                    Err(e) => {
                        tracing::error!(container = %rec.id, error = %e, "could not thaw a container frozen by commit")
                    }
                }
            }
            let _ = std::fs::remove_file(&marker);
        }
    }
}

//! Waking a `wait` when a container's state may have changed, instead of polling for it.
//!
//! Everything that changes where a container is in its life lands in its directory by a
//! rename: the shim's exit record (`exit.json`), the engine's state (`state.json`), and the
//! removal, which renames the directory itself away. [`Engine::watch_state`] hands out an
//! inotify descriptor on that directory which becomes readable on any of those; the waiter
//! reads it empty, looks at the state, and waits again. It only says "look again": the state
//! files stay the truth, and a waiter still looks now and then on its own, for the one end no
//! rename announces (a shim killed before it could write its record).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{EngineError, Result};
use crate::Engine;

impl Engine {
    /// A descriptor that becomes readable when the container's state may have changed (see
    /// the module's text); non-blocking, to be read until it is empty.
    pub fn watch_state(&self, key: &str) -> Result<OwnedFd> {
        let rec = self.find(key)?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| EngineError::io("watch a container", e.into()))?;
        inotify
            .add_watch(
                &self.container_dir(&rec.id),
                AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_DELETE_SELF,
            )
            .map_err(|e| EngineError::io("watch a container", e.into()))?;
        inotify
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| EngineError::io("watch a container", e))
    }
}

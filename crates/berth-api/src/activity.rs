//! How many requests the API has begun to serve: the daemon's way to tell that it has been
//! idle (no request between two looks), to give memory back then.

use std::sync::atomic::{AtomicU64, Ordering};

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Counts one request; every request's first step.
pub(crate) fn note() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// The requests begun since the daemon started.
pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

//! Timing of the steps of a container's life: a [`Step`] logs how long it took when it ends,
//! at debug level under the target `berth::timing`, so that
//! `berth daemon --log-level info,berth::timing=debug` shows where a `run` spends its time
//! (`bench/trace.sh` takes the medians). Off, a step costs one check of the log filter.

use std::time::Instant;

/// The log target of every step.
pub const TARGET: &str = "berth::timing";

/// Set by the engine, when it logs timing, on the `berth-runtime shim` it starts: the
/// [`monotonic_us`] of the spawn, from which the shim times its own launch.
pub const SPAWNED_ENV: &str = "BERTH_TIMING_SPAWNED_US";

/// Whether steps are logged.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
}

/// The system's monotonic clock in microseconds: one clock for every process on the host,
/// so two processes can time a step between them.
pub fn monotonic_us() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is, and nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// One step, timed from [`Step::start`] until it is dropped.
#[derive(Debug)]
#[must_use = "a step is timed until it is dropped"]
pub struct Step {
    name: &'static str,
    started: Option<Instant>,
}

impl Step {
    /// Starts timing `name` (`start.shim`, `remove.files`, …) when timing is logged.
    pub fn start(name: &'static str) -> Step {
        let on = enabled();
        Step {
            name,
            started: on.then(Instant::now),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(t) = self.started {
            record(self.name, t.elapsed().as_micros() as u64);
        }
    }
}

/// Logs a step measured some other way (`micros` long).
pub fn record(name: &str, micros: u64) {
    tracing::debug!(target: TARGET, step = %name, us = micros);
}

/// Logs, as step `name`, how long ago the RFC 3339 time `since` was (a container's recorded
/// end, say): how late something noticed it. Nothing when timing is off or `since` is not a
/// time.
pub fn lag_since(name: &str, since: &str) {
    if enabled() {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        between(name, since, &now);
    }
}

/// Logs, as step `name`, the time from the RFC 3339 time `from` to `to` (a container's
/// recorded start and end, say; 0 when `to` comes first, as a container that ended before its
/// start was recorded does). Nothing when timing is off or either is not a time.
pub fn between(name: &str, from: &str, to: &str) {
    if !enabled() {
        return;
    }
    let (Ok(a), Ok(b)) = (
        chrono::DateTime::parse_from_rfc3339(from),
        chrono::DateTime::parse_from_rfc3339(to),
    ) else {
        return;
    };
    let us = b.signed_duration_since(a).num_microseconds().unwrap_or(0);
    record(name, u64::try_from(us).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock goes forward with Instant's (the same clock, readable by another process).
    #[test]
    fn monotonic_us_follows_the_monotonic_clock() {
        let (a, t) = (monotonic_us(), Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (b, took) = (monotonic_us(), t.elapsed().as_micros() as u64);
        assert!(a > 0 && b >= a + 5_000, "{a} → {b}");
        assert!(
            b - a <= took + 1_000,
            "{} µs against Instant's {took}",
            b - a
        );
    }
}

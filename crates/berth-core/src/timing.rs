//! Timing of the steps of a container's life: a [`Step`] logs how long it took when it ends,
//! at debug level under the target `berth::timing`, so that
//! `berth daemon --log-level info,berth::timing=debug` shows where a `run` spends its time
//! (`bench/trace.sh` takes the medians). Off, a step costs one check of the log filter.

use std::time::Instant;

/// The log target of every step.
pub const TARGET: &str = "berth::timing";

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
        let on = tracing::enabled!(target: TARGET, tracing::Level::DEBUG);
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
    if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        between(name, since, &now);
    }
}

/// Logs, as step `name`, the time from the RFC 3339 time `from` to `to` (a container's
/// recorded start and end, say; 0 when `to` comes first, as a container that ended before its
/// start was recorded does). Nothing when timing is off or either is not a time.
pub fn between(name: &str, from: &str, to: &str) {
    if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
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

//! The runtime's errors. Each variant names what was wrong and with what; `libcontainer`'s
//! own errors are terse ("io error"), so they are carried with their whole cause chain.

use std::path::PathBuf;

use berth_core::error::HasErrorKind;
use berth_core::ErrorKind;
use libcontainer::error::LibcontainerError;
use thiserror::Error;

use crate::spec::SpecError;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.' (not first)")]
    InvalidId(String),
    #[error("bundle {0}: no config.json in it (is the path right?)")]
    MissingConfig(PathBuf),
    #[error("bundle {path}: malformed config.json: {reason}")]
    MalformedConfig { path: PathBuf, reason: String },
    #[error("container \"{id}\" is {status}: cannot {action}")]
    WrongState {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// A request the runtime cannot read (e.g. `update --resources` that is not JSON).
    #[error("invalid {0}")]
    BadRequest(String),
    #[error("{action} container \"{id}\": {reason}")]
    Operation {
        id: String,
        action: &'static str,
        reason: String,
    },
    /// The command cannot be run (missing, not executable): `message` is in Docker's words
    /// (see [`crate::command`]), and `exit_code` is Docker's for it (127 or 126).
    #[error("{action} container \"{id}\": unable to start container process: {message}")]
    CannotRun {
        id: String,
        action: &'static str,
        message: String,
        exit_code: i32,
    },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl RuntimeError {
    /// Wraps a libcontainer failure of `action` on `id`, flattening its cause chain into text.
    pub fn libcontainer(id: &str, action: &'static str, err: LibcontainerError) -> Self {
        match err {
            LibcontainerError::Exist => RuntimeError::AlreadyExists(id.to_owned()),
            LibcontainerError::NoDirectory => RuntimeError::NotFound(id.to_owned()),
            LibcontainerError::IncorrectStatus(status) => RuntimeError::WrongState {
                id: id.to_owned(),
                status: status.to_string().to_lowercase(),
                action,
            },
            other => {
                let reason = cause_chain(&other);
                match command_failure(&reason) {
                    Some((message, exit_code)) => RuntimeError::CannotRun {
                        id: id.to_owned(),
                        action,
                        message: message.to_owned(),
                        exit_code,
                    },
                    None => RuntimeError::Operation {
                        id: id.to_owned(),
                        action,
                        reason,
                    },
                }
            }
        }
    }

    /// The exit status `run` and `exec` give for this failure instead of 1: Docker's 127 for a
    /// command that does not exist, 126 for one that cannot be invoked.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RuntimeError::CannotRun { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        RuntimeError::Io(context.into(), err)
    }
}

/// Finds our executor's report of a command that cannot run (`exec: "NAME": …`, see
/// [`crate::command`]) in the text of a libcontainer failure, which carries it as a string at
/// the end of its chain; returns it with its exit code.
fn command_failure(chain: &str) -> Option<(&str, i32)> {
    const LEAD: &str = "error in executing process : ";
    let message = &chain[chain.find(LEAD)? + LEAD.len()..];
    if !message.starts_with("exec: \"") {
        return None;
    }
    Some((message, crate::command::exit_code_of(message)?))
}

/// "outer: inner: innermost", skipping repeats (thiserror's `transparent` repeats messages).
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) && !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

impl HasErrorKind for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::NotFound(_) => ErrorKind::NotFound,
            RuntimeError::AlreadyExists(_) | RuntimeError::WrongState { .. } => ErrorKind::Conflict,
            RuntimeError::InvalidId(_)
            | RuntimeError::MissingConfig(_)
            | RuntimeError::MalformedConfig { .. }
            | RuntimeError::UnknownSignal(_)
            | RuntimeError::BadRequest(_)
            | RuntimeError::CannotRun { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Spec(e) => e.kind(),
            RuntimeError::Operation { .. } | RuntimeError::Io(..) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_failures_are_found_in_libcontainer_text() {
        let chain = "failed to create container: exec process failed with error error in \
                     executing process : exec: \"nope\": executable file not found in $PATH";
        assert_eq!(
            command_failure(chain),
            Some(("exec: \"nope\": executable file not found in $PATH", 127))
        );
        let chain = "exec process failed with error error in executing process : \
                     exec: \"/etc/passwd\": permission denied";
        assert_eq!(command_failure(chain).map(|(_, c)| c), Some(126));
        // Other failures of the container process stay what they are.
        assert_eq!(
            command_failure("error in executing process : failed to prepare rootfs"),
            None
        );
        assert_eq!(command_failure("exec: \"x\": permission denied"), None);
    }
}

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
    #[error("{action} container \"{id}\": {reason}")]
    Operation {
        id: String,
        action: &'static str,
        reason: String,
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
            other => RuntimeError::Operation {
                id: id.to_owned(),
                action,
                reason: cause_chain(&other),
            },
        }
    }

    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        RuntimeError::Io(context.into(), err)
    }
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
            | RuntimeError::UnknownSignal(_) => ErrorKind::InvalidArgument,
            RuntimeError::Spec(e) => e.kind(),
            RuntimeError::Operation { .. } | RuntimeError::Io(..) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

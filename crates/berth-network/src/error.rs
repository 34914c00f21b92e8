//! Errors of the networking crate; each maps into a `berth_core::ErrorKind`.

use std::io;
use std::path::PathBuf;

use berth_core::error::{ErrorKind, HasErrorKind};

/// Everything that can go wrong while setting up or tearing down container networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A malformed value from the caller (subnet, port spec, bridge name, `--add-host` …).
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("error while removing network: network {0} has active endpoints")]
    NetworkInUse(String),
    #[error("endpoint {endpoint} not found on network {network}")]
    EndpointNotFound { network: String, endpoint: String },
    #[error("endpoint with name {endpoint} already exists in network {network}")]
    EndpointExists { network: String, endpoint: String },
    /// Docker's wording, which users and scripts know.
    #[error("Bind for {addr} failed: port is already allocated")]
    PortAllocated { addr: String },
    #[error("Address already in use: {0}")]
    AddressInUse(String),
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    PoolExhausted(String),
    #[error("invalid address {ip}: it does not belong to subnet {subnet}")]
    AddressOutOfRange { ip: String, subnet: String },
    /// A subnet that overlaps one of another berth network.
    #[error("Pool overlaps with other one on this address space: {0}")]
    PoolOverlap(String),
    #[error("netlink: {context}: {message}")]
    Netlink {
        context: String,
        message: String,
        /// The kernel's errno, when the kernel answered with one.
        errno: Option<i32>,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

impl NetError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        NetError::Invalid(message.into())
    }

    /// The errno behind a netlink or I/O error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { errno, .. } => *errno,
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl HasErrorKind for NetError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetError::Invalid(_) | NetError::AddressOutOfRange { .. } => ErrorKind::InvalidArgument,
            NetError::NetworkNotFound(_) | NetError::EndpointNotFound { .. } => ErrorKind::NotFound,
            NetError::NetworkExists(_)
            | NetError::NetworkInUse(_)
            | NetError::EndpointExists { .. }
            | NetError::PortAllocated { .. }
            | NetError::AddressInUse(_)
            | NetError::PoolOverlap(_) => ErrorKind::Conflict,
            NetError::PoolExhausted(_) => ErrorKind::Unavailable,
            NetError::Netlink { .. }
            | NetError::Nft(_)
            | NetError::Io { .. }
            | NetError::State { .. } => ErrorKind::Internal,
        }
    }
}

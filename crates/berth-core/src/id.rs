//! Container identifiers: 64 lowercase hex characters, shown truncated to 12 like Docker.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use thiserror::Error;

use crate::error::{ErrorKind, HasErrorKind};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid container id {0:?}: must be 64 lowercase hexadecimal characters")]
    Malformed(String),
    #[error("cannot read random bytes for a new id: {0}")]
    Random(String),
}

impl HasErrorKind for IdError {
    fn kind(&self) -> ErrorKind {
        match self {
            IdError::Malformed(_) => ErrorKind::InvalidArgument,
            IdError::Random(_) => ErrorKind::Internal,
        }
    }
}

/// A full container id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// A fresh random id from the kernel's CSPRNG. Like Docker, ids whose first 12
    /// characters are all digits are drawn again (a short id must not look like a number).
    pub fn generate() -> Result<Self, IdError> {
        let mut urandom =
            std::fs::File::open("/dev/urandom").map_err(|e| IdError::Random(e.to_string()))?;
        loop {
            let mut bytes = [0u8; 32];
            urandom
                .read_exact(&mut bytes)
                .map_err(|e| IdError::Random(e.to_string()))?;
            let hex = to_hex(&bytes);
            if !hex[..12].bytes().all(|b| b.is_ascii_digit()) {
                return Ok(ContainerId(hex));
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character form that `docker ps` shows.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(ContainerId(s.to_owned()))
        } else {
            Err(IdError::Malformed(s.to_owned()))
        }
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = ContainerId::generate().unwrap();
        let b = ContainerId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<ContainerId>().unwrap(), a);
        assert_eq!(a.short().len(), 12);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"a".repeat(65)] {
            assert!(bad.parse::<ContainerId>().is_err(), "{bad:?} accepted");
        }
    }
}

//! Detach keys on hijacked attach and exec streams. Docker watches the client's input for the
//! sequence (ctrl-p,ctrl-q unless `detachKeys` or the exec's `DetachKeys` names another) when
//! the stream is a terminal's, holds back a partial match, and on the whole sequence ends the
//! stream without passing the keys on; the container (or the exec's process) keeps running.
//! The API edge sees the client's bytes first, so the watching is done here.

/// The client's default sequence, as Docker's.
pub const DEFAULT_KEYS: &str = "ctrl-p,ctrl-q";

/// Docker's `term.ToBytes`: comma-separated keys, each one character or `ctrl-X` for X in
/// `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. Empty means the default.
pub fn parse(keys: &str) -> Result<Vec<u8>, String> {
    let keys = if keys.is_empty() { DEFAULT_KEYS } else { keys };
    let invalid = || format!("Invalid detach keys ({keys}) provided");
    let mut out = Vec::new();
    for key in keys.split(',') {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(invalid()),
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

/// Watches input for the sequence: what to pass on, and whether the sequence came.
#[derive(Debug, Clone)]
pub struct Watch {
    keys: Vec<u8>,
    matched: usize,
}

impl Watch {
    pub fn new(keys: Vec<u8>) -> Watch {
        Watch { keys, matched: 0 }
    }

    /// The bytes of `input` to pass on (a partial match is held back until the next byte
    /// shows it was none), and true when the whole sequence arrived (what followed it is
    /// dropped: the stream ends there).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b != self.keys[self.matched] && self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_dockers() {
        assert_eq!(parse("").unwrap(), [16, 17]);
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse("ctrl-x").unwrap(), [24]);
        assert_eq!(
            parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").unwrap(),
            [0, 27, 28, 29, 30, 31]
        );
        assert_eq!(parse("a,ctrl-A").unwrap(), [b'a', 1]);
        assert_eq!(
            parse("ctrl-1").unwrap_err(),
            "Invalid detach keys (ctrl-1) provided"
        );
        assert!(parse("ab").is_err());
        assert!(parse("ctrl-p,").is_err());
    }

    #[test]
    fn the_sequence_ends_the_stream_and_is_not_passed_on() {
        let mut w = Watch::new(parse("").unwrap());
        assert_eq!(w.feed(b"hi\n"), (b"hi\n".to_vec(), false));
        assert_eq!(w.feed(b"a\x10\x11b"), (b"a".to_vec(), true));
        // Split across reads.
        let mut w = Watch::new(parse("").unwrap());
        assert_eq!(w.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(w.feed(b"\x11"), (vec![], true));
        // A partial match that was none goes on, in order.
        let mut w = Watch::new(parse("").unwrap());
        assert_eq!(w.feed(b"\x10"), (vec![], false));
        assert_eq!(w.feed(b"z"), (b"\x10z".to_vec(), false));
        assert_eq!(w.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        // One key.
        let mut w = Watch::new(parse("ctrl-x").unwrap());
        assert_eq!(w.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
        assert_eq!(w.feed(b"\x18"), (vec![], true));
    }
}

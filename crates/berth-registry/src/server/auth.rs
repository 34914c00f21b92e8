//! Basic auth against an htpasswd file of bcrypt entries (`user:$2y$…`, as `htpasswd -B`
//! writes them), the only kind distribution accepts too.
//!
//! bcrypt is slow by design and a push makes dozens of requests, so a credential that
//! verified once is remembered (by its sha256, never in clear) for the life of the server.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::HeaderMap;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Realm of the `WWW-Authenticate: Basic` challenge.
pub const REALM: &str = "berth-registry";

/// Most remembered credentials; the memory is cleared when full.
const MAX_REMEMBERED: usize = 1024;

#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    /// Parses an htpasswd file. Lines that are empty or start with `#` are skipped; an entry
    /// that is not bcrypt is refused (it could never be checked).
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:hash", i + 1));
            };
            if !["$2y$", "$2a$", "$2b$", "$2x$"]
                .iter()
                .any(|p| hash.starts_with(p))
            {
                return Err(format!(
                    "line {}: the entry of {user:?} is not bcrypt (make it with htpasswd -B)",
                    i + 1
                ));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the request's `Authorization: Basic …` names a user whose password matches.
    /// bcrypt runs in a blocking task.
    pub async fn authorized(self: &std::sync::Arc<Self>, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            h.update([0]);
            h.update(hash.as_bytes());
            h.finalize().into()
        };
        if self.lock().contains(&key) {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(false);
        if ok {
            let mut set = self.lock();
            if set.len() >= MAX_REMEMBERED {
                set.clear();
            }
            set.insert(key);
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The user and password of an `Authorization: Basic <base64(user:password)>` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn bcrypt_entries_are_checked() {
        let hash = bcrypt::hash("s3cret:x", 4).unwrap();
        let file = format!("# users\n\nalice:{hash}\n");
        let auth = std::sync::Arc::new(Htpasswd::parse(&file).unwrap());
        assert!(auth.authorized(&basic("alice:s3cret:x")).await);
        // Remembered, and still right.
        assert!(auth.authorized(&basic("alice:s3cret:x")).await);
        assert!(!auth.authorized(&basic("alice:wrong")).await);
        assert!(!auth.authorized(&basic("bob:s3cret:x")).await);
        assert!(!auth.authorized(&HeaderMap::new()).await);
        let mut bearer = HeaderMap::new();
        bearer.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(!auth.authorized(&bearer).await);
    }

    #[test]
    fn other_hashes_are_refused() {
        assert!(Htpasswd::parse("bob:{SHA}abc").is_err());
        assert!(Htpasswd::parse("bob:$apr1$x$y").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
    }
}

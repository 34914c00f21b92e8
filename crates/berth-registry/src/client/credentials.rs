//! Credentials: Docker's `AuthConfig` (what `X-Registry-Auth` and `POST /auth` carry) and the
//! `~/.docker/config.json` file the docker CLI keeps them in: `auths` (base64
//! `user:password` in `auth`, or `identitytoken`), a default credential helper `credsStore`,
//! and per-registry helpers `credHelpers` (`docker-credential-<name> get|store|erase`, the
//! server on stdin, JSON out).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::endpoint::{auth_key, canonical_registry};
use super::error::{RegistryError, Result};

/// Docker's `AuthConfig`: the JSON in `X-Registry-Auth` (base64url) and in `POST /auth`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64 of `username:password`, as config.json stores it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(
        default,
        rename = "serveraddress",
        skip_serializing_if = "String::is_empty"
    )]
    pub server_address: String,
    /// An OAuth refresh token the token server gave at login, used instead of a password.
    #[serde(
        default,
        rename = "identitytoken",
        skip_serializing_if = "String::is_empty"
    )]
    pub identity_token: String,
    /// A bearer token to send as it is.
    #[serde(
        default,
        rename = "registrytoken",
        skip_serializing_if = "String::is_empty"
    )]
    pub registry_token: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<hidden>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("auth", &hidden(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &hidden(&self.identity_token))
            .field("registry_token", &hidden(&self.registry_token))
            .finish()
    }
}

impl AuthConfig {
    pub fn basic(username: &str, password: &str) -> AuthConfig {
        AuthConfig {
            username: username.to_owned(),
            password: password.to_owned(),
            ..AuthConfig::default()
        }
    }

    /// Decodes an `X-Registry-Auth` header: base64url JSON (padded or not; plain base64 is
    /// taken too, as Docker does). An empty header is no credentials.
    pub fn from_header(value: &str) -> Result<AuthConfig> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(AuthConfig::default());
        }
        let bytes = decode_base64(value).ok_or_else(|| {
            RegistryError::InvalidArgument("invalid X-Registry-Auth header: not base64".into())
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::InvalidArgument(format!("invalid X-Registry-Auth header: {e}"))
        })
    }

    /// The `X-Registry-Auth` header for these credentials.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).expect("AuthConfig serializes"))
    }

    /// Username and password, from the fields or from `auth`.
    pub fn user_password(&self) -> Option<(String, String)> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        let decoded = decode_base64(&self.auth)?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }

    pub fn is_empty(&self) -> bool {
        self.user_password().is_none()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let t = text.trim();
    [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(t).ok())
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// A `config.json` in Docker's form, read and written the way the docker CLI does.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    /// Where `docker-credential-*` programs are looked for first (tests); `PATH` otherwise.
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    pub fn new(path: impl Into<PathBuf>) -> DockerConfig {
        DockerConfig {
            path: path.into(),
            helper_dir: None,
        }
    }

    /// The docker CLI's own file ([`default_config_path`]).
    pub fn default_location() -> DockerConfig {
        DockerConfig::new(default_config_path())
    }

    /// Looks for credential helpers in `dir` before `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> DockerConfig {
        self.helper_dir = Some(dir.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Map<String, Value>> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) | Err(_) => Err(RegistryError::Credentials(format!(
                    "loading config file: {}: invalid JSON",
                    self.path.display()
                ))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(RegistryError::io("read", &self.path, e)),
        }
    }

    /// The helper for `registry`: its own in `credHelpers`, else `credsStore`.
    fn helper_for(doc: &Map<String, Value>, key: &str, registry: &str) -> Option<String> {
        let helpers = doc.get("credHelpers").and_then(Value::as_object);
        let own = helpers.and_then(|h| {
            h.iter()
                .find(|(k, _)| *k == key || canonical_registry(k) == registry)
                .and_then(|(_, v)| v.as_str())
        });
        own.or_else(|| doc.get("credsStore").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The credentials stored for `registry` (`docker.io`, `localhost:5000`, or any form
    /// of a server address), if any.
    pub async fn get(&self, registry: &str) -> Result<Option<AuthConfig>> {
        let registry = canonical_registry(registry);
        let key = auth_key(&registry);
        let doc = self.load()?;
        if let Some(helper) = Self::helper_for(&doc, &key, &registry) {
            return self.helper_get(&helper, &key).await;
        }
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths
            .get(&key)
            .or_else(|| {
                auths
                    .iter()
                    .find(|(k, _)| canonical_registry(k) == registry)
                    .map(|(_, v)| v)
            })
            .cloned();
        let Some(entry) = entry else {
            return Ok(None);
        };
        let mut auth: AuthConfig = serde_json::from_value(entry).map_err(|e| {
            RegistryError::Credentials(format!(
                "loading config file: {}: auths[{key}]: {e}",
                self.path.display()
            ))
        })?;
        if let Some((u, p)) = auth.user_password() {
            auth.username = u;
            auth.password = p;
        }
        auth.auth.clear();
        auth.server_address = key;
        Ok((!auth.is_empty()).then_some(auth))
    }

    /// Stores credentials for `registry`, with its helper when one is configured, in
    /// `auths` otherwise (base64 `user:password`, or the identity token in its place).
    pub async fn store(&self, registry: &str, auth: &AuthConfig) -> Result<()> {
        let registry = canonical_registry(registry);
        let key = auth_key(&registry);
        let mut doc = self.load()?;
        if let Some(helper) = Self::helper_for(&doc, &key, &registry) {
            let (user, secret) = if !auth.identity_token.is_empty() {
                ("<token>".to_owned(), auth.identity_token.clone())
            } else {
                auth.user_password().unwrap_or_default()
            };
            let body = serde_json::json!({"ServerURL": key, "Username": user, "Secret": secret});
            self.run_helper(&helper, "store", body.to_string().as_bytes())
                .await?;
            return Ok(());
        }
        let mut entry = Map::new();
        let (user, password) = auth.user_password().unwrap_or_default();
        let encoded = if auth.identity_token.is_empty() {
            format!("{user}:{password}")
        } else {
            format!("{user}:")
        };
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(encoded)),
        );
        if !auth.identity_token.is_empty() {
            entry.insert(
                "identitytoken".into(),
                Value::String(auth.identity_token.clone()),
            );
        }
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("auths is an object");
        // One entry per registry: other spellings of the same one go.
        auths.retain(|k, _| canonical_registry(k) != registry);
        auths.insert(key, Value::Object(entry));
        self.save(&doc)
    }

    /// Forgets the credentials for `registry`; whether there were any.
    pub async fn erase(&self, registry: &str) -> Result<bool> {
        let registry = canonical_registry(registry);
        let key = auth_key(&registry);
        let mut doc = self.load()?;
        let mut found = false;
        if let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|k, _| canonical_registry(k) != registry);
            found = auths.len() != before;
        }
        if found {
            self.save(&doc)?;
        }
        if let Some(helper) = Self::helper_for(&doc, &key, &registry) {
            match self.run_helper(&helper, "erase", key.as_bytes()).await {
                Ok(_) => found = true,
                Err(RegistryError::Credentials(m)) if is_not_found(&m) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// Writes the file as the docker CLI does: a temporary file beside it, mode 0600,
    /// synced, renamed over it (through a symlink to its target).
    fn save(&self, doc: &Map<String, Value>) -> Result<()> {
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&dir).map_err(|e| RegistryError::io("create", &dir, e))?;
        let mut text = serde_json::to_vec_pretty(&Value::Object(doc.clone()))
            .expect("a JSON document serializes");
        text.push(b'\n');
        berth_core::fs::write_atomic_mode(&target, &text, 0o600)
            .map_err(|e| RegistryError::io("write", &target, e))
    }

    async fn helper_get(&self, helper: &str, key: &str) -> Result<Option<AuthConfig>> {
        let out = match self.run_helper(helper, "get", key.as_bytes()).await {
            Ok(out) => out,
            Err(RegistryError::Credentials(m)) if is_not_found(&m) => return Ok(None),
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct HelperCreds {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let c: HelperCreds = serde_json::from_slice(&out).map_err(|e| {
            RegistryError::Credentials(format!(
                "error getting credentials - err: {e}, out: `{}`",
                String::from_utf8_lossy(&out).trim()
            ))
        })?;
        let mut auth = AuthConfig {
            server_address: key.to_owned(),
            ..AuthConfig::default()
        };
        if c.username == "<token>" {
            auth.identity_token = c.secret;
        } else {
            auth.username = c.username;
            auth.password = c.secret;
        }
        Ok((!auth.is_empty()).then_some(auth))
    }

    fn helper_program(&self, helper: &str) -> PathBuf {
        let name = format!("docker-credential-{helper}");
        match &self.helper_dir {
            Some(dir) if dir.join(&name).exists() => dir.join(name),
            _ => PathBuf::from(name),
        }
    }

    /// Runs `docker-credential-<helper> <action>` with `input` on stdin; its stdout, or its
    /// output as the error.
    async fn run_helper(&self, helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>> {
        let program = self.helper_program(helper);
        let mut child = tokio::process::Command::new(&program)
            .arg(action)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RegistryError::Credentials(format!(
                    "error getting credentials - err: exec: \"{}\": {e}",
                    program.display()
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| RegistryError::Credentials(format!("{}: {e}", program.display())))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let said = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_owned();
        Err(RegistryError::Credentials(format!(
            "error {} credentials - err: {}, out: `{said}`",
            match action {
                "get" => "getting",
                "store" => "storing",
                _ => "erasing",
            },
            out.status
        )))
    }
}

/// What helpers say when they have nothing for a server.
fn is_not_found(message: &str) -> bool {
    message.contains("credentials not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header_round_trips() {
        let a = AuthConfig {
            server_address: "localhost:5000".into(),
            ..AuthConfig::basic("u", "p?>")
        };
        let h = a.to_header();
        assert_eq!(AuthConfig::from_header(&h).unwrap(), a);
        // The docker CLI's form: base64url JSON with the key names Docker uses.
        let json = r#"{"username":"x","password":"y","serveraddress":"r"}"#;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let back = AuthConfig::from_header(&h).unwrap();
        assert_eq!(back.user_password(), Some(("x".into(), "y".into())));
        assert_eq!(back.server_address, "r");
        assert!(AuthConfig::from_header("").unwrap().is_empty());
        assert!(AuthConfig::from_header("!!!").is_err());
        assert!(!format!("{a:?}").contains("p?>"), "Debug hides secrets");
    }

    #[tokio::test]
    async fn auths_are_read_written_and_erased() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let cfg = DockerConfig::new(&path);
        assert_eq!(cfg.get("localhost:5000").await.unwrap(), None);
        cfg.store("localhost:5000", &AuthConfig::basic("alice", "s3cret"))
            .await
            .unwrap();
        cfg.store("docker.io", &AuthConfig::basic("bob", "pw"))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["auths"]["localhost:5000"]["auth"], "YWxpY2U6czNjcmV0");
        assert!(doc["auths"]["https://index.docker.io/v1/"]["auth"].is_string());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let got = cfg.get("http://localhost:5000").await.unwrap().unwrap();
        assert_eq!(got.username, "alice");
        assert_eq!(got.password, "s3cret");
        let hub = cfg.get("index.docker.io").await.unwrap().unwrap();
        assert_eq!(hub.username, "bob");
        // Other keys of the file survive a write.
        let mut doc: Map<String, Value> = serde_json::from_str(&text).unwrap();
        doc.insert("psFormat".into(), Value::String("{{.ID}}".into()));
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(cfg.erase("localhost:5000").await.unwrap());
        assert!(!cfg.erase("localhost:5000").await.unwrap());
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "{{.ID}}");
        assert!(doc["auths"].get("localhost:5000").is_none());
        assert_eq!(cfg.get("localhost:5000").await.unwrap(), None);
    }

    #[tokio::test]
    async fn identity_tokens_and_credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"reg.example":{"auth":"dXNlcjo=","identitytoken":"tok"}},
                "credHelpers":{"helped.example":"fake"}}"#,
        )
        .unwrap();
        // A helper that keeps one secret in a file next to itself.
        let helper = dir.path().join("docker-credential-fake");
        let store = dir.path().join("helper-store");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nserver=$(cat)\ncase \"$1\" in\n\
                 get) [ -f {s} ] && cat {s} || {{ echo 'credentials not found in native keychain'; exit 1; }} ;;\n\
                 store) echo \"$server\" > {s} ;;\n\
                 erase) rm -f {s} ;;\nesac\n",
                s = store.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = DockerConfig::new(&path).with_helper_dir(dir.path());

        let tok = cfg.get("reg.example").await.unwrap().unwrap();
        assert_eq!(tok.identity_token, "tok");
        assert_eq!(tok.username, "user");

        assert_eq!(cfg.get("helped.example").await.unwrap(), None);
        cfg.store("helped.example", &AuthConfig::basic("carol", "pw"))
            .await
            .unwrap();
        let stored: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
        assert_eq!(stored["ServerURL"], "helped.example");
        // The helper returns what it stored: Username and Secret.
        let got = cfg.get("helped.example").await.unwrap().unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("carol", "pw")
        );
        assert!(cfg.erase("helped.example").await.unwrap());
        assert!(!store.exists());
        // config.json itself was not written with the helper's secret.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("carol"));
    }
}

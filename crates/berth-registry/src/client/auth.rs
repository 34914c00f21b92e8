//! Talking to one registry with the right credentials: requests go out, a `401` with a
//! `WWW-Authenticate` challenge is answered (Basic: the credentials; Bearer: a token from the
//! realm, asked for anonymously or with the credentials, per Docker's token spec) and the
//! request is sent once more. Tokens are cached per realm, service, scopes and user until
//! they expire; a registry's challenge is remembered, so later requests carry their
//! credentials from the start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use sha2::Digest as _;

use super::credentials::AuthConfig;
use super::endpoint::Endpoint;
use super::error::{ApiError, RegistryError, Result};

/// One authentication scheme a registry offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `WWW-Authenticate` values (RFC 7235 challenges: a scheme, then `key=value` or
/// `key="quoted"` parameters separated by commas; several challenges may share a header).
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for header in headers {
        let mut current: Option<(String, HashMap<String, String>)> = None;
        let mut rest = header.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches([' ', ',', '\t']);
            let end = rest.find([' ', ',', '=', '\t']).unwrap_or(rest.len());
            let token = &rest[..end];
            rest = &rest[end..];
            if token.is_empty() {
                break;
            }
            let after = rest.trim_start();
            if let Some(value_part) = after.strip_prefix('=') {
                let value_part = value_part.trim_start();
                let (value, remaining) = if let Some(q) = value_part.strip_prefix('"') {
                    let mut value = String::new();
                    let mut chars = q.char_indices();
                    let mut end = q.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    value.push(n);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    (value, &q[end.min(q.len())..])
                } else {
                    let end = value_part.find([',', ' ']).unwrap_or(value_part.len());
                    (value_part[..end].to_owned(), &value_part[end..])
                };
                if let Some((_, params)) = &mut current {
                    params.insert(token.to_ascii_lowercase(), value);
                }
                rest = remaining;
            } else {
                if let Some(c) = current.take().and_then(to_challenge) {
                    out.push(c);
                }
                current = Some((token.to_ascii_lowercase(), HashMap::new()));
            }
        }
        if let Some(c) = current.take().and_then(to_challenge) {
            out.push(c);
        }
    }
    out
}

fn to_challenge((scheme, mut params): (String, HashMap<String, String>)) -> Option<Challenge> {
    match scheme.as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.remove("realm").unwrap_or_default(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

/// `repository:<name>:pull` and friends.
pub fn repository_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// The credentials a session presents, from an [`AuthConfig`].
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    IdentityToken {
        username: String,
        token: String,
    },
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username})"),
            Credentials::IdentityToken { username, .. } => write!(f, "IdentityToken({username})"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken"),
        }
    }
}

impl Credentials {
    pub(crate) fn from_auth(auth: Option<&AuthConfig>) -> Credentials {
        let Some(a) = auth else {
            return Credentials::Anonymous;
        };
        if !a.registry_token.is_empty() {
            return Credentials::RegistryToken(a.registry_token.clone());
        }
        let user = a.user_password();
        if !a.identity_token.is_empty() {
            return Credentials::IdentityToken {
                username: user.map(|(u, _)| u).unwrap_or_default(),
                token: a.identity_token.clone(),
            };
        }
        match user {
            Some((username, password)) => Credentials::Basic { username, password },
            None => Credentials::Anonymous,
        }
    }

    /// Part of a token's cache key: who asked (the secret hashed, never kept in clear).
    fn identity(&self) -> String {
        let hash = |s: &str| {
            let h = sha2::Sha256::digest(s.as_bytes());
            h.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        match self {
            Credentials::Anonymous => String::new(),
            Credentials::Basic { username, password } => format!("b:{username}:{}", hash(password)),
            Credentials::IdentityToken { username, token } => {
                format!("i:{username}:{}", hash(token))
            }
            Credentials::RegistryToken(t) => format!("r:{}", hash(t)),
        }
    }
}

/// Tokens and challenges, shared by every session of a client.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    challenges: Mutex<HashMap<String, Challenge>>,
}

impl AuthCache {
    fn token(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    fn put_token(&self, key: String, token: String, until: Instant) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, u)| *u > Instant::now());
        tokens.insert(key, (token, until));
    }

    fn forget_token(&self, key: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.remove(key);
    }

    fn challenge(&self, registry: &str) -> Option<Challenge> {
        let c = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        c.get(registry).cloned()
    }

    fn put_challenge(&self, registry: &str, challenge: Challenge) {
        let mut c = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        c.insert(registry.to_owned(), challenge);
    }
}

/// What a request carries: nothing, bytes, or a stretch of a file (streamed, and counted in
/// `sent` as it goes, for push progress).
#[derive(Debug, Clone)]
pub(crate) enum ReqBody {
    Empty,
    Bytes(Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        sent: Arc<AtomicU64>,
    },
}

/// A request that can be sent again (after an auth challenge).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(HeaderName, String)>,
    pub body: ReqBody,
}

impl Req {
    pub fn new(method: Method, url: String) -> Req {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: ReqBody::Empty,
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: ReqBody) -> Req {
        self.body = body;
        self
    }
}

/// The method as Go's errors show it (`Get`, `Head`, `Put`…).
fn go_method(m: &Method) -> String {
    let s = m.as_str();
    let mut out = s[..1].to_owned();
    out.push_str(&s[1..].to_ascii_lowercase());
    out
}

/// A transport error with its causes, as one line.
pub(crate) fn http_error(method: &Method, url: &str, e: &reqwest::Error) -> RegistryError {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    let message = if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    };
    RegistryError::Http {
        method: go_method(method),
        url: url.to_owned(),
        message,
    }
}

/// The registry's error from a failed response: its `{"errors":[…]}` body, or what its status
/// means when there is none.
pub(crate) async fn api_error(resp: Response) -> ApiError {
    let status = resp.status().as_u16();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    api_error_from(status, &body)
}

pub(crate) fn api_error_from(status: u16, body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Entry>,
        /// Docker Hub's token server: `{"details":"incorrect username or password"}`.
        #[serde(default)]
        details: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        if let Some(first) = e.errors.into_iter().next() {
            return ApiError {
                status,
                code: first.code,
                message: first.message,
            };
        }
        if let Some(d) = e.details {
            return ApiError::new(status, "UNAUTHORIZED", &d);
        }
    }
    match status {
        401 => ApiError::new(status, "UNAUTHORIZED", "authentication required"),
        403 => ApiError::new(
            status,
            "DENIED",
            "requested access to the resource is denied",
        ),
        _ => ApiError::new(status, "", ""),
    }
}

/// Reads a body up to `limit` bytes.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> Result<Vec<u8>> {
    let url = resp.url().to_string();
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| http_error(&Method::GET, &url, &e))?
    {
        if out.len() + chunk.len() > limit {
            return Err(RegistryError::InvalidManifest(format!(
                "{url}: response larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Requests to one registry, for a set of scopes, with one set of credentials.
#[derive(Debug)]
pub(crate) struct Session {
    pub http: reqwest::Client,
    pub endpoint: Endpoint,
    creds: Credentials,
    scopes: Mutex<Vec<String>>,
    cache: Arc<AuthCache>,
}

impl Session {
    pub fn new(
        http: reqwest::Client,
        endpoint: Endpoint,
        creds: Credentials,
        scopes: Vec<String>,
        cache: Arc<AuthCache>,
    ) -> Session {
        Session {
            http,
            endpoint,
            creds,
            scopes: Mutex::new(scopes),
            cache,
        }
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn token_key(&self, realm: &str, service: Option<&str>) -> String {
        let mut scopes = self.scopes();
        scopes.sort();
        format!(
            "{realm}|{}|{}|{}",
            service.unwrap_or(""),
            scopes.join(" "),
            self.creds.identity()
        )
    }

    /// The `Authorization` header for the registry's known challenge (fetching a token when
    /// none is cached), or none.
    async fn authorization(&self) -> Result<Option<String>> {
        if let Credentials::RegistryToken(t) = &self.creds {
            return Ok(Some(format!("Bearer {t}")));
        }
        match self.cache.challenge(&self.endpoint.registry) {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => Ok(match &self.creds {
                Credentials::Basic { username, password } => Some(basic_header(username, password)),
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = self.token_key(&realm, service.as_deref());
                if let Some(t) = self.cache.token(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let (token, ttl) = self.fetch_token(&realm, service.as_deref()).await?;
                self.cache
                    .put_token(key, token.clone(), Instant::now() + ttl);
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// A token from `realm` for this session's scopes (Docker's token spec: GET with basic
    /// credentials or none; with an identity token, the OAuth2 refresh-token POST).
    async fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<(String, Duration)> {
        let scopes = self.scopes();
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s.to_owned()));
        }
        let resp = match &self.creds {
            Credentials::IdentityToken { token, .. } => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", token.clone()),
                    ("client_id", "berth".to_owned()),
                ];
                form.extend(query.iter().cloned());
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                self.http
                    .post(realm)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| http_error(&Method::POST, realm, &e))?
            }
            creds => {
                for s in &scopes {
                    query.push(("scope", s.clone()));
                }
                let mut req = self.http.get(realm);
                if let Credentials::Basic { username, password } = creds {
                    query.push(("account", username.clone()));
                    req = req.header(AUTHORIZATION, basic_header(username, password));
                }
                req.query(&query)
                    .send()
                    .await
                    .map_err(|e| http_error(&Method::GET, realm, &e))?
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let mut e = api_error(resp).await;
            if e.status == 401 || e.status == 403 {
                if e.code.is_empty() {
                    e.code = "UNAUTHORIZED".into();
                }
                if matches!(self.creds, Credentials::Basic { .. }) && e.message.is_empty() {
                    e.message = "incorrect username or password".into();
                }
            }
            return Err(RegistryError::Api(e));
        }
        parse_token(&read_limited(resp, 1 << 20).await?)
    }

    /// Sends `req`; on a `401` with a challenge, authenticates and sends it once more.
    pub async fn send(&self, req: &Req) -> Result<Response> {
        let mut retried = false;
        loop {
            let auth = self.authorization().await?;
            let resp = self.send_once(req, auth.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            let challenges = parse_challenges(
                resp.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let Some(challenge) = challenges
                .iter()
                .find(|c| matches!(c, Challenge::Bearer { .. }))
                .or(challenges.first())
                .cloned()
            else {
                return Ok(resp);
            };
            match &challenge {
                Challenge::Basic { .. } if !matches!(self.creds, Credentials::Basic { .. }) => {
                    self.cache
                        .put_challenge(&self.endpoint.registry, challenge.clone());
                    return Ok(resp);
                }
                Challenge::Bearer {
                    realm,
                    service,
                    scope,
                } => {
                    // The token we sent (if any) was not enough: ask again, for the scope the
                    // registry named too.
                    self.cache
                        .forget_token(&self.token_key(realm, service.as_deref()));
                    if let Some(extra) = scope {
                        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
                        for s in extra.split(' ').filter(|s| !s.is_empty()) {
                            if !scopes.iter().any(|have| have == s) {
                                scopes.push(s.to_owned());
                            }
                        }
                    }
                }
                Challenge::Basic { .. } => {}
            }
            self.cache.put_challenge(&self.endpoint.registry, challenge);
            retried = true;
        }
    }

    async fn send_once(&self, req: &Req, auth: Option<&str>) -> Result<Response> {
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name.clone(), v);
            }
        }
        if let Some(a) = auth {
            if let Ok(v) = HeaderValue::from_str(a) {
                headers.insert(AUTHORIZATION, v);
            }
        }
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .headers(headers);
        builder = match &req.body {
            ReqBody::Empty => builder,
            ReqBody::Bytes(b) => builder.body(b.clone()),
            ReqBody::File {
                path,
                offset,
                len,
                sent,
            } => {
                sent.store(0, Ordering::Relaxed);
                let stream = super::push::FileChunks::open(path, *offset, *len, sent.clone())
                    .map_err(|e| RegistryError::io("read", path, e))?;
                builder
                    .header(reqwest::header::CONTENT_LENGTH, len.to_string())
                    .body(reqwest::Body::wrap_stream(stream))
            }
        };
        builder
            .send()
            .await
            .map_err(|e| http_error(&req.method, &req.url, &e))
    }
}

pub(crate) fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// A token server's answer: `token` or `access_token`, valid for `expires_in` seconds (60
/// when it does not say, as the spec has it).
fn parse_token(body: &[u8]) -> Result<(String, Duration)> {
    #[derive(Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let t: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        RegistryError::Api(ApiError::new(
            200,
            "",
            &format!("unable to decode token response: {e}"),
        ))
    })?;
    let token = if t.token.is_empty() {
        t.access_token
    } else {
        t.token
    };
    if token.is_empty() {
        return Err(RegistryError::Api(ApiError::new(
            200,
            "",
            "authorization server did not include a token in the response",
        )));
    }
    let secs = t.expires_in.filter(|s| *s > 0).unwrap_or(60);
    // Renewed a little before the server would refuse it.
    Ok((token, Duration::from_secs(secs.saturating_sub(5).max(1))))
}

/// Logs in the way `docker login` checks credentials: `/v2/` without them; on a Basic
/// challenge, again with them; on a Bearer challenge, a token for no scope from the realm
/// (asking for a refresh token, which becomes the identity token). Returns that identity
/// token, if the server gave one.
pub(crate) async fn check_login(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    creds: &Credentials,
) -> Result<Option<String>> {
    let url = endpoint.url("/v2/");
    let get = |auth: Option<String>| {
        let mut r = http.get(&url);
        if let Some(a) = auth {
            r = r.header(AUTHORIZATION, a);
        }
        r.send()
    };
    let resp = get(None)
        .await
        .map_err(|e| http_error(&Method::GET, &url, &e))?;
    if resp.status().is_success() {
        return Ok(None);
    }
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Api(api_error(resp).await));
    }
    let challenges = parse_challenges(
        resp.headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let bearer = challenges.iter().find_map(|c| match c {
        Challenge::Bearer { realm, service, .. } => Some((realm.clone(), service.clone())),
        Challenge::Basic { .. } => None,
    });
    let Some((realm, service)) = bearer else {
        let Credentials::Basic { username, password } = creds else {
            return Err(RegistryError::LoginFailed {
                url: url.clone(),
                status: 401,
            });
        };
        let resp = get(Some(basic_header(username, password)))
            .await
            .map_err(|e| http_error(&Method::GET, &url, &e))?;
        return match resp.status() {
            s if s.is_success() => Ok(None),
            s => Err(RegistryError::LoginFailed {
                url: url.clone(),
                status: s.as_u16(),
            }),
        };
    };
    let mut query = vec![
        ("client_id", "berth".to_owned()),
        ("offline_token", "true".to_owned()),
    ];
    if let Some(s) = service {
        query.push(("service", s));
    }
    let mut req = http.get(&realm);
    match creds {
        Credentials::Basic { username, password } => {
            query.push(("account", username.clone()));
            req = req.header(AUTHORIZATION, basic_header(username, password));
        }
        Credentials::IdentityToken { .. } | Credentials::RegistryToken(_) => {
            // Checked by using it: a session for no scope.
            let session = Session::new(
                http.clone(),
                endpoint.clone(),
                creds.clone(),
                Vec::new(),
                Arc::default(),
            );
            let resp = session.send(&Req::new(Method::GET, url.clone())).await?;
            return match resp.status() {
                s if s.is_success() => Ok(None),
                _ => Err(RegistryError::Api(api_error(resp).await)),
            };
        }
        Credentials::Anonymous => {}
    }
    let resp = req
        .query(&query)
        .send()
        .await
        .map_err(|e| http_error(&Method::GET, &realm, &e))?;
    if !resp.status().is_success() {
        let mut e = api_error(resp).await;
        if e.status == 401 || e.status == 403 {
            e.code = "UNAUTHORIZED".into();
            if e.message.is_empty() || e.message == "authentication required" {
                e.message = "incorrect username or password".into();
            }
        }
        return Err(RegistryError::Api(e));
    }
    #[derive(Deserialize)]
    struct Refresh {
        #[serde(default)]
        refresh_token: String,
    }
    let body = read_limited(resp, 1 << 20).await?;
    parse_token(&body)?;
    let refresh: Refresh = serde_json::from_slice(&body).unwrap_or(Refresh {
        refresh_token: String::new(),
    });
    Ok((!refresh.refresh_token.is_empty()).then_some(refresh.refresh_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_as_registries_send_them() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
        let c = parse_challenges([r#"Basic realm="Registry Realm""#]);
        assert_eq!(
            c,
            vec![Challenge::Basic {
                realm: "Registry Realm".into()
            }]
        );
        // Two in one header, unquoted values, odd spacing, an escaped quote, unknown schemes.
        let c = parse_challenges([
            r#"Negotiate, Basic realm=r1 , Bearer realm="http://a/t?x=1,y" , service="s\"q",error="insufficient_scope""#,
        ]);
        assert_eq!(
            c,
            vec![
                Challenge::Basic { realm: "r1".into() },
                Challenge::Bearer {
                    realm: "http://a/t?x=1,y".into(),
                    service: Some("s\"q".into()),
                    scope: None,
                }
            ]
        );
        assert!(parse_challenges([""]).is_empty());
        assert!(
            parse_challenges(["Bearer service=x"]).is_empty(),
            "no realm"
        );
    }

    #[test]
    fn token_answers() {
        let (t, ttl) = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t, "abc");
        assert_eq!(ttl, Duration::from_secs(295));
        let (t, ttl) = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t, "xyz");
        assert_eq!(ttl, Duration::from_secs(55));
        assert!(parse_token(b"{}").is_err());
    }

    #[test]
    fn error_bodies() {
        let e = api_error_from(
            404,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        let e = api_error_from(401, br#"{"details":"incorrect username or password"}"#);
        assert_eq!(
            e.to_string(),
            "unauthorized: incorrect username or password"
        );
        assert_eq!(
            api_error_from(401, b"").to_string(),
            "unauthorized: authentication required"
        );
        assert_eq!(
            api_error_from(502, b"<html>").to_string(),
            "received unexpected HTTP status: 502 Bad Gateway"
        );
    }

    #[test]
    fn credentials_from_auth_configs() {
        assert_eq!(Credentials::from_auth(None), Credentials::Anonymous);
        assert_eq!(
            Credentials::from_auth(Some(&AuthConfig::default())),
            Credentials::Anonymous
        );
        assert_eq!(
            Credentials::from_auth(Some(&AuthConfig {
                auth: "dTpw".into(),
                ..Default::default()
            })),
            Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert!(matches!(
            Credentials::from_auth(Some(&AuthConfig {
                identity_token: "t".into(),
                ..AuthConfig::basic("u", "")
            })),
            Credentials::IdentityToken { .. }
        ));
        assert_eq!(go_method(&Method::HEAD), "Head");
    }
}

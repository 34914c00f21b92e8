//! A small HTTP/1.1 client for the engine's API on a unix socket, TCP or TLS ([`crate::conn`]):
//! JSON requests, bodies read as they stream (chunked or not), uploads, and hijacked
//! connections for attach and exec. The CLI is short-lived; a blocking client keeps its
//! start-up cost near zero.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use thiserror::Error;

use crate::conn::{Conn, ConnectError, Endpoint, TlsFailure};

#[derive(Debug, Error)]
pub enum ClientError {
    /// Nobody answers at the address (`unix:///…`, `tcp://…`).
    #[error("Cannot connect to the berth daemon at {0}. Is the berth daemon running?")]
    Unreachable(String),
    /// TLS failed (Go's `error during connect: Get "https://…/v1.45/version": tls: …`).
    #[error("error during connect: {op} \"{url}\": {detail}")]
    Connect {
        op: String,
        url: String,
        detail: String,
    },
    #[error("error talking to the berth daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response from the berth daemon: {0}")]
    Protocol(String),
    /// The daemon answered with an error status and Docker's `{"message"}`.
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A whole response, read to its end.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// What a request carries.
#[derive(Debug)]
pub enum Payload<'a> {
    None,
    Json(&'a serde_json::Value),
}

#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

/// The API version the CLI asks for.
pub const API_VERSION: &str = "1.45";

/// A response whose body is read as it arrives.
#[derive(Debug)]
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: BodyReader,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the rest of the body.
    pub fn into_response(mut self) -> Result<Response, ClientError> {
        let mut body = Vec::new();
        self.body.read_to_end(&mut body)?;
        Ok(Response {
            status: self.status,
            body,
        })
    }

    pub fn body(&mut self) -> &mut BodyReader {
        &mut self.body
    }
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    /// Bytes left in the current chunk; `None` before the first chunk header.
    Chunked {
        left: usize,
        done: bool,
    },
    UntilClose,
}

/// A response body: Content-Length, chunked, or up to the close of the connection.
#[derive(Debug)]
pub struct BodyReader {
    r: BufReader<Conn>,
    framing: Framing,
}

impl BodyReader {
    /// Reads one line (up to and including `\n`); an empty vector at the end.
    pub fn read_line_bytes(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.read(&mut byte)? {
                0 => return Ok(line),
                _ => {
                    line.push(byte[0]);
                    if byte[0] == b'\n' {
                        return Ok(line);
                    }
                }
            }
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.framing {
            Framing::Length(left) => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.r.read(&mut buf[..want])?;
                *left -= n as u64;
                Ok(n)
            }
            Framing::UntilClose => self.r.read(buf),
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.r.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // The CRLF after the previous chunk.
                        line.clear();
                        self.r.read_line(&mut line)?;
                    }
                    if line.is_empty() {
                        *done = true;
                        return Ok(0);
                    }
                    let size =
                        usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                            .map_err(|_| {
                                std::io::Error::new(
                                    std::io::ErrorKind::InvalidData,
                                    format!("bad chunk size {line:?}"),
                                )
                            })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let want = buf.len().min(*left);
                let n = self.r.read(&mut buf[..want])?;
                if n == 0 {
                    *done = true;
                }
                *left -= n;
                Ok(n)
            }
        }
    }
}

/// A hijacked connection (attach, exec): raw bytes both ways.
#[derive(Debug)]
pub struct Hijacked {
    /// Reads what the daemon sends, including bytes that arrived with the response head.
    pub reader: BufReader<Conn>,
    /// Writes to the daemon; `shutdown(Write)` tells it our input ended.
    pub writer: Conn,
    /// Whether the stream is Docker's multiplexed framing (no tty) or raw.
    pub multiplexed: bool,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Client {
        Client { endpoint }
    }

    /// A client of the daemon on the unix socket `socket`.
    pub fn unix(socket: PathBuf) -> Client {
        Client::new(Endpoint::Unix(socket))
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens a connection (whether anybody listens).
    pub fn connect(&self) -> Result<Conn, ClientError> {
        self.open("GET", "/_ping")
    }

    /// Opens a connection for a request; TLS failures are worded for it, as Go's url.Error.
    fn open(&self, method: &str, path: &str) -> Result<Conn, ClientError> {
        self.endpoint.connect().map_err(|e| match e {
            ConnectError::Unreachable(_) => ClientError::Unreachable(self.endpoint.address()),
            ConnectError::Tls(detail) => self.connect_error(method, path, detail),
        })
    }

    fn connect_error(&self, method: &str, path: &str, detail: String) -> ClientError {
        let scheme = match &self.endpoint {
            Endpoint::Tcp { tls: Some(_), .. } => "https",
            _ => "http",
        };
        let authority = match &self.endpoint {
            Endpoint::Tcp { authority, .. } => authority.clone(),
            Endpoint::Unix(_) => "api.moby.localhost".into(),
        };
        // Go names the operation by the method with a capital: Get, Post, Head.
        let mut op: String = method.to_ascii_lowercase();
        if let Some(first) = op.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        ClientError::Connect {
            op,
            url: format!("{scheme}://{authority}/v{API_VERSION}{path}"),
            detail,
        }
    }

    /// A TLS failure met after the handshake (the daemon refusing our certificate shows up
    /// at the first read in TLS 1.3) in the same words as one during it.
    fn reword(&self, method: &str, path: &str, e: ClientError) -> ClientError {
        if let ClientError::Io(io) = &e {
            if let Some(TlsFailure(detail)) = io.get_ref().and_then(|i| i.downcast_ref()) {
                return self.connect_error(method, path, detail.clone());
            }
        }
        e
    }

    fn head(method: &str, path: &str, extra: &str) -> String {
        format!(
            "{method} /v{API_VERSION}{path} HTTP/1.1\r\nHost: berth\r\nUser-Agent: berth-cli/{}\r\n{extra}",
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Sends a request and returns the response once its head has arrived; error statuses
    /// become [`ClientError::Api`].
    pub fn send(
        &self,
        method: &str,
        path: &str,
        payload: Payload<'_>,
    ) -> Result<Streaming, ClientError> {
        self.send_with_headers(method, path, payload, &[])
    }

    /// [`Client::send`] with extra request headers (`X-Registry-Auth`).
    pub fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        payload: Payload<'_>,
        headers: &[(&str, String)],
    ) -> Result<Streaming, ClientError> {
        self.send_inner(method, path, payload, headers)
            .map_err(|e| self.reword(method, path, e))
    }

    fn send_inner(
        &self,
        method: &str,
        path: &str,
        payload: Payload<'_>,
        headers: &[(&str, String)],
    ) -> Result<Streaming, ClientError> {
        let mut stream = self.open(method, path)?;
        let mut head = Self::head(method, path, "Connection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = match payload {
            Payload::None => String::new(),
            Payload::Json(v) => {
                let text = v.to_string();
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    text.len()
                ));
                text
            }
        };
        if method != "GET" && method != "HEAD" && matches!(payload, Payload::None) {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        checked(read_head(stream, method == "HEAD")?)
    }

    /// Sends `body` as a chunked upload (a tarball for import or load).
    pub fn upload(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
    ) -> Result<Streaming, ClientError> {
        self.upload_inner(method, path, content_type, body)
            .map_err(|e| self.reword(method, path, e))
    }

    fn upload_inner(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
    ) -> Result<Streaming, ClientError> {
        let mut stream = self.open(method, path)?;
        let head = Self::head(
            method,
            path,
            &format!(
                "Connection: close\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
        );
        stream.write_all(head.as_bytes())?;
        let mut buf = vec![0u8; 256 * 1024];
        {
            let mut w = std::io::BufWriter::new(&mut stream);
            loop {
                let n = body.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                write!(w, "{n:x}\r\n")?;
                w.write_all(&buf[..n])?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")?;
            w.flush()?;
        }
        checked(read_head(stream, false)?)
    }

    /// Sends a request that upgrades the connection to a raw stream (attach, exec start).
    pub fn hijack(
        &self,
        method: &str,
        path: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<Hijacked, ClientError> {
        self.hijack_inner(method, path, payload)
            .map_err(|e| self.reword(method, path, e))
    }

    fn hijack_inner(
        &self,
        method: &str,
        path: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<Hijacked, ClientError> {
        let mut stream = self.open(method, path)?;
        let mut head = Self::head(method, path, "Connection: Upgrade\r\nUpgrade: tcp\r\n");
        let body = payload.map(|v| v.to_string()).unwrap_or_default();
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let writer = stream.try_clone()?;
        let resp = checked(read_head(stream, false)?)?;
        let multiplexed = resp
            .header("content-type")
            .is_some_and(|c| c.contains("multiplexed"));
        Ok(Hijacked {
            reader: resp.body.r,
            writer,
            multiplexed,
        })
    }

    /// Sends a request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        let payload = match body {
            Some(v) => Payload::Json(v),
            None => Payload::None,
        };
        self.send(method, path, payload)?.into_response()
    }

    pub fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request("GET", path, None)
    }

    pub fn post(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        self.request("POST", path, body)
    }

    pub fn delete(&self, path: &str) -> Result<Response, ClientError> {
        self.request("DELETE", path, None)
    }
}

/// Turns an error status into [`ClientError::Api`] with the daemon's message.
fn checked(resp: Streaming) -> Result<Streaming, ClientError> {
    if resp.status < 400 {
        return Ok(resp);
    }
    let status = resp.status;
    let body = resp.into_response()?.body;
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    Err(ClientError::Api { status, message })
}

fn read_head(stream: Conn, head_only: bool) -> Result<Streaming, ClientError> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let framing = if head_only || status == 204 || status == 304 || status == 101 {
        if status == 101 {
            Framing::UntilClose
        } else {
            Framing::Length(0)
        }
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Streaming {
        status,
        headers,
        body: BodyReader { r, framing },
    })
}

pub use berth_core::query::encode;

/// Builds `path?k=v&…` from the pairs whose value is not empty.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

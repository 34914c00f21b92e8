//! A tiny HTTP server on 127.0.0.1 for tests that need a remote end (`ADD <url>`, `import`
//! from a URL, a registry's search API): every request gets the same answer, and the request
//! lines are kept for the test to look at.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// A server answering every request with one 200 response; it stops with the test process.
#[derive(Debug)]
pub struct HttpServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    /// Serves `body` with the extra `headers` (each `Name: value`), until the test ends.
    pub fn serve(headers: &[&str], body: Vec<u8>) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(request.lines().next().unwrap_or("").to_owned());
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        HttpServer { port, requests }
    }

    /// The request lines received so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

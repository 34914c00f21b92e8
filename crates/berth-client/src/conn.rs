//! What the client's requests travel on: a unix socket, plain TCP, or TLS over TCP
//! (rustls), as one blocking [`Conn`] that reads, writes, clones and shuts down alike.
//!
//! Hijacked connections (attach, exec) are read by one thread and written by another, and
//! our end of the input is closed on its own (`shutdown(Write)`). A socket does that by
//! itself; a TLS session is one state machine for both directions, so [`TlsConn`] shares
//! it: the session sits behind a mutex, held only while records are encrypted or decrypted,
//! never while a thread waits on the socket. The reader waits for the socket to be readable
//! with the lock free, then takes it to pull in what arrived; the writer encrypts under the
//! lock and sends the records in order (a second lock, taken before the first is let go,
//! keeps two threads' records from interleaving). Closing our input sends TLS's
//! close_notify and then half-closes TCP, so the daemon reads a clean end of input while
//! its output still flows back.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use berth_core::host::Host;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

/// Where the daemon is and how to speak to it.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp {
        /// `host:port`, for connect and for messages.
        authority: String,
        /// The session's configuration and the name the certificate must carry; `None`
        /// for plain TCP.
        tls: Option<TlsClient>,
    },
}

/// A TLS client's configuration and the server name it checks.
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

impl Endpoint {
    /// The endpoint of a parsed host; `tls` is used for tcp hosts only.
    pub fn new(host: &Host, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Endpoint, String> {
        match host {
            Host::Unix(path) => Ok(Endpoint::Unix(path.clone())),
            Host::Tcp { host: name, .. } => {
                let authority = host.authority().unwrap_or_default();
                let tls = match tls {
                    Some(config) => Some(TlsClient {
                        config,
                        name: berth_tls::server_name(name).map_err(|e| e.to_string())?,
                    }),
                    None => None,
                };
                Ok(Endpoint::Tcp { authority, tls })
            }
        }
    }

    /// The address as Docker prints it: `unix:///path`, `tcp://host:port`.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Unix(path) => format!("unix://{}", path.display()),
            Endpoint::Tcp { authority, .. } => format!("tcp://{authority}"),
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Endpoint::Tcp { .. })
    }

    /// Opens a connection; for TLS, with the handshake done.
    pub fn connect(&self) -> Result<Conn, ConnectError> {
        match self {
            Endpoint::Unix(path) => UnixStream::connect(path)
                .map(Conn::Unix)
                .map_err(ConnectError::Unreachable),
            Endpoint::Tcp { authority, tls } => {
                let tcp =
                    TcpStream::connect(authority.as_str()).map_err(ConnectError::Unreachable)?;
                // Attach and exec are interactive: no waiting for full segments.
                let _ = tcp.set_nodelay(true);
                match tls {
                    None => Ok(Conn::Tcp(tcp)),
                    Some(t) => TlsConn::handshake(tcp, t).map(Conn::Tls),
                }
            }
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// Nobody listens (or the address cannot be reached).
    Unreachable(io::Error),
    /// The TLS handshake failed; the text is Go's.
    Tls(String),
}

/// One connection to the daemon.
#[derive(Debug)]
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(TlsConn),
}

impl Conn {
    /// A second handle on the same connection (a reader beside a writer).
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Tls(s) => Conn::Tls(s.clone()),
        })
    }

    /// Ends one or both directions; over TLS, with close_notify first.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(how),
            Conn::Tcp(s) => s.shutdown(how),
            Conn::Tls(s) => s.shutdown(how),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read_plain(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write_plain(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush_plain(),
        }
    }
}

/// A TLS session over TCP whose handles (clones) may read and write from different threads.
#[derive(Clone)]
pub struct TlsConn {
    shared: Arc<Shared>,
}

struct Shared {
    session: Mutex<ClientConnection>,
    tcp: TcpStream,
    /// Held from taking records out of the session until they are on the socket.
    send_order: Mutex<()>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("peer", &self.shared.tcp.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A rustls error carried in an io::Error, already in Go's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsFailure(pub String);

fn tls_failure(e: &rustls::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        TlsFailure(berth_tls::go_error_text(e)),
    )
}

/// An io error that rustls wrapped around one of its own, in Go's words.
fn reword(e: io::Error) -> io::Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_failure(tls),
        None => e,
    }
}

impl TlsConn {
    /// Runs the handshake to its end on the blocking socket.
    fn handshake(tcp: TcpStream, client: &TlsClient) -> Result<TlsConn, ConnectError> {
        let mut session = ClientConnection::new(client.config.clone(), client.name.clone())
            .map_err(|e| ConnectError::Tls(berth_tls::go_error_text(&e)))?;
        let mut sock = &tcp;
        while session.is_handshaking() {
            if let Err(e) = session.complete_io(&mut sock) {
                let e = reword(e);
                return Err(
                    match e.get_ref().and_then(|i| i.downcast_ref::<TlsFailure>()) {
                        Some(TlsFailure(text)) => ConnectError::Tls(text.clone()),
                        None => ConnectError::Tls(e.to_string()),
                    },
                );
            }
        }
        Ok(TlsConn {
            shared: Arc::new(Shared {
                session: Mutex::new(session),
                tcp,
                send_order: Mutex::new(()),
            }),
        })
    }

    fn session(&self) -> MutexGuard<'_, ClientConnection> {
        self.shared
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the records the session has ready, in order, letting go of the session first.
    fn send_pending(&self, mut session: MutexGuard<'_, ClientConnection>) -> io::Result<()> {
        if !session.wants_write() {
            return Ok(());
        }
        let mut records = Vec::new();
        while session.wants_write() {
            session.write_tls(&mut records)?;
        }
        let _order = self
            .shared
            .send_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        drop(session);
        (&self.shared.tcp).write_all(&records)
    }

    /// Plaintext the daemon sent; 0 at the end (close_notify, or TCP closed without one).
    /// One reader at a time.
    fn read_plain(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.session().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The daemon closed the connection without close_notify: the end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Wait with the session free, so the writer is never held up by our waiting.
            wait_readable(&self.shared.tcp)?;
            let mut session = self.session();
            session.read_tls(&mut &self.shared.tcp)?;
            let processed = session.process_new_packets();
            // An alert rustls queued for the daemon goes out either way.
            let sent = self.send_pending(session);
            processed.map_err(|e| tls_failure(&e))?;
            sent?;
        }
    }

    fn write_plain(&self, buf: &[u8]) -> io::Result<usize> {
        let mut session = self.session();
        let n = session.writer().write(buf)?;
        self.send_pending(session)?;
        Ok(n)
    }

    fn flush_plain(&self) -> io::Result<()> {
        let mut session = self.session();
        session.writer().flush()?;
        self.send_pending(session)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let mut session = self.session();
            session.send_close_notify();
            // The socket may already be gone (the daemon closed it): shut down regardless.
            let _ = self.send_pending(session);
        }
        self.shared.tcp.shutdown(how)
    }
}

/// Blocks until `tcp` has something to read (or its end).
fn wait_readable(tcp: &TcpStream) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(tcp.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A CA, a server certificate for 127.0.0.1 and its key, as PEM files.
    fn certs(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let paths = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&paths.0, ca.pem()).unwrap();
        std::fs::write(&paths.1, leaf.pem()).unwrap();
        std::fs::write(&paths.2, key.serialize_pem()).unwrap();
        paths
    }

    /// A hijacked connection over TLS: one thread reads while another writes, our input
    /// ends with a half-close, and the server's answer after that still arrives.
    #[test]
    fn one_session_read_and_written_from_two_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certs(dir.path());
        let server_config = Arc::new(berth_tls::server_config(&cert, &key, None).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done_tx, done_rx) = mpsc::channel();
        // The server: echoes what it reads in upper case until our close_notify, then says
        // "bye" and closes.
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let session = rustls::ServerConnection::new(server_config).unwrap();
            let mut tls = rustls::StreamOwned::new(session, tcp);
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            loop {
                let n = tls.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                tls.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
            }
            tls.write_all(b"bye").unwrap();
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            done_tx.send(seen).unwrap();
        });
        let config = berth_tls::client_config(&ca, None, berth_tls::ServerCheck::Verify).unwrap();
        let host = Host::parse(&format!("tcp://127.0.0.1:{port}"), true).unwrap();
        let endpoint = Endpoint::new(&host, Some(Arc::new(config))).unwrap();
        let mut reader = endpoint.connect().unwrap();
        let mut writer = reader.try_clone().unwrap();
        let read_all = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            got
        });
        // Written while the reader waits in the other thread.
        for chunk in [&b"hello "[..], b"over ", b"tls"] {
            writer.write_all(chunk).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        writer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(done_rx.recv().unwrap(), b"hello over tls");
        assert_eq!(read_all.join().unwrap(), b"HELLO OVER TLSbye");
    }

    /// A server that accepts one TLS connection with `cert` and reads a byte.
    fn serve_once(cert: &std::path::Path, key: &std::path::Path) -> u16 {
        let server_config = Arc::new(berth_tls::server_config(cert, key, None).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let session = rustls::ServerConnection::new(server_config).unwrap();
            let mut tls = rustls::StreamOwned::new(session, tcp);
            let _ = tls.read(&mut [0u8; 1]);
        });
        port
    }

    /// --tlsverify checks the name dialled: the certificate is for 127.0.0.1, not localhost.
    #[test]
    fn a_server_under_another_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certs(dir.path());
        let port = serve_once(&cert, &key);
        let config = berth_tls::client_config(&ca, None, berth_tls::ServerCheck::Verify).unwrap();
        let host = Host::Tcp {
            host: "localhost".into(),
            port,
        };
        // Dial 127.0.0.1 but check the certificate against "localhost".
        let mut endpoint = Endpoint::new(&host, Some(Arc::new(config))).unwrap();
        if let Endpoint::Tcp { authority, .. } = &mut endpoint {
            *authority = format!("127.0.0.1:{port}");
        }
        match endpoint.connect() {
            Err(ConnectError::Tls(text)) => assert!(text.contains("not valid"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_server_of_another_ca_is_refused_in_gos_words() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, key) = certs(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (other_ca, _, _) = certs(other.path());
        let port = serve_once(&cert, &key);
        let config =
            berth_tls::client_config(&other_ca, None, berth_tls::ServerCheck::Verify).unwrap();
        let host = Host::parse(&format!("tcp://127.0.0.1:{port}"), true).unwrap();
        let endpoint = Endpoint::new(&host, Some(Arc::new(config))).unwrap();
        match endpoint.connect() {
            Err(ConnectError::Tls(text)) => assert_eq!(
                text,
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            ),
            other => panic!("{other:?}"),
        }
    }
}

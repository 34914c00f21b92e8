//! The sockets the API is served on, as one axum listener: unix sockets, plain TCP and TLS
//! over TCP side by side (`berth daemon -H unix://… -H tcp://…`), all answered by the same
//! service. Each socket accepts in a task of its own, and a TLS connection's handshake runs
//! in its own task (ten seconds at most), so a slow or silent client holds up nobody; only
//! finished connections reach the server. Plain HTTP sent to a TLS port gets Go's answer,
//! `400 Client sent an HTTP request to an HTTPS server.`, as dockerd gives it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;

/// How long a TLS client may take to say hello and finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Go's answer to plain HTTP on a TLS port (net/http's server sends exactly this).
const HTTP_ON_TLS_PORT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// A bound socket and how its connections are spoken.
pub enum Bound {
    Unix(UnixListener),
    Tcp(TcpListener),
    /// TCP with TLS: the configuration says whether clients need certificates.
    Tls(TcpListener, Arc<rustls::ServerConfig>),
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Unix(l) => write!(f, "Unix({:?})", l.local_addr().ok()),
            Bound::Tcp(l) => write!(f, "Tcp({:?})", l.local_addr().ok()),
            Bound::Tls(l, _) => write!(f, "Tls({:?})", l.local_addr().ok()),
        }
    }
}

/// One accepted connection.
#[derive(Debug)]
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Who connected.
#[derive(Debug, Clone)]
pub enum Peer {
    Unix,
    Tcp(SocketAddr),
}

/// Every bound socket as one [`axum::serve::Listener`]; the accept tasks end when it drops.
#[derive(Debug)]
pub struct Listeners {
    incoming: mpsc::Receiver<(Conn, Peer)>,
    _tasks: tokio::task::JoinSet<()>,
}

impl Listeners {
    /// Starts accepting on every socket of `bound` (call it inside the runtime).
    pub fn new(bound: Vec<Bound>) -> Listeners {
        let (tx, incoming) = mpsc::channel(64);
        let mut tasks = tokio::task::JoinSet::new();
        for b in bound {
            let tx = tx.clone();
            match b {
                Bound::Unix(l) => tasks.spawn(accept_unix(l, tx)),
                Bound::Tcp(l) => tasks.spawn(accept_tcp(l, None, tx)),
                Bound::Tls(l, config) => tasks.spawn(accept_tcp(
                    l,
                    Some(tokio_rustls::TlsAcceptor::from(config)),
                    tx,
                )),
            };
        }
        Listeners {
            incoming,
            _tasks: tasks,
        }
    }
}

impl axum::serve::Listener for Listeners {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        match self.incoming.recv().await {
            Some(c) => c,
            // Only when every accept task is gone, which they never are while we live.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the API listens on several sockets",
        ))
    }
}

/// Out of descriptors and the like: wait a little rather than spin.
async fn accept_failed(e: io::Error) {
    tracing::warn!("accept: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn accept_unix(listener: UnixListener, tx: mpsc::Sender<(Conn, Peer)>) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                if tx.send((Conn::Unix(s), Peer::Unix)).await.is_err() {
                    return;
                }
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<(Conn, Peer)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        // Attach and exec are interactive: no waiting for full segments.
        let _ = tcp.set_nodelay(true);
        match &tls {
            None => {
                if tx.send((Conn::Tcp(tcp), Peer::Tcp(peer))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(tcp, acceptor)).await {
                        Ok(Ok(Some(s))) => {
                            let _ = tx.send((Conn::Tls(Box::new(s)), Peer::Tcp(peer))).await;
                        }
                        Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the TLS port"),
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// The TLS handshake; `None` when the client spoke plain HTTP (answered as Go answers it).
async fn handshake(
    mut tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
) -> io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    // A TLS connection opens with a handshake record (22); HTTP with a method's capital.
    if tcp.peek(&mut first).await? == 1 && first[0].is_ascii_uppercase() {
        tcp.write_all(HTTP_ON_TLS_PORT).await?;
        let _ = tcp.shutdown().await;
        return Ok(None);
    }
    acceptor.accept(tcp).await.map(Some)
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Unix(s) => s.is_write_vectored(),
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

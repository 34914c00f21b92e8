//! The userland proxy of a rootless daemon's published ports. Rootful berth publishes ports
//! with DNAT rules in the host's namespace; a rootless daemon lives in a network namespace of
//! its own, so its agent binds the host's port ([`crate::HostPorts`]) and this relays what
//! arrives there to the container, as Docker's `docker-proxy` does: TCP connection by
//! connection, UDP datagram by datagram with one upstream socket per client.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ports::Protocol;

/// How long a UDP client's upstream socket lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How often the UDP loop looks at its stop flag.
const UDP_TICK: Duration = Duration::from_millis(250);

/// One published port being relayed; dropping it stops the relay (connections already open
/// run to their end).
#[derive(Debug)]
pub(crate) struct Forwarder {
    socket: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Relays what arrives on `socket` (bound on the host) to `target` in this namespace.
    pub(crate) fn start(
        socket: OwnedFd,
        protocol: Protocol,
        target: SocketAddrV4,
    ) -> io::Result<Forwarder> {
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, flag) = (socket.clone(), stop.clone());
        let thread = match protocol {
            Protocol::Tcp => {
                let listener = TcpListener::from(s.try_clone()?);
                std::thread::Builder::new()
                    .name(format!("proxy-tcp-{}", target.port()))
                    .spawn(move || relay_tcp(listener, target, flag))?
            }
            Protocol::Udp => {
                let sock = UdpSocket::from(s.try_clone()?);
                sock.set_read_timeout(Some(UDP_TICK))?;
                std::thread::Builder::new()
                    .name(format!("proxy-udp-{}", target.port()))
                    .spawn(move || relay_udp(sock, target, flag))?
            }
        };
        Ok(Forwarder {
            socket,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes a blocked accept (EINVAL) at once; the UDP loop sees the flag within a tick.
        // SAFETY: shutdown on a descriptor we own, kept open by `self.socket`.
        unsafe {
            libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay_tcp(listener: TcpListener, target: SocketAddrV4, stop: Arc<AtomicBool>) {
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(e) => {
                tracing::warn!(port = target.port(), "proxy accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || {
                match TcpStream::connect_timeout(&SocketAddr::V4(target), Duration::from_secs(5)) {
                    Ok(upstream) => splice_both(client, upstream),
                    Err(e) => {
                        tracing::debug!("proxy: connect to {target} failed: {e}");
                        let _ = client.shutdown(Shutdown::Both);
                    }
                }
            });
    }
}

/// Copies both ways until each side has ended, passing on half-closes.
fn splice_both(a: TcpStream, b: TcpStream) {
    let (a2, b2) = match (a.try_clone(), b.try_clone()) {
        (Ok(a2), Ok(b2)) => (a2, b2),
        _ => return,
    };
    let back = std::thread::spawn(move || copy_then_close(b2, a2));
    copy_then_close(a, b);
    let _ = back.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn relay_udp(host: UdpSocket, target: SocketAddrV4, stop: Arc<AtomicBool>) {
    let clients: Arc<Mutex<HashMap<SocketAddr, UdpSocket>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match host.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let upstream = {
            let mut map = clients.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&from) {
                Some(u) => u.try_clone().ok(),
                None => match upstream_for(&host, from, target, &clients) {
                    Ok(u) => {
                        let copy = u.try_clone().ok();
                        map.insert(from, u);
                        copy
                    }
                    Err(e) => {
                        tracing::debug!("proxy: udp upstream for {from} failed: {e}");
                        None
                    }
                },
            }
        };
        if let Some(u) = upstream {
            let _ = u.send(&buf[..n]);
        }
    }
}

/// A socket connected to the container for one client, and the thread that sends the
/// container's answers back to that client until it has been idle for [`UDP_IDLE`].
fn upstream_for(
    host: &UdpSocket,
    client: SocketAddr,
    target: SocketAddrV4,
    clients: &Arc<Mutex<HashMap<SocketAddr, UdpSocket>>>,
) -> io::Result<UdpSocket> {
    let up = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    up.connect(target)?;
    up.set_read_timeout(Some(UDP_IDLE))?;
    let (reader, back, clients) = (up.try_clone()?, host.try_clone()?, clients.clone());
    std::thread::Builder::new()
        .name("proxy-udp-client".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = reader.recv(&mut buf) {
                if back.send_to(&buf[..n], client).is_err() {
                    break;
                }
            }
            clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&client);
        })?;
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn relays_tcp_both_ways_and_stops_when_dropped() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = match backend.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        std::thread::spawn(move || {
            let (mut c, _) = backend.accept().unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).unwrap();
            c.write_all(format!("echo:{got}").as_bytes()).unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let fwd = Forwarder::start(front.into(), Protocol::Tcp, target).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "echo:hello");
        drop(fwd);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn relays_udp_datagrams_and_answers() {
        let backend = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = match backend.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = backend.recv_from(&mut buf).unwrap();
            let mut reply = b"re:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            backend.send_to(&reply, from).unwrap();
        });
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let _fwd = Forwarder::start(front.into(), Protocol::Udp, target).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re:ping");
    }
}

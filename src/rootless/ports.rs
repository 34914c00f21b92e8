//! Published ports of a rootless daemon: the daemon lives in a network namespace of its own,
//! so the host's ports are bound by the agent, which stays in the host's, and handed to the
//! daemon as descriptors over a `SOCK_SEQPACKET` pair. The daemon then serves them with its
//! userland proxy (`berth_network::proxy`).
//!
//! One request per datagram, `bind <tcp|udp> <ipv4> <port>`; the answer is `ok <port>` with
//! the bound socket attached (`SCM_RIGHTS`; port 0 asks for a free one), or
//! `err <errno> <text>`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use berth_network::Protocol;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The daemon's end: asks the agent for host sockets.
#[derive(Debug)]
pub struct AgentPorts {
    sock: Mutex<OwnedFd>,
}

impl AgentPorts {
    pub fn new(sock: OwnedFd) -> AgentPorts {
        AgentPorts {
            sock: Mutex::new(sock),
        }
    }
}

impl berth_network::HostPorts for AgentPorts {
    fn bind(&self, ip: Ipv4Addr, port: u16, protocol: Protocol) -> io::Result<(u16, OwnedFd)> {
        let sock = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        let request = format!("bind {protocol} {ip} {port}");
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(request.as_bytes())],
            &[],
            MsgFlags::empty(),
            None,
        )?;
        let mut buf = [0u8; 512];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel just installed this descriptor for us; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
        let len = msg.bytes;
        let answer = String::from_utf8_lossy(&buf[..len]).into_owned();
        parse_answer(&answer, fd)
    }
}

fn parse_answer(answer: &str, fd: Option<OwnedFd>) -> io::Result<(u16, OwnedFd)> {
    let bad = || {
        io::Error::other(format!(
            "malformed answer from the rootless agent: {answer:?}"
        ))
    };
    match answer.split_once(' ') {
        Some(("ok", port)) => {
            let port = port.trim().parse().map_err(|_| bad())?;
            Ok((port, fd.ok_or_else(bad)?))
        }
        Some(("err", rest)) => {
            let (errno, text) = rest.split_once(' ').ok_or_else(bad)?;
            let errno: i32 = errno.parse().map_err(|_| bad())?;
            Err(io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                text.to_owned(),
            ))
        }
        _ => Err(bad()),
    }
}

/// A parsed `bind` request.
#[derive(Debug, PartialEq, Eq)]
struct BindRequest {
    protocol: Protocol,
    ip: Ipv4Addr,
    port: u16,
}

fn parse_request(text: &str) -> Option<BindRequest> {
    let mut words = text.split_whitespace();
    if words.next()? != "bind" {
        return None;
    }
    let protocol = match words.next()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let ip = words.next()?.parse().ok()?;
    let port = words.next()?.parse().ok()?;
    words
        .next()
        .is_none()
        .then_some(BindRequest { protocol, ip, port })
}

/// Binds what a request asks for, in the agent's (the host's) network namespace.
fn bind_on_host(req: &BindRequest) -> io::Result<(u16, OwnedFd)> {
    let addr = SocketAddrV4::new(req.ip, req.port);
    match req.protocol {
        Protocol::Tcp => {
            let l = TcpListener::bind(addr)?;
            Ok((l.local_addr()?.port(), l.into()))
        }
        Protocol::Udp => {
            let s = UdpSocket::bind(addr)?;
            Ok((s.local_addr()?.port(), s.into()))
        }
    }
    .map_err(|e| privileged_hint(req, e))
}

/// Binding below `net.ipv4.ip_unprivileged_port_start` fails for an unprivileged user; say how
/// to allow it.
fn privileged_hint(req: &BindRequest, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return e;
    }
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "1024".into());
    io::Error::new(
        e.kind(),
        format!(
            "cannot expose privileged port {port} as a rootless daemon: ports below {start} need \
             `sysctl net.ipv4.ip_unprivileged_port_start={port}` (as root), or pick a port of \
             {start} or more: {e}",
            port = req.port
        ),
    )
}

/// The agent's end: answers the daemon's requests until it hangs up.
pub fn serve(sock: OwnedFd) {
    let mut buf = [0u8; 512];
    loop {
        let len = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
                Ok(msg) => msg.bytes,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        };
        if len == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let answer = match parse_request(&text) {
            Some(req) => bind_on_host(&req),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad request {text:?}"),
            )),
        };
        let sent = match answer {
            Ok((port, fd)) => {
                let raw = fd.into_raw_fd();
                // SAFETY: we own `raw` (taken from the OwnedFd above) and close it after sending.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                sendmsg::<()>(
                    sock.as_raw_fd(),
                    &[IoSlice::new(format!("ok {port}").as_bytes())],
                    &[ControlMessage::ScmRights(&[owned.as_raw_fd()])],
                    MsgFlags::empty(),
                    None,
                )
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                sendmsg::<()>(
                    sock.as_raw_fd(),
                    &[IoSlice::new(format!("err {errno} {e}").as_bytes())],
                    &[],
                    MsgFlags::empty(),
                    None,
                )
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_network::HostPorts;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request("bind udp 127.0.0.1 53"),
            Some(BindRequest {
                protocol: Protocol::Udp,
                ip: Ipv4Addr::LOCALHOST,
                port: 53
            })
        );
        for bad in [
            "bind sctp 0.0.0.0 1",
            "bind tcp ::1 1",
            "bind tcp 0.0.0.0 70000",
            "bind tcp 0.0.0.0 1 x",
            "listen tcp 0.0.0.0 1",
            "",
        ] {
            assert_eq!(parse_request(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_agent_binds_and_hands_over_the_socket() {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let agent = std::thread::spawn(move || serve(theirs));
        let client = AgentPorts::new(ours);
        let (port, fd) = client.bind(Ipv4Addr::LOCALHOST, 0, Protocol::Tcp).unwrap();
        assert_ne!(port, 0);
        let listener = TcpListener::from(fd);
        assert_eq!(listener.local_addr().unwrap().port(), port);
        let _conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        listener.accept().unwrap();
        // The same port again: taken, and the error says so.
        let e = client
            .bind(Ipv4Addr::LOCALHOST, port, Protocol::Tcp)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(client);
        agent.join().unwrap();
    }
}

//! The embedded DNS, as root: namespaces on a user-defined network resolve each other by
//! name and alias through busybox's nslookup; another network's namespace cannot; other
//! names go to the upstream (a fake one on 127.0.0.1, so nothing leaves the host); TCP.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_network::files::{resolv_conf, ResolvConf, ResolvOptions};
use berth_network::{AttachRequest, DnsOptions};
use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// An upstream resolver on 127.0.0.1 that knows one name, `outside.example`.
struct FakeUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

impl FakeUpstream {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::SeqCst) {
                let Ok((n, src)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
                resp.add_queries(req.queries.clone());
                let q = &req.queries[0];
                if q.name().to_ascii() == "outside.example." {
                    if q.query_type() == RecordType::A {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A(OUTSIDE)),
                        ));
                    }
                } else {
                    resp.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = sock.send_to(&resp.to_vec().unwrap(), src);
            }
        });
        FakeUpstream {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn nslookup(ns: &Netns, name: &str) -> (bool, String) {
    let out = ns.exec(&["busybox", "nslookup", name]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn names_and_aliases_resolve_on_the_network_only() {
    if !can_run() {
        return;
    }
    let upstream = FakeUpstream::start();
    let env = Env::new();
    let mut cfg = env.config("dnsnet", "10.213.10.0/24");
    cfg.dns = true;
    env.create(cfg);
    let mut other = env.config("othernet", "10.213.11.0/24");
    other.dns = true;
    env.create(other);
    let mut internal = env.config("quiet", "10.213.12.0/24");
    internal.dns = true;
    internal.internal = true;
    env.create(internal);
    // The server starts after the networks exist (a daemon start) and picks them up.
    env.net
        .enable_dns(DnsOptions {
            upstreams: Some(vec![upstream.addr]),
            timeout: Duration::from_secs(2),
        })
        .unwrap();

    let (web, client, stranger, hermit) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    let mut req = AttachRequest::new("dnsnet", "web1", &web.path);
    req.names = vec!["web".into(), "frontend".into(), "svc".into()];
    let web_ep = env.net.attach(&req).unwrap();
    let mut req = AttachRequest::new("dnsnet", "client1", &client.path);
    req.names = vec!["client".into()];
    env.net.attach(&req).unwrap();
    let mut req = AttachRequest::new("othernet", "stranger1", &stranger.path);
    req.names = vec!["stranger".into()];
    env.net.attach(&req).unwrap();
    let mut req = AttachRequest::new("quiet", "hermit1", &hermit.path);
    req.names = vec!["hermit".into()];
    env.net.attach(&req).unwrap();

    // Each namespace's resolv.conf names its network's gateway, as the engine writes it.
    let host = ResolvConf::parse("nameserver 127.0.0.53\n");
    for (ns, gw) in [
        (&client, "10.213.10.1"),
        (&web, "10.213.10.1"),
        (&stranger, "10.213.11.1"),
        (&hermit, "10.213.12.1"),
    ] {
        let opts = ResolvOptions {
            embedded_dns: Some(gw.parse().unwrap()),
            ..Default::default()
        };
        ns.set_resolv_conf(&resolv_conf(&host, &opts));
    }

    let web_ip = web_ep.ip.to_string();
    for name in ["web", "frontend", "svc", "WEB"] {
        let (ok, text) = nslookup(&client, name);
        assert!(ok, "{name}: {text}");
        assert!(text.contains(&web_ip), "{name}: {text}");
    }
    // By name, then reached by it.
    let (_httpd, _www) = httpd(&web, 80, "by name");
    let got = client.exec_ok(&["busybox", "wget", "-q", "-O", "-", "http://frontend/"]);
    assert_eq!(got, "by name");

    // Another network's container does not see web (its query goes upstream: NXDOMAIN).
    let (ok, text) = nslookup(&stranger, "web");
    assert!(!ok && !text.contains(&web_ip), "{text}");
    let (ok, text) = nslookup(&client, "stranger");
    assert!(!ok, "{text}");

    // Other names are forwarded (to the fake upstream on loopback).
    let (ok, text) = nslookup(&client, "outside.example");
    assert!(ok, "{text}");
    assert!(text.contains("192.0.2.10"), "{text}");
    // ... but not from an internal network.
    let (ok, text) = nslookup(&hermit, "outside.example");
    assert!(!ok, "{text}");
    let (ok, text) = nslookup(&hermit, "hermit");
    assert!(ok, "{text}");

    // Reverse lookup of a container address.
    let (ok, text) = nslookup(&client, &web_ip);
    assert!(ok && text.contains("web.dnsnet"), "{text}");

    // TCP, straight to the server's port on the gateway from the host.
    let port = env.net.network("dnsnet").unwrap().dns_port.unwrap();
    let mut query = Message::new(0x4242, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_ascii("svc.").unwrap(),
        RecordType::A,
    ));
    let bytes = query.to_vec().unwrap();
    let mut conn = TcpStream::connect(("10.213.10.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    conn.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    conn.write_all(&bytes).unwrap();
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut resp).unwrap();
    let resp = Message::from_vec(&resp).unwrap();
    assert_eq!(resp.metadata.id, 0x4242);
    assert_eq!(resp.answers.len(), 1);
    assert_eq!(resp.answers[0].data, RData::A(A(web_ep.ip)));

    // A removed endpoint's names are gone at once.
    // The bridge keeps its MAC when a port goes, so the client's next query is not lost to
    // a stale ARP entry (busybox would wait 5 s).
    env.net.detach("dnsnet", "web1").unwrap();
    let started = std::time::Instant::now();
    let (ok, _) = nslookup(&client, "web");
    assert!(!ok);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A network created while the server runs gets DNS too, and its rules.
    let mut late = env.config("late", "10.213.13.0/24");
    late.dns = true;
    env.create(late);
    assert!(env.net.network("late").unwrap().dns_port.is_some());
    assert!(env.table_text().contains("dns late"));
}

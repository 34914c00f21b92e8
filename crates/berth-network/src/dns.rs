//! The embedded DNS server of user-defined networks.
//!
//! **Where it runs.** One server (a thread with a current-thread tokio runtime) in the
//! process that owns [`crate::Networking`] — the daemon — listens on each DNS-enabled
//! network's gateway address, in the host's namespace, on a port of its own (UDP and TCP).
//! berth's nftables table redirects `gateway:53` arriving from that network's bridge to that
//! port, and the container's `resolv.conf` says `nameserver <gateway>`.
//!
//! Docker instead listens inside every container's namespace at 127.0.0.11. The gateway
//! design was chosen because it needs nothing per container (no socket, rule or thread per
//! namespace, nothing to redo for every container when the daemon restarts), it can forward
//! to the host's own resolvers even when they are on loopback (systemd-resolved's
//! 127.0.0.53), and the port redirect keeps it clear of any DNS server the host runs on
//! port 53. What it shares with Docker's: queries are answered by the daemon, so while the
//! daemon is down names do not resolve (containers keep running; the redirect rules stay).
//!
//! **What it answers.** The asking container is found by its source address among the
//! network's endpoints; names are looked up on every DNS-enabled network that container is
//! attached to (container names, aliases, service names: whatever the engine listed in
//! [`crate::Endpoint::names`]), case-insensitively, giving one A record per matching
//! endpoint (TTL 600, as Docker), and one AAAA record per matching endpoint with an IPv6
//! address (dual-stack networks); a legacy link of the asker's endpoint (`alias` → a
//! container's name) comes first and is the asker's alone. Other types for a known name get
//! an empty answer;
//! PTR queries for a container address get its first name. Anything else is forwarded as it
//! is to the container's `--dns` servers, else to the host's resolvers, over the transport
//! the query came on; on an `--internal` network nothing is forwarded (SERVFAIL).

use std::collections::HashMap;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdTcpListener,
    UdpSocket as StdUdpSocket,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use crate::error::{NetError, Result};
use crate::files::ResolvConf;
use crate::store::{NetworkState, Store};

/// How the embedded DNS forwards names it does not know.
#[derive(Clone, Debug)]
pub struct DnsOptions {
    /// Where to forward; None: the nameservers of the host's `/etc/resolv.conf` (port 53).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long to wait for each upstream.
    pub timeout: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            upstreams: None,
            timeout: Duration::from_secs(2),
        }
    }
}

const TTL: u32 = 600;

struct Ctx {
    store: Store,
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

/// The running server; dropping it stops every listener.
pub(crate) struct DnsServer {
    ctx: Arc<Ctx>,
    rt: tokio::runtime::Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    listeners: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("upstreams", &self.ctx.upstreams)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    pub(crate) fn start(store: Store, opts: DnsOptions) -> Result<Self> {
        let upstreams = opts.upstreams.unwrap_or_else(|| {
            ResolvConf::host()
                .nameservers
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetError::io("starting the DNS runtime", e))?;
        let handle = rt.handle().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("berth-dns".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = rx.await;
                });
            })
            .map_err(|e| NetError::io("starting the DNS thread", e))?;
        Ok(DnsServer {
            ctx: Arc::new(Ctx {
                store,
                upstreams,
                timeout: opts.timeout,
            }),
            rt: handle,
            shutdown: Some(tx),
            thread: Some(thread),
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// Listens for `network` on its gateway, on `port` when that is free (the port of
    /// before a restart, so the redirect rules stay right), else on a new one; returns it.
    pub(crate) fn listen(&self, net: &NetworkState, port: Option<u16>) -> Result<u16> {
        self.stop(&net.config.name);
        let gw = net.config.gateway();
        let (udp, tcp) = match port.and_then(|p| bind_pair(gw, p).ok()) {
            Some(pair) => pair,
            None => {
                let mut last = None;
                let mut pair = None;
                for _ in 0..16 {
                    match bind_pair(gw, 0) {
                        Ok(p) => {
                            pair = Some(p);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                pair.ok_or_else(|| {
                    NetError::io(
                        format!("binding the DNS server on {gw}"),
                        last.unwrap_or_else(|| std::io::Error::other("no port")),
                    )
                })?
            }
        };
        let port = udp
            .local_addr()
            .map_err(|e| NetError::io("DNS socket address", e))?
            .port();
        let name = net.config.name.clone();
        let ctx = self.ctx.clone();
        let udp_task = self.rt.spawn(serve_udp(ctx.clone(), name.clone(), udp));
        let tcp_task = self.rt.spawn(serve_tcp(ctx, name.clone(), tcp));
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, vec![udp_task, tcp_task]);
        Ok(port)
    }

    /// Stops listening for `network`.
    pub(crate) fn stop(&self, network: &str) {
        let tasks = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(network);
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind_pair(ip: Ipv4Addr, port: u16) -> std::io::Result<(StdUdpSocket, StdTcpListener)> {
    let udp = StdUdpSocket::bind((ip, port))?;
    let port = udp.local_addr()?.port();
    let tcp = StdTcpListener::bind((ip, port))?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

async fn serve_udp(ctx: Arc<Ctx>, network: String, sock: StdUdpSocket) {
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("DNS for {network}: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("DNS for {network}: {e}");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (ctx, network, sock) = (ctx.clone(), network.clone(), sock.clone());
        tokio::spawn(async move {
            if let Some(resp) = answer(&ctx, &network, src.ip(), &query, false).await {
                let _ = sock.send_to(&resp, src).await;
            }
        });
    }
}

async fn serve_tcp(ctx: Arc<Ctx>, network: String, listener: StdTcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("DNS for {network}: {e}");
            return;
        }
    };
    loop {
        let Ok((mut conn, src)) = listener.accept().await else {
            continue;
        };
        let (ctx, network) = (ctx.clone(), network.clone());
        tokio::spawn(async move {
            while let Ok(Ok(query)) =
                tokio::time::timeout(Duration::from_secs(10), read_framed(&mut conn)).await
            {
                let Some(resp) = answer(&ctx, &network, src.ip(), &query, true).await else {
                    break;
                };
                if write_framed(&mut conn, &resp).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn read_framed(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = conn.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    conn.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_framed(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    conn.write_all(&out).await
}

/// What the asker may resolve: the networks it shares with others, and where to forward.
struct Scope {
    networks: Vec<NetworkState>,
    internal: bool,
    upstreams: Vec<SocketAddr>,
    /// The asker's endpoint ID (its legacy links are looked up first).
    asker: Option<String>,
}

fn scope(ctx: &Ctx, network: &str, asker: IpAddr) -> Scope {
    let all = ctx.store.all().unwrap_or_default();
    let this = all.iter().find(|n| n.config.name == network);
    let internal = this.is_some_and(|n| n.config.internal);
    let endpoint = this.and_then(|n| n.endpoints.values().find(|e| IpAddr::V4(e.ip) == asker));
    let upstreams = match endpoint {
        Some(ep) if !ep.dns_servers.is_empty() => ep
            .dns_servers
            .iter()
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect(),
        _ => ctx.upstreams.clone(),
    };
    let networks = match endpoint {
        Some(ep) => {
            let mut nets: Vec<NetworkState> = all
                .iter()
                .filter(|n| n.config.dns && n.endpoints.contains_key(&ep.id))
                .cloned()
                .collect();
            // The network asked on first.
            nets.sort_by_key(|n| n.config.name != network);
            nets
        }
        None => this.cloned().into_iter().collect(),
    };
    Scope {
        networks,
        internal,
        upstreams,
        asker: endpoint.map(|e| e.id.clone()),
    }
}

fn lookup(scope: &Scope, name: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    // A legacy link of the asker's endpoint on a network: the alias is the linked
    // container's name there (Docker's sandbox looks at link aliases first).
    for net in &scope.networks {
        let asker = scope.asker.as_ref().and_then(|a| net.endpoints.get(a));
        let target = asker.and_then(|ep| {
            ep.links
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                .map(|(_, target)| target)
        });
        if let Some(target) = target {
            for ep in net.endpoints.values() {
                if ep.names.iter().any(|n| n.eq_ignore_ascii_case(target)) && !out.contains(&ep.ip)
                {
                    out.push(ep.ip);
                }
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    for net in &scope.networks {
        for ep in net.endpoints.values() {
            if ep.names.iter().any(|n| n.eq_ignore_ascii_case(name)) && !out.contains(&ep.ip) {
                out.push(ep.ip);
            }
        }
    }
    out
}

/// The IPv6 addresses of the endpoints `name` resolves to (those on dual-stack networks).
fn lookup6(scope: &Scope, name: &str) -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for net in &scope.networks {
        for ep in net.endpoints.values() {
            if let Some(ip6) = ep.ip6 {
                if ep.names.iter().any(|n| n.eq_ignore_ascii_case(name)) && !out.contains(&ip6) {
                    out.push(ip6);
                }
            }
        }
    }
    out
}

fn reverse(scope: &Scope, name: &str) -> Option<String> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    let [d, c, b, a] = octets.as_slice() else {
        return None;
    };
    let ip = Ipv4Addr::new(*a, *b, *c, *d);
    scope.networks.iter().find_map(|net| {
        net.endpoints
            .values()
            .find(|e| e.ip == ip)
            .and_then(|e| e.names.first())
            .map(|n| format!("{n}.{}.", net.config.name))
    })
}

fn reply_to(req: &Message, code: ResponseCode) -> Message {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = code;
    resp.add_queries(req.queries.clone());
    resp
}

/// The answer to one query (None: nothing to send back, e.g. an unreadable packet).
async fn answer(
    ctx: &Ctx,
    network: &str,
    asker: IpAddr,
    query: &[u8],
    tcp: bool,
) -> Option<Vec<u8>> {
    let req = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) if query.len() >= 12 => {
            let id = u16::from_be_bytes([query[0], query[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
        Err(_) => return None,
    };
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    if req.metadata.op_code != OpCode::Query || req.queries.len() != 1 {
        return reply_to(&req, ResponseCode::NotImp).to_vec().ok();
    }
    let q = &req.queries[0];
    let qname = q.name().to_ascii().to_ascii_lowercase();
    let name = qname.trim_end_matches('.');
    let scope = scope(ctx, network, asker);
    let found = lookup(&scope, name);
    if !found.is_empty() {
        let mut resp = reply_to(&req, ResponseCode::NoError);
        resp.metadata.authoritative = true;
        if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
            for ip in found {
                resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
            }
        }
        if matches!(q.query_type(), RecordType::AAAA | RecordType::ANY) {
            for ip in lookup6(&scope, name) {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::AAAA(AAAA(ip)),
                ));
            }
        }
        return resp.to_vec().ok();
    }
    if q.query_type() == RecordType::PTR {
        if let Some(target) = reverse(&scope, name).and_then(|t| Name::from_ascii(t).ok()) {
            let mut resp = reply_to(&req, ResponseCode::NoError);
            resp.metadata.authoritative = true;
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::PTR(PTR(target)),
            ));
            return resp.to_vec().ok();
        }
    }
    if !scope.internal {
        for up in &scope.upstreams {
            let got = if tcp {
                forward_tcp(*up, query, ctx.timeout).await
            } else {
                forward_udp(*up, query, ctx.timeout).await
            };
            match got {
                Ok(resp) => return Some(resp),
                Err(e) => tracing::debug!("DNS upstream {up}: {e}"),
            }
        }
    }
    reply_to(&req, ResponseCode::ServFail).to_vec().ok()
}

async fn forward_udp(up: SocketAddr, query: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(up).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    let id = &query[..2];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n >= 2 && &buf[..2] == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(up: SocketAddr, query: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        let mut conn = TcpStream::connect(up).await?;
        write_framed(&mut conn, query).await?;
        read_framed(&mut conn).await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

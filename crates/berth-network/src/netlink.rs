//! Links, addresses and routes through rtnetlink.
//!
//! rtnetlink is async; this crate's API is synchronous. Every batch of netlink work runs
//! on a short-lived thread of its own, with a current-thread tokio runtime and a fresh
//! netlink socket. That thread is also how work reaches into a container's network
//! namespace: it `setns`es first, so the socket it opens belongs to that namespace, and it
//! ends afterwards, so no thread of the caller is ever left in another namespace. The cost is
//! a thread and a socket per batch (tens of microseconds), and it works the same whether the
//! caller is a plain thread, a `spawn_blocking` task or a test.

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::error::{NetError, Result};

const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;

fn nl_err(context: impl Into<String>, e: rtnetlink::Error) -> NetError {
    let errno = match &e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    };
    let message = match (&e, errno) {
        (_, Some(n)) => std::io::Error::from_raw_os_error(n).to_string(),
        _ => e.to_string(),
    };
    NetError::Netlink {
        context: context.into(),
        message,
        errno,
    }
}

/// Runs `f` with a netlink handle on a thread of its own, inside the network namespace at
/// `netns` when one is given (else in the caller's).
pub(crate) fn run<T, F, Fut>(netns: Option<&Path>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    let ns_file = match netns {
        Some(path) => Some(
            File::open(path)
                .map_err(|e| NetError::io(format!("opening netns {}", path.display()), e))?,
        ),
        None => None,
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(file) = &ns_file {
                setns(file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetError::io("entering the network namespace", e.into()))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| NetError::io("starting a netlink runtime", e))?;
            rt.block_on(async move {
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| NetError::io("opening a netlink socket", e))?;
                let conn = tokio::spawn(conn);
                let out = f(handle).await;
                conn.abort();
                out
            })
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::invalid("netlink worker panicked")))
    })
}

/// A link's message by name, or None when there is none.
pub(crate) async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) => {
            let err = nl_err(format!("looking up {name}"), e);
            if err.errno() == Some(ENODEV) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

pub(crate) async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>> {
    Ok(link_by_name(h, name).await?.map(|l| l.header.index))
}

fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

async fn set_up(h: &Handle, index: u32, what: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(format!("bringing {what} up"), e))
}

async fn add_address(h: &Handle, index: u32, ip: Ipv4Addr, prefix: u8, what: &str) -> Result<()> {
    match h.address().add(index, ip.into(), prefix).execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = nl_err(format!("adding {ip}/{prefix} to {what}"), e);
            if err.errno() == Some(EEXIST) {
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

/// Adds an IPv6 address without duplicate address detection (Docker's `nodad`): with DAD
/// the address stays tentative for a second or two and cannot be used, and the addresses
/// here are handed out by berth's IPAM, so no one else on the link has it. An address that
/// is there already is not an error.
async fn add_address6(h: &Handle, index: u32, ip: Ipv6Addr, prefix: u8, what: &str) -> Result<()> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
    let mut req = h.address().add(index, IpAddr::V6(ip), prefix);
    req.message_mut()
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = nl_err(format!("adding {ip}/{prefix} to {what}"), e);
            if err.errno() == Some(EEXIST) {
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

/// Puts the gateway's IPv6 address on an existing link (a dual-stack network's bridge).
pub(crate) fn add_ipv6_address(name: &str, ip: Ipv6Addr, prefix: u8) -> Result<()> {
    run(None, |h| async move {
        let index = link_index(&h, name)
            .await?
            .ok_or_else(|| NetError::invalid(format!("interface {name} does not exist")))?;
        add_address6(&h, index, ip, prefix, name).await
    })
}

/// Creates the bridge if it is missing (an existing link of that name must be a bridge),
/// puts the gateway address on it, sets the MTU and a fixed MAC and brings it up. Safe to
/// repeat.
///
/// The MAC is set explicitly (from the gateway address, as containers' are from theirs): a
/// bridge without one takes the lowest MAC of its ports and changes it when that port goes,
/// and containers then send to the old one until their ARP entry expires (seconds of lost
/// packets to the gateway, its DNS among them).
pub(crate) fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
    mac: [u8; 6],
) -> Result<()> {
    run(None, |h| async move {
        let index = match link_by_name(&h, name).await? {
            Some(link) => {
                if link_kind(&link) != Some(&InfoKind::Bridge) {
                    return Err(NetError::invalid(format!(
                        "interface {name} exists and is not a bridge"
                    )));
                }
                link.header.index
            }
            None => {
                let msg = LinkBridge::new(name).mtu(mtu).address(mac.to_vec()).build();
                if let Err(e) = h.link().add(msg).execute().await {
                    let err = nl_err(format!("creating bridge {name}"), e);
                    if err.errno() != Some(EEXIST) {
                        return Err(err);
                    }
                }
                link_index(&h, name)
                    .await?
                    .ok_or_else(|| NetError::invalid(format!("bridge {name} vanished")))?
            }
        };
        h.link()
            .set(
                LinkUnspec::new_with_index(index)
                    .mtu(mtu)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl_err(format!("setting the MTU and MAC of {name}"), e))?;
        add_address(&h, index, gateway, prefix, name).await?;
        set_up(&h, index, name).await
    })
}

/// Deletes a link by name; a missing link is not an error. Returns whether one was deleted.
pub(crate) fn delete_link(name: &str) -> Result<bool> {
    run(None, |h| async move { delete_link_with(&h, name).await })
}

async fn delete_link_with(h: &Handle, name: &str) -> Result<bool> {
    let Some(index) = link_index(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) => {
            let err = nl_err(format!("deleting {name}"), e);
            if err.errno() == Some(ENODEV) {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

/// Takes a link off its bridge and down (fast, unlike deleting it, which waits ~25 ms in the
/// kernel); a missing link is not an error.
pub(crate) fn unplug_link(name: &str) -> Result<()> {
    run(None, |h| async move {
        let Some(index) = link_index(&h, name).await? else {
            return Ok(());
        };
        let msg = LinkUnspec::new_with_index(index)
            .nocontroller()
            .down()
            .build();
        match h.link().set(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = nl_err(format!("unplugging {name}"), e);
                if err.errno() == Some(ENODEV) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    })
}

/// Names of the links whose controller (master) is `bridge`; empty when it does not exist.
pub(crate) fn bridge_ports(bridge: &str) -> Result<Vec<String>> {
    run(None, |h| async move {
        let Some(index) = link_index(&h, bridge).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut links = h.link().get().execute();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(|e| nl_err("listing links", e))?
        {
            if link_controller(&link) == Some(index) {
                if let Some(name) = link_name(&link) {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    })
}

/// Whether a link of this name exists in the caller's namespace.
pub(crate) fn link_exists(name: &str) -> Result<bool> {
    run(None, |h| async move {
        Ok(link_index(&h, name).await?.is_some())
    })
}

/// What the container side of a veth pair gets.
#[derive(Debug)]
pub(crate) struct VethSpec<'a> {
    pub host_name: &'a str,
    pub bridge: &'a str,
    pub peer_name: &'a str,
    pub netns: &'a Path,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address and prefix on a dual-stack network.
    pub ip6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
}

/// Creates the veth pair with its host end on the bridge (up) and its peer created directly
/// inside the container's namespace under its final name, then configures the peer there:
/// MAC, MTU, address, up; loopback up; the default route when a gateway is given (kept when
/// the namespace has one already, from another network).
pub(crate) fn create_endpoint(spec: &VethSpec<'_>) -> Result<()> {
    let ns = File::open(spec.netns)
        .map_err(|e| NetError::io(format!("opening netns {}", spec.netns.display()), e))?;
    let ns_fd = ns.as_raw_fd();
    run(None, |h| async move {
        let bridge = link_index(&h, spec.bridge)
            .await?
            .ok_or_else(|| NetError::invalid(format!("bridge {} does not exist", spec.bridge)))?;
        // A leftover of this very endpoint (an attach cut short) would block the name.
        delete_link_with(&h, spec.host_name).await?;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer_name.to_string())
            .mtu(spec.mtu)
            .address(spec.mac.to_vec())
            .setns_by_fd(ns_fd)
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_name.to_string())
            .mtu(spec.mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| nl_err(format!("creating veth {}", spec.host_name), e))
    })?;
    drop(ns);
    // Hairpin: a container reaching its own published port through a host address gets its
    // packets back through the same bridge port.
    let hairpin = format!("/sys/class/net/{}/brport/hairpin_mode", spec.host_name);
    if let Err(e) = std::fs::write(&hairpin, "1") {
        tracing::debug!("{hairpin}: {e}");
    }
    let configured = run(Some(spec.netns), |h| async move {
        let index = link_index(&h, spec.peer_name).await?.ok_or_else(|| {
            NetError::invalid(format!("{} missing in the container", spec.peer_name))
        })?;
        add_address(&h, index, spec.ip, spec.prefix, spec.peer_name).await?;
        if let Some((ip6, prefix6)) = spec.ip6 {
            // The namespace is the container's own: its /proc/sys is this thread's too.
            let disable = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", spec.peer_name);
            if let Err(e) = std::fs::write(&disable, "0") {
                tracing::debug!("{disable}: {e}");
            }
            add_address6(&h, index, ip6, prefix6, spec.peer_name).await?;
        }
        set_up(&h, index, spec.peer_name).await?;
        if let Some(lo) = link_index(&h, "lo").await? {
            set_up(&h, lo, "lo").await?;
        }
        // Default routes, one per family the endpoint has (one that is there already is fine).
        let v4 = spec.gateway.map(|gw| {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build();
            (route, format!("adding the default route via {gw}"))
        });
        let v6 = spec.gateway6.map(|gw| {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build();
            (route, format!("adding the IPv6 default route via {gw}"))
        });
        for (route, what) in v4.into_iter().chain(v6) {
            if let Err(e) = h.route().add(route).execute().await {
                let err = nl_err(what, e);
                if err.errno() != Some(EEXIST) {
                    return Err(err);
                }
            }
        }
        Ok(())
    });
    if configured.is_err() {
        let _ = delete_link(spec.host_name);
    }
    configured
}

/// The IPv4 subnets of every address on the host's interfaces.
pub(crate) fn host_ipv4_subnets() -> Result<Vec<crate::Subnet>> {
    use rtnetlink::packet_route::address::AddressAttribute;
    run(None, |h| async move {
        let mut out = Vec::new();
        let mut addrs = h.address().get().execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|e| nl_err("listing addresses", e))?
        {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = attr {
                    if let Ok(s) = crate::Subnet::new(*ip, msg.header.prefix_len.min(30)) {
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    })
}

//! Bridge networks end to end, as root: namespaces attached to a test bridge reach each other
//! and the host; published ports answer on 127.0.0.1 and on the bridge address; conflicts,
//! internal networks, rule rebuilds and leaks.

mod common;

use std::net::{Ipv4Addr, TcpListener};

use berth_network::{AttachRequest, NetError, Networking, Options, PortSpec};
use common::*;

#[test]
fn two_namespaces_reach_each_other_and_the_host() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let mut cfg = env.config("n1", "10.213.1.0/24");
    cfg.mtu = Some(1400);
    let net = env.create(cfg);
    let gw = net.config.gateway();
    assert_eq!(gw, Ipv4Addr::new(10, 213, 1, 1));
    let (a, b) = (Netns::new(), Netns::new());
    let ea = env
        .net
        .attach(&AttachRequest::new("n1", "ca", &a.path))
        .unwrap();
    let mut req = AttachRequest::new("n1", "cb", &b.path);
    req.ip = Some(Ipv4Addr::new(10, 213, 1, 77));
    req.mac = Some("02:aa:bb:cc:dd:ee".into());
    let eb = env.net.attach(&req).unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(10, 213, 1, 2));
    assert_eq!(eb.ip, Ipv4Addr::new(10, 213, 1, 77));

    // Inside: eth0 with the MAC, MTU and address; lo up; default route via the gateway.
    let link = b.exec_ok(&["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("02:aa:bb:cc:dd:ee"), "{link}");
    assert!(link.contains("mtu 1400"), "{link}");
    let addr = b.exec_ok(&["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("10.213.1.77/24"), "{addr}");
    let lo = b.exec_ok(&["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let route = a.exec_ok(&["ip", "route", "show", "default"]);
    assert!(route.contains("default via 10.213.1.1 dev eth0"), "{route}");
    let bridge_mac = run_ok(&[
        "cat",
        &format!("/sys/class/net/{}/address", net.config.bridge),
    ]);
    assert_eq!(
        bridge_mac.trim(),
        "02:42:0a:d5:01:01",
        "fixed, from the gateway address"
    );
    let mac_a = a.exec_ok(&["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(
        mac_a.trim(),
        "02:42:0a:d5:01:02",
        "derived from the address"
    );

    // Ping both ways, and from the host to a container.
    a.exec_ok(&["busybox", "ping", "-c", "1", "-W", "3", "10.213.1.77"]);
    b.exec_ok(&["busybox", "ping", "-c", "1", "-W", "3", "10.213.1.2"]);
    run_ok(&["busybox", "ping", "-c", "1", "-W", "3", "10.213.1.2"]);

    // TCP: httpd in b, fetched from a (by its address) and from the host.
    let (_httpd, _www) = httpd(&b, 8080, "hello from b");
    let got = a.exec_ok(&[
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://10.213.1.77:8080/",
    ]);
    assert_eq!(got, "hello from b");
    assert_eq!(http_get(eb.ip, 8080).unwrap(), "hello from b");

    // The bridge holds both host ends; detaching removes one and frees its address.
    let inv = env.net.inventory("n1").unwrap();
    assert_eq!(inv.interfaces.len(), 2);
    assert_eq!(inv.allocations, 2);
    env.net.detach("n1", "ca").unwrap();
    env.net.detach("n1", "ca").unwrap(); // again: nothing to do
    assert!(!a.links().contains(&"eth0".to_string()));
    let inv = env.net.inventory("n1").unwrap();
    assert_eq!(inv.interfaces, vec![eb.host_veth.clone()]);
    assert_eq!(inv.allocations, 1);

    // A network with endpoints cannot go; without, it takes its bridge along.
    assert!(matches!(
        env.net.remove_network("n1"),
        Err(NetError::NetworkInUse(_))
    ));
    env.net.detach("n1", "cb").unwrap();
    env.net.remove_network("n1").unwrap();
    assert!(env.net.network("n1").is_err());
    assert!(!run(&["ip", "link", "show", &net.config.bridge])
        .status
        .success());
}

#[test]
fn published_ports_answer_on_localhost_and_the_bridge_address() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let net = env.create(env.config("pub", "10.213.2.0/24"));
    let gw = net.config.gateway();
    let ns = Netns::new();
    let (_httpd, _www) = httpd(&ns, 80, "published");
    let mut req = AttachRequest::new("pub", "web", &ns.path);
    req.ports = PortSpec::parse("80").unwrap(); // a random host port
    let ep = env.net.attach(&req).unwrap();
    let port = ep.ports[0].host_port;
    assert_ne!(port, 0);
    assert_eq!(ep.ports[0].to_string(), format!("80/tcp -> 0.0.0.0:{port}"));

    let route_localnet = std::fs::read_to_string(format!(
        "/proc/sys/net/ipv4/conf/{}/route_localnet",
        net.config.bridge
    ))
    .unwrap();
    assert_eq!(route_localnet.trim(), "1");
    assert_eq!(http_get(Ipv4Addr::LOCALHOST, port).unwrap(), "published");
    assert_eq!(http_get(gw, port).unwrap(), "published");

    // A second endpoint with a fixed port on 127.0.0.1 only.
    let ns2 = Netns::new();
    let (_httpd2, _www2) = httpd(&ns2, 8000, "second");
    let fixed = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut req2 = AttachRequest::new("pub", "second", &ns2.path);
    req2.ports = PortSpec::parse(&format!("127.0.0.1:{fixed}:8000")).unwrap();
    env.net.attach(&req2).unwrap();
    assert_eq!(http_get(Ipv4Addr::LOCALHOST, fixed).unwrap(), "second");
    assert!(http_get(gw, fixed).is_err(), "bound to 127.0.0.1 only");

    // Conflicts: a port berth published, and a port a host program holds.
    let before = env.net.inventory("pub").unwrap();
    let rules_before = env.table_text();
    let ns3 = Netns::new();
    let mut clash = AttachRequest::new("pub", "clash", &ns3.path);
    clash.ports = PortSpec::parse(&format!("{port}:80")).unwrap();
    let err = env.net.attach(&clash).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
    );
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    clash.ports = PortSpec::parse(&format!("{held}:80")).unwrap();
    let err = env.net.attach(&clash).unwrap_err();
    assert!(matches!(err, NetError::PortAllocated { .. }), "{err}");
    // Nothing of the failed attaches stays.
    assert_eq!(env.net.inventory("pub").unwrap(), before);
    assert_eq!(env.table_text(), rules_before);
    assert!(!ns3.links().contains(&"eth0".to_string()));

    // Detaching takes the port's rule away.
    env.net.detach("pub", "web").unwrap();
    assert!(!env.table_text().contains(&format!("dport {port} ")));
    assert!(http_get(Ipv4Addr::LOCALHOST, port).is_err());
}

#[test]
fn internal_network_has_no_outbound_route_and_no_masquerade() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let mut cfg = env.config("int", "10.213.3.0/24");
    cfg.internal = true;
    let net = env.create(cfg);
    let ns = Netns::new();
    let ep = env
        .net
        .attach(&AttachRequest::new("int", "c", &ns.path))
        .unwrap();
    assert_eq!(ep.gateway, None);
    assert_eq!(ns.exec_ok(&["ip", "route", "show", "default"]).trim(), "");
    // The kernel has no route out: nothing is sent anywhere.
    let out = ns.exec(&["ip", "route", "get", "192.0.2.1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    // The bridge (gateway) is still reachable, the subnet is not masqueraded, and forwarding
    // off the bridge is dropped.
    ns.exec_ok(&["busybox", "ping", "-c", "1", "-W", "3", "10.213.3.1"]);
    let rules = env.table_text();
    assert!(!rules.contains("ip saddr 10.213.3.0/24 oifname"), "{rules}");
    let br = &net.config.bridge;
    assert!(
        rules.contains(&format!("iifname \"{br}\" oifname != \"{br}\" drop")),
        "{rules}"
    );
}

#[test]
fn rules_rebuild_without_duplicates_and_leave_other_tables_alone() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A table that is not berth's, which no sync may touch.
    let foreign = unique("bt_f");
    run_ok(&["nft", "add", "table", "ip", &foreign]);
    struct DropTable(String);
    impl Drop for DropTable {
        fn drop(&mut self) {
            let _ = run(&["nft", "delete", "table", "ip", &self.0]);
        }
    }
    let _foreign_guard = DropTable(foreign.clone());
    run_ok(&["nft", "add", "chain", "ip", &foreign, "c"]);
    run_ok(&[
        "nft", "add", "rule", "ip", &foreign, "c", "tcp", "dport", "9", "accept",
    ]);
    let foreign_before = run_ok(&["nft", "list", "table", "ip", &foreign]);

    env.create(env.config("ra", "10.213.4.0/24"));
    let mut internal = env.config("rb", "10.213.5.0/24");
    internal.internal = true;
    env.create(internal);
    let ns = Netns::new();
    let ports = PortSpec::parse("80").unwrap();
    let mut req = AttachRequest::new("ra", "c", &ns.path);
    req.ports = ports;
    env.net.attach(&req).unwrap();
    let first = env.table_text();
    let count = env.net.rule_count().unwrap();
    assert!(count > 0);
    for _ in 0..3 {
        env.net.sync_rules().unwrap();
    }
    assert_eq!(env.table_text(), first);
    // The daemon restarts: a new instance restores from state.
    let again = env.reopen();
    again.restore().unwrap();
    again.restore().unwrap();
    assert_eq!(env.table_text(), first);
    assert_eq!(again.rule_count().unwrap(), count);
    // Even with the table gone (nft flushed by hand), restore brings it back.
    env.net.delete_rules().unwrap();
    assert_eq!(env.net.rule_count().unwrap(), 0);
    again.restore().unwrap();
    assert_eq!(env.table_text(), first);
    assert_eq!(
        run_ok(&["nft", "list", "table", "ip", &foreign]),
        foreign_before
    );
}

#[test]
fn overlapping_subnets_and_bad_names_are_refused() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.create(env.config("o1", "10.213.6.0/24"));
    let overlap = env.config("o2", "10.213.6.128/25");
    env.track(&overlap);
    assert!(matches!(
        env.net.create_network(overlap),
        Err(NetError::PoolOverlap(_))
    ));
    let dup = env.config("o1", "10.213.7.0/24");
    assert!(matches!(
        env.net.create_network(dup),
        Err(NetError::NetworkExists(_))
    ));
    // The daemon's pools, first pool first: the taken /24 is skipped, then a full pool.
    let pooled = |pools: &[&str]| {
        Networking::new(Options {
            address_pools: pools.iter().map(|p| p.parse().unwrap()).collect(),
            ..env.options()
        })
        .unwrap()
    };
    let free = pooled(&["base=10.213.6.0/23,size=24"])
        .free_subnet()
        .unwrap();
    assert_eq!(free.to_string(), "10.213.7.0/24");
    let free = pooled(&["base=10.213.6.0/24,size=25", "base=10.213.9.0/24,size=26"])
        .free_subnet()
        .unwrap();
    assert_eq!(free.to_string(), "10.213.9.0/26");
    assert!(matches!(
        pooled(&["base=10.213.6.0/24,size=24"]).free_subnet(),
        Err(NetError::PoolExhausted(_))
    ));
    let ns = Netns::new();
    let mut req = AttachRequest::new("o1", "c", &ns.path);
    req.ifname = "a/b".into();
    assert!(matches!(env.net.attach(&req), Err(NetError::Invalid(_))));
    req.ifname = "eth0".into();
    req.ip = Some(Ipv4Addr::new(10, 213, 8, 2));
    assert!(matches!(
        env.net.attach(&req),
        Err(NetError::AddressOutOfRange { .. })
    ));
    assert_eq!(env.net.inventory("o1").unwrap().allocations, 0);
}

#[test]
fn a_second_network_connects_live_as_eth1() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.create(env.config("first", "10.213.14.0/24"));
    env.create(env.config("second", "10.213.15.0/24"));
    let (ns, peer) = (Netns::new(), Netns::new());
    env.net
        .attach(&AttachRequest::new("first", "c", &ns.path))
        .unwrap();
    env.net
        .attach(&AttachRequest::new("second", "p", &peer.path))
        .unwrap();
    // Not on the same network yet: berth's forward rules keep the networks apart.
    let ping = ns.exec(&["busybox", "ping", "-c", "1", "-W", "1", "10.213.15.2"]);
    assert!(!ping.status.success());

    let mut connect = AttachRequest::new("second", "c", &ns.path);
    connect.ifname = "eth1".into();
    let ep = env.net.attach(&connect).unwrap();
    assert_eq!(ep.ifname, "eth1");
    ns.exec_ok(&["busybox", "ping", "-c", "1", "-W", "3", "10.213.15.2"]);
    // The default route stays the first network's.
    let route = ns.exec_ok(&["ip", "route", "show", "default"]);
    assert_eq!(route.lines().count(), 1, "{route}");
    assert!(route.contains("via 10.213.14.1 dev eth0"), "{route}");
    assert_eq!(env.net.endpoints_of("c").unwrap().len(), 2);

    env.net.detach("second", "c").unwrap();
    assert!(!ns.links().contains(&"eth1".to_string()));
    assert!(ns.links().contains(&"eth0".to_string()));
    env.net.detach_all("c").unwrap();
    assert!(env.net.endpoints_of("c").unwrap().is_empty());
    assert!(!ns.links().contains(&"eth0".to_string()));
}

//! Leak checks, as root: many attach/detach cycles (with published ports and names, and
//! some attaches that fail) leave the interfaces, nftables rules and IPAM allocations as
//! they were; `cleanup_network` clears what a crash would leave.

mod common;

use berth_network::{AttachRequest, DnsOptions, PortSpec};
use common::*;

/// The issue asks 1,000 cycles of the engine; the library's own check does this many.
const CYCLES: usize = 200;

#[test]
fn attach_detach_cycles_leak_nothing() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let mut cfg = env.config("leaky", "10.213.20.0/24");
    cfg.dns = true;
    env.create(cfg);
    env.net
        .enable_dns(DnsOptions {
            upstreams: Some(Vec::new()),
            ..Default::default()
        })
        .unwrap();
    let ns = Netns::new();
    // One endpoint stays throughout, so the counts are not trivially zero.
    let keeper = Netns::new();
    let mut keep = AttachRequest::new("leaky", "keeper", &keeper.path);
    keep.ports = PortSpec::parse("80").unwrap();
    let kept = env.net.attach(&keep).unwrap();
    let blocked_port = kept.ports[0].host_port;

    let before = env.net.inventory("leaky").unwrap();
    let rules_before = env.net.rule_count().unwrap();
    let table_before = env.table_text();
    let links_before = ns.links();
    assert_eq!(before.interfaces.len(), 1);
    assert_eq!(before.allocations, 1);

    for i in 0..CYCLES {
        let id = format!("c{i}");
        let mut req = AttachRequest::new("leaky", &id, &ns.path);
        req.names = vec![format!("name{i}"), "alias".into()];
        req.ports = PortSpec::parse("80").unwrap();
        req.ports.extend(PortSpec::parse("53/udp").unwrap());
        let ep = env.net.attach(&req).unwrap();
        assert_eq!(ep.ports.len(), 2);
        if i % 20 == 0 {
            let during = env.net.inventory("leaky").unwrap();
            assert_eq!(during.interfaces.len(), 2);
            assert_eq!(during.allocations, 2);
            assert_eq!(env.net.rule_count().unwrap(), rules_before + 2);
        }
        env.net.detach("leaky", &id).unwrap();
        if i % 10 == 0 {
            // An attach that fails half-way (its port is taken) leaves nothing either.
            let mut bad = AttachRequest::new("leaky", format!("bad{i}"), &ns.path);
            bad.ports = PortSpec::parse(&format!("{blocked_port}:80")).unwrap();
            assert!(env.net.attach(&bad).is_err());
        }
    }

    assert_eq!(env.net.inventory("leaky").unwrap(), before);
    assert_eq!(env.net.rule_count().unwrap(), rules_before);
    assert_eq!(env.table_text(), table_before);
    assert_eq!(ns.links(), links_before);
}

#[test]
fn cleanup_network_removes_orphans_and_allocations() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let net = env.create(env.config("crashed", "10.213.21.0/24"));
    let ns = Netns::new();
    let mut req = AttachRequest::new("crashed", "c1", &ns.path);
    req.ports = PortSpec::parse("80").unwrap();
    env.net.attach(&req).unwrap();
    env.net.reserve_ip("crashed", "pending", None).unwrap();
    // A veth on the bridge that berth has no record of (a crash mid-attach).
    let orphan = unique("bvo");
    let peer = unique("bvp");
    run_ok(&[
        "ip", "link", "add", &orphan, "type", "veth", "peer", "name", &peer,
    ]);
    run_ok(&["ip", "link", "set", &orphan, "master", &net.config.bridge]);

    let inv = env.net.inventory("crashed").unwrap();
    assert_eq!(inv.interfaces.len(), 2);
    assert_eq!(inv.allocations, 2);
    assert!(inv.rules > 0);

    let report = env.net.cleanup_network("crashed").unwrap();
    assert_eq!(report.interfaces.len(), 2);
    assert_eq!(report.endpoints, 1);
    assert_eq!(report.allocations, 2);
    let after = env.net.inventory("crashed").unwrap();
    assert!(after.interfaces.is_empty());
    assert_eq!((after.endpoints, after.allocations), (0, 0));
    assert!(!run(&["ip", "link", "show", &peer]).status.success());
    assert!(!ns.links().contains(&"eth0".to_string()));
    assert!(!env.table_text().contains("dnat to"));
    env.net.remove_network("crashed").unwrap();
}

#[test]
fn release_all_unplugs_at_once_and_the_pair_goes_with_the_namespace() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let net = env.create(env.config("released", "10.213.22.0/24"));
    let ns = Netns::new();
    let mut req = AttachRequest::new("released", "c1", &ns.path);
    req.ports = PortSpec::parse("80").unwrap();
    let ep = env.net.attach(&req).unwrap();
    let on_bridge = || run_ok(&["ip", "-o", "link", "show", "master", &net.config.bridge]);
    assert!(on_bridge().contains(&ep.host_veth));

    env.net.release_all("c1").unwrap();
    // Off the bridge, its address and port released, before the namespace is gone.
    assert!(!on_bridge().contains(&ep.host_veth), "{}", on_bridge());
    let inv = env.net.inventory("released").unwrap();
    assert_eq!((inv.endpoints, inv.allocations), (0, 0));
    assert!(!env.table_text().contains("dnat to"));
    // The namespace dies: the kernel deletes the pair (in the background).
    drop(ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while run(&["ip", "link", "show", &ep.host_veth]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} outlived its namespace",
            ep.host_veth
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.net.remove_network("released").unwrap();
}

//! berth's firewall: one nftables table (family `ip`, name chosen by the caller, `berth` by
//! default), rebuilt whole from the network state files in one `nft -j -f -` transaction.
//!
//! The transaction adds the table, deletes it and adds it again with every chain and rule,
//! so it works whether or not the table exists, never leaves duplicates, and either applies
//! entirely or not at all. Nothing outside berth's table is read or changed.
//!
//! ```text
//! table ip berth {
//!   chain prerouting  { type nat hook prerouting priority dstnat
//!     iifname BR ip daddr GW udp|tcp dport 53 dnat to GW:DNSPORT      (embedded DNS)
//!     fib daddr type local jump ports }
//!   chain output      { type nat hook output priority dstnat
//!     fib daddr type local jump ports }                               (the host itself)
//!   chain ports       { [ip daddr HOSTIP] tcp|udp dport HPORT dnat to CIP:CPORT  … }
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     ip saddr SUBNET oifname != BR masquerade                        (not internal)
//!     oifname BR ip saddr 127.0.0.0/8 masquerade                      (127.0.0.1:HPORT)
//!     oifname BR ct status dnat ip saddr SUBNET masquerade }          (hairpin)
//!   chain forward     { type filter hook forward priority filter
//!     iifname BR oifname != BR drop; oifname BR iifname != BR drop    (internal)
//!     iifname BR oifname { other berth bridges } drop }               (isolation)
//! }
//! ```
//!
//! Dual-stack networks add a table of family `ip6` with the same name, in the same
//! transaction (it is deleted again when no such network is left):
//!
//! ```text
//! table ip6 berth {
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     ip6 saddr SUBNET6 oifname != BR masquerade }                    (not internal)
//!   chain forward     { type filter hook forward priority filter
//!     (the internal and isolation drops of the ip table, for IPv6) }
//! }
//! ```
//!
//! Published ports are IPv4 only.
//!
//! 127.0.0.1 works because the output chain DNATs it, the bridge has
//! `net.ipv4.conf.BR.route_localnet=1` (set when the bridge is made) so a loopback source
//! may leave through it, and postrouting masquerades that source to the gateway address.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::error::{NetError, Result};
use crate::ports::Protocol;
use crate::store::NetworkState;

fn rule(table: &str, chain: &str, expr: Vec<Value>, comment: Option<String>) -> Value {
    let mut r = json!({"family": "ip", "table": table, "chain": chain, "expr": expr});
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    json!({"add": {"rule": r}})
}

fn meta_eq(key: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}})
}

fn payload_eq(protocol: &str, field: &str, right: Value) -> Value {
    json!({"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}})
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({"prefix": {"addr": addr.to_string(), "len": len}})
}

fn local_daddr() -> Value {
    json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
}

fn dnat(addr: Ipv4Addr, port: u16) -> Value {
    json!({"dnat": {"addr": addr.to_string(), "port": port}})
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The `ip6` table's commands: the table made afresh with its rules when a network is dual
/// stack, else only removed (add then delete: no error when it is not there).
fn ruleset6(table: &str, networks: &[NetworkState]) -> Vec<Value> {
    let t = json!({"family": "ip6", "name": table});
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ];
    if !networks.iter().any(|n| n.config.ipv6.is_some()) {
        return cmds;
    }
    cmds.push(json!({"add": {"table": t}}));
    let rule6 = |chain: &str, expr: Vec<Value>, comment: &str| {
        json!({"add": {"rule": {"family": "ip6", "table": table, "chain": chain,
            "expr": expr, "comment": comment}}})
    };
    for (name, kind, hook, prio) in [
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ] {
        cmds.push(
            json!({"add": {"chain": {"family": "ip6", "table": table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}}),
        );
    }
    let bridges: Vec<&str> = networks
        .iter()
        .filter(|n| n.config.ipv6.is_some())
        .map(|n| n.config.bridge.as_str())
        .collect();
    for net in networks {
        let Some(v6) = &net.config.ipv6 else { continue };
        let br = net.config.bridge.as_str();
        let name = net.config.name.as_str();
        if net.config.internal {
            for (a, b) in [("iifname", "oifname"), ("oifname", "iifname")] {
                cmds.push(rule6(
                    "forward",
                    vec![
                        meta_eq(a, "==", json!(br)),
                        meta_eq(b, "!=", json!(br)),
                        json!({"drop": null}),
                    ],
                    name,
                ));
            }
        } else {
            let subnet = json!({"prefix": {"addr": v6.subnet.network().to_string(),
                "len": v6.subnet.prefix()}});
            cmds.push(rule6(
                "postrouting",
                vec![
                    payload_eq("ip6", "saddr", subnet),
                    meta_eq("oifname", "!=", json!(br)),
                    json!({"masquerade": null}),
                ],
                name,
            ));
        }
        let others: Vec<&str> = bridges.iter().copied().filter(|b| *b != br).collect();
        if !others.is_empty() {
            cmds.push(rule6(
                "forward",
                vec![
                    meta_eq("iifname", "==", json!(br)),
                    meta_eq("oifname", "==", json!({"set": others})),
                    json!({"drop": null}),
                ],
                name,
            ));
        }
    }
    cmds
}

/// The whole transaction for `networks`.
pub(crate) fn ruleset(table: &str, networks: &[NetworkState]) -> Value {
    let t = json!({"family": "ip", "name": table});
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
        json!({"add": {"table": t}}),
    ];
    let base = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "ip", "table": table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(base("prerouting", "nat", "prerouting", -100));
    cmds.push(base("output", "nat", "output", -100));
    cmds.push(base("postrouting", "nat", "postrouting", 100));
    cmds.push(base("forward", "filter", "forward", 0));
    cmds.push(json!({"add": {"chain": {"family": "ip", "table": table, "name": "ports"}}}));

    // Embedded DNS: the gateway's port 53, as seen from the bridge, goes to the server's port.
    for net in networks {
        let Some(port) = net.dns_port else { continue };
        let gw = net.config.gateway();
        for p in ["udp", "tcp"] {
            cmds.push(rule(
                table,
                "prerouting",
                vec![
                    meta_eq("iifname", "==", json!(net.config.bridge)),
                    payload_eq("ip", "daddr", json!(gw.to_string())),
                    payload_eq(p, "dport", json!(53)),
                    dnat(gw, port),
                ],
                Some(format!("dns {}", net.config.name)),
            ));
        }
    }
    for chain in ["prerouting", "output"] {
        cmds.push(rule(
            table,
            chain,
            vec![local_daddr(), json!({"jump": {"target": "ports"}})],
            None,
        ));
    }

    for net in networks {
        if net.config.internal {
            continue;
        }
        for ep in net.endpoints.values() {
            for p in &ep.ports {
                let mut expr = Vec::new();
                if !p.host_ip.is_unspecified() {
                    expr.push(payload_eq("ip", "daddr", json!(p.host_ip.to_string())));
                }
                expr.push(payload_eq(proto(p.protocol), "dport", json!(p.host_port)));
                expr.push(dnat(ep.ip, p.container_port));
                cmds.push(rule(
                    table,
                    "ports",
                    expr,
                    Some(format!("{} {}", net.config.name, ep.id)),
                ));
            }
        }
    }

    let bridges: Vec<&str> = networks.iter().map(|n| n.config.bridge.as_str()).collect();
    for net in networks {
        let br = net.config.bridge.as_str();
        let subnet = prefix(net.config.subnet.network(), net.config.subnet.prefix());
        let comment = Some(net.config.name.clone());
        if !net.config.internal {
            cmds.push(rule(
                table,
                "postrouting",
                vec![
                    payload_eq("ip", "saddr", subnet.clone()),
                    meta_eq("oifname", "!=", json!(br)),
                    json!({"masquerade": null}),
                ],
                comment.clone(),
            ));
        }
        cmds.push(rule(
            table,
            "postrouting",
            vec![
                meta_eq("oifname", "==", json!(br)),
                payload_eq("ip", "saddr", prefix(Ipv4Addr::new(127, 0, 0, 0), 8)),
                json!({"masquerade": null}),
            ],
            comment.clone(),
        ));
        cmds.push(rule(
            table,
            "postrouting",
            vec![
                meta_eq("oifname", "==", json!(br)),
                json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
                payload_eq("ip", "saddr", subnet),
                json!({"masquerade": null}),
            ],
            comment.clone(),
        ));
        if net.config.internal {
            cmds.push(rule(
                table,
                "forward",
                vec![
                    meta_eq("iifname", "==", json!(br)),
                    meta_eq("oifname", "!=", json!(br)),
                    json!({"drop": null}),
                ],
                comment.clone(),
            ));
            cmds.push(rule(
                table,
                "forward",
                vec![
                    meta_eq("oifname", "==", json!(br)),
                    meta_eq("iifname", "!=", json!(br)),
                    json!({"drop": null}),
                ],
                comment.clone(),
            ));
        }
        let others: Vec<&str> = bridges.iter().copied().filter(|b| *b != br).collect();
        if !others.is_empty() {
            cmds.push(rule(
                table,
                "forward",
                vec![
                    meta_eq("iifname", "==", json!(br)),
                    meta_eq("oifname", "==", json!({"set": others})),
                    json!({"drop": null}),
                ],
                comment,
            ));
        }
    }
    cmds.extend(ruleset6(table, networks));
    json!({"nftables": cmds})
}

fn nft(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut child = Command::new(berth_core::program::find("nft").unwrap_or_else(|| "nft".into()))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::io("running nft (is the nftables package installed?)", e))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .map_err(|e| NetError::io("writing to nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::io("waiting for nft", e))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(NetError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Replaces berth's table with the rules for `networks`, atomically.
pub(crate) fn apply(table: &str, networks: &[NetworkState]) -> Result<()> {
    let doc = ruleset(table, networks).to_string();
    nft(&["-j", "-f", "-"], Some(doc.as_bytes())).map(|_| ())
}

/// Deletes berth's tables (`ip` and `ip6`); a missing table is not an error.
pub(crate) fn delete_table(table: &str) -> Result<()> {
    let doc = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"delete": {"table": {"family": "ip", "name": table}}},
        {"add": {"table": {"family": "ip6", "name": table}}},
        {"delete": {"table": {"family": "ip6", "name": table}}},
    ]})
    .to_string();
    nft(&["-j", "-f", "-"], Some(doc.as_bytes())).map(|_| ())
}

/// The rules in berth's table (each as nft's JSON object); empty when there is no table.
pub(crate) fn list_rules(table: &str) -> Result<Vec<Value>> {
    let out = match nft(&["-j", "list", "table", "ip", table], None) {
        Ok(out) => out,
        Err(NetError::Nft(msg)) if msg.contains("No such file or directory") => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let doc: Value = serde_json::from_slice(&out)
        .map_err(|e| NetError::Nft(format!("unreadable JSON from nft: {e}")))?;
    Ok(doc["nftables"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("rule").cloned())
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PublishedPort;
    use crate::store::{Endpoint, NetworkConfig};

    #[test]
    fn ruleset_has_one_rule_per_port_and_network_rules() {
        let mut a = NetworkState::new(NetworkConfig::new(
            "a",
            "bta",
            "10.213.1.0/24".parse().unwrap(),
        ));
        let mut b_cfg = NetworkConfig::new("b", "btb", "10.213.2.0/24".parse().unwrap());
        b_cfg.internal = true;
        let b = NetworkState::new(b_cfg);
        a.dns_port = Some(5353);
        a.endpoints.insert(
            "c1".into(),
            Endpoint {
                id: "c1".into(),
                network: "a".into(),
                ip: Ipv4Addr::new(10, 213, 1, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 213, 1, 1)),
                ip6: None,
                prefix6: 0,
                gateway6: None,
                mac: "02:42:0a:d5:01:02".into(),
                host_veth: "bv0".into(),
                ifname: "eth0".into(),
                netns: "/proc/1/ns/net".into(),
                names: vec![],
                ports: vec![PublishedPort {
                    host_ip: Ipv4Addr::UNSPECIFIED,
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                }],
                dns_servers: vec![],
                links: Default::default(),
            },
        );
        let doc = ruleset("t", &[a, b]);
        let cmds = doc["nftables"].as_array().unwrap();
        let rules: Vec<&Value> = cmds.iter().filter_map(|c| c["add"].get("rule")).collect();
        let in_chain = |c: &str| rules.iter().filter(|r| r["chain"] == c).count();
        assert_eq!(in_chain("ports"), 1);
        assert_eq!(in_chain("prerouting"), 3, "2 DNS + jump");
        // a: masquerade, localnet, hairpin; b (internal): localnet, hairpin.
        assert_eq!(in_chain("postrouting"), 5);
        // b: 2 internal drops; isolation for both.
        assert_eq!(in_chain("forward"), 4);
        assert!(rules.iter().all(|r| r["family"] == "ip"), "no IPv6 network");
        let tables6: Vec<&Value> = cmds
            .iter()
            .filter(|c| c["add"]["table"]["family"] == "ip6")
            .collect();
        assert_eq!(tables6.len(), 1, "the ip6 table is only removed");
    }

    #[test]
    fn dual_stack_networks_get_an_ip6_table() {
        let mut a_cfg = NetworkConfig::new("a", "bta", "10.213.1.0/24".parse().unwrap());
        a_cfg.ipv6 = Some(crate::store::Ipv6Config::new(
            "fd00:1::/64".parse().unwrap(),
        ));
        let mut b_cfg = NetworkConfig::new("b", "btb", "10.213.2.0/24".parse().unwrap());
        b_cfg.ipv6 = Some(crate::store::Ipv6Config::new(
            "fd00:2::/64".parse().unwrap(),
        ));
        b_cfg.internal = true;
        let c = NetworkState::new(NetworkConfig::new(
            "c",
            "btc",
            "10.213.3.0/24".parse().unwrap(),
        ));
        let doc = ruleset(
            "t",
            &[NetworkState::new(a_cfg), NetworkState::new(b_cfg), c],
        );
        let cmds = doc["nftables"].as_array().unwrap();
        let rules6: Vec<&Value> = cmds
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["family"] == "ip6")
            .collect();
        let in_chain = |c: &str| rules6.iter().filter(|r| r["chain"] == c).count();
        // a: masquerade; b (internal): none.
        assert_eq!(in_chain("postrouting"), 1);
        // b: 2 internal drops; isolation between a and b (c has no IPv6).
        assert_eq!(in_chain("forward"), 4);
        let text = serde_json::to_string(&rules6).unwrap();
        assert!(text.contains("fd00:1::") && !text.contains("btc"), "{text}");
    }
}

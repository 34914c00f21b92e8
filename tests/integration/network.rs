//! Networking end to end (issue 6), as root: each test daemon has its own bridge, subnet and
//! nftables table (berth-testutil's `net_args`); traffic goes only to 127.0.0.1, the test
//! bridge's address and the containers the test started.

use berth_testutil::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The test daemon's bridge and gateway address.
fn bridge_of(d: &TestDaemon) -> (String, String) {
    let args = net_args(d.dir.path());
    let gw = args[3].split('/').next().unwrap().to_owned();
    (args[1].clone(), gw)
}

/// `GET /` on addr, retried until it answers (httpd takes a moment to listen).
fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            write!(s, "GET / HTTP/1.0\r\n\r\n")?;
            let mut resp = String::new();
            s.read_to_string(&mut resp)?;
            Ok(resp)
        })();
        match attempt {
            Ok(r) if r.contains("200") => return r,
            other => {
                assert!(Instant::now() < deadline, "GET {addr}: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec busybox httpd -f -p 80 -h /www";

/// The links on `bridge` (the host ends of containers' veths).
#[test]
fn published_ports_answer_on_loopback_and_the_bridge_and_survive_a_daemon_restart() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let (_, gw) = bridge_of(&d);
    let fixed = free_port();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{fixed}:80"),
        "-p",
        "127.0.0.1::80",
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    assert!(http_get(&format!("{gw}:{fixed}")).contains("hello-from-httpd"));
    // `port` (inspect's NetworkSettings.Ports) and `ps` list both.
    let ports = ok(&d.docker(&["port", &id]));
    assert!(
        ports.contains(&format!("80/tcp -> 0.0.0.0:{fixed}")),
        "{ports}"
    );
    let random: u16 = ports
        .lines()
        .find_map(|l| l.strip_prefix("80/tcp -> 127.0.0.1:"))
        .expect(&ports)
        .parse()
        .unwrap();
    assert!(http_get(&format!("127.0.0.1:{random}")).contains("hello-from-httpd"));
    let ps = ok(&d.berth(&["ps", "--format", "{{.Ports}}"]));
    assert!(ps.contains(&format!("0.0.0.0:{fixed}->80/tcp")), "{ps}");

    // A second container cannot take the same host port.
    let out = d.docker(&["run", "--rm", "-p", &format!("{fixed}:80"), "bb", "echo"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err(&out).contains(&format!(
            "Bind for 0.0.0.0:{fixed} failed: port is already allocated"
        )),
        "{}",
        err(&out)
    );

    // The rules are the kernel's: they work while the daemon is down and after it is back.
    d.stop();
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    d.start_again();
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    ok(&d.docker(&["rm", "-f", &id]));
    // Its port is free again.
    let id2 = ok(&d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{fixed}:80"),
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    // A restart re-attaches (a new namespace and endpoint) and the port answers again.
    ok(&d.docker(&["restart", "-t", "1", &id2]));
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    ok(&d.docker(&["rm", "-f", &id2]));
}

#[test]
fn bridge_none_and_host_modes_and_the_files() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let (bridge, gw) = bridge_of(&d);
    // bridge (the default): eth0 on the test subnet, default route via the gateway.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--hostname",
        "myhost",
        "--add-host",
        "foo:1.2.3.4",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "9.9.9.9",
        "--dns-search",
        "example.com",
        "--mac-address",
        "02:11:22:33:44:55",
        "bb",
        "sh",
        "-c",
        "busybox ip -o -4 addr show eth0; busybox ip route; busybox ip link show eth0; hostname; cat /etc/hosts /etc/resolv.conf",
    ]));
    let prefix = gw.rsplit_once('.').unwrap().0;
    assert!(out.contains(&format!("inet {prefix}.")), "{out}");
    assert!(out.contains(&format!("default via {gw}")), "{out}");
    assert!(out.contains("02:11:22:33:44:55"), "{out}");
    assert!(out.contains("\nmyhost\n"), "{out}");
    assert!(out.contains("1.2.3.4\tfoo"), "{out}");
    assert!(out.contains(&format!("{gw}\tgw")), "{out}");
    assert!(out.contains("nameserver 9.9.9.9"), "{out}");
    assert!(out.contains("search example.com"), "{out}");
    // none: only lo, and it is up.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("lo:") && out.contains("UP"), "{out}");
    // host: the host's interfaces, the test bridge among them.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "bb",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert!(out.contains(&format!(" {bridge}:")), "{out}");
    // host and none are networks of their own, as Docker lists them, and stay.
    let rm = d.docker(&["network", "rm", "host"]);
    assert!(
        err(&rm).contains("host is a pre-defined network and cannot be removed"),
        "{}",
        err(&rm)
    );
    assert_eq!(
        ok(&d.docker(&["network", "inspect", "-f", "{{.Driver}}", "none"])),
        "null"
    );
    // Ports published with host networking are dropped, with Docker's warning (both CLIs).
    for out in [
        d.docker(&[
            "run",
            "--rm",
            "--network",
            "host",
            "-p",
            "18080:80",
            "bb",
            "echo",
        ]),
        d.berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "-p",
            "18080:80",
            "bb",
            "echo",
        ]),
    ] {
        ok(&out);
        assert!(
            err(&out)
                .contains("WARNING: Published ports are discarded when using host network mode"),
            "{}",
            err(&out)
        );
    }
    // container:NAME shares the other's namespace.
    ok(&d.docker(&["run", "-d", "--name", "first", "bb", "sleep", "30"]));
    let a = ok(&d.docker(&[
        "exec", "first", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]));
    let b = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        "bb",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert_eq!(
        a.split_whitespace().nth(3),
        b.split_whitespace().nth(3),
        "{a} / {b}"
    );
    // Scripts read the default network's address at the top of NetworkSettings.
    let top = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}/{{.NetworkSettings.IPPrefixLen}}",
        "first",
    ]));
    assert_eq!(Some(top.as_str()), a.split_whitespace().nth(3), "{a}");
    ok(&d.docker(&["rm", "-f", "first"]));
}

#[test]
fn create_and_remove_cycles_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let (bridge, _) = bridge_of(&d);
    let table = net_args(d.dir.path())[5].clone();
    // Warm up once (the bridge goes up with its first port).
    ok(&d.docker(&["run", "--rm", "-p", "80", "bb", "echo"]));
    let before = (bridge_ports(&bridge), nft_rule_count(&table));
    let state = || std::fs::read_to_string(d.dir.path().join("root/networks/bridge.json")).unwrap();
    // The issue asks for 1,000 cycles (BERTH_LEAK_CYCLES sets fewer for a quick local run).
    // Straight through the API: what docker run -d and rm -f send, without two CLI processes.
    let cycles: usize = std::env::var("BERTH_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let body = r#"{"Image":"bb","Cmd":["sleep","30"],"ExposedPorts":{"80/tcp":{},"53/udp":{}},
        "HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":""}],"53/udp":[{"HostPort":""}]}}}"#;
    for i in 0..cycles {
        let (status, created) = d.request_body("POST", "/containers/create", body);
        assert_eq!(status, 201, "cycle {i}: {created}");
        let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, text) = d.request("POST", &format!("/containers/{id}/start"));
        assert_eq!(status, 204, "cycle {i}: {text}");
        let (status, text) = d.request("DELETE", &format!("/containers/{id}?force=1"));
        assert_eq!(status, 204, "cycle {i}: {text}");
    }
    assert_eq!((bridge_ports(&bridge), nft_rule_count(&table)), before);
    let v: serde_json::Value = serde_json::from_str(&state()).unwrap();
    assert_eq!(v["endpoints"].as_object().map_or(0, |o| o.len()), 0, "{v}");
    assert_eq!(
        v["allocations"].as_object().map_or(0, |o| o.len()),
        0,
        "{v}"
    );
    // No namespace file or mount is left.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&d.dir.path().display().to_string()),
        "{mounts}"
    );
}

#[test]
fn user_networks_resolve_names_and_aliases_and_stay_apart() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&["network", "create", "--label", "app=x", "front"]));
    ok(&d.docker(&["network", "create", "back"]));
    let ls = ok(&d.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]));
    for want in [
        "bridge bridge",
        "front bridge",
        "back bridge",
        "host host",
        "none null",
    ] {
        assert!(ls.lines().any(|l| l == want), "{ls}");
    }
    assert_eq!(
        ok(&d.docker(&["network", "ls", "-q", "--filter", "label=app=x"])).len(),
        12
    );
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "site",
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    // By name, by alias, and the embedded DNS answers nslookup.
    let out = ok(&d.docker(&[
        "run", "--rm", "--network", "front", "bb", "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget -qO- http://web/ && break; sleep 0.3; done; busybox wget -qO- http://site/; busybox nslookup site",
    ]));
    assert_eq!(out.matches("hello-from-httpd").count(), 2, "{out}");
    let web_ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"front\").IPAddress}}",
        "web",
    ]));
    assert!(
        out.contains(&format!("Address: {web_ip}")),
        "{out} / {web_ip}"
    );
    let inspect = ok(&d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}{{end}}",
        "front",
    ]));
    assert_eq!(inspect, "web");
    // Another network neither resolves nor reaches it.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        "bb",
        "sh",
        "-c",
        &format!(
            "busybox wget -T 2 -qO- http://{web_ip}/ >/dev/null 2>&1 && echo reached || echo apart"
        ),
    ]));
    assert_eq!(out, "apart");
    // connect (with an alias) and disconnect, live.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "back",
        "bb",
        "sleep",
        "60",
    ]));
    ok(&d.docker(&["network", "connect", "--alias", "second", "front", "other"]));
    let out = ok(&d.docker(&[
        "exec",
        "other",
        "sh",
        "-c",
        "busybox wget -qO- http://site/; busybox ip -o link",
    ]));
    assert!(
        out.contains("hello-from-httpd") && out.contains("eth1"),
        "{out}"
    );
    let hosts = ok(&d.docker(&["exec", "other", "cat", "/etc/hosts"]));
    assert!(hosts.contains(" second"), "{hosts}");
    ok(&d.docker(&["network", "disconnect", "front", "other"]));
    let out = ok(&d.docker(&["exec", "other", "busybox", "ip", "-o", "link"]));
    assert!(!out.contains("eth1"), "{out}");
    let hosts = ok(&d.docker(&["exec", "other", "cat", "/etc/hosts"]));
    assert_eq!(hosts.matches("\t").count(), 7, "{hosts}");
    // Both show in the event log, naming the container.
    let events = ok(&d.berth(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    assert!(
        events.lines().any(|l| l == "connect front")
            && events.lines().any(|l| l == "disconnect front"),
        "{events}"
    );
    // In use: not removed; bridge never is.
    let out = d.docker(&["network", "rm", "front"]);
    assert!(err(&out).contains("has active endpoints"), "{}", err(&out));
    let out = d.docker(&["network", "rm", "bridge"]);
    assert!(err(&out).contains("pre-defined network"), "{}", err(&out));
    ok(&d.docker(&["rm", "-f", "web", "other"]));
    // --internal: no default route out.
    ok(&d.docker(&["network", "create", "--internal", "closed"]));
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "closed",
        "bb",
        "busybox",
        "ip",
        "route",
    ]));
    assert!(!out.contains("default"), "{out}");
    let pruned = ok(&d.docker(&["network", "prune", "-f"]));
    for n in ["front", "back", "closed"] {
        assert!(pruned.contains(n), "{pruned}");
    }
    assert_eq!(
        ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"])),
        "bridge\nhost\nnone"
    );
}

#[test]
fn the_berth_cli_manages_networks_and_publishes_ports() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.berth(&[
        "network",
        "create",
        "--subnet",
        "10.211.77.0/24",
        "--gateway",
        "10.211.77.254",
        "--label",
        "k=v",
        "cli",
    ]));
    assert_eq!(id.len(), 64, "{id}");
    let ls = ok(&d.berth(&["network", "ls"]));
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.contains(" cli ") && l.contains("bridge")),
        "{ls}"
    );
    assert_eq!(
        ok(&d.berth(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
            "cli"
        ])),
        "10.211.77.254"
    );
    // -P publishes the --expose'd port on a random host port; `port` shows it.
    let c = ok(&d.berth(&[
        "run",
        "-d",
        "--network",
        "cli",
        "--ip",
        "10.211.77.9",
        "--network-alias",
        "x",
        "--expose",
        "80",
        "-P",
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    let port = ok(&d.berth(&["port", &c, "80/tcp"]));
    let host_port = port.rsplit(':').next().unwrap();
    assert!(http_get(&format!("127.0.0.1:{host_port}")).contains("hello-from-httpd"));
    assert_eq!(
        ok(&d.berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"cli\").IPAddress}}",
            &c
        ])),
        "10.211.77.9"
    );
    ok(&d.berth(&["network", "connect", "--alias", "y", "bridge", &c]));
    ok(&d.berth(&["network", "disconnect", "bridge", &c]));
    ok(&d.berth(&["rm", "-f", &c]));
    assert_eq!(ok(&d.berth(&["network", "rm", "cli"])), "cli");
    let out = d.berth(&["network", "inspect", "cli"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exposed_ports_of_the_image_and_exits_while_the_daemon_is_down() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    // -P publishes the image's EXPOSE.
    let tarball = busybox_tarball(&d.dir.path().join("exposed"));
    ok(&d.docker(&[
        "import",
        "-c",
        "EXPOSE 80",
        "-c",
        "CMD [\"sh\"]",
        tarball.to_str().unwrap(),
        "web",
    ]));
    let c = ok(&d.docker(&["run", "-d", "-P", "web", "sh", "-c", HTTPD]));
    let port = ok(&d.docker(&["port", &c, "80/tcp"]));
    let host_port = port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    assert!(http_get(&format!("127.0.0.1:{host_port}")).contains("hello-from-httpd"));
    ok(&d.docker(&["rm", "-f", &c]));

    // A container that ends while the daemon is down gives its port back when the daemon
    // is back.
    let fixed = free_port();
    ok(&d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{fixed}:80"),
        "bb",
        "sleep",
        "1",
    ]));
    d.stop();
    std::thread::sleep(Duration::from_millis(1500));
    d.start_again();
    let c = ok(&d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{fixed}:80"),
        "bb",
        "sh",
        "-c",
        HTTPD,
    ]));
    assert!(http_get(&format!("127.0.0.1:{fixed}")).contains("hello-from-httpd"));
    ok(&d.docker(&["rm", "-f", &c]));
}

/// A `network connect` killed between the endpoint and the container's record leaves an
/// endpoint the record does not list (made here by taking the network out of the record while
/// the daemon is down). The daemon's start lets it go, so the network can be removed and its
/// rules go with it.
#[test]
fn an_endpoint_the_record_does_not_list_goes_at_start() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let table = net_args(d.dir.path())[5].clone();
    let rules_before = nft_rule_count(&table);
    let c = ok(&d.docker(&["run", "-d", "bb", "sleep", "100000"]));
    ok(&d.docker(&["network", "create", "half"]));
    ok(&d.docker(&["network", "connect", "half", &c]));
    d.stop();
    let record = d
        .dir
        .path()
        .join("root/containers")
        .join(&c)
        .join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let networks = v["net"]["networks"].as_array_mut().unwrap();
    let before = networks.len();
    networks.retain(|a| a["name"] != "half");
    assert_eq!(networks.len(), before - 1, "{v}");
    std::fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    d.start_again();

    let on = ok(&d.docker(&["network", "inspect", "-f", "{{len .Containers}}", "half"]));
    assert_eq!(on, "0");
    ok(&d.docker(&["network", "rm", "half"]));
    // The container keeps its own network and runs on.
    let nets = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &c,
    ]));
    assert_eq!(nets, "true bridge", "{nets}");
    ok(&d.docker(&["rm", "-f", &c]));
    assert_eq!(nft_rule_count(&table), rules_before);
}

/// After a reboot the bridges are gone while their networks' records stay (so too after a
/// crash between a network's record and its bridge): the daemon makes them again before its
/// DNS listens on their gateways, and names resolve on them as before.
#[test]
fn user_networks_come_back_when_their_bridges_are_gone() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    ok(&d.docker(&["network", "create", "rb"]));
    let bridge = format!(
        "br-{}",
        &ok(&d.docker(&["network", "inspect", "-f", "{{.Id}}", "rb"]))[..12]
    );
    d.stop();
    let del = std::process::Command::new("ip")
        .args(["link", "del", &bridge])
        .status()
        .unwrap();
    assert!(del.success());
    d.start_again();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "rb",
        "bb",
        "sleep",
        "100000",
    ]));
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "rb",
        "bb",
        "busybox",
        "nslookup",
        "a",
    ]));
    let ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.rb.IPAddress}}",
        "a",
    ]));
    assert!(out.contains(&ip), "{out}");
    ok(&d.docker(&["rm", "-f", "a"]));
    ok(&d.docker(&["network", "rm", "rb"]));
}

/// The network endpoints read bodies as dockerd does (a wrong type is its 400, in its words)
/// and answer with the objects berth has always sent, field for field.
#[test]
fn network_bodies_are_read_as_dockerd_reads_them() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let refused = |path: &str, body: &str, want: &str| {
        let (status, text) = d.request_body("POST", path, body);
        assert_eq!(
            (status, json(&text)["message"].as_str()),
            (400, Some(want)),
            "{body}"
        );
    };
    refused(
        "/networks/create",
        r#"{"Name":5}"#,
        "invalid JSON: json: cannot unmarshal number into Go struct field CreateRequest.Name of type string",
    );
    refused(
        "/networks/create",
        r#"{"Name":"typed","Labels":"x"}"#,
        "invalid JSON: json: cannot unmarshal string into Go struct field CreateRequest.Labels of type map[string]string",
    );
    refused("/networks/create", "{}", "network name is required");
    let (status, text) = d.request_body(
        "POST",
        "/networks/create",
        r#"{"Name":"typed","Labels":{"app":"x"},"Internal":true,
            "Options":{"com.docker.network.driver.mtu":"1400"}}"#,
    );
    assert_eq!(status, 201, "{text}");
    let created = json(&text);
    assert_eq!(created["Warning"], "");
    let id = created["Id"].as_str().unwrap().to_owned();

    let (status, text) = d.request("GET", "/networks/typed");
    assert_eq!(status, 200, "{text}");
    let mut n = json(&text);
    let config = n["IPAM"]["Config"][0].take();
    // The first /24 of the daemon's `--default-address-pool` (base=10.B.C.0/20,size=24).
    let pool = net_args(d.dir.path())[7].clone();
    let base = pool
        .trim_start_matches("base=")
        .trim_end_matches("/20,size=24");
    assert_eq!(
        config["Subnet"].as_str().unwrap(),
        format!("{base}/24"),
        "{config} from {pool}"
    );
    assert!(config["Gateway"].is_string(), "{config}");
    let created_at = n["Created"].take();
    assert!(created_at.as_str().unwrap().ends_with('Z'), "{created_at}");
    assert_eq!(
        n,
        serde_json::json!({
            "Name": "typed", "Id": id, "Created": null, "Scope": "local", "Driver": "bridge",
            "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": [null]},
            "Internal": true, "Attachable": false, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
            // As created, nothing added (Docker).
            "Options": {"com.docker.network.driver.mtu": "1400"},
            "Labels": {"app": "x"},
        })
    );
    // host and none: IPAM options null, as Docker sends them.
    let (_, text) = d.request("GET", "/networks/host");
    assert_eq!(
        json(&text)["IPAM"],
        serde_json::json!({"Driver": "default", "Options": null, "Config": []})
    );
    let (_, text) = d.request(
        "GET",
        "/networks?filters=%7B%22label%22%3A%5B%22app%3Dx%22%5D%7D",
    );
    let listed = json(&text);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["Id"], id.as_str());

    refused(
        "/networks/typed/connect",
        r#"{"Container":5}"#,
        "invalid JSON: json: cannot unmarshal number into Go struct field ConnectOptions.Container of type string",
    );
    refused("/networks/typed/connect", "{}", "no container given");
    refused(
        "/networks/typed/disconnect",
        r#"{"Container":"c","Force":"yes"}"#,
        "invalid JSON: json: cannot unmarshal string into Go struct field DisconnectOptions.Force of type bool",
    );
    let (status, text) = d.request("POST", "/networks/prune");
    assert_eq!(
        (status, json(&text)),
        (200, serde_json::json!({"NetworksDeleted": ["typed"]}))
    );
}

#[test]
fn endpoints_and_ipam_are_shown_as_docker_shows_them() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    // IPAM as given: Options, IPRange and AuxiliaryAddresses back, the range used.
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/networks/create",
        r#"{"Name":"ipam net","IPAM":{"Driver":"default","Options":{"o":"1"},
            "Config":[{"Subnet":"172.31.0.0/16","IPRange":"172.31.5.0/24",
                       "Gateway":"172.31.5.254","AuxiliaryAddresses":{"a":"172.31.1.5"}}]}}"#,
    );
    assert_eq!(status, 201, "{text}");
    let (status, text) = d.request("GET", "/networks/ipam%20net");
    assert_eq!(status, 200, "{text}");
    let n = json(&text);
    assert_eq!(
        n["IPAM"],
        serde_json::json!({"Driver": "default", "Options": {"o": "1"},
            "Config": [{"Subnet": "172.31.0.0/16", "IPRange": "172.31.5.0/24",
                        "Gateway": "172.31.5.254", "AuxiliaryAddresses": {"a": "172.31.1.5"}}]})
    );
    assert_eq!(n["Options"], serde_json::json!({}));

    // Created, not started: the endpoint with what was asked for, the rest empty.
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/containers/create?name=ep1",
        r#"{"Image":"bb","Cmd":["sleep","60"],"HostConfig":{"NetworkMode":"ipam net"},
            "NetworkingConfig":{"EndpointsConfig":{"ipam net":{
                "IPAMConfig":{"IPv4Address":"172.31.9.9"},"DriverOpts":{"k":"v"},
                "MacAddress":"02:42:ac:11:00:09"}}}}"#,
    );
    assert_eq!(status, 201, "{text}");
    let (_, text) = d.request("GET", "/v1.41/containers/ep1/json");
    let ep = json(&text)["NetworkSettings"]["Networks"]["ipam net"].clone();
    assert_eq!(
        ep["IPAMConfig"],
        serde_json::json!({"IPv4Address": "172.31.9.9"})
    );
    assert_eq!(ep["DriverOpts"], serde_json::json!({"k": "v"}));
    assert_eq!(ep["MacAddress"], "02:42:ac:11:00:09");
    for k in ["Links", "Aliases", "DNSNames"] {
        assert!(ep.get(k).is_some_and(|v| v.is_null()), "{k}: {ep}");
    }
    for k in ["EndpointID", "Gateway", "IPAddress"] {
        assert_eq!(ep[k], "", "{k}: {ep}");
    }
    assert_eq!(ep["IPPrefixLen"], 0);
    assert_eq!(ep["NetworkID"].as_str().map(str::len), Some(64), "{ep}");

    // Started: the addresses; a second container gets the range's first address.
    ok(&d.docker(&["start", "ep1"]));
    let (_, text) = d.request("GET", "/v1.41/containers/ep1/json");
    let ep = json(&text)["NetworkSettings"]["Networks"]["ipam net"].clone();
    assert_eq!(ep["IPAddress"], "172.31.9.9");
    assert_eq!(ep["IPPrefixLen"], 16);
    assert_eq!(ep["Gateway"], "172.31.5.254");
    assert_eq!(ep["MacAddress"], "02:42:ac:11:00:09");
    assert_eq!(
        ep["IPAMConfig"],
        serde_json::json!({"IPv4Address": "172.31.9.9"})
    );
    let names: Vec<&str> = ep["DNSNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "{ep}");
    assert!(names.contains(&"ep1"), "{ep}");
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "ep2",
        "--network",
        "ipam net",
        "bb",
        "sleep",
        "60",
    ]));
    let ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"ipam net\").IPAddress}}",
        "ep2",
    ]));
    assert_eq!(ip.trim(), "172.31.5.0");

    // network connect to a created container: MAC, aliases and links shown before start.
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/containers/create?name=ep3",
        r#"{"Image":"bb","Cmd":["true"]}"#,
    );
    assert_eq!(status, 201, "{text}");
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/networks/ipam%20net/connect",
        r#"{"Container":"ep3","EndpointConfig":{"MacAddress":"02:42:ac:11:00:02",
            "Aliases":["x3"],"Links":["ep1:up"]}}"#,
    );
    assert_eq!(status, 200, "{text}");
    let (_, text) = d.request("GET", "/v1.41/containers/ep3/json");
    let nets = json(&text)["NetworkSettings"]["Networks"].clone();
    let ep = &nets["ipam net"];
    assert_eq!(ep["MacAddress"], "02:42:ac:11:00:02", "{ep}");
    assert_eq!(ep["Aliases"], serde_json::json!(["x3"]));
    assert_eq!(ep["Links"], serde_json::json!(["ep1:up"]));
    assert!(
        ep["IPAMConfig"].is_null() && ep["DriverOpts"].is_null(),
        "{ep}"
    );
    // The default network's endpoint: no aliases given, null (Docker), not [].
    assert!(
        nets["bridge"].get("Aliases").is_some_and(|v| v.is_null()),
        "{nets}"
    );

    // Two endpoints at create before API 1.44: Docker's 400.
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/containers/create",
        r#"{"Image":"bb","HostConfig":{"NetworkMode":"ipam net"},
            "NetworkingConfig":{"EndpointsConfig":{"ipam net":{},"bar":{}}}}"#,
    );
    assert_eq!(
        (status, json(&text)["message"].as_str()),
        (
            400,
            Some("Container cannot be connected to network endpoints: bar, ipam net")
        )
    );
    // One entry for another network: not put on the mode's network.
    let (status, text) = d.request_body(
        "POST",
        "/v1.41/containers/create?name=ep4",
        r#"{"Image":"bb","HostConfig":{"NetworkMode":"ipam net"},
            "NetworkingConfig":{"EndpointsConfig":{"bar":{"Aliases":["hello"]}}}}"#,
    );
    assert_eq!(status, 201, "{text}");
    let (_, text) = d.request("GET", "/v1.41/containers/ep4/json");
    let ep = json(&text)["NetworkSettings"]["Networks"]["ipam net"].clone();
    assert!(ep.get("Aliases").is_some_and(|v| v.is_null()), "{ep}");

    ok(&d.docker(&["rm", "-f", "ep1", "ep2", "ep3", "ep4"]));
    let (status, text) = d.request("DELETE", "/networks/ipam%20net");
    assert_eq!(status, 204, "{text}");
}

/// A ULA /64 prefix (`fdxx:xxxx:xxxx:xxxx`) of this test run's own: random enough not to
/// clash with another run or anything on the host.
fn ula_prefix() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ (u128::from(std::process::id()) << 64);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "fd{:02x}:{:x}:{:x}:{:x}",
        (h >> 56) as u8,
        (h >> 40) as u16,
        (h >> 24) as u16,
        (h >> 8) as u16
    )
}

#[test]
fn dual_stack_networks_give_containers_ipv6_addresses_names_and_routes() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let p = ula_prefix();
    let subnet = format!("{p}::/64");
    let table = net_args(d.dir.path())[5].clone();

    // Refused requests leave no network behind.
    for (body, status, want) in [
        (
            format!(r#"{{"Name":"bad6","EnableIPv6":true,"IPAM":{{"Config":[{{"Subnet":"{p}::/164"}}]}}}}"#),
            400,
            format!("invalid CIDR address: {p}::/164"),
        ),
        (
            format!(r#"{{"Name":"bad6","EnableIPv6":true,"IPAM":{{"Config":[{{"Subnet":"{subnet}","Gateway":"fd00::1"}}]}}}}"#),
            400,
            "failed to allocate gateway (fd00::1): Requested address is out of range".to_owned(),
        ),
        (
            r#"{"Name":"bad6","EnableIPv6":true}"#.to_owned(),
            404,
            "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network".to_owned(),
        ),
    ] {
        let (got, text) = d.request_body("POST", "/v1.41/networks/create", &body);
        assert_eq!((got, json(&text)["message"].as_str()), (status, Some(want.as_str())), "{body}");
    }
    assert!(!ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"])).contains("bad6"));

    // The docker CLI's `--ipv6 --subnet`: an IPv4 pool is still taken (dual stack).
    let id = ok(&d.docker(&["network", "create", "--ipv6", "--subnet", &subnet, "v6net"]));
    let (_, text) = d.request("GET", "/v1.41/networks/v6net");
    let n = json(&text);
    assert_eq!(n["EnableIPv6"], true, "{n}");
    let config = n["IPAM"]["Config"].as_array().unwrap().clone();
    assert_eq!(config.len(), 2, "{n}");
    assert!(config[0]["Subnet"].as_str().unwrap().contains('.'), "{n}");
    assert_eq!(config[1], serde_json::json!({"Subnet": subnet}));
    // Its bridge has the gateway's IPv6 address; an ip6 table masquerades the subnet.
    let bridge = format!("br-{}", &id[..12]);
    let addrs = std::process::Command::new("ip")
        .args(["-6", "addr", "show", "dev", &bridge])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains(&format!("{p}::1/64")),
        "{addrs:?}"
    );
    let rules = std::process::Command::new("nft")
        .args(["list", "table", "ip6", &table])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).to_string();
    assert!(
        rules.contains(&format!("ip6 saddr {subnet}")) && rules.contains("masquerade"),
        "{rules}"
    );

    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "six1",
        "--network",
        "v6net",
        "--ip6",
        &format!("{p}::f00d"),
        "bb",
        "sleep",
        "120",
    ]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "six2",
        "--network",
        "v6net",
        "bb",
        "sleep",
        "120",
    ]));
    let (_, text) = d.request("GET", "/v1.41/containers/six1/json");
    let ep = json(&text)["NetworkSettings"]["Networks"]["v6net"].clone();
    assert_eq!(
        ep["IPAMConfig"],
        serde_json::json!({"IPv6Address": format!("{p}::f00d")})
    );
    assert_eq!(ep["GlobalIPv6Address"], format!("{p}::f00d"), "{ep}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64, "{ep}");
    assert_eq!(ep["IPv6Gateway"], format!("{p}::1"), "{ep}");
    assert!(
        ep["IPAddress"].as_str().is_some_and(|a| a.contains('.')),
        "{ep}"
    );
    // Pool addresses start after the gateway.
    let six2 = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"v6net\").GlobalIPv6Address}}",
        "six2",
    ]));
    assert_eq!(six2, format!("{p}::2"));
    let (_, text) = d.request("GET", "/v1.41/networks/v6net");
    let members = json(&text)["Containers"].to_string();
    assert!(members.contains(&format!("\"{p}::f00d/64\"")), "{members}");

    // Over IPv6, by address and by name (AAAA from the embedded DNS); routes and hosts.
    let out = ok(&d.docker(&[
        "exec", "six2", "sh", "-c",
        &format!("busybox ping -6 -c1 -W 3 {p}::f00d && busybox ping -6 -c1 -W 3 six1 && busybox ip -6 route"),
    ]));
    assert!(out.contains(&format!("from {p}::f00d")), "{out}");
    assert!(out.contains(&format!("default via {p}::1")), "{out}");
    let hosts = ok(&d.docker(&["exec", "six1", "cat", "/etc/hosts"]));
    let host = ok(&d.docker(&["exec", "six1", "busybox", "hostname"]));
    assert!(hosts.ends_with(&format!("\n{p}::f00d\t{host}")), "{hosts}");

    // A requested address outside the subnet, or taken: Docker's errors at start.
    for (ip, want) in [
        (
            "2001:999::5".to_owned(),
            format!("invalid address 2001:999::5: it does not belong to subnet {subnet}"),
        ),
        (format!("{p}::f00d"), "Address already in use".to_owned()),
        ("zz::1".to_owned(), "invalid IPv6 address: zz::1".to_owned()),
    ] {
        let out = d.docker(&[
            "run",
            "--rm",
            "--network",
            "v6net",
            "--ip6",
            &ip,
            "bb",
            "true",
        ]);
        assert_ne!(out.status.code(), Some(0));
        assert!(err(&out).contains(&want), "{ip}: {}", err(&out));
    }

    // connect with --ip6 to a running container on another network: a second interface.
    ok(&d.docker(&["run", "-d", "--name", "six3", "bb", "sleep", "120"]));
    ok(&d.docker(&[
        "network",
        "connect",
        "--ip6",
        &format!("{p}::abcd"),
        "v6net",
        "six3",
    ]));
    let (_, text) = d.request("GET", "/v1.41/containers/six3/json");
    let ep = json(&text)["NetworkSettings"]["Networks"]["v6net"].clone();
    assert_eq!(
        ep["IPAMConfig"]["IPv6Address"],
        format!("{p}::abcd"),
        "{ep}"
    );
    assert_eq!(ep["GlobalIPv6Address"], format!("{p}::abcd"), "{ep}");
    let out = ok(&d.docker(&[
        "exec",
        "six3",
        "sh",
        "-c",
        &format!("busybox ping -6 -c1 -W 3 {p}::f00d && cat /etc/hosts"),
    ]));
    assert!(
        out.contains(&format!("from {p}::f00d")) && out.contains(&format!("{p}::abcd\t")),
        "{out}"
    );
    ok(&d.docker(&["network", "disconnect", "v6net", "six3"]));
    let hosts = ok(&d.docker(&["exec", "six3", "cat", "/etc/hosts"]));
    assert!(!hosts.contains(&p), "{hosts}");

    ok(&d.docker(&["rm", "-f", "six1", "six2", "six3"]));
    ok(&d.docker(&["network", "rm", "v6net"]));

    // berth's own CLI: a gateway goes with the subnet of its family; `run --ip6`.
    let q = ula_prefix();
    ok(&d.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("{q}::/64"),
        "--gateway",
        &format!("{q}::fffe"),
        "v6cli",
    ]));
    let gw = ok(&d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 1).Gateway}}",
        "v6cli",
    ]));
    assert_eq!(gw, format!("{q}::fffe"));
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        "v6cli",
        "--ip6",
        &format!("{q}::7"),
        "bb",
        "busybox",
        "ip",
        "-6",
        "route",
    ]));
    assert!(out.contains(&format!("default via {q}::fffe")), "{out}");
    ok(&d.berth(&["network", "rm", "v6cli"]));
    // No dual-stack network left: the ip6 table goes too.
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip6", &table])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The default bridge address of a container.
fn bridge_ip(d: &TestDaemon, name: &str) -> String {
    ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.bridge.IPAddress}}",
        name,
    ]))
}

#[test]
fn legacy_links_give_dockers_variables_hosts_lines_and_names_and_go_with_rm_link() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "child",
        "-e",
        "FOO=1",
        "--expose",
        "80",
        "--expose",
        "81/udp",
        "--hostname",
        "chost",
        "bb",
        "sleep",
        "120",
    ]));
    let ip = bridge_ip(&d, "child");
    let out = ok(&d.docker(&[
        "run",
        "--name",
        "par",
        "--link",
        "child:my-al",
        "--add-host",
        "ex:1.2.3.4",
        "bb",
        "sh",
        "-c",
        "env; cat /etc/hosts",
    ]));
    for want in [
        "MY_AL_NAME=/par/my-al".to_owned(),
        "MY_AL_ENV_FOO=1".to_owned(),
        format!("MY_AL_PORT=tcp://{ip}:80"),
        format!("MY_AL_PORT_80_TCP=tcp://{ip}:80"),
        format!("MY_AL_PORT_80_TCP_ADDR={ip}"),
        "MY_AL_PORT_80_TCP_PORT=80".to_owned(),
        "MY_AL_PORT_80_TCP_PROTO=tcp".to_owned(),
        format!("MY_AL_PORT_81_UDP=udp://{ip}:81"),
        // The hosts file: --add-host first, then the link (alias, hostname, name).
        format!("1.2.3.4\tex\n{ip}\tmy-al chost child\n"),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("MY_AL_ENV_PATH"), "{out}");
    // Inspect shows Docker's form; the link's name stands for the child.
    let links = ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "par"]));
    assert_eq!(links, r#"["/child:/par/my-al"]"#);
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.Name}}", "par/my-al"])),
        "/child"
    );
    let (status, body) = d.request("GET", "/containers/json");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names = list.as_array().unwrap()[0]["Names"].clone();
    assert_eq!(names, serde_json::json!(["/child", "/par/my-al"]));
    // Renaming the parent renames the link.
    ok(&d.docker(&["rename", "par", "par2"]));
    let links = ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "par2"]));
    assert_eq!(links, r#"["/child:/par2/my-al"]"#);

    // Docker's errors.
    let out = d.docker(&["create", "--link", "nosuch:x", "bb"]);
    assert!(
        err(&out).contains("could not get container for nosuch: No such container: nosuch"),
        "{}",
        err(&out)
    );
    let create = |hc: &str| {
        d.request_body(
            "POST",
            "/containers/create",
            &format!(r#"{{"Image": "bb", "HostConfig": {hc}}}"#),
        )
    };
    let (status, body) = create(r#"{"Links": ["a:b:c"]}"#);
    assert_eq!(
        (status, body.contains("bad format for links: a:b:c")),
        (400, true),
        "{body}"
    );
    let (status, body) = create(r#"{"Links": ["child:x"], "NetworkMode": "host"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("host type networking can't be used with links"),
        "{body}"
    );
    ok(&d.docker(&["create", "--name", "down", "bb", "true"]));
    ok(&d.docker(&["create", "--name", "p2", "--link", "down:al", "bb", "true"]));
    let out = d.docker(&["start", "p2"]);
    assert!(
        err(&out).contains("Cannot link to a non running container: /down AS /p2/al"),
        "{}",
        err(&out)
    );

    // rm --link: the parent loses the link, both containers stay.
    let out = d.docker(&["rm", "--link", "child"]);
    assert!(
        err(&out).contains("cannot remove the default link name of the container"),
        "{}",
        err(&out)
    );
    let out = d.docker(&["rm", "--link", "/par2/nope"]);
    assert!(
        err(&out).contains("No such container: par2/nope"),
        "{}",
        err(&out)
    );
    ok(&d.docker(&["rm", "--link", "/par2/my-al"]));
    let links = ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "par2"]));
    assert_eq!(links, "null");
    assert_eq!(
        ok(&d.docker(&["ps", "-aq", "--filter", "name=child"]))
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&d.docker(&["ps", "-aq", "--filter", "name=par2"]))
            .lines()
            .count(),
        1
    );

    // The berth CLI's --link.
    let out = ok(&d.berth(&[
        "run", "--rm", "--name", "bl", "--link", "child:b2", "bb", "sh", "-c", "env",
    ]));
    assert!(
        out.contains("B2_NAME=/bl/b2") && out.contains("B2_ENV_FOO=1"),
        "{out}"
    );
    let out = d.berth(&["create", "--link", "a:b:c", "bb"]);
    assert!(
        err(&out).contains("invalid argument \"a:b:c\" for \"--link\" flag: bad format for links"),
        "{}",
        err(&out)
    );
    ok(&d.docker(&["rm", "-f", "child", "par2", "down", "p2"]));
}

#[test]
fn endpoint_links_on_a_user_network_resolve_for_the_linking_container_only() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&["network", "create", "lnk"]));
    // The link names a container that does not exist yet (as docker-py's test does).
    let (status, body) = d.request_body(
        "POST",
        "/containers/create?name=down",
        r#"{"Image": "bb", "Cmd": ["sleep", "120"], "HostConfig": {"NetworkMode": "lnk"},
            "NetworkingConfig": {"EndpointsConfig": {"lnk": {"Links": ["upstream:bar"]}}}}"#,
    );
    assert_eq!(status, 201, "{body}");
    ok(&d.docker(&["start", "down"]));
    let links = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.lnk.Links}}",
        "down",
    ]));
    assert_eq!(links, r#"["upstream:bar"]"#);
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "upstream",
        "--network",
        "lnk",
        "bb",
        "sleep",
        "120",
    ]));
    let up_ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"lnk\").IPAddress}}",
        "upstream",
    ]));
    let out = ok(&d.docker(&["exec", "down", "busybox", "nslookup", "bar"]));
    assert!(out.contains(&format!("Address: {up_ip}")), "{out}");
    // Another container on the network does not have the alias.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "lnk",
        "bb",
        "busybox",
        "nslookup",
        "bar",
    ]);
    assert!(
        !text(&out).contains(&format!("Address: {up_ip}")),
        "{}",
        text(&out)
    );
    // network connect --link.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "lnk",
        "bb",
        "sleep",
        "120",
    ]));
    ok(&d.docker(&["network", "disconnect", "lnk", "c3"]));
    ok(&d.docker(&["network", "connect", "--link", "upstream:baz", "lnk", "c3"]));
    let links = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.lnk.Links}}",
        "c3",
    ]));
    assert_eq!(links, r#"["upstream:baz"]"#);
    let out = ok(&d.docker(&["exec", "c3", "busybox", "nslookup", "baz"]));
    assert!(out.contains(&format!("Address: {up_ip}")), "{out}");
    ok(&d.docker(&["create", "--name", "lone", "bb", "true"]));
    let (status, body) = d.request_body(
        "POST",
        "/networks/lnk/connect",
        r#"{"Container": "lone", "EndpointConfig": {"Links": ["x:y:z"]}}"#,
    );
    assert_eq!(
        (status, body.contains("bad format for links: x:y:z")),
        (400, true),
        "{body}"
    );
    // The berth CLI turns --link on a user network into the endpoint's links.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        "lnk",
        "--link",
        "upstream:zz",
        "bb",
        "busybox",
        "nslookup",
        "zz",
    ]));
    assert!(out.contains(&format!("Address: {up_ip}")), "{out}");
    ok(&d.docker(&["rm", "-f", "down", "upstream", "c3", "lone"]));
    ok(&d.docker(&["network", "rm", "lnk"]));
}

/// API 1.44 and later create a container on several networks at once (`docker run
/// --network a --network b`, Compose's services on several networks): every one is
/// joined, with its aliases, and the container is reachable by name on each.
#[test]
fn a_container_created_on_two_networks_joins_both() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&["network", "create", "--subnet", "10.251.71.0/24", "front"]));
    ok(&d.docker(&["network", "create", "--subnet", "10.251.72.0/24", "back"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "two",
        "--network",
        "front",
        "--network",
        "name=back,alias=db",
        "bb",
        "sleep",
        "300",
    ]));
    let nets = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "two",
    ]));
    assert_eq!(nets, "back front");
    // Reached by its alias on back, by its name on front.
    for (net, name) in [("back", "db"), ("front", "two")] {
        ok(&d.docker(&[
            "run",
            "--rm",
            "--network",
            net,
            "bb",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            name,
        ]));
    }
    ok(&d.docker(&["rm", "-f", "two"]));
    ok(&d.docker(&["network", "rm", "front", "back"]));
}

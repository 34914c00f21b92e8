//! The container store through the API: a name is given to exactly one of many concurrent
//! creates; rename, update and network connect racing on one container all land in its
//! record; inspect echoes the create request's HostConfig and Config as given.

use std::sync::Arc;

use berth_testutil::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn twenty_creates_with_one_name_make_one_container() {
    if !root_or_skip() {
        return;
    }
    let d = Arc::new(TestDaemon::with_busybox());
    let body = r#"{"Image":"bb","Cmd":["true"]}"#;
    let statuses: Vec<(u16, String)> = (0..20)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || d.request_body("POST", "/containers/create?name=one", body))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let created: Vec<&(u16, String)> = statuses.iter().filter(|(s, _)| *s == 201).collect();
    let conflicts = statuses.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!(created.len(), 1, "{statuses:?}");
    assert_eq!(conflicts, 19, "{statuses:?}");
    let winner = json(&created[0].1)["Id"].as_str().unwrap().to_owned();
    for (_, body) in statuses.iter().filter(|(s, _)| *s == 409) {
        assert!(
            json(body)["message"]
                .as_str()
                .unwrap()
                .contains(&format!("is already in use by container \"{winner}\"")),
            "{body}"
        );
    }
    let listed = ok(&d.docker(&["ps", "-a", "--filter", "name=one", "--format", "{{.ID}}"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    ok(&d.docker(&["rm", "-f", "one"]));
    // The name is free again.
    let (status, body) = d.request_body("POST", "/containers/create?name=one", body);
    assert_eq!(status, 201, "{body}");
    ok(&d.docker(&["rm", "-f", "one"]));
}

#[test]
fn rename_update_and_connect_racing_all_land_in_the_record() {
    if !root_or_skip() {
        return;
    }
    let d2 = Arc::new(TestDaemon::with_busybox());
    ok(&d2.docker(&["create", "--name", "r0", "bb", "sleep", "60"]));
    let rounds = 6;
    for i in 0..rounds {
        ok(&d2.docker(&["network", "create", &format!("race{i}")]));
    }
    let mut current = "r0".to_owned();
    for i in 1..=rounds {
        let (a, b, c) = (d2.clone(), d2.clone(), d2.clone());
        let (from, to) = (current.clone(), format!("r{i}"));
        let memory = format!("{}m", 64 + i);
        let net = format!("race{}", i - 1);
        // The update and the connect name the container by ID, so the rename racing them
        // cannot make them miss it.
        let id = ok(&d2.docker(&["inspect", "-f", "{{.Id}}", &from]));
        let (id2, id3) = (id.clone(), id.clone());
        let t1 = std::thread::spawn(move || ok(&a.docker(&["rename", &from, &to])));
        let t2 = std::thread::spawn(move || {
            ok(&b.docker(&["update", "--memory", &memory, "--memory-swap", "-1", &id2]))
        });
        let t3 = std::thread::spawn(move || ok(&c.docker(&["network", "connect", &net, &id3])));
        t1.join().unwrap();
        t2.join().unwrap();
        t3.join().unwrap();
        current = format!("r{i}");
        let v = json(&ok(&d2.docker(&["inspect", &id])))[0].clone();
        assert_eq!(v["Name"], format!("/{current}"), "round {i}");
        assert_eq!(
            v["HostConfig"]["Memory"].as_i64(),
            Some((64 + i) * 1024 * 1024),
            "round {i}"
        );
        for k in 0..i {
            assert!(
                v["NetworkSettings"]["Networks"][format!("race{k}")].is_object(),
                "round {i}: race{k} missing: {}",
                v["NetworkSettings"]["Networks"]
            );
        }
    }
    // What is on disk agrees: a restarted daemon reads the same record.
    let mut d = Arc::try_unwrap(d2).unwrap_or_else(|_| panic!("daemon still shared"));
    d.stop();
    d.start_again();
    let v = json(&ok(&d.docker(&["inspect", &current])))[0].clone();
    assert_eq!(
        v["HostConfig"]["Memory"].as_i64(),
        Some((64 + rounds) * 1024 * 1024)
    );
    assert_eq!(
        v["NetworkSettings"]["Networks"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("race"))
            .count(),
        rounds as usize
    );
    assert!(!ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"]))
        .lines()
        .any(|n| n == "r0"));
    ok(&d.docker(&["rm", "-f", &current]));
    for i in 0..rounds {
        ok(&d.docker(&["network", "rm", &format!("race{i}")]));
    }
}

#[test]
fn inspect_echoes_the_host_config_as_given() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // Field, value sent: inspect must show each as given.
    let host_config = serde_json::json!({
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]},
        "Tmpfs": {"/scratch": "size=1m"},
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                     "CgroupPermissions": "rwm"}],
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
        "CgroupnsMode": "private",
        "PidMode": "",
        "IpcMode": "private",
        "UTSMode": "",
        "CpusetCpus": "0",
        "Dns": ["10.1.2.3"],
        "DnsSearch": ["example.test"],
        "ExtraHosts": ["db:10.1.2.4"],
        "Memory": 67108864,
        "MemorySwap": -1,
        "PidsLimit": 50,
        "CapAdd": ["NET_ADMIN"],
        "CapDrop": ["MKNOD"],
        "SecurityOpt": ["no-new-privileges"],
        "ReadonlyRootfs": true,
        "Init": true,
        "ShmSize": 67108864,
        "OomScoreAdj": 100,
        "GroupAdd": ["10"],
        "Sysctls": {"net.ipv4.ip_forward": "1"},
        "VolumesFrom": [],
    });
    let body = serde_json::json!({
        "Image": "bb",
        "Cmd": ["sleep", "60"],
        "Labels": {"app": "echo", "tier": "test"},
        "StopSignal": "SIGINT",
        "StopTimeout": 3,
        "Hostname": "echoer",
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": host_config,
    });
    let (status, created) =
        d.request_body("POST", "/containers/create?name=echo", &body.to_string());
    assert_eq!(status, 201, "{created}");
    let (status, inspect) = d.request("GET", "/containers/echo/json");
    assert_eq!(status, 200, "{inspect}");
    let v = json(&inspect);
    for (field, sent) in host_config.as_object().unwrap() {
        assert_eq!(&v["HostConfig"][field], sent, "HostConfig.{field}");
    }
    for field in [
        "Labels",
        "StopSignal",
        "StopTimeout",
        "Hostname",
        "ExposedPorts",
    ] {
        assert_eq!(v["Config"][field], body[field], "Config.{field}");
    }
    assert_eq!(v["Config"]["Cmd"], body["Cmd"]);
    ok(&d.docker(&["rm", "-f", "echo"]));
}

#[test]
fn bad_create_bodies_get_dockers_400s_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for (body, words) in [
        (
            r#"{"Image":"bb","HostConfig":{"Memory":"abc"}}"#,
            "json: cannot unmarshal string into Go struct field ContainerCreateRequest.HostConfig.Memory of type int64",
        ),
        (
            r#"{"Image":"bb","HostConfig":{"ShmSize":-1}}"#,
            "SHM size can not be less than 0",
        ),
        (
            r#"{"Image":"bb","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
            "invalid restart policy 'sometimes'",
        ),
        (
            r#"{"Image":"bb","HostConfig":{"CgroupnsMode":"shared"}}"#,
            "invalid cgroup namespace mode: shared",
        ),
        (r#"{"Image":"bb","Cmd":"#, "invalid JSON"),
    ] {
        let (status, resp) = d.request_body("POST", "/containers/create?name=bad", body);
        assert_eq!(status, 400, "{body}: {resp}");
        let msg = json(&resp)["message"].as_str().unwrap().to_owned();
        assert!(msg.starts_with(words), "{body}: {msg}");
    }
    // Nothing was made, and the name was never taken.
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    let (status, resp) = d.request_body(
        "POST",
        "/containers/create?name=bad",
        r#"{"Image":"bb","Cmd":"true"}"#,
    );
    assert_eq!(status, 201, "{resp}");
    ok(&d.docker(&["rm", "bad"]));
}

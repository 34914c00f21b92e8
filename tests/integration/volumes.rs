//! Volumes and mounts, end to end: named volumes outlive containers and fill from the image,
//! read-only and tmpfs mounts behave, nothing a container uses is ever removed, anonymous
//! volumes go with `rm -v`/`--rm`/prune, and a volume exports and imports as a tar.

use berth_testutil::*;

#[test]
fn named_volumes_persist_and_fill_from_the_image() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.berth(&["volume", "create", "--label", "app=x", "data"]));
    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/file",
    ]));
    // The next container sees it; so does one with --mount.
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "-v", "data:/data", "bb", "cat", "/data/file"])),
        "kept"
    );
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=data,target=/srv",
            "bb",
            "cat",
            "/srv/file"
        ])),
        "kept"
    );
    // The docker CLI sees the same volume.
    let ls = ok(&d.docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]));
    assert!(ls.lines().any(|l| l == "data local"), "{ls}");
    let mountpoint = ok(&d.berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]));
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/file")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        ok(&d.berth(&["volume", "ls", "-q", "--filter", "label=app=x"])),
        "data"
    );

    // Copy-up: a new, empty volume mounted over /etc gets the image's /etc.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "-v",
            "etcvol:/etc",
            "bb",
            "cat",
            "/etc/passwd"
        ])),
        "root:x:0:0:root:/root:/bin/sh"
    );
    let etc = ok(&d.berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "etcvol"]));
    assert!(std::path::Path::new(&etc).join("passwd").exists());
    // nocopy leaves it empty: only the network files mounted into /etc (as Docker's) are
    // there, nothing of the image's.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=bare,target=/etc,volume-nocopy",
            "bb",
            "ls",
            "/etc"
        ])),
        "hostname\nhosts\nresolv.conf"
    );

    // A volume in use is not removed, not even with -f; nothing changes.
    ok(&d.berth(&["create", "--name", "user", "-v", "data:/data", "bb"]));
    let out = d.berth(&["volume", "rm", "-f", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("remove data: volume is in use - ["),
        "{}",
        err(&out)
    );
    assert!(std::path::Path::new(&format!("{mountpoint}/file")).exists());
    // Removing the container keeps the named volume.
    ok(&d.berth(&["rm", "-v", "user"]));
    assert_eq!(
        ok(&d.berth(&["volume", "ls", "-q", "--filter", "name=data"])),
        "data"
    );
    // prune takes no named volume unless -a; then the unused ones go.
    let pruned = ok(&d.berth(&["volume", "prune", "-f"]));
    assert!(!pruned.contains("data"), "{pruned}");
    ok(&d.berth(&["volume", "prune", "-f", "-a"]));
    assert_eq!(text(&d.berth(&["volume", "ls", "-q"])), "");
    assert!(!std::path::Path::new(&mountpoint).exists());
    let out = d.berth(&["volume", "inspect", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("no such volume"), "{}", err(&out));
}

#[test]
fn binds_readonly_tmpfs_and_anonymous_volumes() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let bind = format!("{}:/h", host.display());
    // A bind mount both ways.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "bb",
            "sh",
            "-c",
            "cat /h/in; echo out > /h/out"
        ])),
        "from host"
    );
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "out\n");
    // Read-only refuses writes, with --mount too.
    let ro = format!("{bind}:ro");
    let out = d.berth(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "bb",
        "sh",
        "-c",
        "echo x > /h/new",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(err(&out).contains("Read-only file system"), "{}", err(&out));
    let m = format!("type=bind,source={},target=/h,readonly", host.display());
    assert_ne!(
        d.berth(&[
            "run",
            "--rm",
            "--mount",
            &m,
            "bb",
            "sh",
            "-c",
            "echo x > /h/new"
        ])
        .status
        .code(),
        Some(0)
    );
    assert!(!host.join("new").exists());
    // tmpfs is memory-backed, with its size.
    let mounts = ok(&d.berth(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=8m",
        "bb",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts",
    ]));
    assert!(mounts.starts_with("tmpfs /scratch tmpfs"), "{mounts}");
    assert!(mounts.contains("size=8192k"), "{mounts}");
    let mounts = ok(&d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "bb",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts",
    ]));
    assert!(
        mounts.contains("tmpfs /t tmpfs") && mounts.contains("size=1024k"),
        "{mounts}"
    );

    // Anonymous volumes: kept by rm, taken by rm -v and by --rm.
    ok(&d.berth(&[
        "run",
        "--name",
        "a1",
        "-v",
        "/anon",
        "bb",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]));
    let name = ok(&d.berth(&["inspect", "-f", "{{(index .Mounts 0).Name}}", "a1"]));
    assert_eq!(name.len(), 64, "{name}");
    // --volumes-from sees it.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "--volumes-from",
            "a1",
            "bb",
            "cat",
            "/anon/f"
        ])),
        "x"
    );
    ok(&d.berth(&["rm", "a1"]));
    assert_eq!(ok(&d.berth(&["volume", "ls", "-q"])), name);
    ok(&d.berth(&["volume", "prune", "-f"]));
    assert_eq!(text(&d.berth(&["volume", "ls", "-q"])), "");
    ok(&d.berth(&[
        "run", "--name", "a2", "-v", "/anon", "bb", "sh", "-c", "exit 0",
    ]));
    ok(&d.berth(&["rm", "-v", "a2"]));
    assert_eq!(text(&d.berth(&["volume", "ls", "-q"])), "");
    ok(&d.berth(&["run", "--rm", "-v", "/anon", "bb", "sh", "-c", "exit 0"]));
    assert_eq!(text(&d.berth(&["volume", "ls", "-q"])), "");
    // Bad specs are refused before anything is made.
    let out = d.berth(&[
        "run",
        "--rm",
        "-v",
        "data:relative",
        "bb",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let out = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        "bb",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err(&out).contains("bind source path does not exist"),
        "{}",
        err(&out)
    );
    assert_eq!(text(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn volume_driver_options_mount_tmpfs_and_binds() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.berth(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=4m,uid=1000",
        "mem",
    ]));
    let mounts = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "mem:/m",
        "bb",
        "sh",
        "-c",
        "grep ' /m ' /proc/mounts",
    ]));
    assert!(
        mounts.starts_with("tmpfs /m tmpfs") && mounts.contains("size=4096k"),
        "{mounts}"
    );
    let host = d.dir.path().join("bound");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("x"), "through the volume\n").unwrap();
    let device = format!("device={}", host.display());
    ok(&d.berth(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "bv",
    ]));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "-v", "bv:/b", "bb", "cat", "/b/x"])),
        "through the volume"
    );
    // Removing the volume unmounts it and never deletes through the bind.
    ok(&d.berth(&["volume", "rm", "bv", "mem"]));
    assert!(host.join("x").exists(), "the bind's source lost its files");
    let out = d.berth(&["volume", "create", "-o", "type=tmpfs", "half"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn volumes_export_and_import_as_tar() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "src:/v",
        "bb",
        "sh",
        "-c",
        "mkdir -p /v/d && echo one > /v/d/f && ln -s d/f /v/link",
    ]));
    let archive = d.dir.path().join("backup.tar");
    ok(&d.berth(&["volume", "export", "-o", archive.to_str().unwrap(), "src"]));
    ok(&d.berth(&["volume", "import", "-i", archive.to_str().unwrap(), "copy"]));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "-v", "copy:/v", "bb", "cat", "/v/link"])),
        "one"
    );
    // Importing into a volume that has content is refused; a bad archive changes nothing.
    let out = d.berth(&["volume", "import", "-i", archive.to_str().unwrap(), "copy"]);
    assert_eq!(out.status.code(), Some(1));
    let junk = d.dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 3000]).unwrap();
    let out = d.berth(&["volume", "import", "-i", junk.to_str().unwrap(), "fresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "-v",
            "fresh:/v",
            "bb",
            "sh",
            "-c",
            "ls -A /v | wc -l"
        ])),
        "0"
    );
}

#[test]
fn copy_up_keeps_the_images_links_and_never_reads_the_host() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // An image whose volume path holds links out of it (absolute, and climbing), and one
    // whose volume path is itself a link climbing out of it.
    ok(&d.berth(&[
        "run",
        "--name",
        "mk",
        "bb",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo image > /data/sub/f && chown 1234:5678 /data/sub \
         && ln -s /etc /data/link && ln -s ../../.. /data/up \
         && ln -s ../../../../../../etc /vol",
    ]));
    ok(&d.berth(&["commit", "mk", "linked"]));
    ok(&d.berth(&["rm", "mk"]));

    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "links:/data",
        "linked",
        "sh",
        "-c",
        ":",
    ]));
    let mp = ok(&d.berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "links"]));
    let mp = std::path::Path::new(&mp);
    let mut names: Vec<String> = std::fs::read_dir(mp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["link", "sub", "up"],
        "the links, not the host's files"
    );
    for (link, target) in [("link", "/etc"), ("up", "../../..")] {
        let m = std::fs::symlink_metadata(mp.join(link)).unwrap();
        assert!(m.file_type().is_symlink(), "{link} is still a link");
        assert_eq!(
            std::fs::read_link(mp.join(link)).unwrap(),
            std::path::Path::new(target)
        );
    }
    assert_eq!(
        std::fs::read_to_string(mp.join("sub/f")).unwrap(),
        "image\n"
    );
    use std::os::unix::fs::MetadataExt;
    let sub = std::fs::metadata(mp.join("sub")).unwrap();
    assert_eq!((sub.uid(), sub.gid()), (1234, 5678));
    // In the container the links are the container's: /data/link is its own /etc.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "-v",
            "links:/data",
            "linked",
            "cat",
            "/data/link/passwd"
        ])),
        "root:x:0:0:root:/root:/bin/sh"
    );

    // The mount point climbing out of the image is the image's /etc: that is what is copied.
    ok(&d.berth(&["run", "--rm", "-v", "climb:/vol", "linked", "sh", "-c", ":"]));
    let mp = ok(&d.berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "climb"]));
    let mp = std::path::Path::new(&mp);
    assert_eq!(
        std::fs::read_to_string(mp.join("passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(
        !mp.join("os-release").exists(),
        "nothing of the host's /etc in the volume"
    );
}

/// The volume endpoints read the create body as dockerd does (a wrong type is its 400, in its
/// words, not an anonymous volume) and answer with the objects berth has always sent.
#[test]
fn volume_bodies_are_read_as_dockerd_reads_them() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    for (body, want) in [
        (
            r#"{"Name":3}"#,
            "number into Go struct field CreateOptions.Name of type string",
        ),
        (
            r#"{"Labels":"x"}"#,
            "string into Go struct field CreateOptions.Labels of type map[string]string",
        ),
        (
            r#"{"Name":"v","DriverOpts":{"o":1}}"#,
            "number into Go struct field CreateOptions.DriverOpts.o of type string",
        ),
    ] {
        let (status, text) = d.request_body("POST", "/volumes/create", body);
        assert_eq!(status, 400, "{body}: {text}");
        assert_eq!(
            json(&text)["message"],
            format!("invalid JSON: json: cannot unmarshal {want}"),
            "{body}"
        );
    }
    let (_, text) = d.request("GET", "/volumes");
    assert_eq!(
        json(&text),
        serde_json::json!({"Volumes": [], "Warnings": []})
    );

    let (status, text) = d.request_body(
        "POST",
        "/volumes/create",
        r#"{"Name":"typed","Labels":{"app":"x"},"DriverOpts":{"type":"tmpfs","device":"tmpfs"}}"#,
    );
    assert_eq!(status, 201, "{text}");
    let mut v = json(&text);
    assert!(v["CreatedAt"].take().as_str().unwrap().ends_with('Z'));
    let mountpoint = d.dir.path().join("root/volumes/typed/_data");
    let want = serde_json::json!({
        "Name": "typed", "Driver": "local", "Mountpoint": mountpoint.display().to_string(),
        "CreatedAt": null, "Labels": {"app": "x"},
        "Options": {"type": "tmpfs", "device": "tmpfs"}, "Scope": "local",
    });
    assert_eq!(v, want);
    let (_, text) = d.request("GET", "/volumes/typed");
    let mut v = json(&text);
    v["CreatedAt"].take();
    assert_eq!(v, want);
    let (status, text) = d.request(
        "POST",
        "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D",
    );
    assert_eq!(status, 200, "{text}");
    let pruned = json(&text);
    assert_eq!(pruned["VolumesDeleted"], serde_json::json!(["typed"]));
    assert!(pruned["SpaceReclaimed"].is_u64(), "{pruned}");
}

#[test]
fn inspect_shows_each_mounts_mode_and_propagation_as_docker() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let host = d.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let h = host.to_str().unwrap();
    let bind = |opts: &str| format!("{h}:/{opts}{}", if opts.is_empty() { "" } else { ":" }) + opts;
    let id = ok(&d.docker(&[
        "create",
        "-v",
        &format!("{h}:/plain"),
        "-v",
        &bind("ro"),
        "-v",
        &bind("rw"),
        "-v",
        &bind("rshared"),
        "-v",
        "vol:/named",
        "-v",
        "vol:/namedro:ro",
        "-v",
        "/anon",
        "--mount",
        &format!("type=bind,src={h},dst=/mbind"),
        "--mount",
        "type=volume,src=vol,dst=/mvol",
        "--mount",
        "type=tmpfs,dst=/mtmp",
        "bb",
        "true",
    ]));
    let shown = ok(&d.docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Destination}}|{{.Type}}|{{.Mode}}|{{.RW}}|{{.Propagation}}\n{{end}}",
        &id,
    ]));
    let mut lines: Vec<&str> = shown.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "/anon|volume||true|",
            "/mbind|bind||true|rprivate",
            "/mtmp|tmpfs||true|",
            "/mvol|volume|z|true|",
            "/namedro|volume|ro|false|",
            "/named|volume|z|true|",
            "/plain|bind||true|rprivate",
            "/ro|bind|ro|false|rprivate",
            "/rshared|bind|rshared|true|rshared",
            "/rw|bind|rw|true|rprivate",
        ]
    );
    ok(&d.docker(&["rm", "-v", &id]));
    ok(&d.docker(&["volume", "rm", "vol"]));
}

#[test]
fn other_volume_drivers_get_dockers_plugin_not_found() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let words = r#"error looking up volume plugin nosuch: plugin \"nosuch\" not found"#;
    let (status, body) = d.request_body(
        "POST",
        "/volumes/create",
        r#"{"Name":"v","Driver":"nosuch"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(words), "{body}");
    // A container that would make a volume with it is refused, and nothing is left.
    for host_config in [
        r#"{"VolumeDriver":"nosuch","Binds":["v9:/x"]}"#,
        r#"{"Mounts":[{"Type":"volume","Source":"v9","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"nosuch"}}}]}"#,
    ] {
        let (status, body) = d.request_body(
            "POST",
            "/containers/create",
            &format!(r#"{{"Image":"bb","Cmd":["true"],"HostConfig":{host_config}}}"#),
        );
        assert_eq!(status, 404, "{host_config}: {body}");
        assert!(body.contains(words), "{body}");
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert_eq!(ok(&d.docker(&["volume", "ls", "-q"])), "");
    // Without volumes the option has nothing to drive.
    let id = ok(&d.docker(&["create", "--volume-driver", "nosuch", "bb", "true"]));
    ok(&d.docker(&["rm", &id]));
}

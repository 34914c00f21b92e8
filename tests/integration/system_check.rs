//! `berth system check`: through the running daemon (read-only), then offline on its root
//! with one of each kind of damage a crash or a hand can do — each found, named, and put
//! right by `--repair` — and the daemon, started again, serves everything as before.

use std::path::Path;
use std::process::Command;

use berth_testutil::*;

/// `berth system check ARGS` on `d`'s root (and socket); the output and exit code.
fn check(d: &TestDaemon, args: &[&str]) -> (String, i32) {
    let out = Command::new(berth_bin())
        .args(["-H", &d.host(), "system", "check", "--root"])
        .arg(d.dir.path().join("root"))
        .args(args)
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.code().unwrap_or(-1))
}

fn dirs(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn system_check_finds_each_problem_and_repair_puts_it_right() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let root = d.dir.path().join("root");
    let before = dirs(&root.join("snapshots"));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nRUN echo layered > /layer\n",
    )
    .unwrap();
    ok(&d.docker(&["build", "-q", "-t", "layered", ctx.path().to_str().unwrap()]));
    let built: Vec<String> = dirs(&root.join("snapshots"))
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert_eq!(built.len(), 1, "one new snapshot: {built:?}");
    ok(&d.docker(&["network", "create", "checknet"]));
    let stopped = ok(&d.docker(&["create", "-v", "checkvol:/data", "bb", "echo", "ran"]));
    let running = ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "checknet",
        "-v",
        "runvol:/data",
        "bb",
        "sleep",
        "300",
    ]));

    // Through the daemon: clean, read-only.
    let (text, code) = check(&d, &["--deep"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("checked through the running daemon"),
        "{text}"
    );
    assert!(text.contains("no problems found"), "{text}");
    let (text, code) = check(&d, &["--repair"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("stop the daemon to repair"), "{text}");

    d.stop();
    let offline = std::panic::catch_unwind(|| {
        let (text, code) = check(&d, &["--deep"]);
        assert_eq!(code, 0, "a clean stop leaves a clean root: {text}");

        // One of each kind of damage.
        std::fs::remove_dir_all(root.join("snapshots").join(&built[0])).unwrap();
        let mut index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("images.json")).unwrap()).unwrap();
        index["refs"]["docker.io/library/ghost:latest"] =
            format!("sha256:{}", "0".repeat(64)).into();
        std::fs::write(root.join("images.json"), index.to_string()).unwrap();
        // A blob whose name is the digest of other content.
        let wrong = "5".repeat(64);
        std::fs::write(
            root.join("content/blobs/sha256").join(&wrong),
            b"what it holds",
        )
        .unwrap();
        std::fs::remove_dir_all(root.join("volumes/checkvol")).unwrap();
        let net_file = root.join("networks/checknet.json");
        let mut net: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&net_file).unwrap()).unwrap();
        let subnet = net["config"]["subnet"].as_str().unwrap().to_owned();
        let ghost_ip = subnet.replace(".0/24", ".200");
        net["allocations"][&ghost_ip] = "f".repeat(64).into();
        std::fs::write(&net_file, net.to_string()).unwrap();
        std::fs::write(root.join("tmp/upload-crashed"), b"half a tar").unwrap();
        std::fs::write(root.join("content/ingest/layer-1-1"), b"half a blob").unwrap();
        std::fs::create_dir_all(root.join("snapshots/.unpack-crashed/fs")).unwrap();
        std::fs::create_dir_all(root.join("build/work/step-crashed/upper")).unwrap();
        let stray = root.join("containers").join(&stopped).join("rootfs");
        std::fs::create_dir_all(&stray).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &stray,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();

        let (text, code) = check(&d, &["--deep"]);
        assert_eq!(code, 1, "{text}");
        for want in [
            &format!("unpacked layer sha256:{} is missing", built[0]),
            "name docker.io/library/ghost:latest points at image sha256:0000",
            &format!("blob sha256:{wrong}: its content has digest"),
            "volume checkvol it mounts does not exist",
            &format!(
                "network checknet: holds an endpoint or address for {}",
                "f".repeat(12)
            ),
            "upload-crashed: an upload",
            "ingest/layer-1-1 is left from an interrupted write",
            ".unpack-crashed is left from an interrupted write",
            "step-crashed: a build step's work dir",
            &format!("{}: mounted, but nothing running uses it", stray.display()),
            "can be put right with --repair",
        ] {
            assert!(text.contains(want), "no {want:?} in:\n{text}");
        }
        assert!(
            !text.contains(&running[..12]),
            "the running container is fine: {text}"
        );

        let (text, code) = check(&d, &["--deep", "--repair"]);
        assert_eq!(code, 0, "{text}");
        for want in [
            &format!(
                "repaired: unpacked layer sha256:{} again from blob",
                built[0]
            ),
            "repaired: removed the name docker.io/library/ghost:latest",
            "repaired: created volume checkvol",
            &format!("repaired: unmounted {}", stray.display()),
            "no problems found",
        ] {
            assert!(text.contains(want), "no {want:?} in:\n{text}");
        }
        let (text, code) = check(&d, &["--deep"]);
        assert_eq!((code, text.trim()), (0, "no problems found"));
        let net: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&net_file).unwrap()).unwrap();
        assert!(net["allocations"].get(&ghost_ip).is_none(), "{net}");
        assert!(!root.join("content/blobs/sha256").join(&wrong).exists());
        assert!(!root.join("tmp/upload-crashed").exists());
    });
    d.start_again();
    if let Err(e) = offline {
        std::panic::resume_unwind(e);
    }
    // Everything serves as before: the repaired image runs, the container kept running, the
    // volume is there again, and the network has room.
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "layered", "cat", "/layer"])),
        "layered"
    );
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Running}}", &running])),
        "true"
    );
    ok(&d.docker(&["start", &stopped]));
    ok(&d.docker(&["volume", "inspect", "checkvol"]));
    ok(&d.docker(&["run", "--rm", "--network", "checknet", "bb", "echo", "ran"]));
    let (text, code) = check(&d, &[]);
    assert_eq!(code, 0, "{text}");
}

/// One daemon per root: a second one on the same root stops before it touches anything,
/// naming the one that holds it.
#[test]
fn a_second_daemon_on_a_root_in_use_refuses_to_start() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    let other = d.dir.path().join("other.sock");
    let out = output_with_timeout(
        {
            let mut cmd = Command::new(berth_bin());
            cmd.args(["daemon", "--root"])
                .arg(d.dir.path().join("root"))
                .args(net_args(d.dir.path()))
                .arg("-H")
                .arg(format!("unix://{}", other.display()));
            cmd
        },
        std::time::Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "is in use by another berth process (pid {})",
            d.child.id()
        )),
        "{err}"
    );
    assert!(!other.exists(), "it bound no socket");
    assert!(
        !ok(&d.docker(&["info", "-f", "{{.ID}}"])).is_empty(),
        "the first one serves on"
    );
}

//! `berth system check`: offline on a root no daemon serves (locked meanwhile; may repair),
//! or through the daemon that serves it (read-only). Exit status 0 when the root is clean,
//! 1 when problems remain.

use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_api::system::{CheckProblem, CheckReport};
use berth_cli::system::CheckArgs;
use berth_cli::Target;
use berth_engine::check::Finding;
use berth_engine::Engine;

/// Runs the check for the CLI; returns the exit status.
pub fn run(target: &Target, args: CheckArgs) -> Result<i32> {
    let root = match args.root.clone() {
        Some(r) => r,
        None => default_root()?,
    };
    match Engine::open_offline(&root) {
        Ok(engine) => offline(&engine, &args),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if args.repair {
                anyhow::bail!(
                    "{e}\nstop the daemon to repair (a check through it only reads); run without --repair to check through it"
                );
            }
            online(target, &args)
        }
        Err(e) => Err(e).with_context(|| format!("open {}", root.display())),
    }
}

fn default_root() -> Result<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Ok(berth_cli::DEFAULT_ROOT.into());
    }
    berth_core::userdirs::rootless_root()
        .context("a rootless daemon keeps its state in $XDG_DATA_HOME/berth: set XDG_DATA_HOME or HOME, or give --root")
}

fn offline(engine: &Engine, args: &CheckArgs) -> Result<i32> {
    let (left, done): (Vec<Finding>, Vec<String>) = if args.repair {
        engine.check_and_repair(args.deep)?
    } else {
        let found = engine.check(args.deep, berth_engine::check::CheckMode::Offline)?;
        (found, Vec::new())
    };
    let report = CheckReport {
        problems: left.iter().map(Finding::problem).collect(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "Repaired": done, "Problems": report.problems })
        );
    } else {
        for line in &done {
            println!("repaired: {line}");
        }
        print_report(&report, args.repair);
    }
    Ok(exit_status(&report))
}

fn online(target: &Target, args: &CheckArgs) -> Result<i32> {
    let client = berth_cli::connect_running(target).with_context(|| {
        format!(
            "the root is locked by a daemon, but none answers at {}: give its socket with -H",
            target.host
        )
    })?;
    let path = if args.deep {
        "/system/check?deep=1"
    } else {
        "/system/check"
    };
    let body = client.get(path)?.body;
    let report: CheckReport =
        serde_json::from_slice(&body).context("read the daemon's check report")?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        println!(
            "checked through the running daemon (read-only; stop it to check leftovers and repair)"
        );
        print_report(&report, false);
    }
    Ok(exit_status(&report))
}

fn print_report(report: &CheckReport, repaired: bool) {
    for CheckProblem {
        subject,
        message,
        repair,
        repairable,
    } in &report.problems
    {
        println!("{subject}: {message}");
        if !repaired || !repairable {
            println!("    repair: {repair}");
        }
    }
    let n = report.problems.len();
    let fixable = report.problems.iter().filter(|p| p.repairable).count();
    match (n, repaired) {
        (0, _) => println!("no problems found"),
        (_, false) if fixable > 0 => println!(
            "{n} problem{} found ({fixable} can be put right with --repair)",
            if n == 1 { "" } else { "s" }
        ),
        _ => println!("{n} problem{} remain", if n == 1 { "" } else { "s" }),
    }
}

fn exit_status(report: &CheckReport) -> i32 {
    i32::from(!report.problems.is_empty())
}

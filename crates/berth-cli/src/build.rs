//! `berth build` and `berth builder prune`.
//!
//! The daemon behind a unix socket shares the host, so a local context directory is read
//! where it is (`berthcontext=` in the request) instead of being sent as a tar, Docker's known
//! cost on big trees. `BERTH_BUILD_UPLOAD=1` sends the tar anyway (what the docker CLI does),
//! and a context on stdin (`-`: a tar, or a Dockerfile alone) is always sent.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use crate::client::{with_query, Client, Payload};
use crate::progress::Display;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile").
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Squash newly built layers into a single new layer.
    #[arg(long)]
    pub squash: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Type of progress output (auto, plain, tty).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Set the networking mode for the RUN instructions during build.
    #[arg(long)]
    pub network: Option<String>,
    /// Memory limit for RUN steps (e.g. 512m).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU shares (relative weight) for RUN steps.
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Limit the CPU CFS quota of RUN steps (microseconds per period).
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU CFS period of RUN steps (microseconds).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Add a custom host-to-IP mapping (host:ip) for RUN steps.
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Secret to expose to the build: id=ID,src=FILE or id=ID,env=VAR.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Remove intermediate containers after a successful build (always done).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub rm: bool,
    /// Build context: a directory, or `-` to read a tar or a Dockerfile from stdin.
    pub path: String,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Amount of disk space to keep for cache (e.g. 1gb).
    #[arg(long)]
    pub keep_storage: Option<String>,
}

/// `K=V` pairs (or `K` alone, from the environment) as the JSON the API takes.
fn build_args_json(args: &[String]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => map.insert(k.to_owned(), v.into()),
            None => map.insert(
                a.clone(),
                std::env::var(a).map_or(serde_json::Value::Null, Into::into),
            ),
        };
    }
    serde_json::Value::Object(map)
}

fn labels_json(labels: &[String]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        map.insert(k.to_owned(), v.into());
    }
    serde_json::Value::Object(map)
}

/// `--secret` values as files the daemon reads (same host): `src=` files as they are, `env=`
/// values written to private temporary files (kept until the build ends, in `temps`).
fn secrets_json(
    specs: &[String],
    temps: &mut Vec<tempfile::NamedTempFile>,
) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for spec in specs {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k {
                "id" => id = Some(v.to_owned()),
                "src" | "source" => src = Some(v.to_owned()),
                "env" => env = Some(v.to_owned()),
                "type" if v == "file" || v == "env" => {}
                _ => bail!("invalid --secret {spec:?}: unknown field {k:?}"),
            }
        }
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            bail!("invalid --secret {spec:?}: id= is required");
        };
        let path = match (src, env) {
            (Some(src), _) => std::path::absolute(&src)?,
            (None, env) => {
                let var = env.unwrap_or_else(|| id.clone());
                let value = std::env::var(&var).with_context(|| {
                    format!("secret {id}: environment variable {var} is not set")
                })?;
                let mut f = tempfile::NamedTempFile::new()?;
                f.write_all(value.as_bytes())?;
                let path = f.path().to_path_buf();
                temps.push(f);
                path
            }
        };
        map.insert(id, path.display().to_string().into());
    }
    Ok(serde_json::Value::Object(map))
}

pub fn build(client: &Client, args: BuildArgs) -> Result<i32> {
    if !matches!(args.progress.as_str(), "auto" | "plain" | "tty") {
        bail!(
            "invalid --progress value {:?}: use auto, plain or tty",
            args.progress
        );
    }
    let mut query: Vec<(&str, String)> = args.tags.iter().map(|t| ("t", t.clone())).collect();
    query.push(("buildargs", build_args_json(&args.build_args).to_string()));
    query.push(("labels", labels_json(&args.labels).to_string()));
    let mut secret_files = Vec::new();
    if !args.secrets.is_empty() {
        query.push((
            "berthsecrets",
            secrets_json(&args.secrets, &mut secret_files)?.to_string(),
        ));
    }
    if args.no_cache {
        query.push(("nocache", "1".into()));
    }
    if args.squash {
        query.push(("squash", "1".into()));
    }
    if let Some(m) = &args.memory {
        let Some(bytes) = berth_core::humanize::parse_ram_bytes(m) else {
            bail!("invalid argument {m:?} for \"-m, --memory\" flag");
        };
        query.push(("memory", bytes.to_string()));
    }
    for (k, v) in [
        ("cpushares", args.cpu_shares.map(|v| v.to_string())),
        ("cpuquota", args.cpu_quota.map(|v| v.to_string())),
        ("cpuperiod", args.cpu_period.map(|v| v.to_string())),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    if !args.add_hosts.is_empty() {
        query.push(("extrahosts", args.add_hosts.join(",")));
    }
    if args.pull {
        query.push(("pull", "1".into()));
    }
    if args.quiet {
        query.push(("q", "1".into()));
    }
    for (k, v) in [
        ("target", &args.target),
        ("platform", &args.platform),
        ("networkmode", &args.network),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let upload = std::env::var("BERTH_BUILD_UPLOAD").is_ok_and(|v| v == "1");
    let mut resp = if args.path == "-" {
        if let Some(f) = &args.file {
            query.push(("dockerfile", f.clone()));
        }
        let mut stdin = std::io::stdin().lock();
        client.upload(
            "POST",
            &with_query("/build", &query),
            "application/x-tar",
            &mut stdin,
        )?
    } else {
        let dir = std::fs::canonicalize(&args.path).with_context(|| {
            format!("unable to prepare context: path {:?} not found", args.path)
        })?;
        if !dir.is_dir() {
            bail!(
                "unable to prepare context: context must be a directory: {}",
                dir.display()
            );
        }
        // The Dockerfile: relative to the context when in it, else absolute.
        let df_path = match &args.file {
            Some(f) => std::path::absolute(f)?,
            None => dir.join("Dockerfile"),
        };
        let df_rel = df_path
            .strip_prefix(&dir)
            .ok()
            .map(|r| r.to_string_lossy().into_owned());
        if upload {
            let Some(rel) = &df_rel else {
                bail!("with BERTH_BUILD_UPLOAD=1 the Dockerfile must be inside the context");
            };
            query.push(("dockerfile", rel.clone()));
            let mut tar = berth_client::context::tar_stream(&dir, Some(rel))?;
            client.upload(
                "POST",
                &with_query("/build", &query),
                "application/x-tar",
                &mut tar,
            )?
        } else {
            query.push((
                "dockerfile",
                df_rel.unwrap_or_else(|| df_path.display().to_string()),
            ));
            query.push(("berthcontext", dir.display().to_string()));
            client.send("POST", &with_query("/build", &query), Payload::None)?
        }
    };
    let tty = match args.progress.as_str() {
        "plain" => false,
        "tty" => true,
        _ => std::io::stdout().is_terminal(),
    };
    let mut display = Display::new(std::io::stdout(), tty);
    let mut id = None;
    let mut reader = std::io::BufReader::new(resp.body());
    let mut line = Vec::new();
    loop {
        line.clear();
        if std::io::BufRead::read_until(&mut reader, b'\n', &mut line)? == 0 {
            break;
        }
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(i) = m["aux"]["ID"].as_str() {
            id = Some(i.to_owned());
            continue;
        }
        if args.quiet && m.get("stream").is_some() {
            continue; // the ID is printed below
        }
        // A failed RUN's exit code is the command's, as the docker CLI makes it.
        let code = m["errorDetail"]["code"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .filter(|c| *c != 0)
            .unwrap_or(1);
        if let Some(e) = display.show(&m)? {
            return Err(crate::StatusError::new(code, e).into());
        }
    }
    drop(secret_files);
    let Some(id) = id else {
        bail!("the build ended without an image ID");
    };
    if args.quiet {
        println!("{id}");
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(0)
}

pub fn builder(client: &Client, cmd: BuilderCommand) -> Result<i32> {
    let BuilderCommand::Prune(args) = cmd;
    if !args.force {
        let what = if args.all {
            "WARNING! This will remove all build cache."
        } else {
            "WARNING! This will remove all dangling build cache."
        };
        if !crate::disk::confirm(what)? {
            return Ok(0);
        }
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    if args.all {
        query.push(("all", "1".into()));
    }
    if let Some(k) = &args.keep_storage {
        let Some(bytes) = berth_core::humanize::parse_ram_bytes(k) else {
            bail!("invalid --keep-storage value {k:?}");
        };
        query.push(("keep-storage", bytes.to_string()));
    }
    let v = client
        .post(&with_query("/build/prune", &query), None)?
        .json()?;
    if let Some(ids) = v["CachesDeleted"].as_array() {
        if !ids.is_empty() {
            println!("Deleted build cache objects:");
            for i in ids {
                let s = i.as_str().unwrap_or_default();
                println!("{}", s.strip_prefix("sha256:").unwrap_or(s));
            }
        }
    }
    let freed = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!(
        "\nTotal reclaimed space: {}",
        berth_core::humanize::size(freed as f64)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_take_values_from_the_environment_when_not_given() {
        std::env::set_var("BERTH_TEST_BUILD_ARG", "from-env");
        let v = build_args_json(&[
            "A=1".into(),
            "BERTH_TEST_BUILD_ARG".into(),
            "BERTH_TEST_UNSET_ARG".into(),
            "B=x=y".into(),
        ]);
        assert_eq!(v["A"], "1");
        assert_eq!(v["BERTH_TEST_BUILD_ARG"], "from-env");
        assert!(v["BERTH_TEST_UNSET_ARG"].is_null());
        assert_eq!(v["B"], "x=y");
    }
}

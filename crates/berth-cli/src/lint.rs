//! `berth lint [-f Dockerfile] [--format json] [--severity LEVEL]`: Dockerfile best practices
//! (berth_build::lint), with no daemon. Exit 1 when a finding is at or above the severity.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use berth_build::lint::{self, Severity};

#[derive(clap::Args, Debug)]
pub struct LintArgs {
    /// Name of the Dockerfile ("-" reads standard input).
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: String,
    /// Output format: "text" or "json".
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Exit 1 when a finding is at or above this severity: info, warning or error.
    #[arg(long, default_value = "warning")]
    pub severity: String,
}

/// Runs the linter; returns the exit status.
pub fn run(a: LintArgs) -> Result<i32> {
    let min: Severity = a.severity.parse().map_err(anyhow::Error::msg)?;
    let json = match a.format.as_str() {
        "text" | "" => false,
        "json" => true,
        f => anyhow::bail!("unknown format {f:?}: use text or json"),
    };
    let (name, text) = if a.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the Dockerfile from standard input")?;
        ("-".to_owned(), s)
    } else {
        let bytes = std::fs::read(&a.file).with_context(|| format!("read {}", a.file))?;
        (a.file.clone(), String::from_utf8_lossy(&bytes).into_owned())
    };
    let findings = lint::lint(&text);
    let out = if json {
        lint::format_json(&name, &findings) + "\n"
    } else {
        lint::format_text(&name, &findings)
    };
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("write the findings")
        }
        _ => {}
    }
    Ok(lint::exit_code(&findings, min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &str, severity: &str) -> LintArgs {
        LintArgs {
            file: file.into(),
            format: "text".into(),
            severity: severity.into(),
        }
    }

    #[test]
    fn exit_status_follows_the_severity() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("Dockerfile");
        std::fs::write(&f, "FROM alpine:3.20\nRUN a\nRUN b\nUSER app\n").unwrap();
        let f = f.to_str().unwrap();
        // Only an info finding (consecutive RUNs).
        assert_eq!(run(args(f, "warning")).unwrap(), 0);
        assert_eq!(run(args(f, "info")).unwrap(), 1);
        assert!(run(args(f, "loud")).is_err());
        assert!(run(args("/nonexistent/Dockerfile", "info")).is_err());
        let mut j = args(f, "error");
        j.format = "json".into();
        assert_eq!(run(j).unwrap(), 0);
    }
}

//! `berth-shim`: the relay half of `berth-runtime shim`, exec'd by the shim once the container
//! runs (see `berth_runtime::shim::handoff`). A small program in a fresh process image, so
//! each running container costs little memory. Not meant to be run by hand.

use std::process::ExitCode;

use berth_runtime::shim::{self, handoff, relay};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let handed = match handoff::parse_args(&args) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("berth-shim: {e} (berth-shim is started by berth-runtime shim)");
            return ExitCode::from(2);
        }
    };
    berth_core::memory::shed_resident_memory();
    let code = relay::run(&handed.opts, handed.fds);
    shim::finish(&handed.opts, code, || {
        // The runtime's record of the container goes through the runtime itself.
        let _ = std::process::Command::new(&handed.runtime)
            .arg("--root")
            .arg(&handed.runtime_root)
            .args(["delete", "--force", &handed.opts.id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    });
    ExitCode::SUCCESS
}

//! `--format` Go templates over a container-like value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|template: &str| {
    let data = serde_json::json!({
        "ID": "0123456789ab", "Names": "web", "Image": "busybox",
        "Labels": {"a": "1"}, "Ports": [{"PrivatePort": 80}], "Size": 12, "State": {"Running": true}
    });
    let _ = berth_cli::format::render(template, &data);
});

//! `.dockerignore` patterns: parsed, then matched against paths taken from the same input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (patterns, paths) = text.split_once("\n---\n").unwrap_or((text, "a/b\nDockerfile\n.git"));
    if let Ok(ignore) = berth_build::ignore::Ignore::parse(patterns) {
        for p in paths.lines() {
            let _ = ignore.matches(&berth_build::ignore::clean(p));
        }
    }
});

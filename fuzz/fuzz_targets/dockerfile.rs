//! The Dockerfile parser, strict and lenient (what `berth lint` reads), on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = berth_build::parser::Dockerfile::parse(text);
    let (file, _errors) = berth_build::parser::Dockerfile::parse_lenient(text);
    let _ = file.froms();
    let _ = file.global_args();
});

//! Image references with Docker's normalization; a reference that parses prints back to
//! one that parses to the same thing, as long as the normalized name keeps within Docker's
//! 255 characters (a familiar name under the limit can exceed it once `docker.io/library/`
//! is added; Docker accepts the first and refuses the second the same way).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(r) = text.parse::<berth_core::reference::Reference>() {
        if r.name().len() > 255 {
            return;
        }
        let again: berth_core::reference::Reference = r
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} -> {r} does not parse back: {e:?}"));
        assert_eq!(again.to_string(), r.to_string());
    }
});

//! The image archive loader (docker-archive and OCI layout): reading and planning what an
//! archive holds, from any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    if let Ok(archive) = berth_image::archive::Archive::new(file) {
        let _ = berth_image::load::plan(&archive);
    }
});

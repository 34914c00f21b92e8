//! Registry manifests, indexes and image configs as the store and the registry read them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<berth_image::oci::ImageIndex>(data);
    let _ = serde_json::from_slice::<berth_image::oci::Manifest>(data);
    if let Ok(config) = serde_json::from_slice::<berth_image::oci::ImageConfig>(data) {
        let _ = config.os();
    }
});

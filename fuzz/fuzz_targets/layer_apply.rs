//! The layer applier on a scratch directory: whatever the tar holds, nothing may be written
//! outside the destination (the sentinel beside it stays, and nothing new appears there).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("root");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(scratch.path().join("sentinel"), "x").unwrap();
    let _ = berth_image::layer::apply(data, &dest);
    let mut names: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["root", "sentinel"], "the layer wrote beside its destination");
    assert_eq!(std::fs::read_to_string(scratch.path().join("sentinel")).unwrap(), "x");
});

//! The compose loader, whole: a compose file (and a `.env` after a `---env---` line) loaded
//! as `berth compose config` loads it, printed as JSON, its services hashed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (compose, dotenv) = text.split_once("\n---env---\n").unwrap_or((text, ""));
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("compose.yaml"), compose).unwrap();
    if !dotenv.is_empty() {
        std::fs::write(project.join(".env"), dotenv).unwrap();
    }
    let opts = berth_compose::load::Options {
        environment: [("HOME".to_owned(), "/nonexistent".to_owned())].into(),
        cwd: project.clone(),
        ..Default::default()
    };
    if let Ok(loaded) = berth_compose::load::load(&opts) {
        let json = loaded.project.to_config_json();
        serde_json::from_str::<serde_json::Value>(&json).expect("config output is JSON");
        for s in loaded.project.services.values() {
            let _ = berth_compose::hash::service_hash(s);
        }
    }
});

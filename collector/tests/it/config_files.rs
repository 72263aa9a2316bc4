//! Every example in `otel-config/` loads, and the collector starts on it.

use std::path::PathBuf;

use llmscope::config::Config;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("otel-config/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_loads() {
    let files = examples();
    assert!(!files.is_empty());
    for file in files {
        if let Err(e) = Config::from_file(&file) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_default_example_is_the_builtin_default() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/default.yaml");
    let text = std::fs::read_to_string(dir).expect("default.yaml");
    assert_eq!(text, llmscope::config::DEFAULT_CONFIG);
}

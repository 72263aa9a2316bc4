//! Every fuzz target's seeds and saved inputs (`fuzz/seeds/<target>/`, and crashes found by
//! fuzzing, kept in `fuzz/regressions/<target>/`) replayed through the targets' entry points
//! (`llmscope::fuzzing`), so what once crashed stays a test.

use std::path::{Path, PathBuf};

use llmscope::fuzzing;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The inputs kept for `target`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep") {
                let bytes = std::fs::read(&path).expect("read");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_kept_fuzz_input_runs_through_its_target() {
    // The protobuf seeds are the JSON seeds' traces, encoded (`LLMSCOPE_WRITE_FUZZ_SEEDS=1`
    // writes them again).
    if std::env::var_os("LLMSCOPE_WRITE_FUZZ_SEEDS").is_some() {
        for (path, json) in inputs("otlp_json") {
            if let Ok(request) =
                llmscope_core::otlp_json::from_slice::<ExportTraceServiceRequest>(&json)
                && !request.resource_spans.is_empty()
            {
                let name = path
                    .file_stem()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let out = fuzz_dir()
                    .join("seeds/otlp_proto")
                    .join(format!("{name}.bin"));
                std::fs::write(out, request.encode_to_vec()).expect("write seed");
            }
        }
    }
    let mut chain = fuzzing::Chain::default();
    let config = llmscope_processors::redact::RedactConfig::default();
    let scanner = llmscope_processors::redact::Scanner::new(&config).expect("scanner");
    for target in ["otlp_proto", "otlp_json", "config", "redact", "query"] {
        let inputs = inputs(target);
        assert!(!inputs.is_empty(), "{target} has seeds");
        for (path, bytes) in inputs {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target {
                "otlp_proto" => chain.otlp(&bytes, false),
                "otlp_json" => chain.otlp(&bytes, true),
                "config" => fuzzing::config(&bytes),
                "redact" => fuzzing::redact(&scanner, &bytes),
                _ => fuzzing::query(&bytes),
            }));
            assert!(run.is_ok(), "{target}: {} panicked", path.display());
        }
    }
}

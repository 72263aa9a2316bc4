//! The redaction scanner; no detector may find anything in its output
//! (`llmscope::fuzzing::redact`).

fn main() {
    let config = llmscope_processors::redact::RedactConfig::default();
    let scanner = llmscope_processors::redact::Scanner::new(&config).expect("scanner");
    afl::fuzz!(|data: &[u8]| {
        llmscope::fuzzing::redact(&scanner, data);
    });
}

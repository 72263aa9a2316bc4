//! OTLP/HTTP bodies (JSON) through decoding, the request checks, the processor chain and the
//! disk queue's stored form (`llmscope::fuzzing::Chain::otlp`).

fn main() {
    // A panic ends the run (AFL records the input), so no state outlives one.
    let mut chain = std::panic::AssertUnwindSafe(llmscope::fuzzing::Chain::default());
    afl::fuzz!(|data: &[u8]| {
        chain.otlp(data, true);
    });
}

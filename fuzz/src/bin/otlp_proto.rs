//! OTLP/HTTP bodies (protobuf) through decoding, the request checks, the processor chain and the
//! disk queue's stored form (`llmscope::fuzzing::Chain::otlp`).

fn main() {
    let mut chain = llmscope::fuzzing::Chain::default();
    afl::fuzz!(|data: &[u8]| {
        chain.otlp(data, false);
    });
}

//! The query API's parameters (`llmscope::fuzzing::query`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        llmscope::fuzzing::query(data);
    });
}

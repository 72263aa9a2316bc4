//! Config files with `${env:...}` expansion (`llmscope::fuzzing::config`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        llmscope::fuzzing::config(data);
    });
}

//! LLMScope benchmarks (`cargo bench -p llmscope-benches`); results in `benches/README.md`.

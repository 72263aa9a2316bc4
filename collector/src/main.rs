/// mimalloc rather than glibc's allocator, whose per-thread arenas kept freed memory under
/// sustained overload (431 MiB and climbing after 20 s; `benches/README.md`, "The cost of
/// durability").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmscope::cli::main()
}

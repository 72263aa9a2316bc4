fn main() -> std::process::ExitCode {
    llmscope::cli::main()
}

//! The `llmscope` command line: run (the default), `validate`, `migrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError};
use crate::registry;
use crate::service::Service;

/// How long shutdown waits for queued batches to be exported.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "llmscope",
    version,
    about = "An OpenTelemetry-native collector for LLM telemetry"
)]
struct Cli {
    /// Config file (OpenTelemetry Collector YAML). Without it, the built-in default runs:
    /// OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP), the API on :4320, SQLite in ./data.
    #[arg(long, short, global = true, env = "LLMSCOPE_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (the default).
    Run,
    /// Check a config and list every problem; exits non-zero if there are any.
    Validate,
    /// Apply the schema migrations of every exporter's store, then exit.
    Migrate,
    /// Print the built-in default config.
    DefaultConfig,
}

fn load(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::from_file(p),
        None => Config::default_config(),
    }
}

fn init_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Validate => {
            let source = cli
                .config
                .as_ref()
                .map_or("built-in default config".into(), |p| {
                    p.display().to_string()
                });
            println!("{source} is valid");
            ExitCode::SUCCESS
        }
        Command::DefaultConfig => {
            print!("{}", crate::config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Migrate => {
            init_logs(&config.telemetry.logs.level);
            match runtime() {
                Ok(r) => r.block_on(migrate(&config)),
                Err(code) => code,
            }
        }
        Command::Run => {
            init_logs(&config.telemetry.logs.level);
            match runtime() {
                Ok(r) => r.block_on(run(config)),
                Err(code) => code,
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

async fn migrate(config: &Config) -> ExitCode {
    let mut ok = true;
    for (id, exporter) in &config.exporters {
        match registry::migrate(exporter).await {
            Ok(applied) if applied.is_empty() => println!("{id}: schema is up to date"),
            Ok(applied) => println!("{id}: applied {}", applied.join(", ")),
            Err(e) => {
                eprintln!("error: {id}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(config: Config) -> ExitCode {
    let service = match Service::start(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("LLMScope is running; Ctrl-C or SIGTERM stops it");
    wait_for_signal().await;
    tracing::info!("shutting down: no longer accepting, flushing what is in flight");
    if service.shutdown(SHUTDOWN_DEADLINE).await {
        tracing::info!("stopped cleanly");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

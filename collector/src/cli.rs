//! The `llmscope` command line: run (the default), `validate`, `migrate`, `keys`, `alerts`,
//! `dead-letters`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError};
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
    /// Ask the running collector's API (`/healthz`) whether it is alive: exit 0 if it answers
    /// 200 within 3 s, else 1. For container health checks (the image has no shell or curl).
    Health {
        /// Default: the config's `api` endpoint (a wildcard address asked on loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Manage API keys in the metadata store of the config (the `auth` extension's store).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage alert rules in the metadata store of the config (the `alerts` extension's store).
    Alerts {
        #[command(subcommand)]
        command: crate::alerts::cli::AlertsCommand,
    },
    /// Print a dead-letter file (`dead-letter-<exporter>.jsonl`) as plain JSON lines, opening
    /// the lines an encrypted queue sealed with the config's `service.queue` key; pipe a line's
    /// `request` to `/v1/<signal>` to replay it.
    DeadLetters { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once and only its SHA-256 hash is stored.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
    },
    /// List keys: id, project, name, display prefix, created, last used, revoked.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a key by id; collectors refuse it within the auth cache period.
    Revoke { id: String },
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
        Command::Health { url } => match runtime() {
            Ok(r) => r.block_on(health(&config, url)),
            Err(code) => code,
        },
        Command::Keys { command } => match runtime() {
            Ok(r) => r.block_on(keys(&config, command)),
            Err(code) => code,
        },
        Command::Alerts { command } => match runtime() {
            Ok(r) => r.block_on(crate::alerts::cli::run(&config, command)),
            Err(code) => code,
        },
        Command::DeadLetters { file } => dead_letters(&config, &file),
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

/// Prints `file`'s letters, sealed ones opened with the configured queue key.
fn dead_letters(config: &Config, file: &std::path::Path) -> ExitCode {
    use std::io::{BufRead, Write};

    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    let sealer = match config.queue.sealer() {
        Ok(s) => s,
        Err(e) => return fail(format!("service.queue.{e}")),
    };
    let reader = match std::fs::File::open(file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    let mut out = std::io::stdout().lock();
    for (i, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(format!("{}: {e}", file.display())),
        };
        let opened = match &sealer {
            Some(sealer) => crate::queue::seal::open_letter(sealer, &line),
            None if line.contains("\"sealed_hex\"") => {
                return fail(format!(
                    "line {}: sealed; set service.queue.encryption_key to the queue's key",
                    i + 1
                ));
            }
            None => None,
        };
        let plain = match opened {
            None => line.into_bytes(),
            Some(Ok(plain)) => plain,
            Some(Err(_)) => {
                return fail(format!(
                    "line {}: cannot be opened with this key (another key sealed it, or it was \
                     altered)",
                    i + 1
                ));
            }
        };
        if out
            .write_all(&plain)
            .and_then(|()| out.write_all(b"\n"))
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `GET /healthz` over plain HTTP/1.1; with TLS on the API, a TCP connection is the answer.
async fn health(config: &Config, url: Option<String>) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let api = config.extensions.values().find_map(|e| match e {
        crate::config::ExtensionConfig::Api(a) => Some(a.clone()),
        _ => None,
    });
    let (address, tls) = match (&url, &api) {
        (Some(u), _) => {
            let rest = u.strip_prefix("http://").unwrap_or(u);
            (rest.split('/').next().unwrap_or(rest).to_owned(), false)
        }
        (None, Some(a)) => (loopback(&a.endpoint), a.tls.is_some()),
        (None, None) => {
            eprintln!("unhealthy: the config serves no API (no `api` extension); pass --url");
            return ExitCode::FAILURE;
        }
    };
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        if tls {
            return Ok::<_, std::io::Error>(true);
        }
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("unhealthy: {address} answered /healthz with an error");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {address}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: {address} did not answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

/// A listening address as a client reaches it: a wildcard host becomes loopback.
fn loopback(endpoint: &str) -> String {
    if let Some(port) = endpoint.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = endpoint.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        endpoint.to_owned()
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

async fn keys(config: &Config, command: KeysCommand) -> ExitCode {
    use crate::config::ExtensionConfig;
    // The auth extension's store, else the first exporter that can keep keys.
    let store_id = config
        .extensions
        .values()
        .find_map(|e| match e {
            ExtensionConfig::Auth(a) => a.store().map(str::to_owned),
            _ => None,
        })
        .or_else(|| {
            config
                .exporters
                .iter()
                .find(|(_, e)| e.offers().metadata)
                .map(|(id, _)| id.clone())
        });
    let Some((id, exporter)) = store_id
        .as_ref()
        .and_then(|id| Some((id, config.exporters.get(id)?)))
    else {
        eprintln!("error: the config has no sqlite or postgres exporter to keep keys in");
        return ExitCode::FAILURE;
    };
    let telemetry = crate::telemetry::Telemetry::default();
    let store = match exporter.build(id, &telemetry).await {
        Ok(built) => match built.metadata {
            Some(store) => store,
            None => {
                eprintln!(
                    "error: exporter {id} cannot hold keys; use a sqlite or postgres exporter"
                );
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("error: exporter {id}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ns = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), crate::api::rfc3339);
    match command {
        KeysCommand::Create { project, name } => {
            match crate::auth::create_key(store.as_ref(), &project, &name).await {
                Ok(created) => {
                    println!("{}", created.key);
                    eprintln!(
                        "created key {} for project {project}; it is shown only now",
                        created.stored.id
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        KeysCommand::List { project } => match store.keys(project.as_deref()).await {
            Ok(keys) => {
                println!("id\tproject\tname\tprefix\tcreated\tlast_used\trevoked");
                for k in keys {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.project,
                        k.name,
                        k.display_prefix,
                        ns(Some(k.created_at_ns)),
                        ns(k.last_used_at_ns),
                        ns(k.revoked_at_ns)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        KeysCommand::Revoke { id } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            match store.revoke_key(&id, now).await {
                Ok(true) => {
                    println!("revoked {id}");
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!("error: no key {id}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn migrate(config: &Config) -> ExitCode {
    let mut ok = true;
    for (id, exporter) in &config.exporters {
        if !exporter.offers().migrations {
            println!("{id}: no schema to migrate");
            continue;
        }
        match exporter.migrate().await {
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

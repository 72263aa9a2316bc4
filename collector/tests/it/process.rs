//! The `llmscope` binary as a child process on the built-in default config, its data under one
//! folder and its ports ephemeral.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

pub fn llmscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llmscope"))
}

/// The address logged after `marker` (`... addr=127.0.0.1:PORT`).
fn addr_in(line: &str, marker: &str) -> Option<String> {
    if !line.contains(marker) {
        return None;
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .map(str::to_owned)
}

pub struct Process {
    child: Child,
    /// The OTLP/HTTP `host:port`.
    pub http: String,
    /// The OTLP/gRPC `host:port`, when it listens.
    pub grpc: Option<String>,
    /// The query API's `host:port`, when it serves one.
    pub api: Option<String>,
    logs: JoinHandle<Vec<String>>,
}

impl Process {
    /// Runs the default config with SQLite at `dir/data/llmscope.db` and the queue in
    /// `dir/queue`, and waits until OTLP/HTTP listens.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, None, &[])
    }

    /// [`Process::start`] with the config file `config` (the built-in default without) and more
    /// environment variables.
    pub fn start_with(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Self {
        let mut command = llmscope();
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command.envs(env.iter().copied());
        command
            .current_dir(dir)
            .env("LLMSCOPE_OTLP_GRPC_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_OTLP_HTTP_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_API_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_SQLITE_PATH", Self::database(dir))
            .env("LLMSCOPE_QUEUE_DIR", dir.join("queue"))
            .env_remove("LLMSCOPE_CONFIG")
            .env_remove("RUST_LOG");
        Self::spawn(command)
    }

    /// Spawns `command` (an `llmscope` run) and waits until it says it is running; its OTLP/HTTP
    /// address and the query API's, when it serves one.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn llmscope");
        // Read the log on a thread; the addresses arrive through a channel, with a deadline.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let (mut http, mut grpc, mut api) = (None, None, None);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                http = http.or_else(|| addr_in(&line, "OTLP/HTTP listening"));
                grpc = grpc.or_else(|| addr_in(&line, "OTLP/gRPC listening"));
                api = api.or_else(|| addr_in(&line, "query API listening"));
                if line.contains("LLMScope is running")
                    && let Some(http) = http.clone()
                {
                    let _ = tx.send((http, grpc.clone(), api.clone()));
                }
                seen.push(line);
            }
            seen
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((http, grpc, api)) => Self {
                child,
                http,
                grpc,
                api,
                logs,
            },
            Err(_) => {
                let _ = child.kill();
                panic!("no address logged: {:?}", logs.join());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn database(dir: &Path) -> std::path::PathBuf {
        dir.join("data/llmscope.db")
    }

    /// Sends `signal` (`TERM`, `KILL`) and waits for the exit; returns it with the log.
    pub async fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("join")
            .expect("wait");
        (exit, self.logs.join().expect("logs").join("\n"))
    }
}

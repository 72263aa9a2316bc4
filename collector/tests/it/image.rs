//! The container image's config and entrypoint, without Docker: the binary runs as the image
//! runs it (its config `deploy/docker/llmscope.yaml` through `LLMSCOPE_CONFIG`, listening on
//! 0.0.0.0, as a non-root user in a read-only working directory, state only in one writable
//! "volume"). It serves, refuses unauthenticated writes, says how to create a key, answers its
//! health check, and keeps everything under the volume.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use hyper::{Method, StatusCode};
use llmscope_core::test_util::fixtures;

use crate::harness::{client, exchange};
use crate::process::Process;

const IMAGE_CONFIG: &str = include_str!("../../../deploy/docker/llmscope.yaml");
/// The image's user (distroless `nonroot`).
const IMAGE_UID: u32 = 65532;
const ADMIN: &str = "image-test-admin-token";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The image's layout in `root`: the binary and config where the Dockerfile puts them, a
/// read-only working directory, and the volume, owned by the image's user. Returns whether
/// commands run as that user (when this test runs as root, which ignores file modes otherwise).
fn layout(root: &Path) -> bool {
    let as_root = std::fs::metadata(root).expect("root").uid() == 0;
    chmod(root, 0o755);
    for dir in ["bin", "etc", "work", "volume"] {
        std::fs::create_dir(root.join(dir)).expect("mkdir");
    }
    std::fs::copy(env!("CARGO_BIN_EXE_llmscope"), root.join("bin/llmscope")).expect("binary");
    std::fs::write(root.join("etc/llmscope.yaml"), IMAGE_CONFIG).expect("config");
    if as_root {
        std::os::unix::fs::chown(root.join("volume"), Some(IMAGE_UID), Some(IMAGE_UID))
            .expect("chown");
    }
    chmod(&root.join("volume"), 0o700);
    chmod(&root.join("work"), 0o555);
    as_root
}

/// `llmscope ARGS` as the image runs it: its environment, with ephemeral ports on 0.0.0.0 and
/// the volume's paths.
fn image_command(root: &Path, as_image_user: bool, args: &[&str]) -> Command {
    let mut command = Command::new(root.join("bin/llmscope"));
    command
        .args(args)
        .current_dir(root.join("work"))
        .env_clear()
        .env("LLMSCOPE_CONFIG", root.join("etc/llmscope.yaml"))
        .env("LLMSCOPE_ADMIN_TOKEN", ADMIN)
        .env("LLMSCOPE_OTLP_GRPC_ENDPOINT", "0.0.0.0:0")
        .env("LLMSCOPE_OTLP_HTTP_ENDPOINT", "0.0.0.0:0")
        .env("LLMSCOPE_API_ENDPOINT", "0.0.0.0:0")
        .env("LLMSCOPE_SQLITE_PATH", root.join("volume/llmscope.db"))
        .env("LLMSCOPE_QUEUE_DIR", root.join("volume/queue"));
    if as_image_user {
        command.uid(IMAGE_UID).gid(IMAGE_UID);
    }
    command
}

async fn post_traces(http: &str, key: Option<&str>) -> StatusCode {
    let port = http.rsplit(':').next().expect("port");
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let body = fixtures::OPENLLMETRY_OPENAI_CHAT.as_bytes().to_vec();
    exchange(&client(), Method::POST, url, &headers, body)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_config_serves_with_keys_required_and_keeps_state_in_the_volume() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let as_user = layout(root);
    assert!(
        image_command(root, as_user, &["validate"])
            .status()
            .expect("validate")
            .success()
    );

    let collector = Process::spawn(image_command(root, as_user, &[]));
    assert!(collector.http.starts_with("0.0.0.0:"), "{}", collector.http);
    let api = collector.api.clone().expect("the image serves the API");
    assert_eq!(
        post_traces(&collector.http, None).await,
        StatusCode::UNAUTHORIZED
    );

    // The health check the Dockerfile runs: the config's API endpoint, asked on loopback.
    let port = api.rsplit(':').next().expect("port");
    let health = |extra: &[&str]| {
        let mut args = vec!["health"];
        args.extend(extra);
        image_command(root, as_user, &args)
            .env("LLMSCOPE_API_ENDPOINT", format!("0.0.0.0:{port}"))
            .output()
            .expect("health")
    };
    assert!(health(&[]).status.success());
    let down = health(&["--url", "127.0.0.1:1"]);
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));

    let created = image_command(
        root,
        as_user,
        &["keys", "create", "--project", "app", "--name", "ci"],
    )
    .output()
    .expect("keys create");
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout).expect("utf-8");
    assert_eq!(
        post_traces(&collector.http, Some(key.trim())).await,
        StatusCode::OK
    );

    let (exit, log) = collector.stop("TERM").await;
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("llmscope keys create --project <project> --name <name>"),
        "the log says how to create a key: {log}"
    );
    assert!(root.join("volume/llmscope.db").is_file());
    assert!(root.join("volume/queue").is_dir());
    let written: Vec<_> = std::fs::read_dir(root.join("work"))
        .expect("work")
        .collect();
    assert!(
        written.is_empty(),
        "nothing outside the volume: {written:?}"
    );
}

/// What the runtime image `gcr.io/distroless/cc-debian12` provides: Debian 12's glibc (2.36)
/// and the GCC runtime libraries.
const RUNTIME_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];
const RUNTIME_GLIBC: (u32, u32) = (2, 36);

/// The image is never built here (no Docker daemon), so its one runtime risk is checked on the
/// binary: it links nothing the distroless runtime lacks (no OpenSSL, no libpq) and asks for no
/// glibc newer than Debian 12's, which the builder (`rust:*-bookworm`) also has.
#[test]
fn the_binary_needs_only_what_the_runtime_image_has() {
    let binary = env!("CARGO_BIN_EXE_llmscope");
    let tool = |name: &str, args: &[&str]| {
        let out = Command::new(name)
            .args(args)
            .arg(binary)
            .output()
            .unwrap_or_else(|e| panic!("{name} (binutils) is needed for this test: {e}"));
        assert!(out.status.success(), "{name}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let needed: Vec<String> = tool("readelf", &["--dynamic", "--wide"])
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect();
    assert!(needed.iter().any(|l| l == "libc.so.6"), "{needed:?}");
    let missing: Vec<&String> = needed
        .iter()
        .filter(|l| !RUNTIME_LIBRARIES.contains(&l.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in the runtime image: {missing:?}");

    let newest = tool("objdump", &["--dynamic-syms"])
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("glibc symbols");
    assert!(
        newest <= RUNTIME_GLIBC,
        "the binary needs glibc {newest:?}; the runtime image has {RUNTIME_GLIBC:?}"
    );
}

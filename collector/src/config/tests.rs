use llmscope_exporters::sqlite::SqliteConfig;

use super::*;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::parse("test.yaml", yaml, &|name| match name {
        "DB" => Some("/tmp/x.db".into()),
        "GRPC_PORT" => Some("5317".into()),
        _ => None,
    })
}

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml)
        .expect_err("config should be refused")
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

const MINIMAL: &str = "
receivers:
  otlp:
exporters:
  sqlite:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [sqlite]
";

#[test]
fn the_builtin_default_runs_everything_on_loopback_into_sqlite() {
    let c = Config::parse("default", DEFAULT_CONFIG, &|_| None).expect("default config");
    let ReceiverConfig::Otlp(otlp) = &c.receivers["otlp"];
    assert_eq!(
        otlp.protocols.grpc.as_ref().map(|g| g.endpoint.as_str()),
        Some("127.0.0.1:4317")
    );
    assert_eq!(
        otlp.protocols.http.as_ref().map(|h| h.endpoint.as_str()),
        Some("127.0.0.1:4318")
    );
    let Some(sqlite) = c.exporters["sqlite"].settings::<SqliteConfig>() else {
        panic!("sqlite exporter")
    };
    assert_eq!(sqlite.path, std::path::PathBuf::from("./data/llmscope.db"));
    let ExtensionConfig::Api(api) = &c.extensions["api"] else {
        panic!("api extension")
    };
    assert_eq!(api.endpoint, "127.0.0.1:4320");
    let signals: Vec<Signal> = c.pipelines.values().map(|(s, _)| *s).collect();
    assert_eq!(signals, vec![Signal::Logs, Signal::Metrics, Signal::Traces]);
    assert_eq!(
        c.pipelines["traces"].1.processors,
        vec!["normalize", "cost", "redact", "anomaly"]
    );
}

#[test]
fn components_with_no_value_take_their_defaults() {
    let c = parse(MINIMAL).expect("minimal config");
    let ReceiverConfig::Otlp(otlp) = &c.receivers["otlp"];
    assert_eq!(otlp, &crate::receiver::OtlpReceiverConfig::default());
}

#[test]
fn env_references_expand_with_types() {
    let yaml = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${env:GRPC_PORT}
        max_recv_msg_size_mib: ${env:MISSING:-4}
exporters:
  sqlite:
    path: ${env:DB}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [sqlite]}
";
    let c = parse(yaml).expect("config");
    let ReceiverConfig::Otlp(otlp) = &c.receivers["otlp"];
    let grpc = otlp.protocols.grpc.as_ref().expect("grpc");
    assert_eq!(grpc.endpoint, "127.0.0.1:5317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    assert!(
        otlp.protocols.http.is_none(),
        "only the listed protocols run"
    );
    let Some(s) = c.exporters["sqlite"].settings::<SqliteConfig>() else {
        panic!("sqlite exporter")
    };
    assert_eq!(s.path, std::path::PathBuf::from("/tmp/x.db"));
}

#[test]
fn every_problem_is_listed_with_the_path_of_its_key() {
    let yaml = "
receivers:
  otlp:
    protocols:
      grpc:
        endpont: 127.0.0.1:4317
  kafka:
processors:
  normalize/strict:
    unknown_flag: true
exporters:
  sqlite:
    path: ./x.db
    read_connections: 0
extensions:
  api:
    store: clickhouse
service:
  extensions: [api, health]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize]
      exporters: [sqlite, sqlite]
    profiles:
      receivers: [otlp]
      exporters: [sqlite]
    logs:
      receivers: []
      exporters: [debug]
colour: blue
";
    // The unknown top-level key stops parsing before the components are looked at.
    let top = problems(yaml);
    assert_eq!(top.len(), 1, "{top:?}");
    assert!(
        top[0].starts_with("colour: unknown field `colour`"),
        "{top:?}"
    );

    let got = problems(yaml.trim_end().trim_end_matches("colour: blue"));
    let expect = [
        "receivers.otlp.protocols.grpc.endpont: unknown field `endpont`",
        "receivers.kafka: unknown receiver type \"kafka\"; known types: otlp",
        "processors.normalize/strict.unknown_flag: unknown field `unknown_flag`",
        "exporters.sqlite.read_connections: must be at least 1",
        "service.pipelines.logs.receivers: a pipeline needs at least one of its receivers",
        "service.pipelines.logs.exporters[0]: \"debug\" is not defined under exporters",
        "service.pipelines.profiles: unknown signal \"profiles\"",
        "service.pipelines.traces.processors[0]: \"normalize\" is not defined under processors",
        "service.pipelines.traces.exporters[1]: \"sqlite\" is listed twice",
        "service.extensions[1]: \"health\" is not defined under extensions",
        "extensions.api.store: \"clickhouse\" is not defined under exporters",
    ];
    for want in expect {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn bad_values_and_bad_yaml_are_explained() {
    let bad_endpoint = MINIMAL.replace(
        "  otlp:\n",
        "  otlp:\n    protocols:\n      http:\n        endpoint: localhost\n",
    );
    assert_eq!(
        problems(&bad_endpoint),
        vec!["receivers.otlp.protocols.http.endpoint: \"localhost\" is not host:port"]
    );
    let wrong_type = MINIMAL.replace("  sqlite:\n", "  sqlite:\n    busy_timeout: 5\n");
    let p = problems(&wrong_type);
    assert!(p[0].starts_with("exporters.sqlite.busy_timeout: "), "{p:?}");
    let broken = problems("receivers: [unclosed");
    assert!(
        broken[0].starts_with("line 2 column 1: did not find expected"),
        "{broken:?}"
    );
    let empty = problems("");
    assert_eq!(
        empty,
        vec!["service.pipelines: at least one pipeline is required"]
    );
}

#[test]
fn the_queue_and_its_retry_policy_are_configured_and_checked() {
    let with =
        |queue: &str| MINIMAL.replace("service:\n", &format!("service:\n  queue: {queue}\n"));
    let config = parse(&with(
        "{kind: disk, dir: /tmp/q, fsync: always, retry: {initial_interval: 1s, max_interval: 1m}}",
    ))
    .expect("valid");
    assert_eq!(config.queue.kind, crate::queue::QueueKind::Disk);
    let policy = config.queue.retry.policy();
    assert_eq!(policy.initial_backoff, std::time::Duration::from_secs(1));
    assert_eq!(policy.max_backoff, std::time::Duration::from_secs(60));
    assert_eq!(policy.max_attempts, None, "retries forever by default");
    assert_eq!(
        problems(&with("{retry: {initial_interval: 10s, max_interval: 1s}}")),
        vec![
            "service.queue.retry.max_interval: must be at least initial_interval, itself more than 0"
        ]
    );
    assert_eq!(
        problems(&with("{retry: {max_attempts: 0}}")),
        vec!["service.queue.retry.max_attempts: must be at least 1"]
    );
    assert_eq!(
        problems(&with("{dead_letter_max_bytes: 10}")),
        vec!["service.queue.dead_letter_max_bytes: at least 4096"]
    );
    assert_eq!(
        problems(&with("{encryption_key: 0123456789abcdef}")),
        vec!["service.queue.encryption_key: must be 64 hexadecimal characters (32 bytes, AES-256)"],
        "the key is never quoted"
    );
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key_file.path(), format!("{}\n", "ab".repeat(32))).expect("write");
    let file = key_file.path().display();
    let config = parse(&with(&format!("{{encryption_key_file: {file}}}"))).expect("valid");
    assert!(config.queue.sealer().expect("key").is_some());
    assert_eq!(
        problems(&with(&format!(
            "{{encryption_key_file: {file}, encryption_key: {}}}",
            "ab".repeat(32)
        ))),
        vec![
            "service.queue.encryption_key: set either encryption_key or encryption_key_file, not both"
        ]
    );
    let p = problems(&with("{retry: {max_elapsed: 1s}}"));
    assert!(
        p[0].starts_with("service.queue.retry.max_elapsed: unknown field"),
        "{p:?}"
    );
}

#[test]
fn an_exporter_has_its_own_retry_and_consumers_beside_its_settings() {
    let with = |own: &str| {
        MINIMAL
            .replace(
                "  sqlite:\n",
                &format!("  sqlite:\n    path: /tmp/x.db\n{own}"),
            )
            .replace(
                "service:\n",
                "service:\n  queue: {retry: {initial_interval: 1s, max_interval: 1m}}\n",
            )
    };
    let config = parse(&with(
        "    retry_on_failure: {max_interval: 30s, max_attempts: 5}\n    sending_queue: {num_consumers: 4}\n",
    ))
    .expect("valid");
    let Some(sqlite) = config.exporters["sqlite"].settings::<SqliteConfig>() else {
        panic!("sqlite exporter")
    };
    assert_eq!(sqlite.path, std::path::Path::new("/tmp/x.db"));
    let delivery = config.delivery_of("sqlite");
    assert_eq!(delivery.concurrency, 4);
    assert_eq!(
        delivery.retry.initial_backoff,
        std::time::Duration::from_secs(1),
        "from service.queue.retry"
    );
    assert_eq!(
        delivery.retry.max_backoff,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(delivery.retry.max_attempts, Some(5));

    let plain = parse(&with("")).expect("valid").delivery_of("sqlite");
    assert_eq!(plain.concurrency, 1);
    assert_eq!(plain.retry.max_attempts, None);

    assert_eq!(
        problems(&with("    retry_on_failure: {initial_interval: 2m}\n")),
        vec![
            "exporters.sqlite.retry_on_failure.max_interval: must be at least initial_interval, itself more than 0"
        ]
    );
    assert_eq!(
        problems(&with("    sending_queue: {num_consumers: 0}\n")),
        vec!["exporters.sqlite.sending_queue.num_consumers: must be 1 to 64"]
    );
    let p = problems(&with("    sending_queue: {queue_size: 10}\n"));
    assert!(
        p[0].starts_with("exporters.sqlite.sending_queue.queue_size: unknown field"),
        "{p:?}"
    );
}

#[test]
fn a_numeric_secret_from_the_environment_works_and_is_never_echoed() {
    let yaml = "receivers:\n  otlp:\nexporters:\n  sqlite:\nextensions:\n  auth:\n    admin_token: ${env:TOKEN}\n\
                service:\n  extensions: [auth]\n  pipelines:\n    traces: {receivers: [otlp], exporters: [sqlite]}\n";
    for token in ["31415926535897932384", "0031415926535897932"] {
        let config = Config::parse("t.yaml", yaml, &|var| {
            (var == "TOKEN").then(|| token.to_owned())
        })
        .expect("a numeric token is a token");
        let Some(ExtensionConfig::Auth(auth)) = config.extensions.get("auth") else {
            panic!("auth extension");
        };
        assert_eq!(auth.admin_token.expose(), token, "every digit kept");
    }
    let error = Config::parse("t.yaml", yaml, &|var| {
        (var == "TOKEN").then(|| "31415".to_owned())
    })
    .expect_err("too short")
    .to_string();
    assert!(
        error.contains("admin_token") && !error.contains("31415"),
        "{error}"
    );
}

#[test]
fn genai_metrics_count_what_the_api_reads_and_only_export_pipelines_go_without_receivers() {
    let c = Config::parse("default", DEFAULT_CONFIG, &|_| None).expect("default config");
    assert!(c.telemetry.metrics.gen_ai.enabled);
    assert_eq!(
        c.gen_ai_metric_pipelines().into_iter().collect::<Vec<_>>(),
        ["traces"]
    );
    // No API and no export: nowhere to report, so nothing is counted.
    assert!(
        parse(MINIMAL)
            .expect("minimal")
            .gen_ai_metric_pipelines()
            .is_empty()
    );

    let yaml = "
receivers:
  otlp:
exporters:
  sqlite:
  otlp:
    endpoint: http://127.0.0.1:4317
service:
  telemetry:
    metrics:
      gen_ai:
        dimensions: [user, gen_ai.conversation.id]
        export: {pipelines: [metrics/gen_ai], interval: 10s}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [sqlite]
    traces/copy:
      receivers: [otlp]
      exporters: [otlp]
    metrics/gen_ai:
      exporters: [otlp]
";
    let c = parse(yaml).expect("an export pipeline needs no receivers");
    assert_eq!(
        c.gen_ai_metric_pipelines().into_iter().collect::<Vec<_>>(),
        ["traces", "traces/copy"],
        "without an API, every traces pipeline"
    );
    assert_eq!(
        c.telemetry.metrics.gen_ai.attribute_keys(),
        ["user.id", "gen_ai.conversation.id"]
    );
    assert_eq!(
        problems(&yaml.replace(
            "export: {pipelines: [metrics/gen_ai], interval: 10s}",
            "series_limits: 5"
        )),
        [
            "service.telemetry.metrics.gen_ai.series_limits: unknown field `series_limits`, expected one of `enabled`, `pipelines`, `dimensions`, `series_limit`, `remembered_calls`, `export`"
        ]
    );
    assert_eq!(
        problems(&yaml.replace(
            "export: {pipelines: [metrics/gen_ai], interval: 10s}",
            "series_limit: 0"
        )),
        [
            "service.pipelines.metrics/gen_ai.receivers: a pipeline needs at least one of its receivers",
            "service.telemetry.metrics.gen_ai.series_limit: must be at least 1",
        ]
    );
}

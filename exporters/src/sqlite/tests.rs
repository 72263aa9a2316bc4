use llmscope_core::otlp::logs::v1::LogRecord;
use llmscope_core::otlp::trace::v1::Status;
use llmscope_core::semconv as sc;
use llmscope_core::test_util::{fixtures, kv, logs, span, traces};
use llmscope_core::{Batch, Exporter, Processor, attr};
use llmscope_processors::normalize::Normalize;
use serde_json::{Value as J, json};

use super::*;
use crate::query::{Filter, GroupBy, QueryStore, SummaryQuery, TraceQuery};
use llmscope_core::config::Secret;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SqliteConfig {
        path: dir.path().join("nested/llmscope.db"),
        ..Default::default()
    };
    let store = SqliteStore::open(config).expect("open");
    (dir, store)
}

/// A store holding the OpenLLMetry and Logfire chat fixtures (four traces).
async fn store_with_two_chats() -> (tempfile::TempDir, SqliteStore) {
    let (dir, store) = store();
    for fixture in [
        fixtures::OPENLLMETRY_OPENAI_CHAT,
        fixtures::LOGFIRE_OPENAI_CHAT,
    ] {
        let batch = normalized(fixtures::traces_batch(fixture));
        store.export(&batch).await.expect("export");
    }
    (dir, store)
}

fn normalized(mut batch: Batch) -> Batch {
    Normalize::default().process(&mut batch).expect("normalize");
    batch
}

fn filter() -> Filter {
    Filter {
        project: "default".into(),
        ..Default::default()
    }
}

fn summary_query(group_by: GroupBy) -> SummaryQuery {
    SummaryQuery {
        filter: filter(),
        group_by,
        bucket_ns: None,
    }
}

fn list(limit: usize) -> TraceQuery {
    TraceQuery {
        filter: filter(),
        limit,
        cursor: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn fixture_reads_back_normalized_with_totals_per_trace_and_group() {
    let (_dir, store) = store();
    let batch = normalized(fixtures::traces_batch(fixtures::OPENLLMETRY_OPENAI_CHAT));
    store.export(&batch).await.expect("export");

    let page = store.traces(&list(10)).await.expect("traces");
    assert_eq!(page.traces.len(), 1);
    let t = &page.traces[0];
    assert_eq!(t.root_name.as_deref(), Some("agent-run"));
    assert_eq!((t.span_count, t.llm_calls), (3, 2));
    assert_eq!((t.input_tokens, t.output_tokens), (84, 34));
    assert!(page.next_cursor.is_none());

    let spans = store
        .trace("default", &t.trace_id)
        .await
        .expect("trace")
        .expect("known trace");
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].name, "agent-run");
    assert!(spans[0].parent_span_id.is_none());
    let call = &spans[1];
    assert_eq!(
        call.parent_span_id.as_deref(),
        Some(spans[0].span_id.as_str())
    );
    assert_eq!(
        call.gen_ai.response_model.as_deref(),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(call.gen_ai.cache_read_tokens, Some(10));
    let input: J =
        serde_json::from_str(call.gen_ai.input_messages.as_deref().expect("input")).expect("json");
    assert_eq!(
        input[0]["parts"][0]["content"],
        "Email me at john.smith@example.org, call 0"
    );
    let attrs = &call.attributes;
    assert!(
        attrs.get(sc::INPUT_MESSAGES).is_none(),
        "content is stored once, in its column"
    );
    assert_eq!(
        attrs["gen_ai.openai.api_base"],
        "http://127.0.0.1:18555/v1/"
    );

    let by_model = store
        .summary(&summary_query(GroupBy::Model))
        .await
        .expect("summary");
    assert_eq!(by_model.len(), 1);
    let g = &by_model[0];
    assert_eq!(g.key.as_deref(), Some("gpt-4o-mini"));
    assert_eq!((g.requests, g.errors), (2, 0));
    assert_eq!(
        (g.input_tokens, g.output_tokens, g.cache_read_tokens),
        (84, 34, 20)
    );
    assert!(g.latency.p50_ms > 0.0);

    let by_user = store
        .summary(&summary_query(GroupBy::User))
        .await
        .expect("summary");
    assert_eq!(by_user[0].key.as_deref(), Some("user-7"));
    assert_eq!(by_user[0].requests, 2);
}

#[tokio::test]
async fn two_spans_of_one_call_count_once() {
    let (_dir, store) = store();
    let call = |id: u8, tokens: Option<i64>| {
        let mut attrs = vec![
            kv(sc::OPERATION_NAME, "chat"),
            kv(sc::REQUEST_MODEL, "gpt-4o"),
            kv(sc::RESPONSE_ID, "resp-1"),
        ];
        if let Some(n) = tokens {
            attrs.push(kv(sc::USAGE_INPUT_TOKENS, n));
            attrs.push(kv(sc::USAGE_OUTPUT_TOKENS, n / 2));
        }
        span(7, id, "chat gpt-4o", attrs)
    };
    let mut sdk = call(1, Some(100));
    let mut instrumentation = call(2, None);
    instrumentation.parent_span_id = sdk.span_id.clone();
    sdk.status = Some(Status {
        code: 2,
        message: "rate limited".into(),
    });
    store
        .export(&traces("app", vec![sdk, instrumentation]))
        .await
        .expect("export");

    let groups = store
        .summary(&summary_query(GroupBy::Model))
        .await
        .expect("summary");
    assert_eq!((groups[0].requests, groups[0].input_tokens), (1, 100));
    assert_eq!(groups[0].errors, 1);
    let page = store.traces(&list(10)).await.expect("traces");
    assert_eq!(
        (page.traces[0].llm_calls, page.traces[0].input_tokens),
        (1, 100)
    );
    assert!(page.traces[0].error);
}

#[tokio::test]
async fn content_from_log_events_joins_its_span_whichever_arrives_first() {
    let (_dir, store) = store();
    let event = |name: &str, body: J| LogRecord {
        event_name: name.into(),
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        time_unix_nano: 1,
        body: Some(attr::from_json(&body)),
        ..Default::default()
    };
    let events = logs(
        "app",
        vec![
            event("gen_ai.user.message", json!({"content": "hello"})),
            event(
                "gen_ai.choice",
                json!({"index": 0, "message": {"content": "hi!"}}),
            ),
        ],
    );
    store.export(&normalized(events)).await.expect("logs first");
    let s = span(3, 4, "chat", vec![kv(sc::OPERATION_NAME, "chat")]);
    store
        .export(&normalized(traces("app", vec![s])))
        .await
        .expect("span second");

    let trace_id = hex::encode([3u8; 16]);
    let spans = store
        .trace("default", &trace_id)
        .await
        .expect("trace")
        .expect("known");
    let g = &spans[0].gen_ai;
    let input: J = serde_json::from_str(g.input_messages.as_deref().expect("input")).expect("json");
    let output: J = serde_json::from_str(g.output_messages.as_deref().expect("out")).expect("json");
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "hello"}]}])
    );
    assert_eq!(output[0]["parts"][0]["content"], "hi!");
}

#[tokio::test]
async fn a_retried_batch_leaves_no_duplicates_and_unknown_traces_are_none() {
    let (_dir, store) = store();
    let batch = traces(
        "app",
        vec![span(1, 1, "a", vec![]), span(1, 2, "b", vec![])],
    );
    store.export(&batch).await.expect("first");
    store.export(&batch).await.expect("retry");
    let page = store.traces(&list(10)).await.expect("traces");
    assert_eq!(page.traces[0].span_count, 2);
    let unknown = store
        .trace("default", &"ab".repeat(16))
        .await
        .expect("query");
    assert!(unknown.is_none());
    let other_project = store
        .trace("other", &page.traces[0].trace_id)
        .await
        .expect("query");
    assert!(other_project.is_none());

    let events = normalized(logs(
        "app",
        vec![LogRecord {
            event_name: "gen_ai.user.message".into(),
            time_unix_nano: 5,
            body: Some(attr::from_json(&json!({"content": "hi"}))),
            ..Default::default()
        }],
    ));
    store.export(&events).await.expect("logs");
    store.export(&events).await.expect("logs retried");
    let stored: i64 = store
        .read(|c| c.query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(stored, 1, "a retried log record is stored once");
}

#[tokio::test]
async fn trace_pages_are_newest_first_and_cursors_continue_without_overlap() {
    let (_dir, store) = store();
    let spans: Vec<_> = (1..=5u8)
        .map(|i| {
            let mut s = span(i, 1, "root", vec![]);
            s.start_time_unix_nano += u64::from(i) * 1_000;
            s
        })
        .collect();
    store.export(&traces("app", spans)).await.expect("export");
    let mut query = list(2);
    let mut seen = Vec::new();
    loop {
        let page = store.traces(&query).await.expect("page");
        seen.extend(page.traces.iter().map(|t| t.trace_id.clone()));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (1..=5u8).rev().map(|i| hex::encode([i; 16])).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn upgrading_writes_the_trace_list_of_traces_already_stored() {
    let (dir, store) = store_with_two_chats().await;
    let before = store.traces(&list(10)).await.expect("traces").traces;
    assert_eq!(before.len(), 4);
    let summary = summary_query(GroupBy::Model);
    let summed = store.summary(&summary).await.expect("summary");
    assert!(!summed.is_empty());
    // The database as version 4 left it.
    lock(&store.inner.writer)
        .execute_batch(
            "DROP TABLE traces; DROP TABLE trace_keys; DROP TABLE rollups;
             CREATE INDEX spans_by_trace ON spans (trace_id);
             DROP TABLE rollup_series;
             UPDATE spans SET resource_attributes = (SELECT attributes FROM resources r
                 WHERE r.project = spans.project AND r.id = spans.resource_id);
             ALTER TABLE spans DROP COLUMN resource_id; DROP TABLE resources;
             DELETE FROM schema_migrations WHERE version IN (5, 6, 10, 11);",
        )
        .expect("downgrade");
    drop(store);
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("nested/llmscope.db"),
        ..Default::default()
    })
    .expect("reopen");
    assert_eq!(
        store.applied_migrations(),
        vec![
            "0005_summaries",
            "0006_one_span_key_index",
            "0010_rollup_parts",
            "0011_resources"
        ]
    );
    assert_eq!(
        store.traces(&list(10)).await.expect("traces").traces,
        before
    );
    assert_eq!(store.summary(&summary).await.expect("summary"), summed);
}

#[tokio::test]
async fn upgrading_gives_the_user_and_session_rollups_their_parts() {
    let (dir, store) = store_with_two_chats().await;
    let models = store
        .summary(&summary_query(GroupBy::Model))
        .await
        .expect("models");
    let model = models[0].key.clone();
    let by_model = |group_by, model: Option<String>| SummaryQuery {
        filter: Filter { model, ..filter() },
        ..summary_query(group_by)
    };
    let queries = [
        by_model(GroupBy::User, model.clone()),
        by_model(GroupBy::Session, model.clone()),
        by_model(GroupBy::User, Some("no-such-model".into())),
    ];
    let mut before = Vec::new();
    for q in &queries {
        before.push(store.summary(q).await.expect("summary"));
    }
    assert!(
        before[0].iter().any(|g| g.key.as_deref() == Some("user-7")),
        "{before:?}"
    );
    assert!(before[2].is_empty());
    // The database as version 9 left it: user and session rows without parts.
    lock(&store.inner.writer)
        .execute_batch(
            "ALTER TABLE rollups DROP COLUMN parts; DROP TABLE rollup_series;
             DELETE FROM schema_migrations WHERE version = 10;",
        )
        .expect("downgrade");
    drop(store);
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("nested/llmscope.db"),
        ..Default::default()
    })
    .expect("reopen");
    assert_eq!(store.applied_migrations(), vec!["0010_rollup_parts"]);
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&store.summary(q).await.expect("summary"), want, "{q:?}");
    }
}

#[tokio::test]
async fn upgrading_adds_the_user_session_and_error_keys_of_traces_already_stored() {
    let (dir, store) = store();
    let batch = normalized(fixtures::traces_batch(fixtures::OPENLLMETRY_OPENAI_CHAT));
    store.export(&batch).await.expect("export");
    let mut failed = span(9, 1, "chat", vec![kv(sc::USER_ID, "user-9")]);
    failed.status = Some(Status {
        code: 2,
        message: "refused".into(),
    });
    store
        .export(&normalized(traces("app", vec![failed])))
        .await
        .expect("export");
    let queries = [
        TraceQuery {
            user: Some("user-7".into()),
            ..list(10)
        },
        TraceQuery {
            session: Some("sess-42".into()),
            ..list(10)
        },
        TraceQuery {
            errors_only: true,
            ..list(10)
        },
        TraceQuery {
            user: Some("user-9".into()),
            errors_only: true,
            ..list(10)
        },
        TraceQuery {
            words: vec!["run".into(), "agent".into()],
            ..list(10)
        },
    ];
    let mut before = Vec::new();
    for q in &queries {
        let listed = store.traces(q).await.expect("traces").traces;
        assert_eq!(listed.len(), 1, "{q:?}");
        before.push(listed);
    }
    assert_ne!(before[0], before[2], "the user's trace has no error");
    // The database as version 8 left it: list rows without these keys.
    lock(&store.inner.writer)
        .execute_batch(
            "DELETE FROM trace_keys
             WHERE key LIKE 'u:%' OR key LIKE 'x:%' OR key LIKE 'w:%' OR key = 'e:';
             DELETE FROM schema_migrations WHERE version = 9;",
        )
        .expect("downgrade");
    assert!(
        store
            .traces(&queries[0])
            .await
            .expect("traces")
            .traces
            .is_empty()
    );
    drop(store);
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("nested/llmscope.db"),
        ..Default::default()
    })
    .expect("reopen");
    assert_eq!(store.applied_migrations(), vec!["0009_trace_list_keys"]);
    for (q, listed) in queries.iter().zip(&before) {
        assert_eq!(
            &store.traces(q).await.expect("traces").traces,
            listed,
            "{q:?}"
        );
    }
}

#[tokio::test]
async fn a_root_arriving_after_its_child_replaces_the_childs_words() {
    let (_dir, store) = store();
    let words = |w: &str| TraceQuery {
        words: vec![w.into()],
        ..list(10)
    };
    let mut child = span(5, 2, "chat gpt-4o", vec![]);
    child.parent_span_id = vec![1; 8];
    store
        .export(&normalized(traces("app", vec![child])))
        .await
        .expect("child");
    assert_eq!(
        store
            .traces(&words("chat"))
            .await
            .expect("traces")
            .traces
            .len(),
        1
    );
    let mut root = span(5, 1, "Answer ticket", vec![]);
    root.start_time_unix_nano -= 1_000_000;
    store
        .export(&normalized(traces("app", vec![root])))
        .await
        .expect("root");
    for (word, found) in [("chat", 0), ("gpt", 0), ("answer", 1), ("ticket", 1)] {
        let listed = store.traces(&words(word)).await.expect("traces").traces;
        assert_eq!(listed.len(), found, "{word}");
    }
}

#[tokio::test]
async fn metrics_are_stored_as_points() {
    use llmscope_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    let (_dir, store) = store();
    let request: ExportMetricsServiceRequest =
        serde_json::from_str(fixtures::OTLP_METRICS).expect("fixture");
    let batch = Batch::new(
        llmscope_core::Payload::Metrics(request.resource_metrics),
        Default::default(),
    );
    let points = batch.payload.item_count();
    store.export(&batch).await.expect("export");
    let stored: i64 = store
        .read(|c| c.query_row("SELECT COUNT(*) FROM metric_points", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(stored as usize, points);
    assert!(points > 0);
}

#[tokio::test]
async fn structured_content_of_operation_details_events_joins_its_span() {
    let (_dir, store) = store();
    let messages = json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]);
    let mut record = LogRecord {
        event_name: "gen_ai.client.inference.operation.details".into(),
        trace_id: vec![5; 16],
        span_id: vec![6; 8],
        ..Default::default()
    };
    let value = attr::from_json(&messages).value.expect("value");
    attr::set(&mut record.attributes, sc::INPUT_MESSAGES, value);
    store
        .export(&normalized(logs("app", vec![record])))
        .await
        .expect("log");
    let s = span(5, 6, "chat", vec![kv(sc::OPERATION_NAME, "chat")]);
    store
        .export(&normalized(traces("app", vec![s])))
        .await
        .expect("span");
    let spans = store
        .trace("default", &hex::encode([5u8; 16]))
        .await
        .expect("trace")
        .expect("known");
    let input: J = serde_json::from_str(spans[0].gen_ai.input_messages.as_deref().expect("input"))
        .expect("json");
    assert_eq!(input, messages);
}

#[tokio::test]
async fn resources_are_stored_once_and_older_rows_read_as_before() {
    let (_dir, store) = store();
    let batch = normalized(fixtures::traces_batch(fixtures::OPENLLMETRY_OPENAI_CHAT));
    store.export(&batch).await.expect("export");
    let trace_id = store.traces(&list(10)).await.expect("traces").traces[0]
        .trace_id
        .clone();
    let before = store
        .trace("default", &trace_id)
        .await
        .expect("trace")
        .expect("stored");
    assert!(before.len() > 1);
    assert!(
        before
            .iter()
            .all(|s| s.resource_attributes.contains_key("service.name")),
        "{before:?}"
    );
    let count = |sql: &str| -> i64 {
        lock(&store.inner.writer)
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(count("SELECT count(*) FROM resources"), 1);
    assert_eq!(
        count("SELECT count(*) FROM spans WHERE resource_attributes <> ''"),
        0
    );
    // Rows as a collector before 0011 wrote them: their own attributes, no id.
    lock(&store.inner.writer)
        .execute_batch(
            "UPDATE spans SET resource_attributes = (SELECT attributes FROM resources),
                resource_id = NULL;
             DELETE FROM resources;",
        )
        .expect("as before");
    let after = store
        .trace("default", &trace_id)
        .await
        .expect("trace")
        .expect("stored");
    assert_eq!(after, before);
}

/// Every file in `dir` and its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn an_encrypted_database_holds_no_plaintext_and_refuses_other_keys_unchanged() {
    const KEY: &str = "6c6c6d73636f70652073716c6369706865722074657374206b6579202121210a";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("llmscope.db");
    let config = |key: &str| SqliteConfig {
        path: path.clone(),
        encryption_key: Secret::new(key),
        ..Default::default()
    };
    let store = SqliteStore::open(config(KEY)).expect("open");
    for fixture in [
        fixtures::OPENLLMETRY_OPENAI_CHAT,
        fixtures::LOGFIRE_OPENAI_CHAT,
    ] {
        store
            .export(&normalized(fixtures::traces_batch(fixture)))
            .await
            .expect("export");
    }
    assert_eq!(
        store.traces(&list(10)).await.expect("traces").traces.len(),
        4
    );

    // While open (the WAL holds the batches) and after closing, no file holds plaintext.
    let plaintexts: [&[u8]; 4] = [b"SQLite format 3", b"gpt-4o", b"openai", b"CREATE TABLE"];
    let check = |when: &str, at_least: usize| {
        let files = files(dir.path());
        let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert!(files.len() >= at_least, "{when}: {names:?}");
        for (file, bytes) in &files {
            for plain in plaintexts {
                assert!(
                    !bytes.windows(plain.len()).any(|w| w == plain),
                    "{when}: {} holds {}",
                    file.display(),
                    String::from_utf8_lossy(plain)
                );
            }
        }
        files
    };
    check("open, with its WAL", 2);
    drop(store);
    let before = check("closed", 1);

    let reopened = SqliteStore::open(config(KEY)).expect("reopen with the key");
    assert_eq!(
        reopened
            .traces(&list(10))
            .await
            .expect("traces")
            .traces
            .len(),
        4
    );
    drop(reopened);
    let before_refusals = files(dir.path());

    let wrong = SqliteStore::open(config(&"00".repeat(32))).expect_err("another key");
    assert!(matches!(wrong, OpenError::WrongKey { .. }), "{wrong}");
    let missing = SqliteStore::open(config("")).expect_err("no key");
    assert!(matches!(missing, OpenError::KeyMissing { .. }), "{missing}");
    let bad = SqliteStore::open(config("c0ffee")).expect_err("not a key");
    for error in [&wrong, &missing, &bad] {
        let said = format!("{error} {error:?}");
        assert!(!said.contains(KEY) && !said.contains("c0ffee"), "{said}");
    }
    assert!(
        files(dir.path()) == before_refusals,
        "refusals change nothing"
    );
    assert!(before.iter().any(|(p, _)| p == &path));

    // A plain database and a key: refused, unchanged.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = SqliteConfig {
        path: plain_dir.path().join("plain.db"),
        ..Default::default()
    };
    drop(SqliteStore::open(plain.clone()).expect("plain"));
    let plain_files = files(plain_dir.path());
    let keyed = SqliteStore::open(SqliteConfig {
        encryption_key: Secret::new(KEY),
        ..plain
    })
    .expect_err("a key for a plain database");
    assert!(matches!(keyed, OpenError::NotEncrypted { .. }), "{keyed}");
    assert!(
        files(plain_dir.path()) == plain_files,
        "a refusal changes nothing"
    );
}

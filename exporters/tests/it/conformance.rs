//! The same data, exported to every store, gives the same answers to every query the API asks.

use llmscope_core::Exporter;
use llmscope_exporters::query::{
    AnomalyQuery, Filter, GroupBy, QueryStore, SummaryGroup, SummaryQuery, TraceQuery, TraceSummary,
};
use llmscope_exporters::query::{rollup, trace_list};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

use crate::{clickhouse, data, postgres};

const HOUR: u64 = data::HOUR;

fn filter() -> Filter {
    Filter {
        project: "default".into(),
        ..Default::default()
    }
}

async fn all_traces(store: &dyn QueryStore, filter: Filter) -> Vec<TraceSummary> {
    all_listed(
        store,
        TraceQuery {
            filter,
            ..Default::default()
        },
    )
    .await
}

/// Every page of `query`'s list, 7 traces a page.
async fn all_listed(store: &dyn QueryStore, mut query: TraceQuery) -> Vec<TraceSummary> {
    query.limit = 7;
    let mut out = Vec::new();
    loop {
        let page = store.traces(&query).await.expect("traces");
        out.extend(page.traces);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

/// Equal, with costs compared to summation rounding; latency exactly when `exact_latency`, or
/// (rollups keep t-digest quantile states) within the range the group's calls span.
fn same_groups(a: &[SummaryGroup], b: &[SummaryGroup], exact_latency: bool, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:#?}\n{b:#?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (
                &x.key,
                x.bucket_start_ns,
                x.requests,
                x.errors,
                x.input_tokens,
                x.output_tokens,
                x.cache_read_tokens
            ),
            (
                &y.key,
                y.bucket_start_ns,
                y.requests,
                y.errors,
                y.input_tokens,
                y.output_tokens,
                y.cache_read_tokens
            ),
            "{what}"
        );
        assert!(
            close(x.cost_usd, y.cost_usd),
            "{what}: cost {:?} {:?}",
            x.cost_usd,
            y.cost_usd
        );
        if exact_latency {
            assert_eq!(x.latency, y.latency, "{what}");
        } else {
            for (p, q) in [
                (x.latency.p50_ms, y.latency.p50_ms),
                (x.latency.p99_ms, y.latency.p99_ms),
            ] {
                assert!(
                    (p - q).abs() <= 0.5 * p.max(q),
                    "{what}: latency {p} vs {q}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sqlite_and_clickhouse_answer_the_same() {
    let Some(ch) = clickhouse::store("conformance").await else {
        return;
    };
    let sqlite = reference_with(&ch).await;
    conform(&sqlite.1, &ch).await;
    clickhouse::drop_database(&ch).await;
}

/// A database written by version 1 of the schema (t-digest rollups, no `trace_starts`) and then
/// migrated answers as one written by the current schema: the migration backfills both.
#[tokio::test]
async fn clickhouse_upgraded_from_version_1_answers_the_same() {
    let Some(ch) = clickhouse::store_at("upgrade", 1).await else {
        return;
    };
    let sqlite = reference_with(&ch).await;
    assert_eq!(
        ch.migrate().await.expect("migrate"),
        ["0002_trace_starts_and_call_rollups", "0003_people_rollups"]
    );
    conform(&sqlite.1, &ch).await;
    clickhouse::drop_database(&ch).await;
}

#[tokio::test]
async fn sqlite_and_postgres_answer_the_same() {
    let Some(pg) = postgres::store("conformance").await else {
        return;
    };
    let sqlite = reference_with(&pg).await;
    conform(&sqlite.1, &pg).await;
    postgres::drop_database(pg).await;
}

/// A SQLite store and `other`, both holding the test data.
async fn reference_with(other: &impl Exporter) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(SqliteConfig {
        path: dir.path().join("c.db"),
        ..Default::default()
    })
    .expect("sqlite");
    for batch in data::batches() {
        sqlite.export(&batch).await.expect("sqlite export");
        other.export(&batch).await.expect("export");
    }
    (dir, sqlite)
}

/// Every query the API asks, on `sqlite` (the reference) and `ch` (the store under test).
async fn conform(sqlite: &SqliteStore, ch: &dyn QueryStore) {
    // Another project sees nothing of this one's data, on either store.
    for store in [sqlite as &dyn QueryStore, ch] {
        let other = Filter {
            project: "another-project".into(),
            ..filter()
        };
        assert!(
            store
                .traces(&TraceQuery {
                    filter: other.clone(),
                    limit: 10,
                    cursor: None,
                    ..Default::default()
                })
                .await
                .expect("traces")
                .traces
                .is_empty()
        );
        let first = all_traces(store, filter()).await.remove(0);
        assert_eq!(
            store
                .trace("another-project", &first.trace_id)
                .await
                .expect("trace"),
            None
        );
        let summary = SummaryQuery {
            filter: other.clone(),
            group_by: GroupBy::Model,
            bucket_ns: None,
        };
        assert!(store.summary(&summary).await.expect("summary").is_empty());
        let anomalies = AnomalyQuery {
            filter: other,
            kind: None,
            limit: 10,
        };
        assert!(
            store
                .anomalies(&anomalies)
                .await
                .expect("anomalies")
                .is_empty()
        );
    }

    let stores: [&dyn QueryStore; 2] = [sqlite, ch];

    // Trace lists, all pages, with and without filters, including the list's own (user,
    // session, errors only).
    let listed = |filter: Filter| TraceQuery {
        filter,
        ..Default::default()
    };
    let user = |user: &str, filter: Filter| TraceQuery {
        user: Some(user.into()),
        ..listed(filter)
    };
    let mut queries: Vec<TraceQuery> = [
        filter(),
        Filter {
            service: Some("batch-job".into()),
            ..filter()
        },
        Filter {
            model: Some("gpt-4o-mini".into()),
            ..filter()
        },
        Filter {
            from_ns: Some((data::DAY_START + 2 * data::HOUR) as i64),
            to_ns: Some((data::DAY_START + 4 * data::HOUR) as i64),
            ..filter()
        },
        Filter {
            provider: Some("openai".into()),
            model: Some("gpt-4o-mini".into()),
            from_ns: Some((data::DAY_START + HOUR) as i64),
            ..filter()
        },
        Filter {
            service: Some("batch-job".into()),
            provider: Some("anthropic".into()),
            to_ns: Some((data::DAY_START + 5 * HOUR) as i64),
            ..filter()
        },
    ]
    .into_iter()
    .map(listed)
    .collect();
    queries.extend([
        user("user-1", filter()),
        user(
            "user-2",
            Filter {
                model: Some("gpt-4o-mini".into()),
                ..filter()
            },
        ),
        TraceQuery {
            session: Some("session-3".into()),
            ..listed(filter())
        },
        TraceQuery {
            errors_only: true,
            ..listed(filter())
        },
        TraceQuery {
            words: vec!["chat".into()],
            ..listed(Filter {
                service: Some("batch-job".into()),
                ..filter()
            })
        },
        TraceQuery {
            words: vec!["ticket".into(), "42".into()],
            ..listed(filter())
        },
        TraceQuery {
            words: vec!["sum".into()],
            ..listed(filter())
        },
        TraceQuery {
            errors_only: true,
            ..user(
                "user-1",
                Filter {
                    from_ns: Some((data::DAY_START + HOUR) as i64),
                    ..filter()
                },
            )
        },
    ]);
    for q in queries {
        let [a, b] = [
            all_listed(stores[0], q.clone()).await,
            all_listed(stores[1], q.clone()).await,
        ];
        assert!(!a.is_empty(), "{q:?}");
        assert_eq!(a.len(), b.len(), "{q:?}");
        for (x, y) in a.iter().zip(&b) {
            assert!(close(x.cost_usd, y.cost_usd), "{x:?} {y:?}");
            let strip = |t: &TraceSummary| TraceSummary {
                cost_usd: None,
                ..t.clone()
            };
            assert_eq!(strip(x), strip(y), "{q:?}");
        }
        if q.errors_only {
            assert!(a.iter().all(|t| t.error), "{q:?}");
        }
    }
    // Narrower lists are the unfiltered one's traces that match, and only those.
    let everything = all_listed(stores[0], listed(filter())).await;
    let errors = all_listed(
        stores[0],
        TraceQuery {
            errors_only: true,
            ..listed(filter())
        },
    )
    .await;
    let expected: Vec<&TraceSummary> = everything.iter().filter(|t| t.error).collect();
    assert_eq!(errors.iter().collect::<Vec<_>>(), expected);
    // A search finds exactly the traces whose root name has every word among its first eight.
    for words in [
        &["nine"][..],
        &["eight"],
        &["ticket"],
        &["chat"],
        &["sum", "r"],
        &["42", "chat"],
    ] {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let expected: Vec<&TraceSummary> = everything
            .iter()
            .filter(|t| {
                let root: Vec<String> =
                    trace_list::name_words(t.root_name.as_deref().unwrap_or("")).collect();
                words.iter().all(|w| root.contains(w))
            })
            .collect();
        let found = all_listed(
            stores[0],
            TraceQuery {
                words: words.clone(),
                ..listed(filter())
            },
        )
        .await;
        assert_eq!(found.iter().collect::<Vec<_>>(), expected, "{words:?}");
        if words == ["nine"] {
            assert!(found.is_empty(), "a ninth word is not searched");
        }
    }

    // Every trace in full: spans, attributes, content joined from events.
    for t in all_traces(stores[0], filter()).await {
        let a = sqlite
            .trace("default", &t.trace_id)
            .await
            .expect("sqlite trace");
        let b = ch
            .trace("default", &t.trace_id)
            .await
            .expect("clickhouse trace");
        assert_eq!(a, b, "trace {}", t.trace_id);
    }
    assert_eq!(
        ch.trace("default", &"ab".repeat(16))
            .await
            .expect("unknown"),
        None
    );

    // Summaries from raw rows are exact; whole hours and days come from the rollups (every
    // store, `rollup::plan`), exact except latency quantiles (histogram buckets).
    let unaligned = Filter {
        from_ns: Some(data::DAY_START as i64 + 1),
        ..filter()
    };
    let edges = Filter {
        from_ns: Some((data::DAY_START + HOUR / 2) as i64),
        to_ns: Some((data::DAY_START + 4 * HOUR + HOUR / 3) as i64),
        ..filter()
    };
    for group_by in GroupBy::ALL {
        for (f, bucket) in [
            (unaligned.clone(), None),
            (unaligned.clone(), Some(data::HOUR as i64)),
            (unaligned.clone(), Some(600_000_000_000)),
            (edges.clone(), None),
            (edges.clone(), Some(data::HOUR as i64)),
            (
                Filter {
                    model: Some("gpt-4o".into()),
                    ..edges.clone()
                },
                Some(data::HOUR as i64),
            ),
            (filter(), None),
            (filter(), Some(data::HOUR as i64)),
        ] {
            let q = SummaryQuery {
                filter: f.clone(),
                group_by,
                bucket_ns: bucket,
            };
            let a = sqlite.summary(&q).await.expect("sqlite summary");
            let b = ch
                .summary(&q)
                .await
                .unwrap_or_else(|e| panic!("clickhouse summary {q:?}: {e}"));
            // Either store may answer from rollups (latency from histograms or digests).
            let from_rollup = rollup::plan(&q).is_some();
            same_groups(
                &a,
                &b,
                !from_rollup,
                &format!("{group_by:?} {bucket:?} {f:?}"),
            );
        }
    }

    // Custom events and scores, and the scores' count and mean per group.
    for q in crate::events::event_queries() {
        let (a, b) = (
            sqlite.events(&q).await.expect("sqlite events"),
            ch.events(&q)
                .await
                .unwrap_or_else(|e| panic!("events {q:?}: {e}")),
        );
        assert_eq!(a, b, "{q:?}");
    }
    for (q, name) in crate::events::score_queries() {
        assert_eq!(
            crate::events::score_view(sqlite, &q, name).await,
            crate::events::score_view(ch, &q, name).await,
            "{name} {q:?}"
        );
    }

    let q = AnomalyQuery {
        filter: filter(),
        kind: None,
        limit: 100,
    };
    let (a, b) = (
        sqlite.anomalies(&q).await.expect("sqlite"),
        ch.anomalies(&q).await.expect("clickhouse"),
    );
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
        assert_eq!(parse(&x.attributes), parse(&y.attributes));
        assert_eq!(
            llmscope_exporters::record::AnomalyRow {
                attributes: String::new(),
                ..x.clone()
            },
            llmscope_exporters::record::AnomalyRow {
                attributes: String::new(),
                ..y.clone()
            }
        );
    }
}

/// Batches of one span each, in `batch`'s order (a recorded trace: children first, the root,
/// which starts first, last), the first of them twice (a retry): a trace arriving piecemeal.
fn piecemeal(batch: &llmscope_core::Batch) -> Vec<llmscope_core::Batch> {
    let llmscope_core::Payload::Traces(rs) = &batch.payload else {
        panic!("a traces batch")
    };
    let mut out = Vec::new();
    for (r, resource) in rs.iter().enumerate() {
        for (s, scope) in resource.scope_spans.iter().enumerate() {
            for i in 0..scope.spans.len() {
                let mut one = rs.clone();
                let mut resource = one.swap_remove(r);
                let mut scope = resource.scope_spans.swap_remove(s);
                scope.spans = vec![scope.spans.swap_remove(i)];
                resource.scope_spans = vec![scope];
                out.push(llmscope_core::Batch::new(
                    llmscope_core::Payload::Traces(vec![resource]),
                    batch.ctx.clone(),
                ));
            }
        }
    }
    out.push(out[0].clone());
    out
}

/// The trace list's row of a trace is the same however its spans arrived, on every store.
#[tokio::test]
async fn a_trace_arriving_piecemeal_is_listed_as_one_batch_lists_it() {
    let batch = data::batches().remove(0);
    let (_dir, reference) = {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(SqliteConfig {
            path: dir.path().join("r.db"),
            ..Default::default()
        })
        .expect("sqlite");
        store.export(&batch).await.expect("export");
        (dir, store)
    };
    let expected = all_traces(&reference, filter()).await;
    assert!(!expected.is_empty());
    let first = &expected[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(SqliteConfig {
        path: dir.path().join("p.db"),
        ..Default::default()
    })
    .expect("sqlite");
    let pg = postgres::store("piecemeal").await;
    let ch = clickhouse::store("piecemeal").await;
    let mut stores: Vec<(&str, &dyn QueryStore)> = vec![("sqlite", &sqlite)];
    for one in piecemeal(&batch) {
        sqlite.export(&one).await.expect("sqlite");
        if let Some(pg) = &pg {
            pg.export(&one).await.expect("postgres");
        }
        if let Some(ch) = &ch {
            ch.export(&one).await.expect("clickhouse");
        }
    }
    if let Some(pg) = &pg {
        stores.push(("postgres", pg));
    }
    if let Some(ch) = &ch {
        stores.push(("clickhouse", ch));
    }
    let by_model = Filter {
        model: Some("gpt-4o-mini".into()),
        ..filter()
    };
    let expected_by_model = all_traces(&reference, by_model.clone()).await;
    assert!(!expected_by_model.is_empty());
    for (name, store) in stores {
        let listed = all_traces(store, filter()).await;
        assert_eq!(listed.len(), expected.len(), "{name}");
        // Once each under a key, though the trace's start moved as its root arrived.
        let ids = |ts: &[TraceSummary]| ts.iter().map(|t| t.trace_id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&all_traces(store, by_model.clone()).await),
            ids(&expected_by_model),
            "{name}"
        );
        for (x, y) in listed.iter().zip(&expected) {
            assert!(close(x.cost_usd, y.cost_usd), "{name}: {x:?} {y:?}");
            assert_eq!(
                TraceSummary {
                    cost_usd: None,
                    ..x.clone()
                },
                TraceSummary {
                    cost_usd: None,
                    ..y.clone()
                },
                "{name}"
            );
        }
        // Summaries (from the rollups where the store keeps them, filtered user and session
        // ones from their rows' parts) as if it came at once.
        for (group_by, f) in GroupBy::ALL
            .into_iter()
            .flat_map(|g| [(g, filter()), (g, by_model.clone())])
        {
            let q = SummaryQuery {
                filter: f,
                group_by,
                bucket_ns: Some(HOUR as i64),
            };
            let want = reference.summary(&q).await.expect("reference summary");
            assert!(!want.is_empty());
            let got = store.summary(&q).await.expect("summary");
            same_groups(&got, &want, name != "clickhouse", &format!("{name} {q:?}"));
        }
        // Listed under its start, and under a key only a child span has.
        let at_start = Filter {
            from_ns: Some(first.start_ns),
            to_ns: Some(first.start_ns + 1),
            model: Some("gpt-4o-mini".into()),
            ..filter()
        };
        let found = all_traces(store, at_start).await;
        assert!(
            found.iter().any(|t| t.trace_id == first.trace_id),
            "{name}: {found:?}"
        );
    }
    if let Some(pg) = pg {
        postgres::drop_database(pg).await;
    }
    if let Some(ch) = ch {
        clickhouse::drop_database(&ch).await;
    }
}

/// Writers exporting the spans of the same traces at once (spans one by one, on four tasks, so
/// traces and shared response ids are changed by concurrent transactions) leave PostgreSQL's
/// trace list and rollups as one writer would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_postgres_writers_keep_the_summaries_exact() {
    let Some(pg) = postgres::store("concurrent").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = SqliteStore::open(SqliteConfig {
        path: dir.path().join("r.db"),
        ..Default::default()
    })
    .expect("sqlite");
    let mut singles = Vec::new();
    for batch in data::batches() {
        reference.export(&batch).await.expect("reference");
        if matches!(batch.payload, llmscope_core::Payload::Traces(_)) {
            singles.extend(piecemeal(&batch));
        } else {
            pg.export(&batch).await.expect("export");
        }
    }
    // Four writers, the spans of each trace dealt out among them.
    let mut parts: Vec<Vec<llmscope_core::Batch>> = vec![Vec::new(); 4];
    for (i, b) in singles.into_iter().enumerate() {
        parts[i % 4].push(b);
    }
    let writers: Vec<_> = parts
        .into_iter()
        .map(|part| {
            let pg = pg.clone();
            tokio::spawn(async move {
                for b in part {
                    pg.export(&b).await.expect("export");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    assert_eq!(
        all_traces(&pg, filter()).await.len(),
        all_traces(&reference, filter()).await.len()
    );
    for group_by in GroupBy::ALL {
        let q = SummaryQuery {
            filter: filter(),
            group_by,
            bucket_ns: Some(HOUR as i64),
        };
        same_groups(
            &pg.summary(&q).await.expect("postgres"),
            &reference.summary(&q).await.expect("sqlite"),
            true,
            &format!("{group_by:?}"),
        );
    }
    postgres::drop_database(pg).await;
}

/// Every page, `limit` traces at a time.
async fn pages(store: &dyn QueryStore, filter: Filter, limit: usize) -> Vec<TraceSummary> {
    let mut query = TraceQuery {
        filter,
        limit,
        cursor: None,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = store.traces(&query).await.expect("traces");
        assert!(page.traces.len() <= limit);
        out.extend(page.traces);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

/// 1,000 traces, each written by five exports (so five `trace_starts` rows each), ten sharing
/// every start, eleven with a span of a rare service, three of the oldest with one of an ancient
/// service, and, newest, 600 one-span traces, 300 sharing each of two starts: ClickHouse's trace
/// list has to widen its candidate rows (the rare walk needs a second read; the ancient one finds
/// nothing in the first and must ask whether there is more) and page through long ties exactly
/// as SQLite does.
#[tokio::test]
async fn clickhouse_pages_many_split_traces_as_sqlite_does() {
    use llmscope_core::test_util::{span, traces};
    let Some(ch) = clickhouse::store("split").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(SqliteConfig {
        path: dir.path().join("split.db"),
        ..Default::default()
    })
    .expect("sqlite");
    // A span of eleven traces from a rare service; one of the three oldest from another.
    let service = |part: u64, i: u64| match (part, i) {
        (3, i) if i.is_multiple_of(97) => "rare",
        (2, 0 | 7 | 14) => "ancient",
        _ => "steady",
    };
    for part in 0..5u64 {
        let spans = |wanted: &str| {
            (0..1_000u64)
                .filter(|i| service(part, *i) == wanted)
                .map(|i| {
                    let mut s = span(0, 0, "step", vec![]);
                    s.trace_id = (5_000 + i)
                        .to_be_bytes()
                        .iter()
                        .chain([9u8; 8].iter())
                        .copied()
                        .collect();
                    s.span_id = (i * 8 + part + 1).to_be_bytes().to_vec();
                    s.start_time_unix_nano =
                        data::DAY_START + (i / 10) * 1_000_000_000 + part * 1_000_000;
                    s.end_time_unix_nano = s.start_time_unix_nano + 500_000;
                    s
                })
                .collect::<Vec<_>>()
        };
        let mut singles = Vec::new();
        if part == 0 {
            singles = (0..600u64)
                .map(|i| {
                    let mut s = span(0, 0, "single", vec![]);
                    s.trace_id = (20_000 + i)
                        .to_be_bytes()
                        .iter()
                        .chain([9u8; 8].iter())
                        .copied()
                        .collect();
                    s.span_id = (100_000 + i).to_be_bytes().to_vec();
                    s.start_time_unix_nano = data::DAY_START + (200 + i / 300) * 1_000_000_000;
                    s.end_time_unix_nano = s.start_time_unix_nano + 500_000;
                    s
                })
                .collect();
        }
        for (service, batch) in [
            ("steady", spans("steady")),
            ("rare", spans("rare")),
            ("ancient", spans("ancient")),
            ("single", singles),
        ] {
            if batch.is_empty() {
                continue;
            }
            let batch = traces(service, batch);
            sqlite.export(&batch).await.expect("sqlite export");
            ch.export(&batch).await.expect("clickhouse export");
        }
    }
    for (f, want) in [
        (filter(), 1_600),
        (
            Filter {
                service: Some("rare".into()),
                ..filter()
            },
            11,
        ),
        (
            Filter {
                service: Some("ancient".into()),
                ..filter()
            },
            3,
        ),
    ] {
        let a = pages(&sqlite, f.clone(), 50).await;
        assert_eq!(a.len(), want, "{f:?}");
        assert_eq!(pages(&ch, f.clone(), 50).await, a, "{f:?}");
    }
    clickhouse::drop_database(&ch).await;
}

/// Traces minutes, hours, days and over 21 days (the last window before an unbounded read)
/// apart, in two projects, the other's all older than this one's newest: ClickHouse's first
/// reads of `trace_starts` (an hour below the cursor, `to` or the newest row) find too few or
/// none and widen until they reach back far enough, paging exactly as SQLite does; traces with
/// a late span in a window but starting before it are left to a wider read.
#[tokio::test]
async fn clickhouse_widens_its_window_over_sparse_traces_as_sqlite_pages_them() {
    use llmscope_core::BatchContext;
    use llmscope_core::test_util::{span, traces};
    let Some(ch) = clickhouse::store_keeping("sparse", 3_650).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(SqliteConfig {
        path: dir.path().join("sparse.db"),
        ..Default::default()
    })
    .expect("sqlite");
    let minute = 60_000_000_000;
    let day = 24 * HOUR;
    // (project, how many, the newest's age, apart)
    let groups: [(&str, u64, u64, u64); 5] = [
        ("default", 30, 0, minute / 6),
        ("default", 20, 3 * HOUR, minute),
        ("default", 40, 2 * day, 6 * HOUR),
        ("default", 15, 30 * day, HOUR),
        ("other", 12, 25 * day, 2 * HOUR),
    ];
    let mut id = 0u64;
    for (project, count, age, apart) in groups {
        let spans: Vec<_> = (0..count)
            .map(|i| {
                id += 1;
                let mut s = span(0, 0, "step", vec![]);
                s.trace_id = id.to_be_bytes().iter().chain(&[7u8; 8]).copied().collect();
                s.span_id = id.to_be_bytes().to_vec();
                s.start_time_unix_nano = data::DAY_START - age - i * apart;
                s.end_time_unix_nano = s.start_time_unix_nano + 500_000;
                s
            })
            .collect();
        for (n, chunk) in spans.chunks(7).enumerate() {
            let service = if n % 3 == 2 { "b" } else { "a" };
            let mut batch = traces(service, chunk.to_vec());
            batch.ctx = BatchContext {
                project: project.into(),
                ..Default::default()
            };
            sqlite.export(&batch).await.expect("sqlite export");
            ch.export(&batch).await.expect("clickhouse export");
        }
    }
    // Six traces that start four hours back, each with a span 50 minutes back exported on its
    // own: a window holding only the later rows must not list them among its own traces.
    for part in 0..2u64 {
        let spans = (0..6u64)
            .map(|i| {
                let mut s = span(0, 0, "late", vec![]);
                s.trace_id = (1_000 + i)
                    .to_be_bytes()
                    .iter()
                    .chain(&[7u8; 8])
                    .copied()
                    .collect();
                s.span_id = (1_000 + 2 * i + part).to_be_bytes().to_vec();
                s.start_time_unix_nano = match part {
                    0 => data::DAY_START - 4 * HOUR - i * minute,
                    _ => data::DAY_START - 50 * minute,
                };
                s.end_time_unix_nano = s.start_time_unix_nano + 500_000;
                s
            })
            .collect();
        let batch = traces("a", spans);
        sqlite.export(&batch).await.expect("sqlite export");
        ch.export(&batch).await.expect("clickhouse export");
    }
    let range = Filter {
        from_ns: Some((data::DAY_START - 13 * day) as i64),
        to_ns: Some((data::DAY_START - HOUR) as i64),
        ..filter()
    };
    for (f, want) in [
        (filter(), 111),
        (
            Filter {
                service: Some("b".into()),
                ..filter()
            },
            26,
        ),
        (
            Filter {
                project: "other".into(),
                ..filter()
            },
            12,
        ),
        (range, 66),
    ] {
        let a = pages(&sqlite, f.clone(), 7).await;
        assert_eq!(a.len(), want, "{f:?}");
        assert_eq!(pages(&ch, f.clone(), 7).await, a, "{f:?}");
    }
    clickhouse::drop_database(&ch).await;
}

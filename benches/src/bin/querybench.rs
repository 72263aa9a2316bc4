//! `llmscope-querybench`: loads realistic GenAI traces straight into a store (through its
//! exporter, as the collector writes them, without the OTLP listener) and times every query the
//! API asks, uncached, reporting p50/p95 per query.
//!
//!     llmscope-querybench --store sqlite:/tmp/q.db load --spans 10000000
//!     llmscope-querybench --store sqlite:/tmp/q.db query --runs 20
//!     llmscope-querybench --store postgres:postgres://postgres@127.0.0.1/qbench load --spans 1000000
//!     llmscope-querybench --store clickhouse:http://127.0.0.1:8123/qbench query

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use llmscope_benches::stored::{Generator, MODELS, service_name};
use llmscope_core::{DynExporter, Exporter};
use llmscope_exporters::clickhouse::{ClickHouseConfig, ClickHouseStore};
use llmscope_exporters::postgres::{PostgresConfig, PostgresStore};
use llmscope_exporters::query::{
    AnomalyQuery, Filter, GroupBy, QueryStore, SummaryQuery, TraceQuery,
};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

#[derive(Debug, Parser)]
#[command(
    name = "llmscope-querybench",
    about = "Loads a store and times the API's queries"
)]
struct Args {
    /// `sqlite:PATH`, `postgres:URL` (the database is created when missing) or
    /// `clickhouse:URL/DATABASE`.
    #[arg(long)]
    store: String,
    /// ClickHouse: a new connection per request (`keep_alive: false`). The test double
    /// (`shared/clickhouse-dev`) answers a request on a reused connection 40 ms late (it writes
    /// a response's head and body separately, which meets the client's delayed ACK); a server
    /// does not.
    #[arg(long)]
    fresh_connections: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds about `spans` spans over the `days` before now.
    Load {
        #[arg(long)]
        spans: u64,
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Spans per export (whole traces).
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
        /// Exports in flight.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Times each query `runs` times (once when it takes over a second) and prints p50/p95 in
    /// milliseconds.
    Query {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Only queries whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
}

type Store = (Arc<dyn DynExporter>, Arc<dyn QueryStore>);

async fn open(spec: &str, fresh_connections: bool) -> Result<Store, String> {
    let (kind, rest) = spec
        .split_once(':')
        .ok_or("--store: expected KIND:LOCATION")?;
    match kind {
        "sqlite" => {
            let store = Arc::new(
                SqliteStore::open(SqliteConfig {
                    path: rest.into(),
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
            );
            Ok((store.clone(), store))
        }
        "postgres" => {
            let (base, database) = rest
                .rsplit_once('/')
                .ok_or("postgres URL without database")?;
            if let Ok((admin, conn)) =
                tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                let _ = admin
                    .batch_execute(&format!("CREATE DATABASE {database}"))
                    .await;
            }
            let store = Arc::new(
                PostgresStore::open(PostgresConfig {
                    url: rest.to_owned(),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?,
            );
            Ok((store.clone(), store))
        }
        "clickhouse" => {
            let (url, database) = rest
                .rsplit_once('/')
                .ok_or("clickhouse URL without database")?;
            let store = Arc::new(
                ClickHouseStore::open(ClickHouseConfig {
                    url: url.to_owned(),
                    database: database.to_owned(),
                    keep_alive: !fresh_connections,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?,
            );
            Ok((store.clone(), store))
        }
        other => Err(format!("--store: unknown kind {other:?}")),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

async fn load(
    exporter: Arc<dyn DynExporter>,
    spans: u64,
    days: i64,
    batch: usize,
    concurrency: usize,
    seed: u64,
) {
    let to = now_ns();
    let from = to - days * 86_400_000_000_000;
    let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency * 2);
    let generator = std::thread::spawn(move || {
        let mut g = Generator::new(seed, spans, from, to);
        while let Some(b) = g.batch(batch) {
            if tx.blocking_send(b).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut done = 0u64;
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(b) = rx.recv().await {
        while in_flight.len() >= concurrency {
            done += in_flight
                .join_next()
                .await
                .and_then(|r| r.ok())
                .unwrap_or(0);
        }
        let exporter = exporter.clone();
        in_flight.spawn(async move {
            let n = b.payload.item_count() as u64;
            let mut attempt = 0;
            while let Err(e) = exporter.export(&b).await {
                attempt += 1;
                eprintln!("export failed (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            n
        });
        if last_report.elapsed() > Duration::from_secs(10) {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            eprintln!("{done} spans stored, {rate:.0} spans/s");
            last_report = Instant::now();
        }
    }
    while let Some(r) = in_flight.join_next().await {
        done += r.unwrap_or(0);
    }
    let _ = generator.join();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {done} spans in {secs:.0} s ({:.0} spans/s)",
        done as f64 / secs
    );
}

enum Query {
    /// One page of the trace list (a later page by its cursor, found before timing).
    Traces(TraceQuery),
    Trace(String),
    Summary(SummaryQuery),
    Anomalies(AnomalyQuery),
}

async fn run(store: &dyn QueryStore, q: &Query) -> Result<usize, String> {
    let e = |e: llmscope_exporters::query::QueryError| e.to_string();
    match q {
        Query::Traces(q) => Ok(store.traces(q).await.map_err(e)?.traces.len()),
        Query::Trace(id) => Ok(store
            .trace("default", id)
            .await
            .map_err(e)?
            .map_or(0, |s| s.len())),
        Query::Summary(q) => Ok(store.summary(q).await.map_err(e)?.len()),
        Query::Anomalies(q) => Ok(store.anomalies(q).await.map_err(e)?.len()),
    }
}

/// The queries, named: the newest data's time anchors the ranges, which end at an arbitrary
/// (not hour-aligned) instant as a dashboard's "last 24 hours" does.
async fn queries(store: &dyn QueryStore) -> Result<Vec<(String, Query)>, String> {
    let all = Filter {
        project: "default".into(),
        ..Default::default()
    };
    let newest = store
        .traces(&TraceQuery {
            filter: all.clone(),
            limit: 200,
            cursor: None,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let Some(first) = newest.traces.first() else {
        return Err("the store holds no traces: load first".into());
    };
    let end = first.start_ns + 1_234_567_891;
    let with = |f: fn(&mut Filter)| {
        let mut x = all.clone();
        f(&mut x);
        x
    };
    // Page `pages` of the list: the cursor is read first, so only that page's request is timed.
    let list = async |filter: Filter, pages: usize| -> Result<Query, String> {
        let mut q = TraceQuery {
            filter,
            limit: 50,
            cursor: None,
            ..Default::default()
        };
        for _ in 1..pages {
            let page = store.traces(&q).await.map_err(|e| e.to_string())?;
            q.cursor = Some(page.next_cursor.ok_or("fewer pages than asked for")?);
        }
        Ok(Query::Traces(q))
    };
    let mut out = vec![
        ("traces".to_owned(), list(all.clone(), 1).await?),
        ("traces page 5".to_owned(), list(all.clone(), 5).await?),
        (
            "traces service=svc-07".to_owned(),
            list(with(|f| f.service = Some(service_name(7))), 1).await?,
        ),
        (
            "traces model=gpt-4.1".to_owned(),
            list(with(|f| f.model = Some(MODELS[2].1.into())), 1).await?,
        ),
        (
            "traces model=deepseek-reasoner page 5".to_owned(),
            list(with(|f| f.model = Some(MODELS[18].1.into())), 5).await?,
        ),
        (
            "traces last 1h page 2".to_owned(),
            list(
                Filter {
                    from_ns: Some(end - 3_600_000_000_000),
                    to_ns: Some(end),
                    ..all.clone()
                },
                2,
            )
            .await?,
        ),
    ];
    for (i, t) in newest.traces.iter().step_by(40).enumerate() {
        out.push((
            format!("trace by id #{i}"),
            Query::Trace(t.trace_id.clone()),
        ));
    }
    for (range, hours) in [("1h", 1), ("24h", 24), ("30d", 720)] {
        for group_by in GroupBy::ALL {
            for (name, filter) in [
                ("", all.clone()),
                (
                    " model=gpt-4o",
                    with(|f| f.model = Some(MODELS[1].1.into())),
                ),
                (
                    " service=svc-03",
                    with(|f| f.service = Some(service_name(3))),
                ),
            ] {
                let bucket_ns = (hours == 24).then_some(3_600_000_000_000);
                out.push((
                    format!("summary {} {range}{name}", group_by.name()),
                    Query::Summary(SummaryQuery {
                        filter: Filter {
                            from_ns: Some(end - hours * 3_600_000_000_000),
                            to_ns: Some(end),
                            ..filter
                        },
                        group_by,
                        bucket_ns,
                    }),
                ));
            }
        }
    }
    out.push((
        "anomalies".to_owned(),
        Query::Anomalies(AnomalyQuery {
            filter: all,
            kind: None,
            limit: 50,
        }),
    ));
    Ok(out)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn query(store: &dyn QueryStore, runs: usize, only: Option<&str>) -> Result<(), String> {
    println!("| query | rows | runs | p50 ms | p95 ms |");
    println!("|---|---|---|---|---|");
    let mut by_id = Vec::new();
    for (name, q) in queries(store).await? {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0;
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            rows = run(store, &q).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            // A query slower than a second is far off any target: one run says so.
            if times[0] > 1_000.0 {
                break;
            }
        }
        times.sort_by(f64::total_cmp);
        if name.starts_with("trace by id") {
            by_id.extend(times);
            continue;
        }
        let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
        println!(
            "| {name} | {rows} | {} | {p50:.1} | {p95:.1} |",
            times.len()
        );
    }
    if !by_id.is_empty() {
        by_id.sort_by(f64::total_cmp);
        let (p50, p95) = (percentile(&by_id, 0.5), percentile(&by_id, 0.95));
        println!(
            "| trace by id (5 traces) | - | {} | {p50:.1} | {p95:.1} |",
            by_id.len()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let result = async {
        let (exporter, store) = open(&args.store, args.fresh_connections).await?;
        match args.command {
            Command::Load {
                spans,
                days,
                batch,
                concurrency,
                seed,
            } => {
                load(exporter, spans, days, batch, concurrency.max(1), seed).await;
                Ok(())
            }
            Command::Query { runs, only } => query(store.as_ref(), runs, only.as_deref()).await,
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("llmscope-querybench: {e}");
        std::process::exit(1);
    }
}

//! The Grafana assets in `deploy/grafana/` against real engines: every SQL panel, with its
//! macros and variables expanded as Grafana's ClickHouse and PostgreSQL plugins expand them, runs
//! on real ClickHouse and PostgreSQL (as the read-only role of `sql/postgres/grafana_reader.sql`)
//! after a known load and returns the expected numbers; the dashboards load as Grafana models
//! whose datasources are the provisioned ones. PromQL panels are checked in `prometheus.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use hyper::{Method, StatusCode};
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::semconv as sc;
use llmscope_core::test_util::{kv, service_url, span, traces};
use llmscope_core::{Batch, Payload};
use opentelemetry_proto::tonic::trace::v1::Status;
use prost::Message as _;
use serde_json::Value as J;

use crate::harness::Collector;

pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana")
}

/// Every dashboard, by file name.
pub fn dashboards() -> BTreeMap<String, J> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir().join("dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.insert(name, serde_json::from_str(&text).expect("dashboard JSON"));
    }
    out
}

/// (title, the panel's queries) of a dashboard.
pub fn panels(d: &J) -> Vec<(String, String, Vec<J>)> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            (
                p["title"].as_str().expect("title").to_owned(),
                p["type"].as_str().expect("type").to_owned(),
                p["targets"].as_array().expect("targets").clone(),
            )
        })
        .collect()
}

#[test]
fn the_dashboards_are_grafana_models_on_the_provisioned_datasources() {
    let provisioned: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy_dir().join("provisioning/datasources/llmscope.yaml"))
            .expect("datasources"),
    )
    .expect("YAML");
    let uids: BTreeMap<String, String> = provisioned["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .map(|d| {
            (
                d["uid"].as_str().expect("uid").to_owned(),
                d["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    let provider: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy_dir().join("provisioning/dashboards/llmscope.yaml"))
            .expect("dashboard provider"),
    )
    .expect("YAML");
    assert_eq!(provider["providers"][0]["type"], "file");

    let all = dashboards();
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "collector-health.json",
            "llm-usage-clickhouse.json",
            "llm-usage-postgres.json",
            "llm-usage-prometheus.json"
        ]
    );
    let mut dashboard_uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(
            dashboard_uids.insert(d["uid"].as_str().expect("uid")),
            "{name}"
        );
        assert!(
            d["schemaVersion"].as_u64().expect("schemaVersion") >= 36,
            "{name}"
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
        let variables: BTreeSet<&str> = d["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .map(|v| v["name"].as_str().expect("name"))
            .collect();
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            let title = p["title"].as_str().expect("title");
            assert!(ids.insert(p["id"].as_u64().expect("id")), "{name}: {title}");
            assert!(
                titles.insert(title),
                "{name}: two panels are titled {title}"
            );
            assert!(p["description"].as_str().is_some_and(|t| !t.is_empty()));
            let grid = &p["gridPos"];
            assert!(
                grid["w"].as_u64().is_some_and(|w| w > 0)
                    && grid["x"]
                        .as_u64()
                        .is_some_and(|x| x + grid["w"].as_u64().unwrap_or(0) <= 24),
                "{name}: {title}: {grid}"
            );
            let mut sources = vec![&p["datasource"]];
            sources.extend(p["targets"].as_array().expect("targets"));
            for s in sources {
                let s = if s.get("datasource").is_some() {
                    &s["datasource"]
                } else {
                    s
                };
                let uid = s["uid"].as_str().expect("datasource uid");
                assert_eq!(
                    uids.get(uid).map(String::as_str),
                    s["type"].as_str(),
                    "{name}: {title}: datasource {s} is not provisioned"
                );
            }
            // Every variable a query uses is defined.
            for t in p["targets"].as_array().expect("targets") {
                let q = t["rawSql"]
                    .as_str()
                    .or(t["expr"].as_str())
                    .expect("a query");
                for var in referenced_variables(q) {
                    assert!(
                        variables.contains(var.as_str()),
                        "{name}: {title} uses ${var}"
                    );
                }
            }
        }
    }
    let generator = deploy_dir().join("generate.py");
    let out = std::process::Command::new("python3")
        .arg(&generator)
        .arg("--check")
        .output()
        .expect("python3 runs the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `$name` and `${name}` references, Grafana's own `$__…` excepted.
fn referenced_variables(q: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = q;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.starts_with("__") {
            out.insert(name);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Macro and variable expansion, as Grafana and its plugins do it.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavour {
    ClickHouse,
    Postgres,
}

/// The dashboard's time range and interval.
pub struct Range {
    pub from_ns: i64,
    pub to_ns: i64,
    pub interval_s: i64,
}

/// A variable's selection: every value (the variable's custom "All" value) or these.
#[derive(Clone, Debug)]
pub enum Selection {
    All,
    Values(Vec<String>),
}

/// `sql` as the plugin of `flavour` sends it: Grafana's template variables first (`$__interval`
/// and the dashboard's), then the plugin's macros.
pub fn expand_sql(
    sql: &str,
    flavour: Flavour,
    range: &Range,
    variables: &[(&str, Selection, bool)],
) -> String {
    let interval = format!("{}s", range.interval_s);
    let mut out = sql.replace("$__interval", &interval);
    // Longest names first, so `$model` is not taken for a prefix of another.
    let mut vars: Vec<_> = variables.iter().collect();
    vars.sort_by_key(|(name, _, _)| std::cmp::Reverse(name.len()));
    for (name, selection, multi) in vars {
        let value = match selection {
            // A custom all value is inserted as written, unformatted.
            Selection::All => "'__all__'".to_owned(),
            Selection::Values(values) if *multi => values
                .iter()
                .map(|v| match flavour {
                    // The ClickHouse plugin joins arrays as '…','…'.
                    Flavour::ClickHouse => format!("'{v}'"),
                    // Grafana's SQL datasources quote each value, doubling quotes.
                    Flavour::Postgres => format!("'{}'", v.replace('\'', "''")),
                })
                .collect::<Vec<_>>()
                .join(","),
            Selection::Values(values) => values[0].replace('\'', "''"),
        };
        out = out
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    expand_macros(&out, flavour, range)
}

fn expand_macros(sql: &str, flavour: Flavour, range: &Range) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let Some(args_end) = tail.strip_prefix('(').and_then(|t| t.find(')')) else {
            panic!("macro {name} without arguments in {sql}");
        };
        let args: Vec<&str> = tail[1..1 + args_end].split(',').map(str::trim).collect();
        out.push_str(&macro_value(name, &args, flavour, range));
        rest = &tail[args_end + 2..];
    }
    out.push_str(rest);
    out
}

fn macro_value(name: &str, args: &[&str], flavour: Flavour, range: &Range) -> String {
    let (from_s, to_s) = (
        range.from_ns.div_euclid(1_000_000_000),
        range.to_ns.div_euclid(1_000_000_000),
    );
    match (flavour, name) {
        // grafana-clickhouse-datasource, pkg/macros.
        (Flavour::ClickHouse, "__timeFilter") => format!(
            "{c} >= toDateTime({from_s}) AND {c} <= toDateTime({to_s})",
            c = args[0]
        ),
        (Flavour::ClickHouse, "__timeInterval") => format!(
            "toStartOfInterval(toDateTime({}), INTERVAL {} second)",
            args[0],
            range.interval_s.max(1)
        ),
        // Grafana's PostgreSQL macro engine.
        (Flavour::Postgres, "__unixEpochNanoFilter") => format!(
            "{c} >= {} AND {c} <= {}",
            range.from_ns,
            range.to_ns,
            c = args[0]
        ),
        (Flavour::Postgres, "__unixEpochGroupAlias") => {
            let seconds = humantime::parse_duration(args[1].trim_matches('\''))
                .expect("interval")
                .as_secs();
            format!("floor(({})/{seconds})*{seconds} AS \"time\"", args[0])
        }
        other => panic!("macro {other:?} is not one the dashboards may use"),
    }
}

// ---------------------------------------------------------------------------------------------
// The known load.

/// One model call of the load.
#[derive(Debug, Clone)]
struct Call {
    trace: u8,
    service: &'static str,
    provider: &'static str,
    model: &'static str,
    user: String,
    input: i64,
    output: i64,
    cost: f64,
    error: bool,
    start_ns: i64,
    duration_ns: i64,
}

const CALLS: usize = 40;

fn load(base_ns: i64) -> Vec<Call> {
    (0..CALLS)
        .map(|i| {
            let (service, provider, model) = match i % 4 {
                0 => ("chat-api", "openai", "gpt-4o"),
                1 => ("batch", "openai", "gpt-4o"),
                2 => ("chat-api", "anthropic", "claude-sonnet-4"),
                _ => ("batch", "anthropic", "claude-sonnet-4"),
            };
            // One latency spike, on a series warmed up by then.
            let duration_ms = if i == 36 {
                20_000
            } else {
                100 + 5 * (i as i64 % 3)
            };
            Call {
                trace: i as u8 + 1,
                service,
                provider,
                model,
                user: format!("user-{}", i % 5),
                input: 100 + i as i64,
                output: 10 + (i as i64 % 7),
                cost: 0.001 * (1 + i % 7) as f64,
                error: i % 10 == 9,
                start_ns: base_ns + i as i64 * 30_000_000_000,
                duration_ns: duration_ms * 1_000_000,
            }
        })
        .collect()
}

fn request(calls: &[Call], service: &str) -> Vec<u8> {
    let spans = calls
        .iter()
        .filter(|c| c.service == service)
        .map(|c| {
            let mut s = span(
                c.trace,
                c.trace,
                &format!("chat {}", c.model),
                vec![
                    kv(sc::OPERATION_NAME, "chat"),
                    kv(sc::PROVIDER_NAME, c.provider),
                    kv(sc::REQUEST_MODEL, c.model),
                    kv(sc::RESPONSE_MODEL, c.model),
                    kv(sc::USER_ID, c.user.as_str()),
                    kv(sc::USAGE_INPUT_TOKENS, c.input),
                    kv(sc::USAGE_OUTPUT_TOKENS, c.output),
                    kv(sc::COST_TOTAL_USD, c.cost),
                ],
            );
            s.start_time_unix_nano = c.start_ns as u64;
            s.end_time_unix_nano = (c.start_ns + c.duration_ns) as u64;
            if c.error {
                s.status = Some(Status {
                    code: 2,
                    message: "rate limited".into(),
                });
            }
            s
        })
        .collect();
    let Batch {
        payload: Payload::Traces(resource_spans),
        ..
    } = traces(service, spans)
    else {
        unreachable!("a traces batch")
    };
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// A cell of an expected row: a number (compared within 1e-9, relative) or text.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    N(f64),
    T(String),
}

fn n(v: impl Into<f64>) -> Cell {
    Cell::N(v.into())
}

fn t(v: &str) -> Cell {
    Cell::T(v.to_owned())
}

/// What a panel must return: the columns compared, the rows, and whether their order matters.
struct Expected {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
    ordered: bool,
}

fn percentile(sorted: &[f64], level: f64) -> f64 {
    let at = level * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

fn bucket_of(start_ns: i64, interval_s: i64) -> f64 {
    (start_ns.div_euclid(1_000_000_000).div_euclid(interval_s) * interval_s) as f64
}

/// The expected result of every SQL panel, by title, for the calls `selected` and the
/// anomalies the store reported for them.
fn expectations(
    calls: &[&Call],
    anomalies: &[J],
    interval_s: i64,
) -> BTreeMap<&'static str, Expected> {
    let total = |f: &dyn Fn(&Call) -> f64| calls.iter().map(|c| f(c)).sum::<f64>();
    let count = calls.len() as f64;
    let errors = calls.iter().filter(|c| c.error).count() as f64;
    let one = |v: f64| Expected {
        columns: vec!["value"],
        rows: vec![vec![n(v)]],
        ordered: true,
    };
    let mut e = BTreeMap::new();
    e.insert("Model calls", one(count));
    e.insert("Input tokens", one(total(&|c| c.input as f64)));
    e.insert("Output tokens", one(total(&|c| c.output as f64)));
    e.insert("Cost", one(total(&|c| c.cost)));
    e.insert("Error rate", one(errors / count.max(1.0)));

    // Per time bucket.
    let mut buckets: BTreeMap<i64, Vec<&Call>> = BTreeMap::new();
    for c in calls {
        buckets
            .entry(bucket_of(c.start_ns, interval_s) as i64)
            .or_default()
            .push(c);
    }
    let by_bucket_and = |value: &dyn Fn(&[&Call]) -> f64| -> Vec<Vec<Cell>> {
        let mut rows = Vec::new();
        for (b, cs) in &buckets {
            let models: BTreeSet<&str> = cs.iter().map(|c| c.model).collect();
            for m in models {
                let of: Vec<&Call> = cs.iter().copied().filter(|c| c.model == m).collect();
                rows.push(vec![n(*b as f64), t(m), n(value(&of))]);
            }
        }
        rows
    };
    e.insert(
        "Model calls by model",
        Expected {
            columns: vec!["time", "model", "value"],
            rows: by_bucket_and(&|cs| cs.len() as f64),
            ordered: false,
        },
    );
    e.insert(
        "Cost by model",
        Expected {
            columns: vec!["time", "model", "value"],
            rows: by_bucket_and(&|cs| cs.iter().map(|c| c.cost).sum()),
            ordered: false,
        },
    );
    let per_bucket = |f: &dyn Fn(&[&Call]) -> Vec<Cell>| -> Vec<Vec<Cell>> {
        buckets
            .iter()
            .map(|(b, cs)| {
                let mut row = vec![n(*b as f64)];
                row.extend(f(cs));
                row
            })
            .collect()
    };
    e.insert(
        "Tokens",
        Expected {
            columns: vec!["time", "input", "output"],
            rows: per_bucket(&|cs| {
                vec![
                    n(cs.iter().map(|c| c.input as f64).sum::<f64>()),
                    n(cs.iter().map(|c| c.output as f64).sum::<f64>()),
                ]
            }),
            ordered: true,
        },
    );
    e.insert(
        "Latency percentiles",
        Expected {
            columns: vec!["time", "p50", "p95", "p99"],
            rows: per_bucket(&|cs| {
                let mut d: Vec<f64> = cs.iter().map(|c| c.duration_ns as f64 / 1e9).collect();
                d.sort_by(f64::total_cmp);
                [0.5, 0.95, 0.99].map(|q| n(percentile(&d, q))).to_vec()
            }),
            ordered: true,
        },
    );
    e.insert(
        "Error rate over time",
        Expected {
            columns: vec!["time", "value"],
            rows: per_bucket(&|cs| {
                vec![n(
                    cs.iter().filter(|c| c.error).count() as f64 / cs.len() as f64
                )]
            }),
            ordered: true,
        },
    );

    // Tables, costliest first, ties by key.
    let group = |key: &dyn Fn(&Call) -> String, limit: usize| -> Vec<Vec<Cell>> {
        let mut groups: BTreeMap<String, (f64, f64, f64, f64)> = BTreeMap::new();
        for c in calls {
            let g = groups.entry(key(c)).or_default();
            g.0 += 1.0;
            g.1 += c.input as f64;
            g.2 += c.output as f64;
            g.3 += c.cost;
        }
        let mut rows: Vec<_> = groups.into_iter().collect();
        rows.sort_by(|a, b| b.1.3.total_cmp(&a.1.3).then(a.0.cmp(&b.0)));
        rows.into_iter()
            .take(limit)
            .map(|(k, (calls, i, o, cost))| vec![t(&k), n(calls), n(i), n(o), n(cost)])
            .collect()
    };
    for (title, key_column, key) in [
        (
            "Calls and cost by provider",
            "provider",
            &(|c: &Call| c.provider.to_owned()) as &dyn Fn(&Call) -> String,
        ),
        ("Calls and cost by service", "service", &|c: &Call| {
            c.service.to_owned()
        }),
        ("Calls and cost by model", "model", &|c: &Call| {
            c.model.to_owned()
        }),
        ("Top users by cost", "user_id", &|c: &Call| c.user.clone()),
    ] {
        e.insert(
            title,
            Expected {
                columns: vec![
                    key_column,
                    "calls",
                    "input_tokens",
                    "output_tokens",
                    "cost_usd",
                ],
                rows: group(key, 20),
                ordered: true,
            },
        );
    }
    let mut by_trace: Vec<&&Call> = calls.iter().collect();
    by_trace.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then(trace_hex(a.trace).cmp(&trace_hex(b.trace)))
    });
    e.insert(
        "Top traces by cost",
        Expected {
            columns: vec!["trace_id", "calls", "cost_usd"],
            rows: by_trace
                .iter()
                .take(20)
                .map(|c| vec![t(&trace_hex(c.trace)), n(1.0), n(c.cost)])
                .collect(),
            ordered: true,
        },
    );

    // Anomalies, as the API reported them (newest first).
    let mut kinds: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for a in anomalies {
        let ns = time_ns(a["time"].as_str().expect("anomaly time"));
        *kinds
            .entry((
                bucket_of(ns, interval_s) as i64,
                a["kind"].as_str().expect("kind").to_owned(),
            ))
            .or_default() += 1.0;
    }
    e.insert(
        "Anomalies by kind",
        Expected {
            columns: vec!["time", "kind", "value"],
            rows: kinds
                .into_iter()
                .map(|((b, k), v)| vec![n(b as f64), t(&k), n(v)])
                .collect(),
            ordered: false,
        },
    );
    e.insert(
        "Recent anomalies",
        Expected {
            columns: vec!["kind", "service", "model", "value", "baseline", "trace_id"],
            rows: anomalies
                .iter()
                .map(|a| {
                    vec![
                        t(a["kind"].as_str().unwrap_or("")),
                        t(a["service"].as_str().unwrap_or("")),
                        t(a["model"].as_str().unwrap_or("")),
                        n(a["value"].as_f64().unwrap_or(f64::NAN)),
                        n(a["baseline"].as_f64().unwrap_or(f64::NAN)),
                        t(a["trace_id"].as_str().unwrap_or("")),
                    ]
                })
                .collect(),
            ordered: true,
        },
    );
    e
}

fn trace_hex(trace: u8) -> String {
    hex::encode([trace; 16])
}

fn time_ns(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .or_else(|_| humantime::parse_rfc3339(rfc3339))
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64
}

// ---------------------------------------------------------------------------------------------
// Running the queries.

/// A result: column names and rows of text (`None` for NULL).
#[derive(Debug)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

async fn clickhouse_query(c: &Collector, url: &str, database: &str, sql: &str) -> Table {
    let reply = c
        .request(
            Method::POST,
            format!("{url}/?database={database}&default_format=JSONCompact&output_format_json_quote_64bit_integers=0"),
            &[],
            sql.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{sql}\n{}",
        String::from_utf8_lossy(&reply.body)
    );
    let j = reply.json();
    let columns = j["meta"]
        .as_array()
        .expect("meta")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_owned())
        .collect();
    let rows = j["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| match v {
                    J::Null => None,
                    J::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    Table { columns, rows }
}

async fn postgres_query(client: &tokio_postgres::Client, sql: &str) -> Table {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n{e:?}"));
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            tokio_postgres::SimpleQueryMessage::RowDescription(d) => {
                columns = d.iter().map(|c| c.name().to_owned()).collect();
            }
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
            _ => {}
        }
    }
    Table { columns, rows }
}

/// A cell read back: epoch seconds for ClickHouse date-times, else the number or text.
fn read_cell(text: Option<&str>, want: &Cell) -> Cell {
    let text = text.unwrap_or("");
    match want {
        Cell::T(_) => Cell::T(text.to_owned()),
        Cell::N(_) => match text.parse::<f64>() {
            Ok(v) => Cell::N(v),
            Err(_) if text.len() == 19 && text.as_bytes()[10] == b' ' => {
                Cell::N((time_ns(&format!("{}Z", text.replace(' ', "T"))) / 1_000_000_000) as f64)
            }
            Err(_) => Cell::T(text.to_owned()),
        },
    }
}

fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::N(x), Cell::N(y)) => {
            (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

fn check(title: &str, what: &str, got: &Table, want: &Expected) {
    let at: Vec<usize> =
        want.columns
            .iter()
            .map(|c| {
                got.columns.iter().position(|g| g == c).unwrap_or_else(|| {
                    panic!("{what}: {title}: no column {c} in {:?}", got.columns)
                })
            })
            .collect();
    let mut rows: Vec<Vec<Cell>> = got
        .rows
        .iter()
        .map(|r| {
            at.iter()
                .zip(
                    &want
                        .rows
                        .first()
                        .cloned()
                        .unwrap_or_else(|| vec![t(""); at.len()]),
                )
                .map(|(i, w)| read_cell(r[*i].as_deref(), w))
                .collect()
        })
        .collect();
    let mut expected = want.rows.clone();
    if !want.ordered {
        let key = |r: &Vec<Cell>| format!("{r:?}");
        rows.sort_by_key(key);
        expected.sort_by_key(key);
    }
    let equal = rows.len() == expected.len()
        && rows
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)));
    assert!(
        equal,
        "{what}: {title}:\n got  {rows:?}\n want {expected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_panel_returns_the_known_load_on_clickhouse_and_postgres() {
    let Some(ch_url) = service_url("LLMSCOPE_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let Some(pg_url) = service_url("LLMSCOPE_TEST_POSTGRES_URL") else {
        return;
    };
    let suffix = std::process::id();
    let ch_db = format!("llmscope_grafana_{suffix}");
    let pg_db = format!("llmscope_grafana_{suffix}");
    let (admin, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    for statement in [
        format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"),
        format!("CREATE DATABASE {pg_db}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("fresh database");
    }
    let base = pg_url
        .rsplit_once('/')
        .map_or(pg_url.as_str(), |(b, _)| b)
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{endpoint: 127.0.0.1:0}}\n      http: {{endpoint: 127.0.0.1:0}}\n\
         processors:\n  normalize:\n  cost:\n  anomaly: {{warmup: 5}}\n\
         exporters:\n  clickhouse: {{url: {ch_url}, database: {ch_db}}}\n  postgres: {{url: {base}/{pg_db}}}\n\
         extensions:\n  api: {{endpoint: 127.0.0.1:0, store: postgres}}\n\
         service:\n  extensions: [api]\n  pipelines:\n\
         \x20   traces: {{receivers: [otlp], processors: [normalize, cost, anomaly], exporters: [clickhouse, postgres]}}\n"
    );
    let config = llmscope::config::Config::parse("grafana.yaml", &text, &|_| None).expect("config");
    let c = Collector::start_with(config, dir).await;

    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let calls = load(now_ns - 30 * 60 * 1_000_000_000);
    for service in ["chat-api", "batch"] {
        let reply = c
            .post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                request(&calls, service),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Both stores hold every call, and the anomaly processor saw the spike.
    let anomalies = c
        .eventually("/api/v1/anomalies?limit=100", |a| {
            a["anomalies"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    c.eventually("/api/v1/traces?limit=100", |t| {
        t["traces"].as_array().is_some_and(|t| t.len() == CALLS)
    })
    .await;
    let mut stored = 0;
    for _ in 0..300 {
        let t = clickhouse_query(
            &c,
            &ch_url,
            &ch_db,
            "SELECT (SELECT count() FROM spans) + (SELECT count() FROM anomalies) AS n",
        )
        .await;
        stored = t.rows[0][0].as_deref().unwrap_or("0").parse().unwrap_or(0);
        if stored == CALLS + anomalies["anomalies"].as_array().map_or(0, Vec::len) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anomalies = anomalies["anomalies"]
        .as_array()
        .expect("anomalies")
        .clone();
    assert!(
        anomalies.iter().any(|a| a["kind"] == "latency"),
        "{anomalies:?}"
    );
    assert_eq!(stored, CALLS + anomalies.len(), "ClickHouse has every row");

    // The dashboards read PostgreSQL as the read-only role of sql/postgres/grafana_reader.sql.
    let (owner, connection) =
        tokio_postgres::connect(&format!("{base}/{pg_db}"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let grants = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sql/postgres/grafana_reader.sql"),
    )
    .expect("grants");
    owner.batch_execute(&grants).await.expect("grants apply");
    let (scheme, rest) = base.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let reader_url = format!("{scheme}://grafana_reader@{host}/{pg_db}");
    let (reader, connection) = tokio_postgres::connect(&reader_url, tokio_postgres::NoTls)
        .await
        .expect("the reader connects");
    tokio::spawn(connection);
    reader
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .expect("timezone");
    let secret = reader.simple_query("SELECT * FROM api_keys").await;
    let denied = secret.as_ref().err().and_then(|e| e.code()).cloned();
    assert_eq!(
        denied,
        Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "the reader must not see API keys: {secret:?}"
    );
    let write = reader.simple_query("DELETE FROM spans").await;
    assert!(write.is_err(), "the reader cannot write");

    // The ClickHouse grants parse on the real engine.
    let ch_grants = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sql/clickhouse/grafana_reader.sql"),
    )
    .expect("grants");
    let statements: Vec<String> = ch_grants
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(statements.len() >= 3);
    for s in &statements {
        clickhouse_query(&c, &ch_url, &ch_db, &format!("EXPLAIN AST {s}")).await;
    }

    let range = Range {
        from_ns: now_ns - 3600 * 1_000_000_000,
        to_ns: now_ns + 60 * 1_000_000_000,
        interval_s: 60,
    };
    let all = dashboards();
    let selections: [(&str, Selection); 2] = [
        ("All", Selection::All),
        (
            "service chat-api",
            Selection::Values(vec!["chat-api".into()]),
        ),
    ];
    for (what, service) in selections {
        let selected: Vec<&Call> = calls
            .iter()
            .filter(|c| match &service {
                Selection::All => true,
                Selection::Values(v) => v.iter().any(|s| s == c.service),
            })
            .collect();
        let seen: Vec<J> = anomalies
            .iter()
            .filter(|a| match &service {
                Selection::All => true,
                Selection::Values(v) => v.iter().any(|s| a["service"] == s.as_str()),
            })
            .cloned()
            .collect();
        let want = expectations(&selected, &seen, range.interval_s);
        let variables = [
            ("project", Selection::Values(vec!["default".into()]), false),
            ("service", service.clone(), true),
            ("model", Selection::All, true),
            ("provider", Selection::All, true),
        ];
        for (file, flavour) in [
            ("llm-usage-clickhouse.json", Flavour::ClickHouse),
            ("llm-usage-postgres.json", Flavour::Postgres),
        ] {
            let d = &all[file];
            let mut checked = BTreeSet::new();
            for (title, _, targets) in panels(d) {
                let sql = targets[0]["rawSql"].as_str().expect("rawSql");
                let sql = expand_sql(sql, flavour, &range, &variables);
                let got = match flavour {
                    Flavour::ClickHouse => clickhouse_query(&c, &ch_url, &ch_db, &sql).await,
                    Flavour::Postgres => postgres_query(&reader, &sql).await,
                };
                let expected = want
                    .get(title.as_str())
                    .unwrap_or_else(|| panic!("{file}: no expectation for the panel {title}"));
                check(&title, &format!("{file}, {what}"), &got, expected);
                checked.insert(title);
            }
            assert_eq!(
                checked.len(),
                want.len(),
                "{file}: every expectation is a panel"
            );
            // The variables' own queries run too, and list what was loaded.
            for v in d["templating"]["list"].as_array().expect("variables") {
                let Some(q) = v["query"].as_str().filter(|_| v["type"] == "query") else {
                    continue;
                };
                let sql = expand_sql(q, flavour, &range, &variables);
                let got = match flavour {
                    Flavour::ClickHouse => clickhouse_query(&c, &ch_url, &ch_db, &sql).await,
                    Flavour::Postgres => postgres_query(&reader, &sql).await,
                };
                let values: Vec<_> = got.rows.iter().filter_map(|r| r[0].clone()).collect();
                let wanted: Vec<String> = match v["name"].as_str() {
                    Some("project") => vec!["default".into()],
                    Some("service") => vec!["batch".into(), "chat-api".into()],
                    Some("model") => vec!["claude-sonnet-4".into(), "gpt-4o".into()],
                    Some("provider") => vec!["anthropic".into(), "openai".into()],
                    other => panic!("{file}: unexpected variable {other:?}"),
                };
                assert_eq!(values, wanted, "{file}: variable {}", v["name"]);
            }
        }
    }

    assert!(c.stop().await);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"))
        .await;
    let _ = clickhouse::Client::default()
        .with_url(&ch_url)
        .query(&format!("DROP DATABASE IF EXISTS {ch_db}"))
        .execute()
        .await;
}

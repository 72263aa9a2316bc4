//! The collector's own counters (items received, refused, exported and dropped, by component
//! and reason) and gauges (read when rendered, such as queue bytes), each defined once in
//! [`metrics`] with its help and labels. Labels stay low-cardinality (component ids, signals,
//! reasons). Rendered in the Prometheus text format at `/metrics` by the `prometheus` crate's
//! encoder; counting stays a single atomic add, with no registry lookup on the hot path.

pub mod metrics;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Whether a metric counts up or is read when rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// The definition of one metric (see [`metrics`]).
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// The label names, in the order the labels are given.
    pub labels: &'static [&'static str],
}

impl Metric {
    fn check(&self, kind: Kind, labels: &[(&str, &str)]) {
        debug_assert_eq!(self.kind, kind, "{} is a {:?}", self.name, self.kind);
        debug_assert!(
            labels
                .iter()
                .map(|(k, _)| *k)
                .eq(self.labels.iter().copied()),
            "{} takes the labels {:?}",
            self.name,
            self.labels
        );
    }
}

/// Counter cells by metric and rendered labels.
type Cells = BTreeMap<(&'static str, String), (&'static Metric, Arc<AtomicU64>)>;

/// A gauge's definition, labels and how to read its current value.
type GaugeCell = (
    &'static Metric,
    Vec<(String, String)>,
    Arc<dyn Fn() -> u64 + Send + Sync>,
);

/// Metric families kept elsewhere (the GenAI usage metrics), rendered after the collector's
/// own at each scrape.
pub trait Families: Send + Sync {
    fn families(&self) -> Vec<prometheus::proto::MetricFamily>;
}

/// A set of counters and gauges; cheap to clone, shared by every component of one running
/// service.
#[derive(Clone, Default)]
pub struct Telemetry {
    counters: Arc<Mutex<Cells>>,
    gauges: Arc<Mutex<BTreeMap<(&'static str, String), GaugeCell>>>,
    sources: Arc<Mutex<Vec<Arc<dyn Families>>>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// A gauge as read by [`Telemetry::gauges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaugeSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: u64,
}

impl GaugeSample {
    /// The value of label `key`, if it has one.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One counter handle; increments are a single atomic add.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Telemetry {
    /// The counter `metric{labels}` (labels in the definition's order), created at zero on
    /// first use.
    pub fn counter(&self, metric: &'static Metric, labels: &[(&str, &str)]) -> Counter {
        metric.check(Kind::Counter, labels);
        let rendered = render_labels(labels);
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let (_, cell) = map
            .entry((metric.name, rendered))
            .or_insert_with(|| (metric, Arc::new(AtomicU64::new(0))));
        Counter(Arc::clone(cell))
    }

    /// Registers the gauge `metric{labels}`, whose value `read` gives at each rendering; a later
    /// registration of the same gauge replaces it.
    pub fn gauge(
        &self,
        metric: &'static Metric,
        labels: &[(&str, &str)],
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        metric.check(Kind::Gauge, labels);
        let owned = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            (metric.name, render_labels(labels)),
            (metric, owned, Arc::new(read)),
        );
    }

    /// Renders `source`'s families at every scrape too.
    pub fn add_families(&self, source: Arc<dyn Families>) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Every gauge of `metric`, read now.
    pub fn gauges(&self, metric: &Metric) -> Vec<GaugeSample> {
        let cells: Vec<_> = {
            let map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter(|((name, _), _)| *name == metric.name)
                .map(|(_, (_, labels, read))| (labels.clone(), Arc::clone(read)))
                .collect()
        };
        cells
            .into_iter()
            .map(|(labels, read)| GaugeSample {
                name: metric.name.to_owned(),
                labels,
                value: read(),
            })
            .collect()
    }

    /// The value of `metric{labels}`, zero if never counted.
    pub fn get(&self, metric: &'static Metric, labels: &[(&str, &str)]) -> u64 {
        self.counter(metric, labels).get()
    }

    /// The sum of `metric` over every label set counted so far.
    pub fn total(&self, metric: &Metric) -> u64 {
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((name, _), _)| *name == metric.name)
            .map(|(_, (_, cell))| cell.load(Ordering::Relaxed))
            .sum()
    }

    /// The value of the counter named `name` with exactly `labels`, zero if never counted (for
    /// tests, which check the names users see).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .find(|((n, rendered), _)| *n == name && *rendered == render_labels(labels))
            .map_or(0, |(_, (_, cell))| cell.load(Ordering::Relaxed))
    }

    /// Every counter and gauge in the Prometheus text exposition format, with its help,
    /// written by the `prometheus` crate's encoder from a registry holding these metrics.
    pub fn render(&self) -> String {
        let registry = prometheus::Registry::new();
        let exposition = Exposition::read(self);
        if let Err(e) = registry.register(Box::new(exposition)) {
            return format!("# metrics unavailable: {e}\n");
        }
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap_or_else(|e| format!("# metrics unavailable: {e}\n"))
    }
}

/// A metric's labels and value, read.
type Sample = (&'static Metric, Vec<(String, String)>, u64);

/// One reading of every metric, as a `prometheus` collector: descriptors from the definitions,
/// samples from the cells (gauges read now).
struct Exposition {
    descs: Vec<prometheus::core::Desc>,
    families: Vec<prometheus::proto::MetricFamily>,
}

impl Exposition {
    fn read(t: &Telemetry) -> Self {
        let counters: Vec<Sample> = {
            let map = t.counters.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|((_, rendered), (metric, value))| {
                    (
                        *metric,
                        parse_labels(metric, rendered),
                        value.load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        // Gauges are read outside the lock: a reader may take locks of its own.
        let gauges: Vec<_> = {
            let map = t.gauges.lock().unwrap_or_else(|p| p.into_inner());
            map.values()
                .map(|(metric, labels, read)| (*metric, labels.clone(), Arc::clone(read)))
                .collect()
        };
        let gauges = gauges.into_iter().map(|(m, l, read)| (m, l, read()));
        let mut by_name: BTreeMap<&'static str, (&'static Metric, Vec<prometheus::proto::Metric>)> =
            BTreeMap::new();
        for (metric, labels, value) in counters.into_iter().chain(gauges) {
            let pairs = labels
                .into_iter()
                .map(|(k, v)| {
                    let mut pair = prometheus::proto::LabelPair::default();
                    pair.set_name(k);
                    pair.set_value(v);
                    pair
                })
                .collect();
            let mut sample = prometheus::proto::Metric::from_label(pairs);
            match metric.kind {
                Kind::Counter => {
                    let mut c = prometheus::proto::Counter::default();
                    c.set_value(value as f64);
                    sample.set_counter(c);
                }
                Kind::Gauge => {
                    let mut g = prometheus::proto::Gauge::default();
                    g.set_value(value as f64);
                    sample.set_gauge(g);
                }
            }
            by_name
                .entry(metric.name)
                .or_insert_with(|| (metric, Vec::new()))
                .1
                .push(sample);
        }
        let mut descs = Vec::new();
        let mut families = Vec::new();
        let sources = t.sources.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for source in sources {
            for family in source.families() {
                if let Ok(desc) = prometheus::core::Desc::new(
                    family.name().to_owned(),
                    family.help().to_owned(),
                    Vec::new(),
                    Default::default(),
                ) {
                    descs.push(desc);
                }
                families.push(family);
            }
        }
        for (name, (metric, samples)) in by_name {
            let labels = metric.labels.iter().map(|l| (*l).to_owned()).collect();
            if let Ok(desc) = prometheus::core::Desc::new(
                name.to_owned(),
                metric.help.to_owned(),
                labels,
                Default::default(),
            ) {
                descs.push(desc);
            }
            let mut family = prometheus::proto::MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(metric.help.to_owned());
            family.set_field_type(match metric.kind {
                Kind::Counter => prometheus::proto::MetricType::COUNTER,
                Kind::Gauge => prometheus::proto::MetricType::GAUGE,
            });
            family.set_metric(samples);
            families.push(family);
        }
        Self { descs, families }
    }
}

impl prometheus::core::Collector for Exposition {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.families.clone()
    }
}

/// The labels of a counter cell, by its definition's names in order (values as counted).
fn parse_labels(metric: &Metric, rendered: &str) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(metric.labels.len());
    let mut rest = rendered;
    for (i, name) in metric.labels.iter().enumerate() {
        let Some(after) = rest.strip_prefix(&format!("{name}=\"")) else {
            break;
        };
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push(((*name).to_owned(), value));
        rest = &after[end..];
        if i + 1 < metric.labels.len() {
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    out
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut rendered = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            rendered.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(rendered, "{k}=\"{v}\"");
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    static X: Metric = Metric {
        name: "x_total",
        help: "Xs.",
        kind: Kind::Counter,
        labels: &["reason"],
    };
    static Y: Metric = Metric {
        name: "y_total",
        help: "Ys.",
        kind: Kind::Counter,
        labels: &[],
    };
    static Q: Metric = Metric {
        name: "q_bytes",
        help: "Q bytes.",
        kind: Kind::Gauge,
        labels: &["pipeline"],
    };

    #[test]
    fn counters_accumulate_and_render_as_prometheus_text() {
        let t = Telemetry::default();
        t.counter(&X, &[("reason", "bad \"json\"")]).add(2);
        t.counter(&X, &[("reason", "bad \"json\"")]).add(1);
        t.counter(&Y, &[]).add(5);
        assert_eq!(t.value("x_total", &[("reason", "bad \"json\"")]), 3);
        assert_eq!(t.get(&Y, &[]), 5);
        assert_eq!(
            t.render(),
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total{reason=\"bad \\\"json\\\"\"} 3\n# HELP y_total Ys.\n# TYPE y_total counter\ny_total 5\n"
        );
    }

    static Z: Metric = Metric {
        name: "z_total",
        help: "Zs, with a \\ and a\nsecond line.",
        kind: Kind::Counter,
        labels: &["a", "b"],
    };

    #[test]
    fn labels_survive_the_cells_and_the_encoder() {
        let t = Telemetry::default();
        t.counter(&Z, &[("a", "x,y=\"1\""), ("b", "back\\slash\nnew")])
            .add(4);
        assert_eq!(
            parse_labels(
                &Z,
                &render_labels(&[("a", "x,y=\"1\""), ("b", "back\\slash\nnew")])
            ),
            [
                ("a".to_owned(), "x,y=\"1\"".to_owned()),
                ("b".to_owned(), "back\\slash\nnew".to_owned())
            ]
        );
        assert_eq!(
            t.render(),
            "# HELP z_total Zs, with a \\\\ and a\\nsecond line.\n# TYPE z_total counter\nz_total{a=\"x,y=\\\"1\\\"\",b=\"back\\\\slash\\nnew\"} 4\n"
        );
    }

    #[test]
    fn every_definition_is_named_once_with_help() {
        let mut names: Vec<_> = metrics::ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), metrics::ALL.len());
        for m in metrics::ALL {
            assert!(
                m.name.starts_with("llmscope_") && !m.help.is_empty(),
                "{m:?}"
            );
            assert_eq!(m.name.ends_with("_total"), m.kind == Kind::Counter, "{m:?}");
        }
    }

    #[test]
    fn gauges_are_read_at_each_rendering() {
        let t = Telemetry::default();
        let cell = Arc::new(AtomicU64::new(7));
        let read = Arc::clone(&cell);
        t.gauge(&Q, &[("pipeline", "traces")], move || {
            read.load(Ordering::Relaxed)
        });
        assert_eq!(
            t.render(),
            "# HELP q_bytes Q bytes.\n# TYPE q_bytes gauge\nq_bytes{pipeline=\"traces\"} 7\n"
        );
        cell.store(9, Ordering::Relaxed);
        assert!(t.render().contains("q_bytes{pipeline=\"traces\"} 9\n"));
        assert_eq!(
            t.gauges(&Q),
            vec![GaugeSample {
                name: "q_bytes".into(),
                labels: vec![("pipeline".into(), "traces".into())],
                value: 9
            }]
        );
        assert!(t.gauges(&X).is_empty());
    }
}

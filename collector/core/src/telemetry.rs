//! The collector's own counters (items received, refused, exported and dropped, by component
//! and reason) and gauges (read when rendered, such as queue bytes). Labels stay low-cardinality
//! (component ids, signals, reasons). Rendered in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counter cells by name and rendered labels.
type Cells = BTreeMap<(String, String), Arc<AtomicU64>>;

/// A gauge's labels and how to read its current value.
type GaugeCell = (Vec<(String, String)>, Arc<dyn Fn() -> u64 + Send + Sync>);

/// A set of counters and gauges; cheap to clone, shared by every component of one running
/// service.
#[derive(Clone, Default)]
pub struct Telemetry {
    counters: Arc<Mutex<Cells>>,
    gauges: Arc<Mutex<BTreeMap<(String, String), GaugeCell>>>,
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
    /// The counter `name{labels}`, created at zero on first use.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Counter {
        let rendered = render_labels(labels);
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let cell = map
            .entry((name.to_owned(), rendered))
            .or_insert_with(|| Arc::new(AtomicU64::new(0)));
        Counter(Arc::clone(cell))
    }

    /// Registers the gauge `name{labels}`, whose value `read` gives at each rendering; a later
    /// registration of the same gauge replaces it.
    pub fn gauge(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        let owned = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            (name.to_owned(), render_labels(labels)),
            (owned, Arc::new(read)),
        );
    }

    /// Every gauge whose name starts with `prefix`, read now.
    pub fn gauges(&self, prefix: &str) -> Vec<GaugeSample> {
        let cells: Vec<_> = {
            let map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter(|((name, _), _)| name.starts_with(prefix))
                .map(|((name, _), (labels, read))| (name.clone(), labels.clone(), Arc::clone(read)))
                .collect()
        };
        cells
            .into_iter()
            .map(|(name, labels, read)| GaugeSample {
                name,
                labels,
                value: read(),
            })
            .collect()
    }

    /// The value of `name{labels}`, zero if never counted.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counter(name, labels).get()
    }

    /// Every counter and gauge in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let counters: Vec<_> = {
            let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|(key, value)| (key.clone(), value.load(Ordering::Relaxed)))
                .collect()
        };
        // Gauges are read outside the lock: a reader may take locks of its own.
        let gauges: Vec<_> = {
            let map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|(k, (_, read))| (k.clone(), Arc::clone(read)))
                .collect()
        };
        let gauges: Vec<_> = gauges.into_iter().map(|(k, g)| (k, g())).collect();
        let mut out = String::new();
        render_family(&mut out, "counter", &counters);
        render_family(&mut out, "gauge", &gauges);
        out
    }
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

fn render_family(out: &mut String, kind: &str, samples: &[((String, String), u64)]) {
    let mut last = "";
    for ((name, labels), value) in samples {
        if name != last {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            last = name;
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_render_as_prometheus_text() {
        let t = Telemetry::default();
        t.counter("x_total", &[("reason", "bad \"json\"")]).add(2);
        t.counter("x_total", &[("reason", "bad \"json\"")]).add(1);
        t.counter("y_total", &[]).add(5);
        assert_eq!(t.value("x_total", &[("reason", "bad \"json\"")]), 3);
        assert_eq!(
            t.render(),
            "# TYPE x_total counter\nx_total{reason=\"bad \\\"json\\\"\"} 3\n# TYPE y_total counter\ny_total 5\n"
        );
    }

    #[test]
    fn gauges_are_read_at_each_rendering() {
        let t = Telemetry::default();
        let cell = Arc::new(AtomicU64::new(7));
        let read = Arc::clone(&cell);
        t.gauge("q_bytes", &[("pipeline", "traces")], move || {
            read.load(Ordering::Relaxed)
        });
        assert_eq!(
            t.render(),
            "# TYPE q_bytes gauge\nq_bytes{pipeline=\"traces\"} 7\n"
        );
        cell.store(9, Ordering::Relaxed);
        assert!(t.render().contains("q_bytes{pipeline=\"traces\"} 9\n"));
        assert_eq!(
            t.gauges("q_"),
            vec![GaugeSample {
                name: "q_bytes".into(),
                labels: vec![("pipeline".into(), "traces".into())],
                value: 9
            }]
        );
        assert!(t.gauges("other_").is_empty());
    }
}

//! The collector's own counters: items received, refused, exported and dropped, by component
//! and reason. Labels stay low-cardinality (component ids, signals, reasons). Rendered in the
//! Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counter cells by name and rendered labels.
type Cells = BTreeMap<(String, String), Arc<AtomicU64>>;

/// A set of counters; cheap to clone, shared by every component of one running service.
#[derive(Clone, Default)]
pub struct Telemetry {
    counters: Arc<Mutex<Cells>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
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
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let cell = map
            .entry((name.to_owned(), rendered))
            .or_insert_with(|| Arc::new(AtomicU64::new(0)));
        Counter(Arc::clone(cell))
    }

    /// The value of `name{labels}`, zero if never counted.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counter(name, labels).get()
    }

    /// Every counter in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in map.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let value = value.load(Ordering::Relaxed);
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
        out
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
}

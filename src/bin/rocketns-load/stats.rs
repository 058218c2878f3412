//! What a run measured: an HDR histogram of latencies, the ok count, the
//! errors by kind, and their human and JSON forms.

use hdrhistogram::Histogram;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Highest latency the histogram holds; anything above is clamped to it.
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// Percentiles of the latency curve in the JSON line, for the report's plot.
const CURVE_PERCENTILES: &[f64] = &[
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

pub struct Stats {
    hist: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Lookups: connections that had a verified reply in the window.
    pub connections_served: Option<usize>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            hist: Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            connections_served: None,
        }
    }
}

impl Stats {
    /// One verified response inside the measured window.
    pub fn ok(&mut self, latency: Duration) {
        self.ok += 1;
        let ns = (latency.as_nanos() as u64).clamp(1, LATENCY_NS_MAX);
        self.hist.saturating_record(ns);
    }

    pub fn error(&mut self, kind: &str) {
        self.errors_n(kind, 1);
    }

    pub fn errors_n(&mut self, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        match self.errors.get_mut(kind) {
            Some(count) => *count += n,
            None => {
                self.errors.insert(kind.to_string(), n);
            }
        }
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at quantile `q`, in µs (0 when nothing was measured).
    pub fn us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        round1(self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn max_us(&self) -> f64 {
        round1(self.hist.max() as f64 / 1000.0)
    }

    /// Adds this summary's keys to `out`, each name prefixed with `prefix`.
    pub fn to_json(&self, prefix: &str, window: Duration, out: &mut Map<String, Value>) {
        let secs = window.as_secs_f64().max(1e-9);
        let mut put = |k: &str, v: Value| {
            out.insert(format!("{prefix}{k}"), v);
        };
        put("ok_total", self.ok.into());
        put("throughput_per_s", round1(self.ok as f64 / secs).into());
        put("latency_us_p50", self.us(0.50).into());
        put("latency_us_p90", self.us(0.90).into());
        put("latency_us_p99", self.us(0.99).into());
        put("latency_us_p99_9", self.us(0.999).into());
        put("latency_us_max", self.max_us().into());
        put(
            "latency_us_mean",
            round1(if self.hist.is_empty() {
                0.0
            } else {
                self.hist.mean() / 1000.0
            })
            .into(),
        );
        let curve: Vec<Value> = CURVE_PERCENTILES
            .iter()
            .map(|&p| Value::from(vec![p, self.us(p / 100.0)]))
            .collect();
        put("latency_us_percentiles", curve.into());
        put("errors_total", self.errors_total().into());
        let kinds: Map<String, Value> = self
            .errors
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        put("errors_by_kind", Value::Object(kinds));
        if let Some(n) = self.connections_served {
            put("connections_served", n.into());
        }
    }

    /// Human lines, indented, named `what`; the rate when `window` is given.
    pub fn human(&self, what: &str, window: Option<Duration>) -> String {
        let rate = match window {
            Some(w) => {
                let secs = w.as_secs_f64().max(1e-9);
                format!(" in {secs:.1} s = {:.1}/s", self.ok as f64 / secs)
            }
            None => String::new(),
        };
        let mut s = format!(
            "{what}: {} ok{rate}\n  latency us: p50 {} p90 {} p99 {} p99.9 {} max {}\n  errors: {}",
            self.ok,
            self.us(0.50),
            self.us(0.90),
            self.us(0.99),
            self.us(0.999),
            self.max_us(),
            self.errors_total()
        );
        for (k, v) in &self.errors {
            s.push_str(&format!("\n    {k}: {v}"));
        }
        if let Some(n) = self.connections_served {
            s.push_str(&format!("\n  connections served: {n}"));
        }
        s
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

//! Per-ScaledObject series: `celery_scaler_metric_value`, `celery_scaler_active` and
//! `celery_scaler_decision_slots{component}`, one set per `{namespace, scaled_object}`.
//!
//! The latest answer of each ScaledObject is kept with an expiry (the sampler's idle expiry,
//! renewed by every answer) and the series are built from it when scraped, so that a
//! ScaledObject nobody asked about for that long (deleted, renamed, or its watch set
//! expired) leaves nothing behind, and a ScaledObject whose metadata changed shows only the
//! components of its latest answer. Each ScaledObject reserves its series in the series
//! budget ([`super::budget`]); one that does not fit is not exported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::budget::SeriesBudget;
use crate::policy::Decision;

const METRIC_VALUE: &str = "celery_scaler_metric_value";
const ACTIVE: &str = "celery_scaler_active";
const DECISION_SLOTS: &str = "celery_scaler_decision_slots";

/// Expired entries are swept at most this often while answering (and at every scrape).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One ScaledObject's latest answer.
struct Entry {
    expires: Instant,
    value: f64,
    active: bool,
    breakdown: Vec<(&'static str, f64)>,
    /// Series reserved in the budget: 2 + components.
    reserved: usize,
}

struct Objects {
    entries: HashMap<(String, String), Entry>,
    last_sweep: Option<Instant>,
    budget: Arc<SeriesBudget>,
}

impl Objects {
    /// Drops expired entries and gives their series back.
    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = e.expires > now;
            if !keep {
                freed += e.reserved;
            }
            keep
        });
        if freed > 0 {
            self.budget.release(freed);
        }
        self.last_sweep = Some(now);
    }
}

/// The collector of the three per-ScaledObject families.
#[derive(Clone)]
pub struct ObjectSeries {
    descs: Arc<[Desc; 3]>,
    objects: Arc<Mutex<Objects>>,
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|l| l.to_string()).collect()
}

/// Families a new ScaledObject adds series to, for a decision with `components` parts.
fn families(components: usize) -> [(&'static str, usize); 3] {
    [(METRIC_VALUE, 1), (ACTIVE, 1), (DECISION_SLOTS, components)]
}

impl ObjectSeries {
    /// The families, counting their series in `budget`.
    pub(crate) fn new(budget: Arc<SeriesBudget>) -> Self {
        let so = ["namespace", "scaled_object"];
        // Names written out: deploy/tools/checks.py finds registered names in the source.
        let descs = [
            Desc::new(
                "celery_scaler_metric_value".into(),
                "Latest metric value answered for a ScaledObject.".into(),
                labels(&so),
                HashMap::new(),
            ),
            Desc::new(
                "celery_scaler_active".into(),
                "Latest activation answered for a ScaledObject (1 active, 0 idle).".into(),
                labels(&so),
                HashMap::new(),
            ),
            Desc::new(
                "celery_scaler_decision_slots".into(),
                "Breakdown of the latest metric value of a ScaledObject by component.".into(),
                labels(&["namespace", "scaled_object", "component"]),
                HashMap::new(),
            ),
        ]
        .map(|d| d.expect("valid metric description"));
        Self {
            descs: Arc::new(descs),
            objects: Arc::new(Mutex::new(Objects {
                entries: HashMap::new(),
                last_sweep: None,
                budget,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the latest answer for one ScaledObject; its series live until `expiry`
    /// passes without another answer.
    pub fn record(&self, namespace: &str, name: &str, decision: &Decision, expiry: Duration) {
        let now = Instant::now();
        let mut objects = self.lock();
        if objects
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            objects.sweep(now);
        }
        let mut breakdown: Vec<(&'static str, f64)> = decision
            .breakdown
            .iter()
            .map(|c| (c.component, c.value))
            .collect();
        let key = (namespace.to_string(), name.to_string());
        let budget = objects.budget.clone();
        let reserved = match objects.entries.get(&key) {
            Some(e) => grow(&budget, e.reserved, &mut breakdown, namespace, name),
            None => {
                let need = 2 + breakdown.len();
                if !budget.try_reserve(need) {
                    // Expired entries may still hold room: sweep, then reserve or refuse.
                    objects.sweep(now);
                    let sample = format!("{namespace}/{name}");
                    if !budget.reserve(&families(breakdown.len()), &sample) {
                        return;
                    }
                }
                need
            }
        };
        objects.entries.insert(
            key,
            Entry {
                expires: now + expiry,
                value: decision.metric_value,
                active: decision.active,
                breakdown,
                reserved,
            },
        );
    }
}

/// An existing ScaledObject's reservation for a new `breakdown`: grown when the breakdown
/// has more components (cut to what fits when refused), kept otherwise.
fn grow(
    budget: &SeriesBudget,
    reserved: usize,
    breakdown: &mut Vec<(&'static str, f64)>,
    namespace: &str,
    name: &str,
) -> usize {
    let need = 2 + breakdown.len();
    if need <= reserved {
        return reserved;
    }
    let more = need - reserved;
    if budget.reserve(&[(DECISION_SLOTS, more)], &format!("{namespace}/{name}")) {
        need
    } else {
        breakdown.truncate(reserved.saturating_sub(2));
        reserved
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels);
    m.set_gauge(g);
    m
}

fn family(desc: &Desc, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(desc.fq_name.clone());
    f.set_help(desc.help.clone());
    f.set_field_type(MetricType::GAUGE);
    f.set_metric(metrics);
    f
}

impl Collector for ObjectSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut objects = self.lock();
        objects.sweep(Instant::now());
        let mut entries: Vec<_> = objects.entries.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let (mut values, mut active, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for ((ns, so), e) in entries {
            let pair = || vec![label("namespace", ns), label("scaled_object", so)];
            values.push(gauge(pair(), e.value));
            active.push(gauge(pair(), if e.active { 1.0 } else { 0.0 }));
            for (component, v) in &e.breakdown {
                // Label pairs sorted by name, as the prometheus crate's own vectors do.
                let labels = vec![
                    label("component", component),
                    label("namespace", ns),
                    label("scaled_object", so),
                ];
                slots.push(gauge(labels, *v));
            }
        }
        vec![
            family(&self.descs[0], values),
            family(&self.descs[1], active),
            family(&self.descs[2], slots),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_families_are_the_described_ones() {
        let budget = SeriesBudget::new(10, &prometheus::Registry::new()).unwrap();
        let s = ObjectSeries::new(Arc::new(budget));
        let names: Vec<&str> = s.descs.iter().map(|d| d.fq_name.as_str()).collect();
        let families: Vec<&str> = families(1).iter().map(|(f, _)| *f).collect();
        assert_eq!(names, families);
    }
}

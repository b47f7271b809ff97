//! The series budget: one cap (`max_series`) on the label sets that requests and broker
//! data can create (per-ScaledObject and per-queue series), so that no tenant can grow
//! `/metrics` and the scaler's memory without bound.
//!
//! A new label set reserves the series it may create before any of them exists, and gives
//! them back when it is removed. When a reservation would pass the cap it is refused: the
//! series are not created, `celery_scaler_series_refused_total{family}` counts them, and a
//! warning is logged at most once per [`WARN_INTERVAL`] per family. Fixed series (one per
//! broker, per RPC, per process) are not counted: they are bounded by other limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tracing::warn;

/// Default cap on per-ScaledObject and per-queue series.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// A refusal is logged at most this often per family.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Characters of a refused label set quoted in the warning.
const SAMPLE_CHARS: usize = 64;

/// Counts reserved series against a cap.
pub struct SeriesBudget {
    cap: AtomicUsize,
    used: AtomicUsize,
    warned: Mutex<HashMap<&'static str, Instant>>,
    refused: IntCounterVec,
    reserved: IntGauge,
}

impl SeriesBudget {
    /// A budget of `cap` series whose two metrics are registered in `registry`.
    pub(crate) fn new(cap: usize, registry: &Registry) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new(
                "celery_scaler_series_refused_total",
                "Series not created because the series cap (max_series) was reached, \
                 by metric family.",
            ),
            &["family"],
        )?;
        let reserved = IntGauge::with_opts(Opts::new(
            "celery_scaler_series_reserved",
            "Per-ScaledObject and per-queue series counted against the series cap (max_series).",
        ))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(reserved.clone()))?;
        Ok(Self {
            cap: AtomicUsize::new(cap),
            used: AtomicUsize::new(0),
            warned: Mutex::new(HashMap::new()),
            refused,
            reserved,
        })
    }

    /// Sets the cap (series already reserved stay; new ones wait until they fit).
    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::SeqCst);
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::SeqCst)
    }

    /// Series reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Reserves `n` series if they fit, without counting or logging a refusal (for a caller
    /// that can free room and then [`reserve`](Self::reserve)).
    pub fn try_reserve(&self, n: usize) -> bool {
        let cap = self.cap();
        let fits = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|total| *total <= cap)
            })
            .is_ok();
        if fits {
            self.reserved
                .set(i64::try_from(self.used()).unwrap_or(i64::MAX));
        }
        fits
    }

    /// Reserves the series of one new label set: `families` lists each metric family it
    /// adds series to and how many. `sample` names the label set (quoted truncated in the
    /// warning). Returns false, counts and warns when the cap would be passed.
    pub fn reserve(&self, families: &[(&'static str, usize)], sample: &str) -> bool {
        let n: usize = families.iter().map(|(_, k)| k).sum();
        let fits = self.try_reserve(n);
        if !fits {
            self.refused(families, sample, self.cap());
        }
        fits
    }

    /// Gives back `n` reserved series.
    pub fn release(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(n))
            });
        self.reserved
            .set(i64::try_from(self.used()).unwrap_or(i64::MAX));
    }

    fn refused(&self, families: &[(&'static str, usize)], sample: &str, cap: usize) {
        for (family, k) in families {
            self.refused.with_label_values(&[family]).inc_by(*k as u64);
        }
        let Some((family, _)) = families.first() else {
            return;
        };
        let now = Instant::now();
        let due = {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            let due = warned
                .get(family)
                .is_none_or(|at| now.duration_since(*at) >= WARN_INTERVAL);
            if due {
                warned.insert(family, now);
            }
            due
        };
        if due {
            warn!(
                family,
                cap,
                sample = ?truncate(sample, SAMPLE_CHARS),
                "series cap reached: new series of this family are not created (raise max_series, or look for a client creating many ScaledObjects or queues); logged once per minute"
            );
        }
    }
}

/// The first `max` characters of `s`, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_cap_and_come_back_on_release() {
        let b = SeriesBudget::new(10, &Registry::new()).unwrap();
        assert!(b.reserve(&[("a", 4)], "x"));
        assert!(b.reserve(&[("a", 1), ("b", 5)], "y"));
        assert_eq!(b.used(), 10);
        let before = b.refused.with_label_values(&["unit_c"]).get();
        assert!(!b.reserve(&[("unit_c", 1)], "z"));
        assert_eq!(b.refused.with_label_values(&["unit_c"]).get(), before + 1);
        assert_eq!(b.used(), 10);
        b.release(4);
        assert!(b.reserve(&[("a", 3)], "x"));
        assert_eq!(b.used(), 9);
        b.release(100);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn samples_are_truncated_on_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééééé", 2), "éé…");
    }
}

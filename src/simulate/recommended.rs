//! The ScaledObject settings shipped in `deploy/keda/` for latency mode, as simulator input:
//! `pollingInterval` 15 s, `cooldownPeriod` 60 s, scale-up without a window by at most +32
//! pods or +100 % per 15 s, scale-down after a 60 s window by up to 100 % per 15 s. The bench runs
//! the library under them too (`docs/benchmarks/scaling.md`), and
//! `tests/recommended_settings.rs` fails if the manifests say otherwise.

use super::scenario::{Behavior, KedaSpec, RateKind, RatePolicy, Rules, Select};

/// `pollingInterval` of the shipped ScaledObjects, seconds.
pub const POLLING_INTERVAL: f64 = 15.0;
/// `cooldownPeriod` of the shipped ScaledObjects, seconds.
pub const COOLDOWN_PERIOD: f64 = 60.0;
/// `behavior.scaleDown.stabilizationWindowSeconds` of the shipped ScaledObjects.
pub const SCALE_DOWN_WINDOW: f64 = 60.0;

/// The HPA `behavior` of the shipped ScaledObjects.
pub fn behavior() -> Behavior {
    let rate = |kind, value| RatePolicy {
        kind,
        value,
        period: 15.0,
    };
    Behavior {
        scale_up: Some(Rules {
            stabilization_window: Some(0.0),
            select_policy: Some(Select::Max),
            policies: Some(vec![
                rate(RateKind::Pods, 32.0),
                rate(RateKind::Percent, 100.0),
            ]),
        }),
        scale_down: Some(Rules {
            stabilization_window: Some(SCALE_DOWN_WINDOW),
            select_policy: Some(Select::Max),
            policies: Some(vec![rate(RateKind::Percent, 100.0)]),
        }),
    }
}

/// `keda` with the shipped settings in place of its timing and `behavior` (replica bounds,
/// HPA sync period, tolerance and push stay as the scenario sets them).
pub fn recommended(keda: &KedaSpec) -> KedaSpec {
    KedaSpec {
        polling_interval: POLLING_INTERVAL,
        cooldown_period: COOLDOWN_PERIOD,
        behavior: Some(behavior()),
        ..keda.clone()
    }
}

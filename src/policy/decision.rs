//! What a decision is: the metric value, the per-replica target, the activation flag and the
//! breakdown that explains the number. Shared by every mode of the policy.

use serde::Serialize;

/// One term of the decision: how much it contributed and where its input came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    /// Bounded label: `backlog`, `reserved`, `stale`.
    pub component: &'static str,
    pub value: f64,
    /// Which signal produced it (e.g. `llen`, `unacked`).
    pub source: &'static str,
}

/// What the scaler answers for one trigger.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// Finite, ≥ 0; the HPA divides it by `target` to get replicas.
    pub metric_value: f64,
    /// Finite, > 0.
    pub target: f64,
    /// Whether the workload should run at all (KEDA's 0↔1 decision).
    pub active: bool,
    pub breakdown: Vec<Component>,
}

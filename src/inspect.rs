//! `celery-scaler inspect`: what the scaler sees for one set of trigger metadata, and why it
//! decides what it decides. Runs the same [`Scaler`] code path as the gRPC service.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::json;

use crate::scaler::Evaluation;

/// Turns `KEY=VALUE` arguments into a metadata map; names the first malformed argument.
pub fn parse_pairs(pairs: &[String]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("--metadata {pair:?}: expected KEY=VALUE"));
        };
        if key.trim().is_empty() {
            return Err(format!("--metadata {pair:?}: empty key"));
        }
        if map
            .insert(key.trim().to_string(), value.to_string())
            .is_some()
        {
            return Err(format!("--metadata: key {:?} given twice", key.trim()));
        }
    }
    Ok(map)
}

/// The machine-readable report (`--json`).
pub fn to_json(e: &Evaluation) -> serde_json::Value {
    json!({
        "broker": e.view.broker,
        "sampled_at": e.view.sampled_at,
        "mode": e.settings.policy.mode_name(),
        "queues": e.view.queues,
        "decision": {
            "metric_name": e.settings.metric_name,
            "metric_value": e.decision.metric_value,
            "target": e.decision.target,
            "active": e.decision.active,
            "replicas_hint": replicas_hint(e),
            "breakdown": e.decision.breakdown,
        },
    })
}

/// What the HPA would ask for with this metric alone: ceil(metric / target).
fn replicas_hint(e: &Evaluation) -> u64 {
    (e.decision.metric_value / e.decision.target)
        .ceil()
        .max(0.0) as u64
}

/// The human-readable report.
pub fn to_text(e: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "broker {}  mode {}",
        e.view.broker,
        e.settings.policy.mode_name()
    );
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>10} {:>10}",
        "queue", "backlog", "reserved", "scheduled", "stale"
    );
    for q in &e.view.queues {
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>10} {:>10}",
            q.name, q.backlog, q.reserved, q.scheduled, q.stale
        );
    }
    let d = &e.decision;
    let parts: Vec<String> = d
        .breakdown
        .iter()
        .map(|c| format!("{} {} ({})", c.component, c.value, c.source))
        .collect();
    let _ = writeln!(
        out,
        "metric {} = {} (target {}, active {}) -> {} replica(s) by this metric",
        e.settings.metric_name,
        d.metric_value,
        d.target,
        d.active,
        replicas_hint(e)
    );
    let _ = writeln!(out, "because: {}", parts.join(" + "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_reject_malformed() {
        let m = parse_pairs(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert_eq!(m["c"], "");
        assert!(parse_pairs(&["novalue".into()]).is_err());
        assert!(parse_pairs(&["=v".into()]).is_err());
        assert!(parse_pairs(&["a=1".into(), "a=2".into()]).is_err());
    }
}

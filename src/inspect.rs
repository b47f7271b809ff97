//! `celery-scaler inspect`: what the scaler sees for one set of trigger metadata, and why it
//! decides what it decides. Runs the same [`Scaler`] code path as the gRPC service.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::json;

use crate::broker::{KeyKind, UnreadableKey};
use crate::policy::{latency, PolicySettings};
use crate::scaler::Evaluation;
use crate::signals::{Estimate, LiveSignals, Source, NO_ESTIMATE};
use crate::trigger::TriggerSettings;

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
        "queues": queues_json(e),
        "unreadable_keys": e.view.unreadable,
        "notes": trigger_notes(e),
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

/// One live estimate as `{"value": v, "source": s, "mode": m}`, or null.
fn estimate_json(e: Option<Estimate>) -> serde_json::Value {
    match e {
        Some(e) => json!({"value": e.value, "source": e.source.as_str(), "mode": mode_of(Some(e))}),
        None => serde_json::Value::Null,
    }
}

/// `exact` for keyspace-counted signals, `lower-bound` for rates known to under-count,
/// `estimated` for any other source, `none` without.
fn mode_of(e: Option<Estimate>) -> &'static str {
    e.map_or(NO_ESTIMATE, |e| e.mode.as_str())
}

/// What to do about a queue whose arrival rate is a lower bound (`None` otherwise).
pub fn unobservable_advice(l: &LiveSignals) -> Option<String> {
    l.arrival_rate.filter(Estimate::is_lower_bound).map(|_| {
        format!(
            "queue {}: the arrival rate is a lower bound (a fast worker keeps the queue empty \
             between samples and the broker has no keyspace notifications, so most tasks leave \
             no trace in Redis); enable `notify-keyspace-events Kl` on the broker, or set \
             `workerHostnames` on a trigger of this queue alone",
            l.name
        )
    })
}

/// What to do about a latency-mode trigger under early ack that cannot count its worker pods
/// (`None` otherwise): the tail margin then assumes the load of one pod, an upper bound.
pub fn early_ack_advice(settings: &TriggerSettings) -> Option<String> {
    let PolicySettings::Latency(l) = &settings.policy else {
        return None;
    };
    (!l.prefetch.acks_late && settings.watch.worker_hostnames.is_none()).then(|| {
        "acksLate is false (early ack): the waits in the pods' prefetch buffers set the tail \
         margin, which depends on how many worker pods share the load; without \
         `workerHostnames` the scaler cannot count them and sizes the margin for the worst \
         case, which costs pods. Set `workerHostnames` (or `acksLate: \"true\"` if the \
         workers run with task_acks_late)"
            .to_string()
    })
}

/// What to say when `workerHostnames` is set but no live worker heartbeat matches it
/// (`None` otherwise): normal while the Deployment is at zero, a typo in the pattern (or
/// workers started without `-E`/heartbeats) when pods are running.
pub fn hostnames_advice(settings: &TriggerSettings, live: &[LiveSignals]) -> Option<String> {
    let pattern = settings.watch.worker_hostnames.as_deref()?;
    live.iter().all(|l| l.workers.is_none()).then(|| {
        format!(
            "no live worker heartbeat matches workerHostnames {:?}: expected while the \
             Deployment is at zero; with worker pods running, check the pattern against their \
             hostnames (`celery@<pod name>`) and that they send heartbeats (no \
             `--without-heartbeat`)",
            pattern
        )
    })
}

/// The notes about the trigger as a whole.
fn trigger_notes(e: &Evaluation) -> Vec<String> {
    early_ack_advice(&e.settings)
        .into_iter()
        .chain(hostnames_advice(&e.settings, &e.live))
        .chain(waiting_at_zero(e))
        .collect()
}

/// What to say when listed tasks keep the trigger inactive under `podStartup` (`None`
/// otherwise): how old the oldest is and when its start is due.
fn waiting_at_zero(e: &Evaluation) -> Option<String> {
    let PolicySettings::Latency(l) = &e.settings.policy else {
        return None;
    };
    let listed: u64 = e.view.queues.iter().map(|q| q.backlog).sum();
    let tick = latency::cold::longest_tick(e.live.iter().map(|live| live.tick));
    let due = latency::cold::due_age(l.pod_startup, l.target_latency, tick)?;
    if e.decision.active || listed as f64 <= l.activation_list_length {
        return None;
    }
    let oldest = e
        .view
        .queues
        .iter()
        .zip(&e.live)
        .filter(|(q, _)| q.backlog > 0)
        .filter_map(|(_, live)| {
            live.wait
                .and_then(|w| w.usable())
                .map(|w| w + live.sampled_ago)
        })
        .fold(0.0, f64::max);
    Some(format!(
        "{listed} task(s) listed wait at zero (podStartup): the oldest is {oldest:.1} s old and, \
         with a pod up {startup} s after activation, still starts within targetLatency {t} s; \
         the trigger activates when it is {due:.1} s old, or sooner if more tasks come than \
         one pod starts at once",
        startup = l.pod_startup.unwrap_or(0.0),
        t = l.target_latency,
    ))
}

/// The per-queue report: the sampled counts plus each live signal with its source and mode.
fn queues_json(e: &Evaluation) -> serde_json::Value {
    let queues: Vec<serde_json::Value> = e
        .view
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mut v = json!(q);
            let l = e.live.get(i).cloned().unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("arrival_rate".into(), estimate_json(l.arrival_rate));
                obj.insert("dequeue_rate".into(), estimate_json(l.dequeue_rate));
                obj.insert("service_time".into(), estimate_json(l.service_time));
                obj.insert("service_time_p95".into(), estimate_json(l.service_time_p95));
                obj.insert("wait".into(), estimate_json(l.wait));
                obj.insert("running".into(), estimate_json(l.running));
                obj.insert("counting_mode".into(), json!(mode_of(l.arrival_rate)));
                if let Some(advice) = unobservable_advice(&l) {
                    obj.insert("advice".into(), json!(advice));
                }
            }
            v
        })
        .collect();
    serde_json::Value::Array(queues)
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
    let _ = writeln!(
        out,
        "{:<24} {:>16} {:>16} {:>16} {:>16} {:>16}",
        "live", "arrival/s", "dequeue/s", "service s", "wait s", "running"
    );
    for l in &e.live {
        let cell = |e: Option<Estimate>| match e {
            Some(e) if e.is_lower_bound() => format!("≥{:.2} {}", e.value, short(e.source)),
            Some(e) => format!("{:.2} {}", e.value, short(e.source)),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:>16} {:>16} {:>16} {:>16} {:>16}",
            l.name,
            cell(l.arrival_rate),
            cell(l.dequeue_rate),
            cell(l.service_time),
            cell(l.wait),
            cell(l.running)
        );
    }
    let advice = e.live.iter().filter_map(unobservable_advice);
    for advice in advice.chain(trigger_notes(e)) {
        let _ = writeln!(out, "note: {advice}");
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
    write_unreadable(&mut out, &e.view.unreadable);
    out
}

/// The keys the sample skipped for their type, with what that means for the numbers.
fn write_unreadable(out: &mut String, keys: &[UnreadableKey]) {
    for k in keys {
        let effect = match k.kind {
            KeyKind::Queue => "its backlog counts as 0",
            KeyKind::Unacked | KeyKind::UnackedIndex => "in-flight counts of this prefix are 0",
            KeyKind::Binding => "entries routed through this exchange are not counted",
        };
        let _ = writeln!(
            out,
            "unreadable key ({}, wrong type, skipped): {:?}: {effect}",
            k.kind.as_str(),
            k.key
        );
    }
}

/// A short tag for a source in the text table.
fn short(source: Source) -> &'static str {
    match source {
        Source::Keyspace => "(exact)",
        Source::Conservation => "(est)",
        Source::ListPosition => "(lpos)",
        Source::TailTag => "(tail)",
        Source::Heartbeat => "(hb)",
        Source::UnackedResidence | Source::UnackedOccupancy => "(unacked)",
        Source::Config => "(config)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_keys_are_listed_with_their_effect() {
        let mut out = String::new();
        write_unreadable(
            &mut out,
            &[
                UnreadableKey {
                    kind: KeyKind::UnackedIndex,
                    key: "unacked_index".into(),
                },
                UnreadableKey {
                    kind: KeyKind::Binding,
                    key: "_kombu.binding.x\n".into(),
                },
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains("unacked_index") && lines[0].contains("in-flight"));
        assert!(lines[1].contains("binding") && lines[1].contains("not counted"));
        let json = serde_json::to_value(&[UnreadableKey {
            kind: KeyKind::Unacked,
            key: "unacked".into(),
        }])
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"kind": "unacked", "key": "unacked"}])
        );
    }

    #[test]
    fn early_ack_without_worker_hostnames_is_advised() {
        let settings = |extra: &[(&str, &str)]| {
            let md: HashMap<String, String> = [
                ("address", "redis:6379"),
                ("mode", "latency"),
                ("concurrency", "4"),
                ("targetLatency", "30"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            crate::trigger::parse(&md, &crate::spec::NamedConnections::new()).unwrap()
        };
        // Celery's defaults (early ack) without worker hostnames: advised.
        let advice = early_ack_advice(&settings(&[])).expect("advice");
        assert!(advice.contains("workerHostnames"), "{advice}");
        assert!(early_ack_advice(&settings(&[("acksLate", "false")])).is_some());
        // Late ack, or the pods counted from heartbeats: nothing to advise.
        assert_eq!(early_ack_advice(&settings(&[("acksLate", "true")])), None);
        let named = settings(&[("workerHostnames", "celery@worker-*")]);
        assert_eq!(early_ack_advice(&named), None);
    }

    #[test]
    fn worker_hostnames_matching_no_live_worker_are_noted() {
        let md = |extra: Option<(&str, &str)>| -> HashMap<String, String> {
            [("address", "redis:6379")]
                .into_iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let parse = |m| crate::trigger::parse(&m, &crate::spec::NamedConnections::new()).unwrap();
        let named = parse(md(Some(("workerHostnames", "celery@worker-*"))));
        let mut live = vec![LiveSignals::default(), LiveSignals::default()];
        let note = hostnames_advice(&named, &live).expect("note");
        assert!(note.contains("celery@worker-*"), "{note}");
        // One queue with live workers counted: nothing to say; nor without the key.
        live[1].workers = Some(Estimate::new(2.0, Source::Heartbeat));
        assert_eq!(hostnames_advice(&named, &live), None);
        assert_eq!(
            hostnames_advice(&parse(md(None)), &[LiveSignals::default()]),
            None
        );
    }

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

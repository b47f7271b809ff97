//! What KEDA setting lets latency mode meet a target that only a fleet up from t = 0 meets:
//! the fewest pods kept warm between bursts (`minReplicaCount` alone, [`Hold::Warm`]), or
//! the fewest pods KEDA jumps to on the first task from a Deployment held at zero
//! (`idleReplicaCount` 0 + `minReplicaCount` K, [`Hold::Idle`]); and keda-redis' best run
//! under the same setting. The bench's "Where latency mode falls short" reports them
//! (`docs/simulate.md`, "Baselines").

use super::engine::simulate;
use super::error::SimError;
use super::outcome::{PolicyKind, PolicyRun, Signals};
use super::scenario::Scenario;
use super::summary::{summarize, Summary};
use super::{keda_grid, latency_settings};

/// How the `minReplicaCount` being searched is held while the trigger is not active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Always up: `minReplicaCount` K, no `idleReplicaCount`.
    Warm,
    /// Zero while inactive, K at once on activation: `idleReplicaCount` 0 + `minReplicaCount` K.
    Idle,
}

impl Hold {
    /// `sc` with `minReplicaCount` `k` held this way.
    pub fn apply(self, sc: &Scenario, k: u32) -> Scenario {
        let mut s = sc.clone();
        s.keda.min_replicas = k;
        s.keda.idle_replica_count = match self {
            Hold::Warm => None,
            Hold::Idle => Some(0),
        };
        s
    }

    /// The first K tried: above the scenario's own minimum when kept warm (fewer is what
    /// the scenario already runs), from 1 when held at zero (KEDA needs K > 0).
    fn first(self, sc: &Scenario) -> u32 {
        match self {
            Hold::Warm => sc.keda.min_replicas + 1,
            Hold::Idle => 1,
        }
    }

    fn label(self, k: u32) -> String {
        match self {
            Hold::Warm => format!("latency (minReplicaCount {k})"),
            Hold::Idle => format!("latency (idleReplicaCount 0, minReplicaCount {k})"),
        }
    }
}

/// The smallest K from [`Hold`]'s first up to `upto` (within `keda.max_replicas`) with which
/// latency mode on `signals`, with `minReplicaCount` K held as `hold` says, meets the
/// target, and that run; `None` when none does. Stops at the first K that meets.
pub fn latency_floor(
    sc: &Scenario,
    hold: Hold,
    signals: Signals,
    upto: u32,
) -> Result<Option<(u32, Summary)>, SimError> {
    // The trigger's settings do not depend on K (its `taskDuration` walks every arrival).
    let settings = latency_settings(sc);
    for k in hold.first(sc)..=upto.min(sc.keda.max_replicas) {
        let held = hold.apply(sc, k);
        let run = PolicyRun {
            label: hold.label(k),
            kind: PolicyKind::Ours(settings.clone(), signals),
        };
        let mut o = simulate(&held, &run)?;
        let s = summarize(&held, &mut o);
        if s.wait_p95 <= sc.target_latency {
            return Ok(Some((k, s)));
        }
    }
    Ok(None)
}

/// The smallest `minReplicaCount` above the scenario's own (so from 1 for a Deployment that
/// scales to zero) and up to `upto` with which latency mode on `signals` meets the target.
pub fn warm_floor(
    sc: &Scenario,
    signals: Signals,
    upto: u32,
) -> Result<Option<(u32, Summary)>, SimError> {
    latency_floor(sc, Hold::Warm, signals, upto)
}

/// keda-redis under `sc`'s settings, every `listLength` of the grid: the cheapest run that
/// meets the target, else the one with the lowest p95 (fewer pod-seconds on a tie), with
/// its `listLength`. `None` for an empty grid.
pub fn keda_redis_best(sc: &Scenario) -> Result<Option<(f64, Summary)>, SimError> {
    Ok(keda_grid(sc)?.into_iter().next().map(|(l, s, _)| (l, s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::scenario::Arrival;

    /// Two bursts on an idle queue: pods start in 4 s, within the 10 s target, but one pod
    /// and the HPA's later doublings come too late for 120 one-second tasks.
    const COLD: &str = r#"
name = "cold"
seed = 5
duration = 600
drain = 120
target_latency = 10
[keda]
max_replicas = 20
cooldown_period = 60
[workers]
concurrency = 2
prefetch_multiplier = 1
acks_late = true
startup = { kind = "constant", value = 4 }
[sampler]
series_step = 1
[policies]
keda_redis_list_lengths = [1, 5]
[[queues]]
name = "celery"
duration = { kind = "constant", value = 1 }
arrivals = [{ kind = "burst", at = 100, count = 120, over = 2 }, { kind = "burst", at = 400, count = 120, over = 2 }]
"#;

    fn cold() -> Scenario {
        Scenario::parse(COLD).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn held_at_zero_the_first_task_starts_min_replicas_at_once_and_idle_costs_nothing() {
        let sc = Hold::Idle.apply(&cold(), 5);
        let run = PolicyRun {
            label: "idle".into(),
            kind: PolicyKind::Ours(latency_settings(&sc), Signals::Real),
        };
        let o = simulate(&sc, &run).unwrap_or_else(|e| panic!("{e}"));
        // Nothing runs before the first burst (t = 100 s).
        assert!(
            o.series
                .iter()
                .filter(|r| r.t < 100.0)
                .all(|r| r.replicas == 0),
            "{:?}",
            &o.series[..100]
        );
        // The first replica count after it is the minimum, not KEDA's plain 0 → 1: on the
        // tick the burst shows, or the next (its first tick listed one task, which with
        // `podStartup` may wait at zero until the second shows the burst).
        let first = o.series.iter().find(|r| r.replicas > 0);
        assert!(
            first.is_some_and(|r| r.replicas == 5 && (100.0..=101.0).contains(&r.t)),
            "{:?}",
            &o.series[95..110]
        );
        // Back to zero between the bursts (cooldown 60 s) and after the last one.
        let between = o
            .series
            .iter()
            .any(|r| r.t > 200.0 && r.t < 400.0 && r.replicas == 0);
        assert!(between, "{:?}", o.series);
        assert_eq!(o.series.last().map(|r| r.replicas), Some(0));
    }

    #[test]
    fn after_a_burst_latency_mode_releases_the_pods_within_a_cooldown() {
        // Held at zero between the bursts with K = 5, KEDA polling every 5 s: once a burst
        // is served, the trigger goes inactive and KEDA returns the Deployment to 0 at its
        // first poll a cooldown later. The burst's arrivals stay in the rate window for 30 s
        // after it; a flow that stopped must not keep the trigger active for them (it did:
        // at 0 at 210 s, the burst served at 116 s; keda-redis, which goes inactive once
        // the list is empty, at 175 s). With the bursts half a tick later the HPA scales to
        // 20 pods: their heartbeats, each pod's starts over its few beats, credited a flow
        // the list never missed, which re-activated the trigger 22 s after the burst (at 0
        // at 200 s, due by 184 s) until the credit counted starts over the whole window.
        for offset in [0.0, 0.5] {
            let mut sc = Hold::Idle.apply(&cold(), 5);
            sc.keda.polling_interval = 5.0;
            for a in &mut sc.queues[0].arrivals {
                if let Arrival::Burst { at, .. } = a {
                    *at += offset;
                }
            }
            let (served, ours, keda) = served_and_back_to_zero(&sc);
            assert!(served < 200.0, "the burst is served: {served}");
            // A stop is told once the workers' quiet passes their longest gap between
            // beats with starts (one beat) at the next beat: up to three beats after
            // `served`.
            let (cooldown, poll) = (sc.keda.cooldown_period, sc.keda.polling_interval);
            let due = served + cooldown + poll + 3.0 * 2.0;
            assert!(
                ours <= due,
                "offset {offset}: latency mode at 0 at {ours} s, due by {due} s (keda-redis \
                 at {keda} s)"
            );
        }
    }

    /// When the first burst of `sc` is served (latency mode on real signals) and when the
    /// Deployment is back at 0 after it, with keda-redis' return to 0 beside it.
    fn served_and_back_to_zero(sc: &Scenario) -> (f64, f64, f64) {
        let back_to_zero = |kind: PolicyKind| {
            let run = PolicyRun {
                label: "run".into(),
                kind,
            };
            let o = simulate(sc, &run).unwrap_or_else(|e| panic!("{e}"));
            let served = o
                .series
                .iter()
                .find(|r| r.t > 100.0 && r.backlog == 0 && r.running == 0)
                .map_or(f64::NAN, |r| r.t);
            let zero = o
                .series
                .iter()
                .find(|r| r.t > served && r.replicas == 0)
                .map_or(f64::NAN, |r| r.t);
            (served, zero)
        };
        let (served, ours) = back_to_zero(PolicyKind::Ours(latency_settings(sc), Signals::Real));
        let (_, keda) = back_to_zero(PolicyKind::KedaRedis {
            list_length: 1.0,
            activation: 0.0,
        });
        (served, ours, keda)
    }

    #[test]
    fn the_idle_floor_is_the_smallest_minimum_that_meets_and_cheaper_than_keeping_it_warm() {
        let sc = cold();
        let (k, s) = latency_floor(&sc, Hold::Idle, Signals::Real, 20)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no idle floor up to 20"));
        assert!(s.wait_p95 <= sc.target_latency, "{s:?}");
        assert!(k > 1, "K = 1 is plain scale-to-zero, which misses: {k}");
        let fewer = latency_floor(&sc, Hold::Idle, Signals::Real, k - 1);
        assert!(fewer.unwrap_or_else(|e| panic!("{e}")).is_none());
        // Kept warm, the same minimum costs its pods for the whole run.
        let warm = latency_floor(&sc, Hold::Warm, Signals::Real, k)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|(_, w)| w.pod_seconds);
        assert!(warm.is_none_or(|w| s.pod_seconds < w), "{warm:?} vs {s:?}");
        // keda-redis under the same setting: its best grid run.
        let (l, r) = keda_redis_best(&Hold::Idle.apply(&sc, k))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("empty grid"));
        assert!([1.0, 5.0].contains(&l), "{l}");
        assert!(r.policy.contains(&format!("listLength {l}")), "{r:?}");
    }
}

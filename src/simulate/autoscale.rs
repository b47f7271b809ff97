//! KEDA and the HPA as `docs/keda.md` describes them, as a pure state machine:
//! KEDA's polling loop (activation 0→max(min, 1), or from `idleReplicaCount` straight to
//! `minReplicaCount`; back to 0 or the idle count after `cooldownPeriod`), `external-push`, and the
//! HPA's sync (AverageValue arithmetic in milli-units, tolerance, `behavior: nil`
//! normalisation or a configured `behavior` with stabilisation windows and rate policies).

use std::collections::VecDeque;

use super::scenario::{Behavior, KedaSpec, RateKind, RatePolicy, Rules, Select};

/// One external metric as the HPA sees it: value V and AverageValue target T.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSample {
    pub value: f64,
    pub target: f64,
}

/// The replica count of the Deployment and the controllers' memory.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    cfg: KedaSpec,
    /// `scale.spec.replicas`.
    pub replicas: u32,
    last_active: Option<f64>,
    /// (time, recommendation) from past HPA syncs.
    recommendations: VecDeque<(f64, u32)>,
    /// (time, replica change) made by the HPA, for rate policies.
    events: VecDeque<(f64, i64)>,
}

/// Resolved `behavior` for one direction.
struct Resolved {
    window: f64,
    select: Select,
    policies: Vec<RatePolicy>,
}

fn resolve(rules: Option<&Rules>, up: bool, default_down_window: f64) -> Resolved {
    let default_policies = if up {
        vec![
            RatePolicy {
                kind: RateKind::Pods,
                value: 4.0,
                period: 15.0,
            },
            RatePolicy {
                kind: RateKind::Percent,
                value: 100.0,
                period: 15.0,
            },
        ]
    } else {
        vec![RatePolicy {
            kind: RateKind::Percent,
            value: 100.0,
            period: 15.0,
        }]
    };
    Resolved {
        window: rules.and_then(|r| r.stabilization_window).unwrap_or(if up {
            0.0
        } else {
            default_down_window
        }),
        select: rules.and_then(|r| r.select_policy).unwrap_or(Select::Max),
        policies: rules
            .and_then(|r| r.policies.clone())
            .unwrap_or(default_policies),
    }
}

/// HPA proposal for one AverageValue metric (`docs/keda.md`, "Proposal"), in milli-units.
pub fn proposal(m: MetricSample, current: u32, tolerance: f64) -> u32 {
    let v = (m.value.max(0.0) * 1000.0).round();
    let t = (m.target * 1000.0).round().max(1.0);
    let ratio = v / (t * f64::from(current.max(1)));
    if current > 0 && (1.0 - tolerance..=1.0 + tolerance).contains(&ratio) {
        current
    } else {
        let want = (v / t).ceil();
        if want >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            want as u32
        }
    }
}

impl Autoscaler {
    /// Starts as KEDA leaves a Deployment whose trigger is not active: at
    /// `idleReplicaCount` when it is set, else at `minReplicaCount`.
    pub fn new(cfg: KedaSpec) -> Self {
        let replicas = cfg.idle_replica_count.unwrap_or(cfg.min_replicas);
        Self {
            cfg,
            replicas,
            last_active: None,
            recommendations: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The HPA's `minReplicas` (KEDA sets 1 when `minReplicaCount` is 0).
    fn hpa_min(&self) -> u32 {
        self.cfg.min_replicas.max(1)
    }

    /// KEDA's polling cycle with the trigger's activity. Returns the new replica count when
    /// KEDA changes it. Active: from 0, or from below `minReplicaCount` when
    /// `idleReplicaCount` is set, straight to `max(minReplicaCount, 1)`. Inactive for
    /// `cooldownPeriod`: down to `idleReplicaCount` when it is set, else to 0 when
    /// `minReplicaCount` is 0; the HPA owns every other change.
    pub fn poll(&mut self, now: f64, active: bool) -> Option<u32> {
        let idle = self.cfg.idle_replica_count;
        if active {
            self.last_active = Some(now);
            if self.replicas == 0 || (idle.is_some() && self.replicas < self.cfg.min_replicas) {
                return self.set(self.hpa_min().min(self.cfg.max_replicas));
            }
            return None;
        }
        let since = self.last_active.unwrap_or(0.0);
        let above_idle = match idle {
            Some(i) => self.replicas > i,
            None => self.replicas > 0 && self.cfg.min_replicas == 0,
        };
        if above_idle && since + self.cfg.cooldown_period < now {
            return self.set(idle.unwrap_or(0));
        }
        None
    }

    /// A `true` on `StreamIsActive`: same as an active poll, at once.
    pub fn push(&mut self, now: f64) -> Option<u32> {
        self.poll(now, true)
    }

    fn set(&mut self, replicas: u32) -> Option<u32> {
        (replicas != self.replicas).then(|| {
            self.replicas = replicas;
            replicas
        })
    }

    /// One HPA sync with the metrics KEDA serves now. Returns the new replica count when the
    /// HPA changes it.
    pub fn hpa_sync(&mut self, now: f64, metrics: &[MetricSample]) -> Option<u32> {
        let current = self.replicas;
        if current == 0 {
            return None; // ScalingDisabled: KEDA owns 0↔1.
        }
        let (min, max) = (self.hpa_min(), self.cfg.max_replicas);
        let desired = if current > max {
            max
        } else if current < min {
            min
        } else {
            let raw = metrics
                .iter()
                .map(|m| proposal(*m, current, self.cfg.tolerance))
                .max()
                .unwrap_or(current);
            match self.cfg.behavior.clone() {
                None => self.normalize_default(now, current, raw),
                Some(b) => self.normalize_behavior(now, current, raw, &b),
            }
        };
        let change = i64::from(desired) - i64::from(current);
        if change != 0 {
            self.events.push_back((now, change));
        }
        self.set(desired)
    }

    /// `docs/keda.md`, "Normalisation": no `behavior` (KEDA's default).
    fn normalize_default(&mut self, now: f64, current: u32, raw: u32) -> u32 {
        let window = self.cfg.downscale_stabilization;
        self.recommendations.retain(|(t, _)| *t > now - window);
        let stabilized = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .fold(raw, u32::max);
        self.recommendations.push_back((now, raw));
        let up_limit = current.saturating_mul(2).max(4);
        stabilized.clamp(
            self.hpa_min(),
            self.cfg.max_replicas.min(up_limit).max(self.hpa_min()),
        )
    }

    /// `docs/keda.md`, "Normalisation": a configured `behavior`.
    fn normalize_behavior(&mut self, now: f64, current: u32, raw: u32, b: &Behavior) -> u32 {
        let up = resolve(b.scale_up.as_ref(), true, self.cfg.downscale_stabilization);
        let down = resolve(
            b.scale_down.as_ref(),
            false,
            self.cfg.downscale_stabilization,
        );
        let keep = up.window.max(down.window);
        self.recommendations.retain(|(t, _)| *t > now - keep);
        let mut up_rec = raw;
        let mut down_rec = raw;
        for (t, r) in &self.recommendations {
            if *t > now - up.window {
                up_rec = up_rec.min(*r);
            }
            if *t > now - down.window {
                down_rec = down_rec.max(*r);
            }
        }
        self.recommendations.push_back((now, raw));
        let stabilized = current.max(up_rec).min(down_rec);
        let (min, max) = (self.hpa_min(), self.cfg.max_replicas);
        let longest = up
            .policies
            .iter()
            .chain(&down.policies)
            .map(|p| p.period)
            .fold(0.0, f64::max);
        self.events.retain(|(t, _)| *t > now - longest);
        if stabilized > current {
            let limit = self.rate_limit(now, current, &up, true);
            stabilized.min(limit).min(max).max(min)
        } else if stabilized < current {
            let limit = self.rate_limit(now, current, &down, false);
            stabilized.max(limit).max(min).min(max)
        } else {
            stabilized.clamp(min, max)
        }
    }

    /// The furthest the rate policies let the HPA go from `current` this sync.
    fn rate_limit(&self, now: f64, current: u32, r: &Resolved, up: bool) -> u32 {
        if r.select == Select::Disabled || r.policies.is_empty() {
            return current;
        }
        let cur = f64::from(current);
        let limits = r.policies.iter().map(|p| {
            let changed: i64 = self
                .events
                .iter()
                .filter(|(t, c)| *t > now - p.period && (*c > 0) == up)
                .map(|(_, c)| *c)
                .sum();
            let start = cur - changed as f64;
            let limit = match (p.kind, up) {
                (RateKind::Pods, true) => start + p.value,
                (RateKind::Pods, false) => start - p.value,
                (RateKind::Percent, true) => (start * (1.0 + p.value / 100.0)).ceil(),
                (RateKind::Percent, false) => (start * (1.0 - p.value / 100.0)).floor(),
            };
            limit.max(0.0)
        });
        let most_change = (r.select == Select::Max) == up;
        let pick = if most_change {
            limits.fold(f64::MIN, f64::max)
        } else {
            limits.fold(f64::MAX, f64::min)
        };
        let pick = if up { pick.max(cur) } else { pick.min(cur) };
        pick.min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keda() -> KedaSpec {
        KedaSpec::default()
    }

    fn at(replicas: u32) -> Autoscaler {
        let mut a = Autoscaler::new(keda());
        a.replicas = replicas;
        a
    }

    fn m(value: f64) -> [MetricSample; 1] {
        [MetricSample { value, target: 5.0 }]
    }

    #[test]
    fn example_1_doubles_then_reaches_the_proposal() {
        // docs/keda.md, worked example: target 5, 42 queued, 3 pods → 6 this sync, 9 the next.
        let mut a = at(3);
        assert_eq!(a.hpa_sync(0.0, &m(42.0)), Some(6));
        assert_eq!(a.hpa_sync(15.0, &m(42.0)), Some(9));
        assert_eq!(a.hpa_sync(30.0, &m(42.0)), None);
    }

    #[test]
    fn example_2_inside_tolerance_stays() {
        let mut a = at(3);
        assert_eq!(proposal(m(14.0)[0], 3, 0.1), 3);
        assert_eq!(a.hpa_sync(0.0, &m(14.0)), None);
        assert_eq!(a.replicas, 3);
        // 17/15 = 1.133 is outside: ceil(17/5) = 4.
        assert_eq!(a.hpa_sync(15.0, &m(17.0)), Some(4));
    }

    #[test]
    fn example_3_scale_down_waits_for_stabilisation_then_cooldown_to_zero() {
        let mut a = at(3);
        a.poll(0.0, true);
        let mut t = 0.0;
        // The 300 s window remembers the 3 recommended at t = 0.
        assert_eq!(a.hpa_sync(t, &m(15.0)), None);
        while t < 300.0 {
            t += 15.0;
            let r = a.hpa_sync(t, &m(0.0));
            if t <= 300.0 - 1e-9 {
                assert_eq!(r, None, "at {t}");
            }
        }
        assert_eq!(a.replicas, 1, "HPA floor is minReplicas = 1");
        // KEDA: inactive polls scale to 0 once lastActive + 300 s has passed.
        assert_eq!(a.poll(300.0, false), None);
        assert_eq!(a.poll(301.0, false), Some(0));
        assert_eq!(a.hpa_sync(315.0, &m(0.0)), None, "HPA disabled at 0");
    }

    #[test]
    fn example_4_milli_units_and_fractional_targets() {
        let s = MetricSample {
            value: 2.0005,
            target: 0.5,
        };
        assert_eq!(proposal(s, 1, 0.1), 5); // 2001 milli / 500 milli → 4.002 → 5
    }

    #[test]
    fn activation_from_zero_and_push() {
        let mut a = Autoscaler::new(keda());
        assert_eq!(a.replicas, 0);
        assert_eq!(a.poll(0.0, false), None);
        assert_eq!(a.push(3.0), Some(1));
        assert_eq!(a.push(4.0), None);
        let mut a = Autoscaler::new(KedaSpec {
            min_replicas: 2,
            ..keda()
        });
        assert_eq!(a.replicas, 2);
        assert_eq!(a.poll(0.0, false), None, "minReplicaCount ≥ 1: never to 0");
        assert_eq!(a.poll(1000.0, false), None);
    }

    #[test]
    fn idle_replica_count_holds_zero_and_activates_straight_to_the_minimum() {
        // KEDA: idleReplicaCount 0, minReplicaCount 6, maxReplicaCount 8.
        let mut a = Autoscaler::new(KedaSpec {
            idle_replica_count: Some(0),
            min_replicas: 6,
            max_replicas: 8,
            ..keda()
        });
        assert_eq!(a.replicas, 0, "inactive at the start: the idle count");
        assert_eq!(a.poll(0.0, false), None);
        assert_eq!(a.hpa_sync(0.0, &m(0.0)), None, "HPA disabled at 0");
        // The first active poll or push: 0 → minReplicaCount in one step, not 0 → 1.
        assert_eq!(a.push(10.0), Some(6));
        // Active, the HPA works within [6, 8]: down to 6 at most, up to 8 at most.
        assert_eq!(a.hpa_sync(15.0, &m(0.0)), None);
        assert_eq!(a.hpa_sync(30.0, &m(1000.0)), Some(8));
        a.replicas = 6;
        // Inactive: held through the cooldown (300 s after the last active poll), then
        // straight back to the idle count.
        assert_eq!(a.poll(20.0, true), None);
        assert_eq!(a.poll(320.0, false), None);
        assert_eq!(a.poll(321.0, false), Some(0));
        assert_eq!(a.poll(400.0, true), Some(6));
        // Without idleReplicaCount the same minimum is never left (the warm floor).
        let mut warm = Autoscaler::new(KedaSpec {
            min_replicas: 6,
            ..keda()
        });
        assert_eq!(warm.replicas, 6);
        assert_eq!(warm.poll(1000.0, false), None);
    }

    #[test]
    fn scale_up_cap_and_max_replicas() {
        let mut a = Autoscaler::new(KedaSpec {
            max_replicas: 10,
            ..keda()
        });
        a.replicas = 1;
        assert_eq!(a.hpa_sync(0.0, &m(1000.0)), Some(4)); // max(2·1, 4)
        assert_eq!(a.hpa_sync(15.0, &m(1000.0)), Some(8));
        assert_eq!(a.hpa_sync(30.0, &m(1000.0)), Some(10));
    }

    #[test]
    fn configured_behavior_defaults_and_rate_policies() {
        // Defaults when behavior is set: +max(4 pods, 100 %) per 15 s, down 100 % / 15 s
        // after a 300 s window.
        let mut a = Autoscaler::new(KedaSpec {
            behavior: Some(Behavior::default()),
            ..keda()
        });
        a.replicas = 1;
        assert_eq!(a.hpa_sync(0.0, &m(1000.0)), Some(5)); // 1 + 4
        assert_eq!(a.hpa_sync(15.0, &m(1000.0)), Some(10)); // 100 %
        assert_eq!(a.hpa_sync(30.0, &m(0.0)), None); // window holds 200
                                                     // A tight scale-down policy: 1 pod per 60 s, no window.
        let rules = Rules {
            stabilization_window: Some(0.0),
            select_policy: None,
            policies: Some(vec![RatePolicy {
                kind: RateKind::Pods,
                value: 1.0,
                period: 60.0,
            }]),
        };
        let b = Behavior {
            scale_up: None,
            scale_down: Some(rules),
        };
        let mut a = Autoscaler::new(KedaSpec {
            behavior: Some(b),
            ..keda()
        });
        a.replicas = 5;
        assert_eq!(a.hpa_sync(0.0, &m(0.0)), Some(4));
        assert_eq!(a.hpa_sync(15.0, &m(0.0)), None);
        assert_eq!(a.hpa_sync(61.0, &m(0.0)), Some(3));
    }
}

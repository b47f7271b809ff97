//! Bounds on every number of a scenario, so that a hostile or mistyped file is refused with a
//! clear message instead of exhausting memory (`rate = inf`, a burst of 2^64 tasks) or
//! running for ever (`duration = 1e12`). The limits are far above any real workload and are
//! listed in `docs/simulate.md`; [`problems`] reports every value outside them.

use super::rng::Dist;
use super::scenario::{Arrival, Behavior, Rules, Scenario};
use crate::trigger::limits::MAX_SECONDS;

/// Longest `duration` and `drain`, seconds (30 days each).
pub const MAX_DURATION: f64 = 30.0 * 86_400.0;
/// Largest arrival rate of one process, tasks per second.
pub const MAX_RATE: f64 = 100_000.0;
/// Most tasks a scenario may be expected to generate: Σ rate × active time + Σ burst
/// counts (+ trace lines, counted when the trace is read).
pub const MAX_TASKS: f64 = 10_000_000.0;
/// Largest value of a time distribution (task duration, start-up delay, ETA delay), seconds.
pub const MAX_DIST_VALUE: f64 = 30.0 * 86_400.0;
/// Largest `sigma` of a log-normal distribution.
pub const MAX_SIGMA: f64 = 10.0;
/// Most replicas, and most concurrency or prefetch per pod.
pub const MAX_REPLICAS: u32 = 10_000;
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Largest KEDA/HPA period (polling, sync, cooldown, stabilisation), seconds (one day).
pub const MAX_PERIOD: f64 = 86_400.0;
/// Largest sampler window, seconds (one day).
pub const MAX_WINDOW: u32 = 86_400;
/// Shortest sampler tick, seconds.
pub const MIN_TICK: f64 = 0.1;
/// Most points of the time series of one run (`(duration + drain) / series_step`).
pub const MAX_SERIES_POINTS: f64 = 100_000.0;
/// Most entries of `policies.keda_redis_list_lengths` (each is one full run).
pub const MAX_GRID: usize = 32;
/// Most scheduled pod stops (`workers.stops`).
pub const MAX_STOPS: usize = 10_000;
/// Largest `listLength`-like threshold and headroom.
pub const MAX_THRESHOLD: f64 = 1_000_000.0;

/// Every value of `sc` outside the documented limits, one message each.
pub fn problems(sc: &Scenario) -> Vec<String> {
    let mut p = Problems(Vec::new());
    p.range("duration", sc.duration, 0.0, MAX_DURATION);
    p.range("drain", sc.drain, 0.0, MAX_DURATION);
    p.range("target_latency", sc.target_latency, 0.0, MAX_PERIOD);
    keda(&mut p, sc);
    workers(&mut p, sc);
    sampler(&mut p, sc);
    policies(&mut p, sc);
    let mut expected = 0.0;
    for q in &sc.queues {
        p.dist(&format!("queues.{}.duration", q.name), &q.duration);
        p.dist(&format!("queues.{}.eta_delay", q.name), &q.eta_delay);
        for (i, a) in q.arrivals.iter().enumerate() {
            expected += arrival(&mut p, &format!("queues.{}.arrivals[{i}]", q.name), a, sc);
        }
    }
    // NaN (from a value already refused above) is refused too.
    if expected.is_nan() || expected > MAX_TASKS {
        p.0.push(format!(
            "the arrivals would generate about {expected:.3e} tasks; at most {MAX_TASKS:.0} \
             (rate × duration + burst counts) are allowed"
        ));
    }
    p.0
}

struct Problems(Vec<String>);

impl Problems {
    /// `value` must be finite and within `[min, max]`.
    fn range(&mut self, what: &str, value: f64, min: f64, max: f64) {
        if !(value.is_finite() && (min..=max).contains(&value)) {
            self.0.push(format!(
                "{what} must be a number from {min} to {max}, got {value}"
            ));
        }
    }

    fn count(&mut self, what: &str, value: u32, max: u32) {
        if value > max {
            self.0
                .push(format!("{what} must be at most {max}, got {value}"));
        }
    }

    fn dist(&mut self, what: &str, d: &Dist) {
        match d {
            Dist::Constant { value } => self.range(what, *value, 0.0, MAX_DIST_VALUE),
            Dist::Exponential { mean } => self.range(what, *mean, 0.0, MAX_DIST_VALUE),
            Dist::Uniform { min, max } => {
                self.range(what, *min, 0.0, MAX_DIST_VALUE);
                self.range(what, *max, 0.0, MAX_DIST_VALUE);
            }
            Dist::LogNormal { median, sigma } => {
                self.range(what, *median, 0.0, MAX_DIST_VALUE);
                self.range(&format!("{what} sigma"), *sigma, 0.0, MAX_SIGMA);
            }
            Dist::Bimodal { p, a, b } => {
                self.range(&format!("{what} p"), *p, 0.0, 1.0);
                self.dist(what, a);
                self.dist(what, b);
            }
        }
    }

    fn rules(&mut self, what: &str, rules: Option<&Rules>) {
        let Some(r) = rules else { return };
        if let Some(w) = r.stabilization_window {
            self.range(&format!("{what}.stabilization_window"), w, 0.0, MAX_PERIOD);
        }
        for (i, rp) in r.policies.iter().flatten().enumerate() {
            let at = format!("{what}.policies[{i}]");
            self.range(&format!("{at}.value"), rp.value, 0.0, MAX_THRESHOLD);
            self.range(&format!("{at}.period"), rp.period, 1.0, MAX_PERIOD);
        }
    }
}

fn keda(p: &mut Problems, sc: &Scenario) {
    let k = &sc.keda;
    p.range("keda.polling_interval", k.polling_interval, 1.0, MAX_PERIOD);
    p.range("keda.cooldown_period", k.cooldown_period, 0.0, MAX_PERIOD);
    p.range("keda.hpa_sync_period", k.hpa_sync_period, 1.0, MAX_PERIOD);
    p.range("keda.tolerance", k.tolerance, 0.0, 0.99);
    p.range(
        "keda.downscale_stabilization",
        k.downscale_stabilization,
        0.0,
        MAX_PERIOD,
    );
    p.count("keda.max_replicas", k.max_replicas, MAX_REPLICAS);
    if let Some(idle) = k.idle_replica_count {
        // KEDA's own rules: only 0 works with the HPA, and it must be below the minimum.
        if idle != 0 {
            p.0.push(format!(
                "keda.idle_replica_count must be 0 (the only value KEDA supports), got {idle}"
            ));
        }
        if idle >= k.min_replicas {
            p.0.push(format!(
                "keda.idle_replica_count must be less than keda.min_replicas, got {idle} with \
                 min_replicas {}",
                k.min_replicas
            ));
        }
    }
    if let Some(Behavior {
        scale_up,
        scale_down,
    }) = &k.behavior
    {
        p.rules("keda.behavior.scale_up", scale_up.as_ref());
        p.rules("keda.behavior.scale_down", scale_down.as_ref());
    }
}

fn workers(p: &mut Problems, sc: &Scenario) {
    let w = &sc.workers;
    p.count("workers.concurrency", w.concurrency, MAX_CONCURRENCY);
    p.count(
        "workers.prefetch_multiplier",
        w.prefetch_multiplier,
        MAX_CONCURRENCY,
    );
    p.dist("workers.startup", &w.startup);
    p.range(
        "workers.termination_grace",
        w.termination_grace,
        0.0,
        MAX_PERIOD,
    );
    p.range(
        "workers.visibility_timeout",
        w.visibility_timeout,
        0.0,
        MAX_DURATION,
    );
    if w.stops.len() > MAX_STOPS {
        p.0.push(format!("workers.stops: at most {MAX_STOPS} entries"));
    }
    for t in &w.stops {
        p.range("workers.stops[]", *t, 0.0, MAX_DURATION);
    }
}

fn sampler(p: &mut Problems, sc: &Scenario) {
    let s = &sc.sampler;
    p.range("sampler.tick", s.tick, MIN_TICK, 60.0);
    p.count("sampler.rate_window", s.rate_window, MAX_WINDOW);
    p.count("sampler.fast_window", s.fast_window, MAX_WINDOW);
    p.count("sampler.service_window", s.service_window, MAX_WINDOW);
    // The scaler's own bounds on `signal_window_seconds`.
    p.range("sampler.signal_window", s.signal_window, 1.0, 3600.0);
    let horizon = sc.duration + sc.drain;
    let points = horizon / s.series_step;
    if !(s.series_step.is_finite() && s.series_step > 0.0)
        || points.is_nan()
        || points > MAX_SERIES_POINTS
    {
        p.0.push(format!(
            "sampler.series_step must give at most {MAX_SERIES_POINTS:.0} points over duration \
             + drain (at least {:.3} s here), got {}",
            horizon / MAX_SERIES_POINTS,
            s.series_step
        ));
    }
}

fn policies(p: &mut Problems, sc: &Scenario) {
    let ps = &sc.policies;
    if ps.keda_redis_list_lengths.len() > MAX_GRID {
        p.0.push(format!(
            "policies.keda_redis_list_lengths: at most {MAX_GRID} entries, got {}",
            ps.keda_redis_list_lengths.len()
        ));
    }
    for l in &ps.keda_redis_list_lengths {
        p.range("policies.keda_redis_list_lengths", *l, 1.0, MAX_THRESHOLD);
    }
    let thresholds = [
        ("policies.keda_redis_activation", ps.keda_redis_activation),
        ("policies.backlog_list_length", ps.backlog_list_length),
        ("policies.backlog_activation", ps.backlog_activation),
        ("policies.latency_min_headroom", ps.latency_min_headroom),
    ];
    for (what, v) in thresholds {
        p.range(what, v, 0.0, MAX_THRESHOLD);
    }
    if ps.signals.is_empty() {
        p.0.push("policies.signals must name at least one of \"real\", \"oracle\"".into());
    }
    if ps.signals.len() == 2 && ps.signals[0] == ps.signals[1] || ps.signals.len() > 2 {
        p.0.push(format!(
            "policies.signals must name \"real\" and \"oracle\" at most once each, got {:?}",
            ps.signals.iter().map(|s| s.as_str()).collect::<Vec<_>>()
        ));
    }
    if let Some(d) = ps.latency_pod_startup {
        p.range("policies.latency_pod_startup", d, 0.0, MAX_SECONDS);
    }
    if let Some(d) = ps.latency_task_duration {
        p.range("policies.latency_task_duration", d, 0.0, MAX_SECONDS);
    }
}

/// Checks one arrival process; returns the number of tasks it is expected to generate
/// (an upper bound; NaN or infinite when a value is out of range, already reported).
fn arrival(p: &mut Problems, what: &str, a: &Arrival, sc: &Scenario) -> f64 {
    let horizon = sc.duration;
    let time = |p: &mut Problems, key: &str, v: f64| {
        p.range(&format!("{what}.{key}"), v, 0.0, MAX_DURATION);
    };
    let rate = |p: &mut Problems, key: &str, v: f64| {
        p.range(&format!("{what}.{key}"), v, 0.0, MAX_RATE);
    };
    // Time during which a process active over [start, end] generates tasks.
    let active = |start: f64, end: f64| (end.min(horizon) - start).max(0.0);
    match a {
        Arrival::Poisson {
            rate: r,
            start,
            end,
        } => {
            rate(p, "rate", *r);
            time(p, "start", *start);
            if let Some(e) = end {
                time(p, "end", *e);
            }
            r * active(*start, end.unwrap_or(horizon))
        }
        Arrival::Ramp {
            from,
            to,
            start,
            end,
        } => {
            rate(p, "from", *from);
            rate(p, "to", *to);
            time(p, "start", *start);
            time(p, "end", *end);
            from.max(*to) * active(*start, *end)
        }
        Arrival::Diurnal {
            mean,
            amplitude,
            period,
            peak,
        } => {
            rate(p, "mean", *mean);
            p.range(&format!("{what}.amplitude"), *amplitude, 0.0, 1.0);
            p.range(&format!("{what}.period"), *period, 1.0, MAX_DURATION);
            p.range(&format!("{what}.peak"), *peak, -MAX_DURATION, MAX_DURATION);
            mean * (1.0 + amplitude) * horizon
        }
        Arrival::Burst { at, count, over } => {
            time(p, "at", *at);
            time(p, "over", *over);
            if *count as f64 > MAX_TASKS {
                p.0.push(format!(
                    "{what}.count must be at most {MAX_TASKS:.0}, got {count}"
                ));
            }
            *count as f64
        }
        Arrival::Trace { .. } => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "limits"
duration = 600
target_latency = 10
[workers]
concurrency = 4
[[queues]]
name = "celery"
duration = { kind = "constant", value = 1 }
arrivals = [ARRIVAL]
"#;

    fn parse(arrival: &str, extra: &str) -> Result<Scenario, String> {
        Scenario::parse(&format!("{}{extra}", BASE.replace("ARRIVAL", arrival)))
    }

    #[test]
    fn refuses_values_outside_the_limits_naming_the_key() {
        let poisson = r#"{ kind = "poisson", rate = 1 }"#;
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{ kind = "poisson", rate = inf }"#,
                "",
                "arrivals[0].rate",
            ),
            (
                r#"{ kind = "poisson", rate = nan }"#,
                "",
                "arrivals[0].rate",
            ),
            (
                r#"{ kind = "poisson", rate = 1e9 }"#,
                "",
                "arrivals[0].rate",
            ),
            (r#"{ kind = "poisson", rate = 90000 }"#, "", "tasks"),
            (
                r#"{ kind = "burst", at = 1, count = 18446744073709551615 }"#,
                "",
                "arrivals[0].count",
            ),
            (
                r#"{ kind = "burst", at = 1, count = 6000000 }, { kind = "burst", at = 2, count = 6000000 }"#,
                "",
                "tasks",
            ),
            (
                r#"{ kind = "burst", at = inf, count = 1 }"#,
                "",
                "arrivals[0].at",
            ),
            (
                r#"{ kind = "ramp", from = 0, to = 1e300, start = 0, end = 10 }"#,
                "",
                "arrivals[0].to",
            ),
            (
                r#"{ kind = "diurnal", mean = 1, amplitude = 0.5, period = 0.0001 }"#,
                "",
                "period",
            ),
            (
                r#"{ kind = "poisson", rate = 1, start = 0, end = inf }"#,
                "",
                "arrivals[0].end",
            ),
            (poisson, "\n[sampler]\ntick = 1e-9\n", "sampler.tick"),
            (
                poisson,
                "\n[sampler]\nseries_step = 0.001\n",
                "sampler.series_step",
            ),
            (
                poisson,
                "\n[sampler]\nrate_window = 4294967295\n",
                "sampler.rate_window",
            ),
            (
                poisson,
                "\n[sampler]\nsignal_window = 0.5\n",
                "sampler.signal_window",
            ),
            (poisson, "\n[policies]\nsignals = []\n", "policies.signals"),
            (
                poisson,
                "\n[policies]\nsignals = [\"real\", \"real\"]\n",
                "policies.signals",
            ),
            (
                poisson,
                "\n[keda]\nmax_replicas = 4000000000\n",
                "keda.max_replicas",
            ),
            (
                poisson,
                "\n[keda]\nhpa_sync_period = 1e-9\n",
                "keda.hpa_sync_period",
            ),
            (
                poisson,
                "\n[policies]\nkeda_redis_list_lengths = [inf]\n",
                "keda_redis_list_lengths",
            ),
        ];
        for (arrival, extra, needle) in cases {
            let err = parse(arrival, extra).expect_err(arrival);
            assert!(
                err.contains(needle),
                "{arrival} {extra}: {needle} not in {err}"
            );
        }
    }

    #[test]
    fn refuses_huge_durations_and_distributions() {
        let poisson = r#"{ kind = "poisson", rate = 0 }"#;
        let text = BASE.replace("ARRIVAL", poisson);
        for (from, to, needle) in [
            ("duration = 600", "duration = 1e12", "duration"),
            ("duration = 600", "duration = 600\ndrain = 1e12", "drain"),
            ("value = 1", "value = 1e300", "queues.celery.duration"),
            (
                "target_latency = 10",
                "target_latency = inf",
                "target_latency",
            ),
        ] {
            let err = Scenario::parse(&text.replace(from, to)).expect_err(to);
            assert!(err.contains(needle), "{to}: {needle} not in {err}");
        }
    }

    #[test]
    fn accepts_values_at_the_limits() {
        let ok = [
            r#"{ kind = "poisson", rate = 100 }"#,
            r#"{ kind = "burst", at = 0, count = 10000000 }"#,
            r#"{ kind = "diurnal", mean = 10, amplitude = 1 }"#,
        ];
        for arrival in ok {
            parse(arrival, "").unwrap_or_else(|e| panic!("{arrival}: {e}"));
        }
        let long = BASE
            .replace("ARRIVAL", r#"{ kind = "poisson", rate = 1 }"#)
            .replace("duration = 600", "duration = 2592000\ndrain = 0")
            .replace("[workers]", "[sampler]\nseries_step = 60\n[workers]");
        Scenario::parse(&long).unwrap_or_else(|e| panic!("30 days: {e}"));
    }

    #[test]
    fn idle_replica_count_follows_kedas_rules() {
        let text = BASE.replace("ARRIVAL", r#"{ kind = "poisson", rate = 1 }"#);
        let with = |keda: &str| Scenario::parse(&format!("{text}\n[keda]\n{keda}\n"));
        let ok = with("idle_replica_count = 0\nmin_replicas = 3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.keda.idle_replica_count, Some(0));
        for (keda, needle) in [
            (
                "idle_replica_count = 1\nmin_replicas = 3",
                "keda.idle_replica_count must be 0",
            ),
            (
                "idle_replica_count = 0",
                "keda.idle_replica_count must be less than keda.min_replicas",
            ),
            (
                "idle_replica_count = 0\nmin_replicas = 3\nmax_replicas = 2",
                "keda.max_replicas",
            ),
        ] {
            let err = with(keda).expect_err(keda);
            assert!(err.contains(needle), "{keda}: {needle} not in {err}");
        }
    }

    #[test]
    fn the_scenario_library_and_the_experiments_are_within_the_limits() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (dir, least) in [("benches/scenarios", 14), ("benches/experiments", 1)] {
            let paths = std::fs::read_dir(root.join(dir)).unwrap();
            let loaded: Vec<Scenario> = (paths.map(|e| e.unwrap().path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .map(|p| Scenario::load(&p).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            assert!(loaded.len() >= least, "{dir}");
        }
    }
}

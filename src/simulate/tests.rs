//! Behaviour tests of the simulator: determinism, scale-down interruption accounting,
//! external-push cold start, scenario validation.

use super::*;
use crate::simulate::rng::Dist;

fn scenario(extra_workers: &str, duration_dist: &str, arrivals: &str) -> Scenario {
    let text = format!(
        r#"
name = "t"
seed = 5
duration = 900
drain = 900
target_latency = 10
[keda]
max_replicas = 20
[workers]
concurrency = 2
startup = {{ kind = "constant", value = 10 }}
{extra_workers}
[policies]
keda_redis_list_lengths = [2, 10]
[[queues]]
name = "celery"
duration = {duration_dist}
arrivals = [{arrivals}]
"#
    );
    match Scenario::parse(&text) {
        Ok(s) => s,
        Err(e) => panic!("test scenario: {e}"),
    }
}

fn steady() -> Scenario {
    scenario(
        "prefetch_multiplier = 1\nacks_late = true\ntermination_grace = 60",
        r#"{ kind = "exponential", mean = 1.0 }"#,
        r#"{ kind = "poisson", rate = 2 }, { kind = "burst", at = 300, count = 200 }"#,
    )
}

fn rendered(sc: &Scenario) -> (String, String) {
    let cmp = compare(sc).unwrap_or_else(|e| panic!("{e}"));
    (
        report::table(sc, &cmp.summaries),
        report::csv(&cmp.outcomes),
    )
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let sc = steady();
    let a = rendered(&sc);
    let b = rendered(&sc);
    assert_eq!(a, b);
    let mut other = sc.clone();
    other.seed = 6;
    assert_ne!(rendered(&other).0, a.0);
}

fn all_runs(sc: &Scenario) -> Vec<Summary> {
    let cmp = compare(sc).unwrap_or_else(|e| panic!("{e}"));
    cmp.summaries.into_iter().chain(cmp.grid).collect()
}

#[test]
fn acks_late_with_a_grace_covering_the_longest_task_interrupts_nothing() {
    // Tasks of 20–40 s, grace 45 s: warm shutdown always finishes them.
    let sc = scenario(
        "prefetch_multiplier = 4\nacks_late = true\ntermination_grace = 45",
        r#"{ kind = "uniform", min = 20, max = 40 }"#,
        r#"{ kind = "poisson", rate = 0.5, end = 300 }, { kind = "burst", at = 400, count = 60 }"#,
    );
    for s in all_runs(&sc) {
        assert_eq!((s.interrupted, s.lost), (0, 0), "{}", s.policy);
        assert!(s.scale_events > 0, "{}", s.policy);
    }
}

#[test]
fn early_ack_with_a_short_grace_loses_what_sigkill_interrupts() {
    let sc = scenario(
        "prefetch_multiplier = 4\nacks_late = false\ntermination_grace = 5",
        r#"{ kind = "uniform", min = 20, max = 40 }"#,
        r#"{ kind = "poisson", rate = 0.5, end = 300 }, { kind = "burst", at = 400, count = 60 }"#,
    );
    let runs = all_runs(&sc);
    assert!(runs.iter().any(|s| s.interrupted > 0));
    for s in &runs {
        assert_eq!(s.lost, s.interrupted, "{}", s.policy);
    }
    // Under acks_late the same kills are re-run, not lost.
    let mut late = sc.clone();
    late.workers.acks_late = true;
    late.workers.visibility_timeout = 30.0;
    for s in all_runs(&late) {
        assert_eq!(s.lost, 0, "{}", s.policy);
    }
}

#[test]
fn external_push_starts_the_first_task_within_startup_plus_one_tick() {
    let sc = scenario(
        "prefetch_multiplier = 1",
        r#"{ kind = "constant", value = 1 }"#,
        r#"{ kind = "burst", at = 100, count = 5 }, { kind = "burst", at = 800, count = 5 }"#,
    );
    let cmp = compare(&sc).unwrap_or_else(|e| panic!("{e}"));
    for s in &cmp.summaries[1..] {
        let worst = s.cold_start_max.unwrap_or(f64::INFINITY);
        assert!(worst <= 10.0 + 1.0, "{}: {worst}", s.policy);
        assert_eq!(s.cold_starts, 2, "{}", s.policy);
    }
    // keda-redis waits for its next 30 s poll.
    assert!(cmp.summaries[0].cold_start_max.unwrap_or(0.0) > 11.0);
}

fn fixed_fleet_with_a_stop(grace: f64) -> Scenario {
    // Two ready pods (min = max = 2, no start-up delay), c = 2, prefetch 4 × 2 with early
    // ack: a burst of 20 tasks of 3 s fills both pods (2 running + 8 reserved each). At
    // t = 4 one pod gets SIGTERM while running 2 tasks started at about 3 s.
    let mut sc = scenario(
        &format!(
            "prefetch_multiplier = 4\nacks_late = false\ntermination_grace = {grace}\n\
             stops = [4.0]"
        ),
        r#"{ kind = "constant", value = 3 }"#,
        r#"{ kind = "burst", at = 0, count = 20, over = 0.95 }"#,
    );
    sc.workers.startup = rng::Dist::Constant { value: 0.0 };
    sc.keda.min_replicas = 2;
    sc.keda.max_replicas = 2;
    sc.duration = 10.0;
    sc.drain = 60.0;
    sc
}

#[test]
fn a_scheduled_stop_warm_shuts_down_one_pod_of_a_fixed_fleet_without_replacing_it() {
    // Grace 5 s covers the running tasks: they finish at about 6 s, then the worker exits
    // and its 6 still reserved tasks are restored (not at SIGTERM).
    for s in all_runs(&fixed_fleet_with_a_stop(5.0)) {
        assert_eq!(s.tasks, 20, "{}", s.policy);
        assert_eq!(s.restored_at_shutdown, 6, "{}", s.policy);
        assert_eq!(
            (s.interrupted, s.lost, s.unfinished),
            (0, 0, 0),
            "{}",
            s.policy
        );
        // One pod for the whole 70 s, the stopped one until it exits at about 6 s: no
        // replacement pod.
        assert!(
            s.pod_seconds > 75.0 && s.pod_seconds < 77.0,
            "{}: {}",
            s.policy,
            s.pod_seconds
        );
        assert_eq!(s.scale_events, 0, "{}", s.policy);
    }
}

#[test]
fn sigkill_before_the_warm_shutdown_ends_strands_the_reserved_tasks_in_unacked() {
    // Real Celery restores held messages only when the warm shutdown completes (the
    // fidelity harness saw it): a SIGKILL at the end of a 1 s grace loses the 2 running
    // tasks (early ack) and leaves the 6 reserved ones in `unacked` until the visibility
    // timeout (3600 s, after the end: unfinished).
    for s in all_runs(&fixed_fleet_with_a_stop(1.0)) {
        assert_eq!(s.tasks, 20, "{}", s.policy);
        assert_eq!(s.restored_at_shutdown, 0, "{}", s.policy);
        assert_eq!(
            (s.interrupted, s.lost, s.unfinished),
            (2, 2, 6),
            "{}",
            s.policy
        );
        assert!((s.pod_seconds - 75.0).abs() < 1e-9, "{}", s.policy);
    }
    // With a 20 s visibility timeout they are restored (from their fetch at about 0.5 s)
    // and run on the remaining pod.
    let mut sc = fixed_fleet_with_a_stop(1.0);
    sc.workers.visibility_timeout = 20.0;
    for s in all_runs(&sc) {
        assert_eq!((s.lost, s.unfinished), (2, 0), "{}", s.policy);
        assert!(s.wait_max > 19.0, "{}: {}", s.policy, s.wait_max);
    }
}

#[test]
fn an_arrival_goes_to_the_worker_whose_brpop_was_issued_last_longest_ago() {
    // Two ready pods, c = 1, `acks_late`, prefetch 1 (a busy pod does not fetch). Pod 0
    // takes the task of t = 0 (0.6 s) and blocks again at 0.6, while pod 1, blocked since
    // 0, re-issues its BRPOP at 1, 2, … (kombu's 1 s timeout). At 2.3 pod 0's BRPOP
    // (re-issued at 1.6) is older than pod 1's (2.0), so pod 0 gets the task; the stop at
    // 2.5 (newest pod: pod 1, grace 0) then finds pod 1 idle and interrupts nothing.
    // Serving the pod that first blocked (pod 1) would interrupt the task.
    let mut sc = scenario(
        "prefetch_multiplier = 1\nacks_late = true\ntermination_grace = 0\nstops = [2.5]",
        r#"{ kind = "constant", value = 0.6 }"#,
        r#"{ kind = "burst", at = 0, count = 1 }, { kind = "burst", at = 2.3, count = 1 }"#,
    );
    sc.workers.concurrency = 1;
    sc.workers.startup = rng::Dist::Constant { value: 0.0 };
    sc.keda.min_replicas = 2;
    sc.keda.max_replicas = 2;
    sc.duration = 5.0;
    sc.drain = 10.0;
    for s in all_runs(&sc) {
        assert_eq!(s.tasks, 2, "{}", s.policy);
        assert_eq!(s.interrupted, 0, "{}", s.policy);
    }
}

#[test]
fn warm_shutdown_restores_held_eta_tasks() {
    // Every task has a 20-minute countdown: workers fetch and hold them in `unacked`.
    // keda-redis sees an empty list, scales to zero after the cooldown, and the warm
    // shutdown restores the held tasks, and the loop starts over (keda-redis flaps).
    let mut sc = scenario(
        "prefetch_multiplier = 1\nacks_late = false\ntermination_grace = 60",
        r#"{ kind = "constant", value = 5 }"#,
        r#"{ kind = "burst", at = 10, count = 40 }"#,
    );
    sc.queues[0].eta_share = 1.0;
    sc.queues[0].eta_delay = rng::Dist::Constant { value: 1200.0 };
    let cmp = compare(&sc).unwrap_or_else(|e| panic!("{e}"));
    assert!(cmp.summaries[0].restored_at_shutdown > 0);
    for s in cmp.summaries.iter().chain(&cmp.grid) {
        assert_eq!(s.interrupted, 0, "{}", s.policy);
        assert_eq!(s.tasks, 40, "{}", s.policy);
    }
    // Scheduled tasks are not demand now, so our modes scale in too; nothing is lost.
    for s in &cmp.summaries {
        assert_eq!(s.lost, 0, "{}", s.policy);
    }
}

#[test]
fn invalid_scenarios_report_every_problem() {
    let e = Scenario::parse(
        r#"
name = "bad"
duration = -1
target_latency = 0
[workers]
concurrency = 0
[[queues]]
name = "q"
eta_share = 2
duration = { kind = "exponential", mean = -1 }
arrivals = [{ kind = "ramp", from = 1, to = 2, start = 10, end = 5 }]
"#,
    )
    .err()
    .unwrap_or_default();
    for needle in [
        "duration must",
        "target_latency",
        "workers.concurrency",
        "eta_share",
        "queues.q.duration",
        "invalid arrival",
    ] {
        assert!(e.contains(needle), "{needle} missing in {e}");
    }
    assert!(Scenario::parse("name = 1").is_err());
    // `policies.signals` takes only "real" and "oracle".
    let mut text = fixed_fleet_text();
    text.push_str("\n[policies]\nsignals = [\"exact\"]\n");
    let e = Scenario::parse(&text).err().unwrap_or_default();
    assert!(e.contains("exact"), "{e}");
}

#[test]
fn run_renders_text_json_csv_and_svg() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("s.toml");
    let sc_text = r#"
name = "cli"
duration = 120
drain = 60
target_latency = 5
[workers]
concurrency = 1
[policies]
keda_redis_list_lengths = [1]
[[queues]]
name = "celery"
duration = { kind = "constant", value = 0.5 }
arrivals = [{ kind = "poisson", rate = 1 }]
"#;
    std::fs::write(&path, sc_text).unwrap_or_else(|e| panic!("{e}"));
    let args = SimulateArgs {
        scenario: path.clone(),
        csv: Some(dir.path().join("s.csv")),
        svg: Some(dir.path().join("s.svg")),
        ..SimulateArgs::default()
    };
    let text = run(&args).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("latency") && text.contains("keda-redis (listLength 1)"),
        "{text}"
    );
    let csv = std::fs::read_to_string(dir.path().join("s.csv")).unwrap_or_default();
    assert!(csv.starts_with("policy,t,replicas"));
    let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap_or_default();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let json = run(&SimulateArgs {
        scenario: path,
        json: true,
        ..SimulateArgs::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(v["policies"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["policies"][2]["policy"], LATENCY_REAL);
    assert_eq!(v["policies"][3]["policy"], LATENCY_ORACLE);
    // Baselines: 0.5 slots of work on one slot a pod, so one static pod meets the target.
    let base = &v["baselines"];
    assert_eq!(base["static_best"]["replicas"], 1, "{base}");
    assert_eq!(base["static_best"]["meets"], true, "{base}");
    // keda-redis waits for its first poll and a cold pod: its p95 misses the 5 s target.
    assert!(base["keda_redis_cheapest_meeting"].is_null(), "{base}");
    assert_eq!(base["anything_meets"], true, "{base}");
    assert!(base["latency_shortfalls"].is_array(), "{base}");
    assert!(
        text.contains("static (N=1)")
            && text.contains("best static fleet: N=1 meets the target")
            && text.contains("cheapest keda-redis meeting the target: none of the grid meets it"),
        "{text}"
    );
    let missing = run(&SimulateArgs {
        scenario: "/nonexistent.toml".into(),
        ..SimulateArgs::default()
    });
    assert!(matches!(missing, Err(SimError::Io { .. })));
}

/// A fixed fleet of two pods (four slots each, `acks_late`, prefetch 1) under Poisson
/// arrivals at 2/s of tasks lasting `task` seconds, with the given `[sampler]` lines.
fn fixed_fleet(task: f64, sampler: &str) -> Scenario {
    let text = fixed_fleet_toml(task, sampler);
    Scenario::parse(&text).unwrap_or_else(|e| panic!("test scenario: {e}"))
}

fn fixed_fleet_text() -> String {
    fixed_fleet_toml(1.0, "")
}

fn fixed_fleet_toml(task: f64, sampler: &str) -> String {
    format!(
        r#"
name = "fleet"
seed = 3
duration = 600
drain = 60
target_latency = 10
[keda]
min_replicas = 2
max_replicas = 2
[workers]
concurrency = 4
prefetch_multiplier = 1
acks_late = true
startup = {{ kind = "constant", value = 0 }}
[sampler]
{sampler}
[[queues]]
name = "celery"
duration = {{ kind = "constant", value = {task} }}
arrivals = [{{ kind = "poisson", rate = 2 }}]
"#
    )
}

fn latency_on(sc: &Scenario, signals: Signals) -> Outcome {
    let run = PolicyRun {
        label: signals.as_str().into(),
        kind: PolicyKind::Ours(latency_settings(sc), signals),
    };
    simulate(sc, &run).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_task_shorter_than_a_tick_is_mostly_never_seen_in_unacked() {
    let short = latency_on(&fixed_fleet(0.05, ""), Signals::Real);
    let tasks = short.waits.len() as u64;
    // A 0.05 s task is in `unacked` at a 1 s tick about 5 % of the time.
    assert!(
        short.seen.unacked_new > 0 && short.seen.unacked_new * 5 < tasks,
        "{} of {tasks} seen",
        short.seen.unacked_new
    );
    let long = latency_on(&fixed_fleet(3.0, ""), Signals::Real);
    let tasks = long.waits.len() as u64;
    assert!(
        long.seen.unacked_new * 10 >= tasks * 9,
        "{} of {tasks} seen",
        long.seen.unacked_new
    );
    assert_eq!(
        latency_on(&fixed_fleet(3.0, ""), Signals::Oracle)
            .seen
            .unacked_new,
        0
    );
}

#[test]
fn keyspace_events_and_heartbeats_reach_the_sampler_only_when_the_scenario_enables_them() {
    let off = latency_on(&fixed_fleet(0.5, "heartbeats = false"), Signals::Real);
    assert_eq!((off.seen.keyspace_events, off.seen.heartbeats), (0, 0));
    let on = latency_on(
        &fixed_fleet(0.5, "notifications = true\nheartbeats = true"),
        Signals::Real,
    );
    // Every task pushed and popped once; two pods beat every 2 s for 660 s.
    let tasks = on.waits.len() as u64;
    assert_eq!(on.seen.keyspace_events, 2 * tasks);
    assert!(on.seen.heartbeats >= 2 * 300, "{}", on.seen.heartbeats);
}

#[test]
fn without_notifications_a_fast_consumer_hides_arrivals_from_the_real_estimators() {
    let blind = fixed_fleet(0.05, "heartbeats = false");
    let oracle = latency_on(&blind, Signals::Oracle).seen.arrival_rate_mean();
    let real = latency_on(&blind, Signals::Real).seen.arrival_rate_mean();
    assert!(oracle > 1.5, "oracle λ {oracle}");
    assert!(real < 0.5 * oracle, "real λ {real} vs oracle {oracle}");
    // Keyspace notifications count every push: the estimate is back within 15 %. (Each
    // push on the idle queue wakes the sampler; the rate estimator once read that one
    // arrival over the short interval since the previous tick as a burst, 3.4× the rate.)
    let heard = fixed_fleet(0.05, "heartbeats = false\nnotifications = true");
    let real = latency_on(&heard, Signals::Real).seen.arrival_rate_mean();
    assert!(
        (real - oracle).abs() < 0.15 * oracle,
        "real λ {real} vs oracle {oracle}"
    );
}

#[test]
fn real_and_oracle_signals_agree_on_a_steady_scenario() {
    for notifications in [false, true] {
        let mut sc = scenario(
            "prefetch_multiplier = 1\nacks_late = true",
            r#"{ kind = "exponential", mean = 2.0 }"#,
            r#"{ kind = "poisson", rate = 4 }"#,
        );
        sc.sampler.notifications = notifications;
        let (r, o) = (
            report::summarize(&sc, &mut latency_on(&sc, Signals::Real)),
            report::summarize(&sc, &mut latency_on(&sc, Signals::Oracle)),
        );
        assert!(r.wait_p95 <= sc.target_latency, "{r:?}");
        assert!(
            (r.pod_seconds - o.pod_seconds).abs() < 0.15 * o.pod_seconds,
            "real {:.0} pod-s vs oracle {:.0}",
            r.pod_seconds,
            o.pod_seconds
        );
    }
}

#[test]
fn latency_runs_declare_the_scenarios_worker_prefetch_in_the_trigger_metadata() {
    let exp = r#"{ kind = "exponential", mean = 1.0 }"#;
    let poisson = r#"{ kind = "poisson", rate = 2 }"#;
    for (workers, multiplier, acks_late) in [
        ("prefetch_multiplier = 1\nacks_late = true", "1", "true"),
        ("prefetch_multiplier = 4\nacks_late = false", "4", "false"),
        ("prefetch_multiplier = 0\nacks_late = true", "0", "true"),
    ] {
        let sc = scenario(workers, exp, poisson);
        let md = worker_metadata(&sc);
        assert_eq!(md["prefetchMultiplier"], multiplier, "{workers}");
        assert_eq!(md["acksLate"], acks_late, "{workers}");
        // The policy gets what the trigger parser reads from that metadata.
        let parsed = match trigger::parse(&md, &NamedConnections::default()) {
            Ok(t) => t.policy,
            Err(e) => panic!("{workers}: {e}"),
        };
        assert_eq!(latency_settings(&sc), parsed, "{workers}");
        let PolicySettings::Latency(l) = parsed else {
            panic!("{workers}: not latency mode");
        };
        assert_eq!(l.prefetch.multiplier.to_string(), multiplier);
        assert_eq!(l.prefetch.acks_late.to_string(), acks_late);
    }
}

/// One 20 s task every three minutes on average for two hours, 60 s target, pods up 15 s
/// after activation (KEDA polling 15 s, cooldown 60 s).
fn sparse(pod_startup: Option<f64>) -> Scenario {
    let mut sc = scenario(
        "prefetch_multiplier = 1\nacks_late = true\ntermination_grace = 120",
        r#"{ kind = "log-normal", median = 20.0, sigma = 0.3 }"#,
        r#"{ kind = "poisson", rate = 0.005556 }"#,
    );
    sc.duration = 7200.0;
    sc.target_latency = 60.0;
    sc.workers.concurrency = 4;
    sc.workers.startup = Dist::Constant { value: 15.0 };
    sc.keda.polling_interval = 15.0;
    sc.keda.cooldown_period = 60.0;
    sc.policies.latency_pod_startup = pod_startup;
    sc
}

#[test]
fn lone_tasks_wait_at_zero_for_the_pod_startup_and_still_start_within_the_target() {
    // podStartup defaults to the p95 of the scenario's start-ups (15 s here): a lone task
    // waits at zero until it is 0.8·60 − 15 = 33 s old, so a task arriving meanwhile shares
    // its pod. A podStartup of 48 s (0.8·T) never waits: the first task activates at once.
    assert_eq!(pod_startup(&sparse(None)), 15.0);
    let mut polled = sparse(None);
    polled.keda.external_push = false;
    assert_eq!(pod_startup(&polled), 30.0, "start-up + pollingInterval");
    let run = |sc: &Scenario| report::summarize(sc, &mut latency_on(sc, Signals::Real));
    let (waits, at_once) = (run(&sparse(None)), run(&sparse(Some(48.0))));
    assert!(waits.wait_max <= 60.0, "{waits:?}");
    assert!(
        waits.wait_p50 > at_once.wait_p50 + 10.0,
        "{waits:?} vs {at_once:?}"
    );
    assert!(
        waits.pod_seconds < 0.97 * at_once.pod_seconds,
        "{} pod-s waiting vs {} at once",
        waits.pod_seconds,
        at_once.pod_seconds
    );
}

#[test]
fn a_quantile_of_draws_matches_the_distribution() {
    let p95 = Dist::LogNormal {
        median: 15.0,
        sigma: 0.3,
    }
    .quantile(0.95);
    let exact = 15.0 * (0.3f64 * 1.644_853_6).exp();
    assert!((p95 - exact).abs() < 0.02 * exact, "{p95} vs {exact}");
    assert_eq!(Dist::Constant { value: 4.0 }.quantile(0.95), 4.0);
    let u = Dist::Uniform {
        min: 10.0,
        max: 20.0,
    }
    .quantile(0.5);
    assert!((u - 15.0).abs() < 0.3, "{u}");
}

#[test]
fn configured_latency_times_are_bounded_as_the_trigger_bounds_them() {
    // A day at most, as `podStartup` and `taskDuration` on a trigger (the distributions'
    // 30 days let a scenario state what no trigger accepts).
    for key in ["latency_pod_startup", "latency_task_duration"] {
        let base = "name = \"t\"\nduration = 60\ntarget_latency = 10\n[workers]\nconcurrency = 1\n\
                    [[queues]]\nname = \"q\"\nduration = { kind = \"constant\", value = 1 }\n\
                    arrivals = [{ kind = \"poisson\", rate = 1 }]\n[policies]\n";
        assert!(Scenario::parse(&format!("{base}{key} = 86400\n")).is_ok());
        let err = Scenario::parse(&format!("{base}{key} = 86401\n"))
            .err()
            .unwrap_or_default();
        assert!(err.contains(&format!("policies.{key}")), "{key}: {err}");
    }
}

/// `taskDuration` as the simulator states it: the mean of the tasks the scenario publishes,
/// weighted by how many each arrival process sends; a configured one wins.
#[test]
fn the_stated_task_duration_is_the_mean_of_the_tasks_published() {
    let base = r#"
name = "t"
seed = 5
duration = 900
target_latency = 10
[workers]
concurrency = 2
[[queues]]
name = "short"
duration = { kind = "constant", value = 1 }
arrivals = [{ kind = "burst", at = 10, count = 300 }]
[[queues]]
name = "long"
duration = { kind = "constant", value = 9 }
arrivals = [{ kind = "burst", at = 20, count = 100 }]
"#;
    let sc = Scenario::parse(base).unwrap_or_else(|e| panic!("{e}"));
    // (300 × 1 s + 100 × 9 s) / 400 tasks.
    assert_eq!(crate::simulate::task_duration(&sc), Some(3.0));
    assert_eq!(worker_metadata(&sc)["taskDuration"], "3");
    let set = Scenario::parse(&format!("{base}[policies]\nlatency_task_duration = 2.5\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crate::simulate::task_duration(&set), Some(2.5));
    let PolicySettings::Latency(l) = latency_settings(&set) else {
        panic!("not latency mode");
    };
    assert_eq!(l.task_duration, Some(2.5));
    // A mean the trigger would refuse (0 s tasks) is not stated: S falls back to T.
    let zero = Scenario::parse(
        &base
            .replace("value = 1 }", "value = 0 }")
            .replace("value = 9 }", "value = 0 }"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crate::simulate::task_duration(&zero), None);
    assert!(!worker_metadata(&zero).contains_key("taskDuration"));
}

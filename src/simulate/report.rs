//! Turns run outcomes into the numbers operators compare (wait percentiles, share over
//! target, pod-seconds, cost efficiency, interruptions, scale events, cold start) and renders
//! them: a text table, JSON, a CSV time series and an SVG plot.

use std::fmt::Write as _;

use super::baseline::{anything_meets, cheapest_keda, latency_judged, latency_shortfalls};
use super::outcome::{Outcome, SeriesRow};
use super::scenario::Scenario;
use super::summary::Comparison;
pub use super::summary::{summarize, Summary};

/// The default text table.
pub fn table(sc: &Scenario, rows: &[Summary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {} (seed {}, target wait {} s, {} tasks)",
        sc.name,
        sc.seed,
        sc.target_latency,
        rows.first().map_or(0, |r| r.tasks)
    );
    let _ = writeln!(
        s,
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11} {:>6} {:>6} {:>5} {:>6} {:>9}",
        "policy",
        "p50 s",
        "p95 s",
        "p99 s",
        "max s",
        ">T %",
        "pod-s",
        "eff %",
        "intr",
        "lost",
        "scale",
        "cold s"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>7.2} {:>11.0} {:>6.1} {:>6} {:>5} {:>6} {:>9}",
            r.policy,
            r.wait_p50,
            r.wait_p95,
            r.wait_p99,
            r.wait_max,
            100.0 * r.share_over_target,
            r.pod_seconds,
            100.0 * r.cost_efficiency,
            r.interrupted,
            r.lost,
            r.scale_events,
            r.cold_start_max.map_or("-".to_string(), |c| format!("{c:.1}")),
        );
    }
    let _ = writeln!(
        s,
        "{:<28} {:>58.0}",
        "lower bound (work/c)",
        rows.first().map_or(0.0, |r| r.lower_bound)
    );
    s
}

/// The baselines of a comparison as text lines under the table: the best static fleet, the
/// cheapest keda-redis setting meeting the target, and latency mode's shortfalls.
pub fn baselines_text(sc: &Scenario, cmp: &Comparison) -> String {
    let mut s = String::new();
    let st = &cmp.static_best;
    if st.meets {
        let _ = writeln!(
            s,
            "best static fleet: N={} meets the target with {:.0} pod-s (p95 {:.2} s)",
            st.replicas, st.summary.pod_seconds, st.summary.wait_p95
        );
    } else {
        let _ = writeln!(
            s,
            "best static fleet: no N ≤ max_replicas {} meets the target (p95 at N={}: {:.2} s)",
            st.replicas, st.replicas, st.summary.wait_p95
        );
    }
    match cheapest_keda(sc, &cmp.grid_list_lengths, &cmp.grid) {
        Some((l, k)) => {
            let _ = writeln!(
                s,
                "cheapest keda-redis meeting the target: listLength {l}, {:.0} pod-s (p95 {:.2} s)",
                k.pod_seconds, k.wait_p95
            );
        }
        None => s.push_str("cheapest keda-redis meeting the target: none of the grid meets it\n"),
    }
    if !anything_meets(sc, cmp) {
        s.push_str("nothing meets the target: no policy, grid setting or static N\n");
    }
    let short = latency_shortfalls(sc, cmp);
    if short.is_empty() {
        let _ = writeln!(
            s,
            "{}: meets the bar (target, keda-redis, 1.15× static)",
            latency_judged(cmp)
        );
    } else {
        let _ = writeln!(s, "{}: {}", latency_judged(cmp), short.join("; "));
    }
    s
}

/// The baselines of a comparison as JSON (the `baselines` object of `--json`).
pub fn baselines_json(sc: &Scenario, cmp: &Comparison) -> serde_json::Value {
    let keda = cheapest_keda(sc, &cmp.grid_list_lengths, &cmp.grid).map(|(l, k)| {
        serde_json::json!({
            "list_length": l,
            "pod_seconds": k.pod_seconds,
            "wait_p95": k.wait_p95,
        })
    });
    serde_json::json!({
        "static_best": cmp.static_best,
        "lower_bound": cmp.summaries.first().map_or(0.0, |r| r.lower_bound),
        "keda_redis_cheapest_meeting": keda,
        "anything_meets": anything_meets(sc, cmp),
        "latency_shortfalls": latency_shortfalls(sc, cmp),
    })
}

/// CSV time series of every run: `policy,t,replicas,ready,backlog,running,oldest_wait,metric`.
pub fn csv(outcomes: &[Outcome]) -> String {
    let mut s = String::from("policy,t,replicas,ready,backlog,running,oldest_wait,desired\n");
    for o in outcomes {
        for r in &o.series {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{:.3},{:.3}",
                o.label, r.t, r.replicas, r.ready, r.backlog, r.running, r.oldest_wait, r.metric
            );
        }
    }
    s
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// An SVG with two panels: replicas per policy, and the oldest waiting task per policy.
pub fn svg(sc: &Scenario, outcomes: &[Outcome]) -> String {
    let (w, h, pad) = (960.0, 260.0, 50.0);
    let t_max = sc.duration + sc.drain;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="12">"#,
        2.0 * h + 40.0
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{pad}" y="16">{} — replicas (top), oldest waiting task in s (bottom)</text>"#,
        escape(&sc.name)
    );
    type Getter = fn(&SeriesRow) -> f64;
    let panels: [(&str, Getter); 2] = [
        ("replicas", |r| f64::from(r.replicas)),
        ("oldest wait s", |r| r.oldest_wait),
    ];
    for (pi, (name, get)) in panels.iter().enumerate() {
        let top = 30.0 + pi as f64 * (h + 10.0);
        let y_max = outcomes
            .iter()
            .flat_map(|o| o.series.iter().map(get))
            .fold(1.0, f64::max)
            * 1.05;
        let _ = writeln!(
            s,
            r##"<rect x="{pad}" y="{top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            w - 2.0 * pad,
            h - pad
        );
        let _ = writeln!(
            s,
            r#"<text x="4" y="{}">{:.0}</text><text x="4" y="{}">0</text><text x="{}" y="{}">{name}</text>"#,
            top + 12.0,
            y_max,
            top + h - pad,
            pad + 4.0,
            top + 14.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{:.0} s</text>"#,
            w - pad,
            top + h - pad + 14.0,
            t_max
        );
        for (oi, o) in outcomes.iter().enumerate() {
            let color = COLORS[oi % COLORS.len()];
            let mut pts = String::new();
            for r in &o.series {
                let x = pad + (w - 2.0 * pad) * r.t / t_max;
                let y = top + (h - pad) * (1.0 - get(r) / y_max);
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{pts}"/>"#
            );
            if pi == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
                    w - pad - 180.0,
                    top + 16.0 + 14.0 * oi as f64,
                    escape(&o.label)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

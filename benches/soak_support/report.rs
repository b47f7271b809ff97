//! What one phase measured, and the markdown report of both phases side by side with the
//! ratio attacked ÷ unattacked, followed by what each hostile kind got from the scaler.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::app::AppStats;
use super::normal::{NormalStats, Probe};
use super::process::RssTrack;
use super::{Settings, Tally, HOSTILE_KINDS};
use crate::grpc_support::Summary;

/// `/metrics` at the end of a phase: bytes and sample lines, or why it could not be read.
pub type MetricsPage = Result<(usize, usize), String>;

/// The broker's view at the end of a phase (`INFO`), when it answered.
#[derive(Clone, Debug, Default)]
pub struct RedisInfo {
    pub connected_clients: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub used_memory_rss_mib: Option<f64>,
}

/// Everything one phase measured.
pub struct Phase {
    pub name: &'static str,
    pub rss: RssTrack,
    pub normal: NormalStats,
    pub healthz: Probe,
    pub app: AppStats,
    pub metrics_page: MetricsPage,
    pub redis: RedisInfo,
    /// Bytes the scaler logged (at `RUST_LOG=warn`) during the phase.
    pub log_bytes: u64,
    pub hostile: BTreeMap<&'static str, Tally>,
}

/// One number read from a phase.
type Reading = fn(&Phase) -> Option<f64>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn errors(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A number for a table cell: `digits` decimals, or scientific notation when huge.
fn num(v: f64, digits: usize) -> String {
    if v.abs() >= 1e7 {
        format!("{v:.2e}")
    } else {
        format!("{v:.digits$}")
    }
}

/// One table row: both values, and their ratio when both are known and the first is > 0.
fn row(out: &mut String, name: &str, a: Option<f64>, b: Option<f64>, digits: usize) {
    let cell = |v: Option<f64>| v.map_or("n/a".to_string(), |v| num(v, digits));
    let ratio = match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => num(b / a, 2),
        _ => "—".into(),
    };
    let _ = writeln!(out, "| {name} | {} | {} | {ratio} |", cell(a), cell(b));
}

fn text_row(out: &mut String, name: &str, a: &str, b: &str) {
    let _ = writeln!(out, "| {name} | {a} | {b} | |");
}

/// Renders both phases; `header` lines go first, `notes` after the tables.
pub fn render(header: &[String], p: [&Phase; 2], notes: &[String]) -> String {
    let mut out = String::new();
    for h in header {
        let _ = writeln!(out, "{h}  ");
    }
    let _ = writeln!(
        out,
        "\n| measure | {} | {} | {} ÷ {} |\n|---|---|---|---|",
        p[0].name, p[1].name, p[1].name, p[0].name
    );
    let both = |f: Reading| (f(p[0]), f(p[1]));
    let rows: [(&str, Reading, usize); 17] = [
        ("scaler RSS at start, MiB", |x| Some(x.rss.start), 1),
        ("scaler RSS at end, MiB", |x| Some(x.rss.end), 1),
        ("scaler RSS peak, MiB", |x| Some(x.rss.peak), 1),
        (
            "normal `GetMetrics` p50, ms",
            |x| pct(&x.normal.metrics, 0.5),
            2,
        ),
        (
            "normal `GetMetrics` p99, ms",
            |x| pct(&x.normal.metrics, 0.99),
            2,
        ),
        (
            "normal `IsActive` p50, ms",
            |x| pct(&x.normal.active, 0.5),
            2,
        ),
        (
            "normal `IsActive` p99, ms",
            |x| pct(&x.normal.active, 0.99),
            2,
        ),
        ("normal calls answered", |x| Some(x.normal.ok as f64), 0),
        (
            "normal calls failed",
            |x| Some(x.normal.errors.values().sum::<u64>() as f64),
            0,
        ),
        (
            "largest normal metric value",
            |x| Some(x.normal.max_value),
            1,
        ),
        ("`/healthz` p99, ms", |x| pct(&x.healthz.latencies, 0.99), 2),
        (
            "`/healthz` failures",
            |x| Some(x.healthz.errors.values().sum::<u64>() as f64),
            0,
        ),
        (
            "`/metrics` sample lines at end",
            |x| x.metrics_page.as_ref().ok().map(|m| m.1 as f64),
            0,
        ),
        (
            "`/metrics` size at end, KiB",
            |x| x.metrics_page.as_ref().ok().map(|m| m.0 as f64 / 1024.0),
            1,
        ),
        ("scaler log, KiB", |x| Some(x.log_bytes as f64 / 1024.0), 1),
        (
            "app broker errors",
            |x| Some(x.app.errors.values().sum::<u64>() as f64),
            0,
        ),
        ("redis clients at end", |x| x.redis.connected_clients, 0),
    ];
    for (name, f, digits) in rows {
        let (a, b) = both(f);
        row(&mut out, name, a, b, digits);
    }
    let (a, b) = both(|x| x.redis.used_memory_rss_mib);
    row(&mut out, "redis RSS at end, MiB", a, b, 1);
    let (a, b) = both(|x| x.redis.rejected_connections);
    row(&mut out, "redis rejected connections (cumulative)", a, b, 0);
    text_row(
        &mut out,
        "normal errors by kind",
        &errors(&p[0].normal.errors),
        &errors(&p[1].normal.errors),
    );
    text_row(
        &mut out,
        "`/healthz` errors",
        &errors(&p[0].healthz.errors),
        &errors(&p[1].healthz.errors),
    );
    text_row(
        &mut out,
        "app errors",
        &errors(&p[0].app.errors),
        &errors(&p[1].app.errors),
    );
    let page = |x: &Phase| x.metrics_page.as_ref().err().cloned().unwrap_or_default();
    text_row(&mut out, "`/metrics` read error", &page(p[0]), &page(p[1]));
    let cap = |x: &Phase| {
        x.rss
            .cap_hit_at
            .map_or(String::new(), |t| format!("at {t:.0} s"))
    };
    text_row(
        &mut out,
        "RSS cap stopped hostile traffic",
        &cap(p[0]),
        &cap(p[1]),
    );
    out.push_str(&hostile_table(p[1]));
    for n in notes {
        let _ = writeln!(out, "\n{n}");
    }
    out
}

fn pct(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    Some(ms(Summary::new(samples.to_vec()).pct(p)))
}

/// What each hostile kind got in the attacked phase.
fn hostile_table(p: &Phase) -> String {
    let mut out = format!(
        "\nHostile traffic in the {} phase (`ok` = the scaler accepted or answered it; for \
         slowloris, still held open at the end):\n\n\
         | kind | ok | refused or failed | by kind |\n|---|---|---|---|\n",
        p.name
    );
    for kind in HOSTILE_KINDS {
        match p.hostile.get(kind) {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "| {kind} | {} | {} | {} |",
                    t.ok,
                    t.error_total(),
                    errors(&t.errors)
                );
            }
            None => {
                let _ = writeln!(out, "| {kind} | — | — | not run |");
            }
        }
    }
    out
}

/// The report's header: machine, settings, what the table's numbers are.
pub fn header(s: &Settings, machine: &str, server: &str) -> Vec<String> {
    vec![
        format!(
            "soak: {} s per phase (unattacked, then attacked), hostile counts ×{}, skip: {}",
            s.secs,
            s.scale,
            if s.skip.is_empty() {
                "none".into()
            } else {
                s.skip.join(",")
            }
        ),
        format!("machine: {machine}"),
        format!("server: {server}"),
        format!(
            "normal call bound {} s, hostile call bound {} s; latencies include failed and \
             timed-out calls (a timeout counts as the bound)",
            s.call_timeout.as_secs_f64(),
            s.hostile_timeout.as_secs_f64()
        ),
    ]
}

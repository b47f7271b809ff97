//! How the bench's verdicts move with the seeds: the library under the recommended settings
//! with every scenario's `seed` offset (`docs/benchmarks/scaling.md`, "Seed sensitivity").

use std::fmt::Write as _;

use super::baseline::{judged_signals, latency_judged, meets_bar};
use super::held::held_at_floor;
use super::{compare, Comparison, Scenario, SimError};

/// What the scenarios' seeds are offset by for the seed-sensitivity table: task lengths,
/// random arrivals and pod start-ups drawn anew (traces and bursts stay).
pub const SEED_OFFSETS: [u64; 2] = [1_000, 2_000];

const SEEDS_INTRO: &str = "
## Seed sensitivity (recommended settings)

The library's verdicts rest on one seed per scenario. The same scenarios under the same
settings with their `seed` offset (task lengths, random arrivals and pod start-ups drawn
anew; traces and bursts stay): whether latency mode on real signals meets the bar, with its
pod-seconds and p95 wait. Where it misses its target and a static fleet meets it, the cell
adds the fewest `minReplicaCount` K with which it meets the target held at zero between
bursts (`idleReplicaCount` 0) and whether it then meets the bar.

";

/// One scenario's verdict under `sc` (already at the settings to judge): whether latency
/// mode meets the bar, whether it does held at zero where it misses its target ([`held_note`]),
/// and a table cell saying so with its pod-seconds and p95.
fn verdict_cell(sc: &Scenario) -> Result<(bool, bool, String), SimError> {
    let cmp = compare(sc)?;
    let ok = meets_bar(sc, &cmp);
    let judged = latency_judged(&cmp);
    let cell = cmp
        .summaries
        .iter()
        .find(|s| s.policy == judged)
        .map_or_else(
            || "-".to_string(),
            |s| {
                let word = if ok { "meets" } else { "misses" };
                format!(
                    "{word} ({:.0} pod-s, p95 {:.2} s)",
                    s.pod_seconds, s.wait_p95
                )
            },
        );
    let (held, note) = held_note(sc, &cmp)?;
    Ok((ok, held, cell + &note))
}

/// Where latency mode misses its target and the best static fleet meets it: whether it meets
/// the bar held at zero, and the held-at-zero K with its verdict (`false` and empty otherwise).
fn held_note(sc: &Scenario, cmp: &Comparison) -> Result<(bool, String), SimError> {
    let judged = latency_judged(cmp);
    let missed = cmp
        .summaries
        .iter()
        .find(|s| s.policy == judged)
        .is_some_and(|s| s.wait_p95 > sc.target_latency);
    if !(missed && cmp.static_best.meets) {
        return Ok((false, String::new()));
    }
    Ok(match held_at_floor(sc, cmp, judged_signals(cmp))? {
        Some(h) => {
            let meets = h.shortfalls.is_empty();
            let note = format!(
                "; held at zero, K = {}: {} ({:.0} pod-s, p95 {:.2} s)",
                h.k,
                if meets { "meets" } else { "misses" },
                h.run.pod_seconds,
                h.run.wait_p95
            );
            (meets, note)
        }
        None => (false, "; held at zero: no K meets the target".into()),
    })
}

/// The seed-sensitivity table: each scenario under the recommended settings at its own seed
/// (`own`, already judged) and at each of [`SEED_OFFSETS`].
pub(crate) fn seed_table(runs: &[(Scenario, bool)]) -> Result<String, SimError> {
    let mut md = String::from(SEEDS_INTRO);
    md.push_str("| scenario | library seed |");
    for off in SEED_OFFSETS {
        let _ = write!(md, " seed + {off} |");
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(SEED_OFFSETS.len()));
    md.push('\n');
    let mut met = vec![0usize; SEED_OFFSETS.len()];
    let mut held = vec![0usize; SEED_OFFSETS.len()];
    let mut own_met = 0;
    for (sc, own) in runs {
        own_met += usize::from(*own);
        let _ = write!(
            md,
            "| {} | {} |",
            sc.name,
            if *own { "meets" } else { "misses" }
        );
        for (i, off) in SEED_OFFSETS.iter().enumerate() {
            let mut s = sc.clone();
            s.seed = sc.seed.wrapping_add(*off);
            let (ok, held_ok, cell) = verdict_cell(&s)?;
            met[i] += usize::from(ok);
            held[i] += usize::from(held_ok);
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    let join = |v: &[usize]| {
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let _ = write!(
        md,
        "\nLatency mode meets the bar on {own_met} of {n} scenarios at the library's seeds, \
         on {} of {n} at the others",
        join(&met),
        n = runs.len()
    );
    if held.iter().any(|h| *h > 0) {
        let _ = write!(
            md,
            "; held at zero between bursts with the K its cell gives, on {} more",
            join(&held)
        );
    }
    md.push_str(".\n");
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulate::bench::tests::{cold_fast_pods, FEASIBLE};
    use crate::simulate::Signals;

    #[test]
    fn each_scenario_is_judged_again_at_every_seed_offset() {
        let sc = Scenario::parse(FEASIBLE).unwrap_or_else(|e| panic!("{e}"));
        // 6 slots of work on at most one 2-slot pod: nothing meets, at any seed.
        let hopeless = Scenario::parse(
            &FEASIBLE
                .replace("\"feasible\"", "\"hopeless\"")
                .replace("max_replicas = 10", "max_replicas = 1")
                .replace("rate = 2", "rate = 6"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let md =
            seed_table(&[(sc.clone(), true), (hopeless, false)]).unwrap_or_else(|e| panic!("{e}"));
        let row = |name: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("no {name} row in {md}"))
        };
        let (steady, hopeless) = (row("feasible"), row("hopeless"));
        assert_eq!(steady.len(), 4 + SEED_OFFSETS.len(), "{md}");
        assert!(hopeless[3..3 + SEED_OFFSETS.len()]
            .iter()
            .all(|c| c.starts_with("misses")));
        // Each offset is a run of its own: the cell is that run's verdict and pod-seconds.
        let mut other = sc.clone();
        other.seed = sc.seed + SEED_OFFSETS[0];
        let (_, _, cell) = verdict_cell(&other).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(steady[3], cell, "{md}");
        assert_ne!(steady[3], steady[4], "{md}");
        assert!(
            md.contains("on 1 of 2 scenarios at the library's seeds"),
            "{md}"
        );
    }

    #[test]
    fn a_missed_target_gets_the_held_at_zero_floor_and_its_verdict() {
        // Bursts on an idle queue with pods ready in 4 s: from zero latency mode misses the
        // 10 s target, a fleet up from the start meets it, and K pods started at once on
        // the first task meet it too; over an hour the fleet costs more than 1.15 x what
        // they do, so held at zero latency mode meets the bar.
        let text = cold_fast_pods().replace("duration = 600", "duration = 3600");
        let sc = Scenario::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let md = seed_table(&[(sc.clone(), false)]).unwrap_or_else(|e| panic!("{e}"));
        let mut held_met = Vec::new();
        for off in SEED_OFFSETS {
            let mut s = sc.clone();
            s.seed = sc.seed + off;
            let cmp = compare(&s).unwrap_or_else(|e| panic!("{e}"));
            let held = held_at_floor(&s, &cmp, Signals::Real)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no K at seed + {off}: {md}"));
            let word = if held.shortfalls.is_empty() {
                "meets"
            } else {
                "misses"
            };
            let want = format!(
                "; held at zero, K = {}: {word} ({:.0} pod-s, p95 {:.2} s) |",
                held.k, held.run.pod_seconds, held.run.wait_p95
            );
            assert!(md.contains(&want), "{want}\n{md}");
            held_met.push(usize::from(held.shortfalls.is_empty()).to_string());
        }
        // The summary counts the cells that meet the bar held at zero.
        let more = format!(
            "; held at zero between bursts with the K its cell gives, on {} more.",
            held_met.join(" and ")
        );
        assert!(held_met.iter().any(|h| h != "0"), "{md}");
        assert!(md.contains(&more), "{more}\n{md}");
        // A scenario that meets its target gets no such note.
        let feasible = Scenario::parse(FEASIBLE).unwrap_or_else(|e| panic!("{e}"));
        let md = seed_table(&[(feasible, true)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!md.contains("held at zero, K"), "{md}");
    }
}

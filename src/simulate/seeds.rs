//! How the bench's verdicts move with the seeds: the library under the recommended settings
//! with every scenario's `seed` offset (`docs/benchmarks/scaling.md`, "Seed sensitivity").

use std::fmt::Write as _;

use super::baseline::{latency_judged, meets_bar};
use super::{compare, Scenario, SimError};

/// What the scenarios' seeds are offset by for the seed-sensitivity table: task lengths,
/// random arrivals and pod start-ups drawn anew (traces and bursts stay).
pub const SEED_OFFSETS: [u64; 2] = [1_000, 2_000];

const SEEDS_INTRO: &str = "
## Seed sensitivity (recommended settings)

The library's verdicts rest on one seed per scenario. The same scenarios under the same
settings with their `seed` offset (task lengths, random arrivals and pod start-ups drawn
anew; traces and bursts stay): whether latency mode on real signals meets the bar, with its
pod-seconds and p95 wait.

";

/// One scenario's verdict under `sc` (already at the settings to judge): whether latency
/// mode meets the bar, and a table cell saying so with its pod-seconds and p95.
fn verdict_cell(sc: &Scenario) -> Result<(bool, String), SimError> {
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
    Ok((ok, cell))
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
            let (ok, cell) = verdict_cell(&s)?;
            met[i] += usize::from(ok);
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    let others: Vec<String> = met.iter().map(usize::to_string).collect();
    let _ = writeln!(
        md,
        "\nLatency mode meets the bar on {own_met} of {n} scenarios at the library's seeds, \
         on {} of {n} at the others.",
        others.join(" and "),
        n = runs.len()
    );
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulate::bench::tests::FEASIBLE;

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
        let (_, cell) = verdict_cell(&other).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(steady[3], cell, "{md}");
        assert_ne!(steady[3], steady[4], "{md}");
        assert!(
            md.contains("on 1 of 2 scenarios at the library's seeds"),
            "{md}"
        );
    }
}

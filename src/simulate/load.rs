//! Reading a scenario file and validating it (every problem in one message, the size limits
//! of `limits.rs` included).

use std::path::Path;

use super::error::SimError;
use super::limits;
use super::scenario::{Arrival, Scenario};

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s = Self::parse(&text).map_err(|message| SimError::Scenario {
            path: path.to_path_buf(),
            message,
        })?;
        s.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(s)
    }

    /// Parses and validates scenario text (all problems in one message).
    pub fn parse(text: &str) -> Result<Self, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        let problems = s.problems();
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems.join("; "))
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut pos = |ok: bool, what: &str| {
            if !ok {
                p.push(format!("{what} must be a positive number"));
            }
        };
        // Finite values, ranges and totals: `limits`.
        pos(self.duration > 0.0, "duration");
        pos(self.target_latency > 0.0, "target_latency");
        let k = &self.keda;
        pos(
            k.max_replicas >= 1 && k.max_replicas >= k.min_replicas,
            "keda.max_replicas (≥ min_replicas)",
        );
        pos(self.workers.concurrency >= 1, "workers.concurrency");
        pos(
            self.workers.visibility_timeout > 0.0,
            "workers.visibility_timeout",
        );
        pos(
            self.sampler.rate_window >= 1
                && self.sampler.fast_window >= 1
                && self.sampler.service_window >= 1,
            "sampler windows",
        );
        pos(
            self.policies.backlog_list_length > 0.0,
            "policies.backlog_list_length",
        );
        if let Err(e) = self.workers.startup.validate("workers.startup") {
            p.push(e);
        }
        if self.queues.is_empty() || self.queues.len() > 64 {
            p.push("queues: give between 1 and 64 queues".into());
        }
        for q in &self.queues {
            for e in [
                q.duration.validate(&format!("queues.{}.duration", q.name)),
                q.eta_delay
                    .validate(&format!("queues.{}.eta_delay", q.name)),
            ] {
                if let Err(e) = e {
                    p.push(e);
                }
            }
            if !(0.0..=1.0).contains(&q.eta_share) {
                p.push(format!("queues.{}.eta_share must be in [0, 1]", q.name));
            }
            if q.priorities.is_empty()
                || q.priorities
                    .iter()
                    .any(|(_, w)| !(w.is_finite() && *w >= 0.0))
                || q.priorities.iter().map(|(_, w)| w).sum::<f64>() <= 0.0
            {
                p.push(format!(
                    "queues.{}.priorities needs [step, weight] pairs with a positive total weight",
                    q.name
                ));
            }
            for a in &q.arrivals {
                let ok = match a {
                    Arrival::Poisson { rate, start, end } => {
                        *rate >= 0.0 && *start >= 0.0 && end.is_none_or(|e| e >= *start)
                    }
                    Arrival::Ramp {
                        from,
                        to,
                        start,
                        end,
                    } => *from >= 0.0 && *to >= 0.0 && end > start && *start >= 0.0,
                    Arrival::Diurnal {
                        mean,
                        amplitude,
                        period,
                        ..
                    } => *mean >= 0.0 && (0.0..=1.0).contains(amplitude) && *period > 0.0,
                    Arrival::Burst { at, over, .. } => *at >= 0.0 && *over >= 0.0,
                    Arrival::Trace { .. } => true,
                };
                if !ok {
                    p.push(format!("queues.{}: invalid arrival {a:?}", q.name));
                }
            }
        }
        p.extend(limits::problems(self));
        p
    }
}

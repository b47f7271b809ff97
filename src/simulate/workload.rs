//! Arrival processes and task attributes: turns a scenario's queue specs into a
//! deterministic stream of tasks (same seed → same tasks for every policy compared).

use std::path::Path;

use super::error::SimError;
use super::rng::{Dist, Rng};
use super::scenario::{Arrival, QueueSpec};

/// A task as published by a producer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Task {
    pub queue: u16,
    /// Index into the layout's priority steps (0 = highest priority).
    pub step: u8,
    /// Publish time.
    pub arrival: f64,
    /// When it may start: `arrival`, or its ETA.
    pub due: f64,
    pub duration: f64,
    /// Set once the task has started (re-runs after a SIGKILL do not count twice).
    pub started: bool,
    /// Unique per run, in publish order: its delivery tag in the simulated broker.
    pub id: u64,
    /// When a worker last fetched it (kombu's `unacked_index` score: the visibility
    /// timeout counts from here).
    pub fetched: f64,
    /// Restored to its queue once (kombu marks the copy `redelivered`).
    pub redelivered: bool,
}

/// What a trace line fixes about its task (unset: drawn from the queue's distributions).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Given {
    pub duration: Option<f64>,
    /// Celery priority 0–9 (kombu puts it in the highest step ≤ it).
    pub priority: Option<u8>,
}

/// One arrival process with its own random stream.
enum Source {
    Poisson {
        rate: f64,
        end: f64,
    },
    Thinned {
        max_rate: f64,
        end: f64,
        shape: Shape,
    },
    Times {
        times: Vec<(f64, Given)>,
        next: usize,
    },
}

enum Shape {
    Ramp {
        from: f64,
        to: f64,
        start: f64,
        end: f64,
    },
    Diurnal {
        mean: f64,
        amplitude: f64,
        period: f64,
        peak: f64,
    },
}

impl Shape {
    fn rate(&self, t: f64) -> f64 {
        match self {
            Shape::Ramp {
                from,
                to,
                start,
                end,
            } => from + (to - from) * ((t - start) / (end - start)).clamp(0.0, 1.0),
            Shape::Diurnal {
                mean,
                amplitude,
                period,
                peak,
            } => mean * (1.0 + amplitude * (std::f64::consts::TAU * (t - peak) / period).cos()),
        }
    }
}

/// A generator of one queue's arrivals: `next` gives the next publish time.
pub struct Stream {
    source: Source,
    rng: Rng,
    /// Next publish time (and what a trace fixes), or None when exhausted.
    pub next: Option<(f64, Given)>,
}

impl Stream {
    fn new(source: Source, start: f64, rng: Rng) -> Self {
        let mut s = Self {
            source,
            rng,
            next: None,
        };
        s.next = s.advance(start);
        s
    }

    fn advance(&mut self, from: f64) -> Option<(f64, Given)> {
        match &mut self.source {
            Source::Poisson { rate, end } => {
                if *rate <= 0.0 {
                    return None;
                }
                let t = from + self.rng.exponential(1.0 / *rate);
                (t < *end).then_some((t, Given::default()))
            }
            Source::Thinned {
                max_rate,
                end,
                shape,
            } => {
                if *max_rate <= 0.0 {
                    return None;
                }
                let mut t = from;
                loop {
                    t += self.rng.exponential(1.0 / *max_rate);
                    if t >= *end {
                        return None;
                    }
                    if self.rng.uniform() * *max_rate < shape.rate(t) {
                        return Some((t, Given::default()));
                    }
                }
            }
            Source::Times { times, next } => {
                let v = times.get(*next).copied();
                *next += 1;
                v
            }
        }
    }

    /// Moves to the arrival after the current one.
    pub fn step(&mut self) {
        if let Some((t, _)) = self.next {
            self.next = self.advance(t);
        }
    }
}

/// Builds the arrival streams of queue `qi` (arrivals stop at `horizon`).
pub fn streams(
    q: &QueueSpec,
    qi: usize,
    seed: u64,
    horizon: f64,
    base: &Path,
) -> Result<Vec<Stream>, SimError> {
    let mut out = Vec::new();
    for (ai, a) in q.arrivals.iter().enumerate() {
        let rng = Rng::derive(seed, 0x1000 + (qi as u64) * 256 + ai as u64);
        let s = match a {
            Arrival::Poisson { rate, start, end } => Stream::new(
                Source::Poisson {
                    rate: *rate,
                    end: end.unwrap_or(horizon).min(horizon),
                },
                *start,
                rng,
            ),
            Arrival::Ramp {
                from,
                to,
                start,
                end,
            } => Stream::new(
                Source::Thinned {
                    max_rate: from.max(*to),
                    end: end.min(horizon),
                    shape: Shape::Ramp {
                        from: *from,
                        to: *to,
                        start: *start,
                        end: *end,
                    },
                },
                *start,
                rng,
            ),
            Arrival::Diurnal {
                mean,
                amplitude,
                period,
                peak,
            } => Stream::new(
                Source::Thinned {
                    max_rate: mean * (1.0 + amplitude),
                    end: horizon,
                    shape: Shape::Diurnal {
                        mean: *mean,
                        amplitude: *amplitude,
                        period: *period,
                        peak: *peak,
                    },
                },
                0.0,
                rng,
            ),
            Arrival::Burst { at, count, over } => {
                let n = *count as f64;
                let times = (0..*count)
                    .map(|i| (at + over * i as f64 / n, Given::default()))
                    .filter(|(t, _)| *t < horizon)
                    .collect();
                Stream::new(Source::Times { times, next: 0 }, 0.0, rng)
            }
            Arrival::Trace { path } => {
                let full = base.join(path);
                let text = std::fs::read_to_string(&full).map_err(|source| SimError::Io {
                    path: full.clone(),
                    source,
                })?;
                let times = parse_trace(&text, horizon).map_err(|message| SimError::Scenario {
                    path: full,
                    message,
                })?;
                Stream::new(Source::Times { times, next: 0 }, 0.0, rng)
            }
        };
        out.push(s);
    }
    Ok(out)
}

/// `timestamp[,duration[,priority]]` lines; `#` comments and one non-numeric header are
/// skipped.
pub fn parse_trace(text: &str, horizon: f64) -> Result<Vec<(f64, Given)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split(',').map(str::trim);
        let first = cols.next().unwrap_or_default();
        let Ok(t) = first.parse::<f64>() else {
            if out.is_empty() && n == 0 {
                continue; // header
            }
            return Err(format!("line {}: not a timestamp: {first:?}", n + 1));
        };
        let d = match cols.next() {
            None | Some("") => None,
            Some(d) => Some(
                d.parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d >= 0.0)
                    .ok_or_else(|| format!("line {}: bad duration {d:?}", n + 1))?,
            ),
        };
        let priority = match cols.next() {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 9)
                    .ok_or_else(|| format!("line {}: bad priority {p:?} (0–9)", n + 1))?,
            ),
        };
        if !t.is_finite() || t < 0.0 {
            return Err(format!("line {}: timestamps must be ≥ 0", n + 1));
        }
        if t < horizon {
            if out.len() as f64 >= super::limits::MAX_TASKS {
                return Err(format!(
                    "more than {:.0} arrivals (the limit on tasks per scenario)",
                    super::limits::MAX_TASKS
                ));
            }
            out.push((
                t,
                Given {
                    duration: d,
                    priority,
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// Draws the attributes of tasks of one queue.
pub struct TaskMaker {
    rng: Rng,
    duration: Dist,
    eta_delay: Dist,
    eta_share: f64,
    /// Cumulative weights over (step index).
    cumulative: Vec<(u8, f64)>,
    /// The layout's ordered priority steps.
    steps: Vec<u8>,
}

impl TaskMaker {
    /// `steps` is the layout's ordered priority steps.
    pub fn new(q: &QueueSpec, qi: usize, seed: u64, steps: &[u8]) -> Self {
        let total: f64 = q.priorities.iter().map(|(_, w)| w).sum();
        let mut acc = 0.0;
        let cumulative = q
            .priorities
            .iter()
            .map(|(step, w)| {
                acc += w / total;
                let idx = steps.iter().position(|s| s == step).unwrap_or(0) as u8;
                (idx, acc)
            })
            .collect();
        Self {
            rng: Rng::derive(seed, 0x2000 + qi as u64),
            duration: q.duration.clone(),
            eta_delay: q.eta_delay.clone(),
            eta_share: q.eta_share,
            cumulative,
            steps: steps.to_vec(),
        }
    }

    pub fn make(&mut self, queue: u16, arrival: f64, given: Given) -> Task {
        let sampled = self.duration.sample(&mut self.rng);
        let u = self.rng.uniform();
        let step = self
            .cumulative
            .iter()
            .find(|(_, c)| u < *c)
            .or(self.cumulative.last())
            .map_or(0, |(s, _)| *s);
        // A given priority goes to the highest step ≤ it (kombu's `_get_message_priority`).
        let step = given.priority.map_or(step, |p| {
            self.steps.iter().rposition(|s| *s <= p).unwrap_or(0) as u8
        });
        let eta = self.rng.uniform() < self.eta_share;
        let delay = self.eta_delay.sample(&mut self.rng);
        Task {
            queue,
            step,
            arrival,
            due: if eta { arrival + delay } else { arrival },
            duration: given.duration.unwrap_or(sampled),
            started: false,
            id: 0,
            fetched: arrival,
            redelivered: false,
        }
    }
}

/// The mean duration of the tasks `sc` publishes (trace durations where a trace gives them,
/// else each queue's distribution mean), weighted by how many each arrival process sends:
/// `taskDuration` as an operator who knows the workload's average task states it. `None`
/// when the scenario sends nothing, a trace cannot be read, or the mean is outside what the
/// trigger accepts (`MIN_TARGET` … `MAX_SECONDS`: S then falls back to T, as without it).
pub fn mean_task_duration(sc: &crate::simulate::Scenario) -> Option<f64> {
    let (mut n, mut total) = (0u64, 0.0f64);
    for (qi, q) in sc.queues.iter().enumerate() {
        let mean = q.duration.mean();
        for mut s in streams(q, qi, sc.seed, sc.duration, &sc.base_dir).ok()? {
            while let Some((_, given)) = s.next {
                n += 1;
                total += given.duration.unwrap_or(mean);
                s.step();
            }
        }
    }
    let range = crate::trigger::MIN_TARGET..=crate::trigger::limits::MAX_SECONDS;
    Some(total / n as f64).filter(|d| n > 0 && range.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_skip_headers_and_comments() {
        let t = parse_trace("ts,duration\n# x\n3.5\n1,2\n\n99\n", 50.0).expect("valid");
        let given = |d| Given {
            duration: d,
            priority: None,
        };
        assert_eq!(t, vec![(1.0, given(Some(2.0))), (3.5, given(None))]);
        assert!(parse_trace("1\nx\n", 10.0).is_err());
        assert!(parse_trace("1,-3\n", 10.0).is_err());
    }

    #[test]
    fn trace_priorities_land_in_the_highest_step_not_above_them() {
        let t = parse_trace("0,1,9\n1,1,4\n2,1\n3,,0\n", 50.0).expect("valid");
        let prios: Vec<Option<u8>> = t.iter().map(|(_, g)| g.priority).collect();
        assert_eq!(prios, vec![Some(9), Some(4), None, Some(0)]);
        assert!(parse_trace("1,1,10\n", 10.0).is_err());
        assert!(parse_trace("1,1,x\n", 10.0).is_err());
        let q: QueueSpec = toml::from_str(
            "name = \"q\"\nduration = { kind = \"constant\", value = 1 }\narrivals = []\n\
             priorities = [[0, 1.0]]",
        )
        .expect("queue");
        // Layout steps 0, 3, 9 (indices 0, 1, 2); an unset priority follows the weights.
        let mut m = TaskMaker::new(&q, 0, 1, &[0, 3, 9]);
        let steps: Vec<u8> = t.iter().map(|(at, g)| m.make(0, *at, *g).step).collect();
        assert_eq!(steps, vec![2, 1, 0, 0]);
    }
}

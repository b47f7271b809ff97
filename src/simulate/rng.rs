//! Seeded randomness for the simulator: a small xoshiro256** generator (so results do not
//! change with a dependency's version) and the distributions scenarios use for task
//! durations, ETA delays and pod start-up delays.

use serde::{Deserialize, Serialize};

/// xoshiro256** seeded through SplitMix64. Deterministic across platforms.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// An independent stream derived from this seed and a label.
    pub fn derive(seed: u64, label: u64) -> Self {
        Self::new(seed ^ label.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe under `ln`.
    fn open_uniform(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_uniform().ln()
    }

    /// Standard normal (Box–Muller; one value per call keeps the stream simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.open_uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Draws behind [`Dist::quantile`].
const QUANTILE_DRAWS: usize = 4_000;
/// The stream [`Dist::quantile`] draws from (apart from every scenario's).
const QUANTILE_SEED: u64 = 0x9e37_79b9;

/// A distribution of non-negative durations, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Dist {
    Constant {
        value: f64,
    },
    Exponential {
        mean: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    /// Log-normal given by its median and the σ of the underlying normal.
    LogNormal {
        median: f64,
        sigma: f64,
    },
    /// With probability `p` a draw from `a`, otherwise from `b`.
    Bimodal {
        p: f64,
        a: Box<Dist>,
        b: Box<Dist>,
    },
}

impl Dist {
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        let v = match self {
            Dist::Constant { value } => *value,
            Dist::Exponential { mean } => rng.exponential(*mean),
            Dist::Uniform { min, max } => min + (max - min) * rng.uniform(),
            Dist::LogNormal { median, sigma } => median * (sigma * rng.normal()).exp(),
            Dist::Bimodal { p, a, b } => {
                if rng.uniform() < *p {
                    a.sample(rng)
                } else {
                    b.sample(rng)
                }
            }
        };
        if v.is_finite() {
            v.max(0.0)
        } else {
            0.0
        }
    }

    /// The mean, for reports and for the configured `taskDuration` fallback.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Constant { value } => *value,
            Dist::Exponential { mean } => *mean,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::LogNormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Dist::Bimodal { p, a, b } => p * a.mean() + (1.0 - p) * b.mean(),
        }
    }

    /// The `q`-quantile (0 < q < 1) of `QUANTILE_DRAWS` draws from a fixed stream: exact
    /// enough for a configured setting, and the same for every run.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut rng = Rng::new(QUANTILE_SEED);
        let mut v: Vec<f64> = (0..QUANTILE_DRAWS).map(|_| self.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        let i = (q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round() as usize;
        v[i]
    }

    /// Largest value the distribution can produce, if bounded.
    pub fn max(&self) -> Option<f64> {
        match self {
            Dist::Constant { value } => Some(*value),
            Dist::Uniform { max, .. } => Some(*max),
            Dist::Bimodal { a, b, .. } => Some(a.max()?.max(b.max()?)),
            Dist::Exponential { .. } | Dist::LogNormal { .. } => None,
        }
    }

    /// Checks parameters; `what` names the scenario field in the message.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        let good = match self {
            Dist::Constant { value } => ok(*value),
            Dist::Exponential { mean } => ok(*mean),
            Dist::Uniform { min, max } => ok(*min) && ok(*max) && min <= max,
            Dist::LogNormal { median, sigma } => ok(*median) && ok(*sigma),
            Dist::Bimodal { p, a, b } => {
                a.validate(what)?;
                b.validate(what)?;
                (0.0..=1.0).contains(p)
            }
        };
        if good {
            Ok(())
        } else {
            Err(format!("{what}: invalid distribution parameters {self:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(8);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sample_means_match() {
        let mut r = Rng::new(1);
        let dists = [
            Dist::Exponential { mean: 2.0 },
            Dist::LogNormal {
                median: 1.0,
                sigma: 0.5,
            },
            Dist::Uniform { min: 1.0, max: 3.0 },
            Dist::Bimodal {
                p: 0.9,
                a: Box::new(Dist::Constant { value: 1.0 }),
                b: Box::new(Dist::Constant { value: 60.0 }),
            },
        ];
        for d in dists {
            let n = 200_000;
            let mean = (0..n).map(|_| d.sample(&mut r)).sum::<f64>() / n as f64;
            assert!((mean / d.mean() - 1.0).abs() < 0.02, "{d:?}: {mean}");
        }
    }
}

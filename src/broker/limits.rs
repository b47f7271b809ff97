//! Bounds on the number of brokers sampled: every distinct [`BrokerSpec`] gets its own
//! sampler and connections (nothing is shared across credentials), so the registry admits a
//! new one only within `max_brokers` and `max_brokers_per_endpoint`. Hosts are compared
//! without regard to case (`LOCALHOST` and `localhost` are one endpoint and one spec).

use std::collections::HashSet;

use super::error::BrokerError;
use crate::celery::Layout;
use crate::spec::{BrokerSpec, Endpoint, HostPort, WatchSet};

/// Default bound on samplers (each holds up to two connections, three with Sentinel) in total.
pub const DEFAULT_MAX_BROKERS: usize = 64;
/// Default bound on samplers per endpoint (`host:port`, host case-insensitive).
pub const DEFAULT_MAX_BROKERS_PER_ENDPOINT: usize = 8;
/// Default bound on the Redis lists one sampler reads per tick (queues × priority steps over
/// its watch sets, each distinct list once).
pub const DEFAULT_MAX_WATCHED_LISTS_PER_BROKER: usize = 4096;

/// Bounds on the number of brokers sampled (distinct [`BrokerSpec`]s, each one sampler with
/// its own connections: nothing is shared across credentials).
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerLimits {
    /// Samplers in total, not counting the exempt ones.
    pub max_brokers: usize,
    /// Samplers whose spec connects to one endpoint (a Sentinel spec counts against each of
    /// its sentinels), not counting the exempt ones.
    pub max_brokers_per_endpoint: usize,
    /// Operator-configured brokers (each named connection on each of its allowed DBs): never
    /// refused, never counted, so a flood of inline specs cannot lock them out. Their number
    /// is bounded by the config.
    pub exempt: Vec<BrokerSpec>,
    /// Redis lists one sampler reads per tick (queues × priority steps over its watch sets,
    /// each distinct list once), exempt brokers included: a new watch set beyond it is refused, registered ones
    /// keep working.
    pub max_watched_lists_per_broker: usize,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            max_brokers: DEFAULT_MAX_BROKERS,
            max_brokers_per_endpoint: DEFAULT_MAX_BROKERS_PER_ENDPOINT,
            exempt: Vec::new(),
            max_watched_lists_per_broker: DEFAULT_MAX_WATCHED_LISTS_PER_BROKER,
        }
    }
}

impl BrokerLimits {
    fn is_exempt(&self, spec: &BrokerSpec) -> bool {
        self.exempt.iter().any(|e| normalised(e) == *spec)
    }

    /// Whether one more (non-exempt) sampler for `spec` fits next to `running`.
    pub(super) fn admit<'a>(
        &self,
        spec: &BrokerSpec,
        running: impl Iterator<Item = &'a BrokerSpec>,
    ) -> Result<(), BrokerError> {
        if self.is_exempt(spec) {
            return Ok(());
        }
        let counted: Vec<&BrokerSpec> = running.filter(|s| !self.is_exempt(s)).collect();
        let refuse = |detail: String| {
            Err(BrokerError::Limit {
                broker: spec.label(),
                detail,
            })
        };
        if counted.len() >= self.max_brokers {
            return refuse(format!(
                "{} brokers are sampled already (max_brokers)",
                counted.len()
            ));
        }
        for endpoint in endpoints(spec) {
            let on_it = counted
                .iter()
                .filter(|s| endpoints(s).contains(&endpoint))
                .count();
            if on_it >= self.max_brokers_per_endpoint {
                return refuse(format!(
                    "{on_it} brokers (distinct DB/credential sets) are sampled on this endpoint already (max_brokers_per_endpoint)"
                ));
            }
        }
        Ok(())
    }
}

/// The Redis lists the sampler reads per tick for the watch sets `sets` (each queue at each
/// priority step of its layout, counted once however many sets watch it, as the sampler reads
/// it once), and how many more `new` would add.
pub(super) fn watched_lists<'a>(
    sets: impl Iterator<Item = &'a WatchSet>,
    new: &WatchSet,
) -> (usize, usize) {
    // The bare key plus one per non-zero step (`Layout::queue_keys`).
    let per_queue = |l: &Layout| l.priority_steps.iter().filter(|s| **s != 0).count() + 1;
    let mut seen: HashSet<(&Layout, &str)> = HashSet::new();
    let mut watched = 0;
    for w in sets {
        for q in &w.queues {
            if seen.insert((&w.layout, q.as_str())) {
                watched += per_queue(&w.layout);
            }
        }
    }
    let fresh: HashSet<&str> = new
        .queues
        .iter()
        .map(String::as_str)
        .filter(|q| !seen.contains(&(&new.layout, *q)))
        .collect();
    (watched, fresh.len() * per_queue(&new.layout))
}

impl BrokerLimits {
    /// Whether a new watch set of `adding` lists fits on a broker already reading `watched`.
    pub(super) fn admit_watch(
        &self,
        label: &str,
        watched: usize,
        adding: usize,
    ) -> Result<(), BrokerError> {
        if adding > 0 && watched.saturating_add(adding) > self.max_watched_lists_per_broker {
            return Err(BrokerError::Limit {
                broker: label.to_string(),
                detail: format!(
                    "this broker's sampler reads {watched} Redis lists per tick already; {adding} \
                     more would exceed {} (max_watched_lists_per_broker)",
                    self.max_watched_lists_per_broker
                ),
            });
        }
        Ok(())
    }
}

/// The endpoints a spec connects to (the sentinels for Sentinel; the master they name is
/// trusted as theirs).
fn endpoints(spec: &BrokerSpec) -> Vec<&HostPort> {
    match &spec.endpoint {
        Endpoint::Direct(hp) => vec![hp],
        Endpoint::Sentinel { sentinels, .. } => sentinels.iter().collect(),
    }
}

/// `spec` with lowercase host names: `LOCALHOST` and `localhost` are one broker.
pub(super) fn normalised(spec: &BrokerSpec) -> BrokerSpec {
    let lower = |hp: &HostPort| HostPort {
        host: hp.host.to_ascii_lowercase(),
        port: hp.port,
    };
    let mut spec = spec.clone();
    spec.endpoint = match &spec.endpoint {
        Endpoint::Direct(hp) => Endpoint::Direct(lower(hp)),
        Endpoint::Sentinel {
            master,
            sentinels,
            username,
            password,
        } => Endpoint::Sentinel {
            master: master.clone(),
            sentinels: sentinels.iter().map(lower).collect(),
            username: username.clone(),
            password: password.clone(),
        },
    };
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Secret;

    fn with_password(host: &str, pw: &str) -> BrokerSpec {
        BrokerSpec {
            password: Some(Secret::new(pw)),
            ..BrokerSpec::direct(host, 6379)
        }
    }

    #[test]
    fn host_case_is_one_spec_passwords_are_not() {
        let a = normalised(&with_password("LocalHost", "x"));
        assert_eq!(a, normalised(&with_password("localhost", "x")));
        assert_ne!(a, normalised(&with_password("localhost", "y")));
    }

    #[test]
    fn per_endpoint_total_and_sentinel_counting() {
        let limits = BrokerLimits {
            max_brokers: 3,
            max_brokers_per_endpoint: 2,
            exempt: vec![with_password("named", "op")],
            ..BrokerLimits::default()
        };
        let running = [with_password("h", "1"), with_password("h", "2")];
        let third = with_password("h", "3");
        let err = limits.admit(&third, running.iter()).unwrap_err();
        assert_eq!(err.kind(), "limit");
        assert!(
            err.to_string().contains("max_brokers_per_endpoint"),
            "{err}"
        );
        // Another endpoint fits until the total bound.
        assert!(limits
            .admit(&with_password("g", "1"), running.iter())
            .is_ok());
        let full = [
            running[0].clone(),
            running[1].clone(),
            with_password("g", "1"),
        ];
        let err = limits
            .admit(&with_password("k", "1"), full.iter())
            .unwrap_err();
        assert!(err.to_string().contains("(max_brokers)"), "{err}");
        // The named connection is neither refused nor counted.
        assert!(limits
            .admit(&with_password("named", "op"), full.iter())
            .is_ok());
        // A Sentinel spec counts against each of its sentinels.
        let sentinel = BrokerSpec {
            endpoint: Endpoint::Sentinel {
                master: "m".into(),
                sentinels: vec![
                    HostPort {
                        host: "s".into(),
                        port: 1,
                    },
                    HostPort {
                        host: "h".into(),
                        port: 6379,
                    },
                ],
                username: None,
                password: None,
            },
            ..BrokerSpec::direct("x", 1)
        };
        assert!(limits.admit(&sentinel, running.iter()).is_err());
    }

    #[test]
    fn watched_lists_count_each_list_once() {
        let set = |queues: &[&str], steps: &[u32], vt: u64| WatchSet {
            layout: Layout {
                priority_steps: steps.to_vec(),
                ..Layout::default()
            },
            queues: queues.iter().map(|q| q.to_string()).collect(),
            visibility_timeout_ms: vt,
            worker_hostnames: None,
        };
        let registered = [set(&["a", "b"], &[0, 3], 1), set(&["b", "a"], &[0, 3], 2)];
        // Both sets read a and b at steps 0 and 3: 4 lists.
        let (watched, adding) = watched_lists(registered.iter(), &set(&["a", "c"], &[0, 3], 1));
        assert_eq!((watched, adding), (4, 2));
        // Another layout reads other keys; steps without 0 still read the bare key.
        assert_eq!(
            watched_lists(registered.iter(), &set(&["a"], &[3, 6], 1)).1,
            3
        );
        let limits = BrokerLimits {
            max_watched_lists_per_broker: 5,
            ..BrokerLimits::default()
        };
        assert!(limits.admit_watch("b", 4, 0).is_ok());
        assert!(limits.admit_watch("b", 4, 1).is_ok());
        let err = limits.admit_watch("b", 4, 2).unwrap_err();
        assert!(
            err.to_string().contains("max_watched_lists_per_broker"),
            "{err}"
        );
    }
}

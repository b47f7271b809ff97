//! Normal traffic: ten ScaledObjects as KEDA polls them (`GetMetrics` then `IsActive`, every
//! second, on one shared HTTP/2 connection), and a `/healthz` probe as the kubelet's. Every
//! call is bounded, so a frozen scaler shows as timeouts, not as a hung benchmark.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use tonic::transport::Channel;

use super::process::http_get;
use super::{bounded, sleep_within};
use crate::grpc_support::QUEUES;

/// Number of normal ScaledObjects.
pub const COUNT: usize = 10;
/// KEDA's polling interval (its default `pollingInterval` is 30 s; 1 s is the busy case).
const POLL: Duration = Duration::from_secs(1);
/// Hostnames of the Celery workers that the latency-mode triggers follow.
pub const WORKER_GLOB: &str = "celery@soak-*";

/// The ten triggers: eight `backlog` mode over queue subsets, two `latency` mode over one
/// queue with `workerHostnames`, all on the broker at `address`, DB 0.
pub fn definitions(address: &str) -> Vec<ScaledObjectRef> {
    let subsets: [&[&str]; 4] = [&QUEUES[..1], &QUEUES[1..2], &QUEUES[..2], &QUEUES[..]];
    (0..COUNT)
        .map(|i| {
            let mut md: HashMap<String, String> = HashMap::new();
            md.insert("address".into(), address.into());
            if i < 8 {
                md.insert("queues".into(), subsets[i % subsets.len()].join(","));
                md.insert("listLength".into(), (5 + i).to_string());
            } else {
                md.insert("queues".into(), QUEUES[i % 2].into());
                md.insert("mode".into(), "latency".into());
                md.insert("concurrency".into(), "4".into());
                md.insert("targetLatency".into(), "30".into());
                md.insert("workerHostnames".into(), WORKER_GLOB.into());
            }
            ScaledObjectRef {
                name: format!("worker-{i}"),
                namespace: "shop".into(),
                scaler_metadata: md,
            }
        })
        .collect()
}

/// A trigger with the metric name its `GetMetricSpec` returned.
#[derive(Clone)]
pub struct Normal {
    pub so: ScaledObjectRef,
    pub metric_name: String,
}

/// `GetMetricSpec` for each trigger, then one `GetMetrics` (the watch set's first sample).
/// Setup: a failure here means the scaler does not work at all, so it panics.
pub async fn register(
    client: &ExternalScalerClient<Channel>,
    defs: Vec<ScaledObjectRef>,
) -> Vec<Normal> {
    let mut out = Vec::new();
    for so in defs {
        let spec = client
            .clone()
            .get_metric_spec(so.clone())
            .await
            .expect("GetMetricSpec of a normal trigger")
            .into_inner();
        let metric_name = spec.metric_specs[0].metric_name.clone();
        let req = GetMetricsRequest {
            scaled_object_ref: Some(so.clone()),
            metric_name: metric_name.clone(),
        };
        client
            .clone()
            .get_metrics(req)
            .await
            .expect("first GetMetrics of a normal trigger");
        out.push(Normal { so, metric_name });
    }
    out
}

/// What the normal triggers saw in one phase.
#[derive(Debug, Default)]
pub struct NormalStats {
    /// Latency of every `GetMetrics` (a timeout counts as the bound).
    pub metrics: Vec<Duration>,
    pub active: Vec<Duration>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Largest metric value answered (a forged heartbeat can inflate it).
    pub max_value: f64,
}

impl NormalStats {
    pub fn merge(&mut self, other: NormalStats) {
        self.metrics.extend(other.metrics);
        self.active.extend(other.active);
        self.ok += other.ok;
        super::add_errors(&mut self.errors, &other.errors);
        self.max_value = self.max_value.max(other.max_value);
    }

    fn note<T>(&mut self, r: &Result<T, String>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(e) => *self.errors.entry(e.clone()).or_default() += 1,
        }
    }
}

/// Polls one trigger like KEDA until `end`, starting after `offset` (spreads the ten).
pub async fn poll(
    mut client: ExternalScalerClient<Channel>,
    n: Normal,
    offset: Duration,
    end: Instant,
    limit: Duration,
) -> NormalStats {
    let mut stats = NormalStats::default();
    let req = GetMetricsRequest {
        scaled_object_ref: Some(n.so.clone()),
        metric_name: n.metric_name,
    };
    let mut next = Instant::now() + offset;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let t = Instant::now();
        let r = bounded(limit, client.get_metrics(req.clone())).await;
        stats.metrics.push(t.elapsed());
        if let Ok(resp) = &r {
            let values = &resp.get_ref().metric_values;
            if let Some(v) = values.first() {
                stats.max_value = stats.max_value.max(v.metric_value_float);
            }
        }
        stats.note(&r);
        let t = Instant::now();
        let r = bounded(limit, client.is_active(n.so.clone())).await;
        stats.active.push(t.elapsed());
        stats.note(&r);
        // After a stall, poll again one interval later rather than in a burst.
        next = (next + POLL).max(Instant::now());
    }
    stats
}

/// `/healthz` latencies and failures of one phase.
#[derive(Debug, Default)]
pub struct Probe {
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<String, u64>,
}

/// Probes `/healthz` every `every` until `end`, each within `limit`.
pub async fn healthz(port: u16, end: Instant, every: Duration, limit: Duration) -> Probe {
    let mut probe = Probe::default();
    while Instant::now() < end {
        let t = Instant::now();
        let r = http_get(port, "/healthz", limit).await;
        probe.latencies.push(t.elapsed());
        match r {
            Ok((200, _)) => {}
            Ok((code, _)) => *probe.errors.entry(format!("http {code}")).or_default() += 1,
            Err(e) => *probe.errors.entry(e).or_default() += 1,
        }
        sleep_within(every.saturating_sub(t.elapsed()), end).await;
    }
    probe
}

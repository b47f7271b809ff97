//! Hostile traffic from ScaledObject authors and port-reachable clients, each kind bounded in
//! rate and count and sent on its own connection (not KEDA's): huge metadata values, a
//! 10,000-queue trigger, many priority steps, many ScaledObject names, many broker specs,
//! triggers on wrongly typed and pathological DBs, and `StreamIsActive` streams opened and
//! dropped. Refusals are expected and counted per kind; every call is bounded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::broker_attack::{BINDING_DBS, WRONG_TYPE_DBS};
use super::{bounded, over, record, sleep_within, Ctx, Tallies};
use crate::grpc_support::metadata;
use crate::support::free_port;

/// Size of one huge `keyPrefix` (the reproduction used 3.9 MB; 1 MiB stays well under
/// tonic's 4 MiB message limit and bounds what unfixed code can grow by).
const HUGE_BYTES: usize = 1 << 20;

fn so(name: String, md: HashMap<String, String>) -> ScaledObjectRef {
    ScaledObjectRef {
        name,
        namespace: "tenant".into(),
        scaler_metadata: md,
    }
}

/// `GetMetrics` (with the metric name from `GetMetricSpec`) or `IsActive`, alternately by `n`.
async fn poll_once(
    mut c: ExternalScalerClient<Channel>,
    limit: Duration,
    so: ScaledObjectRef,
    n: u64,
) -> Result<(), String> {
    if n % 2 == 1 {
        return bounded(limit, c.is_active(so)).await.map(|_| ());
    }
    let spec = bounded(limit, c.get_metric_spec(so.clone())).await?;
    let metric_name = spec
        .into_inner()
        .metric_specs
        .first()
        .map(|m| m.metric_name.clone())
        .ok_or("no metric spec")?;
    let req = GetMetricsRequest {
        scaled_object_ref: Some(so),
        metric_name,
    };
    bounded(limit, c.get_metrics(req)).await.map(|_| ())
}

/// What every hostile task of one phase shares.
pub struct Spawner<'a> {
    pub ctx: &'a Ctx,
    pub end: Instant,
    pub stop: &'a Arc<AtomicBool>,
    pub tallies: &'a Tallies,
}

impl Spawner<'_> {
    /// Calls `f(n)` for n = 0.. every `every`, at most `max` times, until the phase ends;
    /// `None` when `kind` is skipped.
    fn every<F, Fut>(
        &self,
        kind: &'static str,
        every: Duration,
        max: usize,
        f: F,
    ) -> Option<JoinHandle<()>>
    where
        F: Fn(ExternalScalerClient<Channel>, Duration, u64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        if !self.ctx.settings.enabled(kind) {
            return None;
        }
        let (client, limit) = (self.ctx.hostile.clone(), self.ctx.settings.hostile_timeout);
        let (stop, tallies, end) = (self.stop.clone(), self.tallies.clone(), self.end);
        Some(tokio::spawn(async move {
            for n in 0..max as u64 {
                if over(end, &stop) {
                    break;
                }
                let t = Instant::now();
                let outcome = f(client.clone(), limit, n).await;
                record(&tallies, kind, outcome);
                sleep_within(every.saturating_sub(t.elapsed()), end).await;
            }
        }))
    }
}

/// Metadata of the normal broker with `extra` keys set.
fn md_with(address: &str, extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut md = metadata(address);
    for (k, v) in extra {
        md.insert((*k).into(), v.clone());
    }
    md
}

/// The `n`th distinct broker spec: a wrong password (the broker has none, so any works),
/// a case variant of `localhost`, or a closed port.
fn broker_spec(n: u64, port: u16) -> HashMap<String, String> {
    let mut md = metadata(&format!("127.0.0.1:{port}"));
    match n % 3 {
        0 => {
            md.insert("password".into(), format!("guess-{n}"));
        }
        1 => {
            let host: String = "localhost"
                .chars()
                .enumerate()
                .map(|(i, ch)| {
                    if ((n / 3) >> i) & 1 == 1 {
                        ch.to_ascii_uppercase()
                    } else {
                        ch
                    }
                })
                .collect();
            md.insert("address".into(), format!("{host}:{port}"));
            // Past the 512 case variants, a password makes the spec new again.
            if n / 3 >= 512 {
                md.insert("password".into(), format!("v{}", n / 3 / 512));
            }
        }
        _ => {
            md.insert("address".into(), format!("127.0.0.1:{}", free_port()));
        }
    }
    md
}

impl Spawner<'_> {
    /// Starts every enabled gRPC hostile kind; each task ends by `end` (+ one bounded call).
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = self.metadata_kinds();
        tasks.extend(self.broker_kinds());
        tasks
    }

    /// Triggers whose metadata is the attack: sizes, counts and names.
    fn metadata_kinds(&self) -> Vec<JoinHandle<()>> {
        let s = &self.ctx.settings;
        let addr = self.ctx.redis_address();
        let mut tasks = Vec::new();
        let huge = if s.full { HUGE_BYTES } else { 32 << 10 };
        let a = addr.clone();
        tasks.extend(
            self.every("huge_prefix", secs(2.0), s.count(10), move |c, l, n| {
                let prefix = format!("{n:04}{}", "x".repeat(huge));
                let md = md_with(&a, &[("keyPrefix", prefix)]);
                poll_once(c, l, so(format!("huge-{n}"), md), n)
            }),
        );
        let queues: Vec<String> = (0..s.count(10_000)).map(|i| format!("q{i:05}")).collect();
        let md = md_with(&addr, &[("queues", queues.join(","))]);
        tasks.extend(
            self.every("many_queues", secs(2.0), usize::MAX, move |c, l, n| {
                poll_once(c, l, so("many-queues".into(), md.clone()), n)
            }),
        );
        let queues: Vec<String> = (0..s.count(1_000)).map(|i| format!("p{i:04}")).collect();
        let steps: Vec<String> = (0..=255).map(|i: u32| i.to_string()).collect();
        let md = md_with(
            &addr,
            &[
                ("queues", queues.join(",")),
                ("prioritySteps", steps.join(",")),
            ],
        );
        tasks.extend(
            self.every("priority_steps", secs(2.0), usize::MAX, move |c, l, n| {
                poll_once(c, l, so("many-steps".into(), md.clone()), n)
            }),
        );
        // 20k names within the first half of the phase, at most 200 calls/s.
        let names = s.count(20_000);
        let gap = secs((s.secs / 2.0 / names as f64).max(0.005));
        let md = metadata(&addr);
        tasks.extend(self.every("so_names", gap, names, move |c, l, n| {
            poll_once(c, l, so(format!("name-{n:05}"), md.clone()), n)
        }));
        tasks
    }

    /// Triggers that point at brokers and DBs, and streams opened and dropped.
    fn broker_kinds(&self) -> Vec<JoinHandle<()>> {
        let s = &self.ctx.settings;
        let addr = self.ctx.redis_address();
        let port = self.ctx.redis_port;
        let mut tasks = Vec::new();
        tasks.extend(
            self.every("broker_specs", secs(0.05), s.count(400), move |c, l, n| {
                poll_once(c, l, so(format!("spec-{n}"), broker_spec(n, port)), 1)
            }),
        );
        let a = addr.clone();
        tasks.extend(
            self.every("wrong_type", secs(1.0), usize::MAX, move |c, l, n| {
                let db = WRONG_TYPE_DBS[n as usize % 2].to_string();
                let md = md_with(&a, &[("databaseIndex", db.clone())]);
                poll_once(c, l, so(format!("typed-{db}"), md), n / 2)
            }),
        );
        let a = addr.clone();
        tasks.extend(
            self.every("binding", secs(2.0), usize::MAX, move |c, l, n| {
                let md = md_with(&a, &[("databaseIndex", BINDING_DBS[1].to_string())]);
                poll_once(c, l, so("binding".into(), md), n)
            }),
        );
        let md = metadata(&addr);
        tasks.extend(
            self.every("streams", secs(0.05), s.count(5_000), move |mut c, l, n| {
                let so = so(format!("stream-{}", n % 100), md.clone());
                async move {
                    let mut stream = bounded(l, c.stream_is_active(so)).await?.into_inner();
                    // Read the first message if it comes soon, then drop the stream.
                    let first = tokio::time::timeout(Duration::from_millis(200), stream.message());
                    match first.await {
                        Ok(Err(status)) => Err(format!("{:?}", status.code())),
                        _ => Ok(()),
                    }
                }
            }),
        );
        tasks
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

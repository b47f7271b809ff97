//! Waiting at zero (`podStartup`): a few tasks on an idle queue need not start a pod the
//! moment they are listed when, started later, they still start within the target.
//!
//! At zero a task waits for the trigger to turn active and then for a pod to start. When the
//! operator states how long that start takes (`podStartup`, seconds from activation to a
//! worker taking tasks), the trigger stays inactive while the oldest listed task is younger
//! than `(1 − START_MARGIN)·T − podStartup` (a reserve of at least `TICKS_IN_RESERVE`
//! sampler ticks): the tasks listed meanwhile share the same pod,
//! and one that arrives while it still runs its cooldown reuses it. KEDA's redis scaler
//! activates on the first task and starts one pod per lone task.
//!
//! Only when nothing else asks for a pod: nothing runs, is held in a pod or is stale, no
//! steady flow is counted (the caller keeps that activation: tasks that keep coming are no
//! lone task), the listed tasks fit one pod's slots (more activate at once, so a burst
//! waits at most the tick that showed its first few), and the age of every listed queue's
//! oldest task is measured.

/// Share of the target kept in reserve when a start waits: the sampler's tick, KEDA's
/// reaction and the age measurement's lag all come out of it, and start-ups above the
/// stated `podStartup`.
pub const START_MARGIN: f64 = 0.2;

/// The reserve is at least this many sampler ticks: an age dated from the mid-point of two
/// ticks reads up to half a tick short, and the rule looks again only a tick later. With
/// the default 1 s tick that is under a fifth of any target above 7.5 s; a slow sampler
/// (up to 10 s a tick) with a short target takes more.
pub const TICKS_IN_RESERVE: f64 = 1.5;

/// One queue as the rule reads it.
pub struct Queue {
    /// Tasks listed (backlog).
    pub listed: u64,
    /// Age of the oldest listed task, when measured.
    pub oldest: Option<f64>,
    /// Something else asks for a pod: tasks running, held in a pod, or stale.
    pub busy: bool,
}

/// The age of the oldest listed task at which a waiting start is due, seconds:
/// `T − max(START_MARGIN·T, TICKS_IN_RESERVE·tick) − podStartup`, where `tick` is the
/// sampler's (0 when unknown); `None` without a usable `podStartup` (never waits).
pub fn due_age(pod_startup: Option<f64>, target: f64, tick: f64) -> Option<f64> {
    let tick = if tick.is_finite() { tick.max(0.0) } else { 0.0 };
    let reserve = (target * START_MARGIN).max(TICKS_IN_RESERVE * tick);
    pod_startup
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|startup| target - reserve - startup)
}

/// The longest of the sampler ticks of the queues' signals (0 when none is known).
pub fn longest_tick(ticks: impl IntoIterator<Item = Option<f64>>) -> f64 {
    ticks
        .into_iter()
        .flatten()
        .filter(|t| t.is_finite())
        .fold(0.0, f64::max)
}

/// Whether the tasks listed now may wait at zero (a quiet flow is the caller's part), with
/// the sampler ticking every `tick` seconds: see the module's doc.
pub fn start_can_wait(
    (pod_startup, target, tick): (Option<f64>, f64, f64),
    concurrency: f64,
    queues: &[Queue],
) -> bool {
    let Some(due) = due_age(pod_startup, target, tick) else {
        return false;
    };
    if queues.iter().any(|q| q.busy) {
        return false;
    }
    let mut oldest = 0.0f64;
    for q in queues.iter().filter(|q| q.listed > 0) {
        match q.oldest {
            Some(w) => oldest = oldest.max(w),
            None => return false,
        }
    }
    let listed: u64 = queues.iter().map(|q| q.listed).sum();
    oldest < due && listed as f64 <= concurrency
}

//! Waiting at zero (`podStartup`): a few tasks on an idle queue need not start a pod the
//! moment they are listed when, started later, they still start within the target.
//!
//! At zero a task waits for the trigger to turn active and then for a pod to start. When the
//! operator states how long that start takes (`podStartup`, seconds from activation to a
//! worker taking tasks), the trigger stays inactive while the oldest listed task is younger
//! than `(1 − START_MARGIN)·T − podStartup`: the tasks listed meanwhile share the same pod,
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
/// `(1 − START_MARGIN)·T − podStartup`; `None` without a usable `podStartup` (never waits).
pub fn due_age(pod_startup: Option<f64>, target: f64) -> Option<f64> {
    pod_startup
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|startup| target * (1.0 - START_MARGIN) - startup)
}

/// Whether the tasks listed now may wait at zero (a quiet flow is the caller's part): see
/// the module's doc.
pub fn start_can_wait(
    pod_startup: Option<f64>,
    target: f64,
    concurrency: f64,
    queues: &[Queue],
) -> bool {
    let Some(due) = due_age(pod_startup, target) else {
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

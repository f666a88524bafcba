//! The runner loop: wait for the sources' initial lists, then sync whenever the schedule says so.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{IncrementalBuilder, NodeContext, ObjectDelta, ProxyState, Rejection};

use crate::dataplane::{Dataplane, SyncListener, SyncOutcome};
use crate::schedule::{Schedule, ScheduleConfig};

/// Where the runner reads objects from (the change tracker). The runner is its only consumer of change
/// notifications.
pub trait StateSource: Send + Sync + 'static {
    /// Every watched kind has finished its initial list.
    fn is_ready(&self) -> bool;
    /// The objects changed since the previous call (every object when `everything`), marking them taken.
    /// `None` while not ready.
    fn take_changes(&self, everything: bool) -> Option<Snapshot>;
    /// Completes after something changed since the previous call completed (no wake-up is lost).
    fn changed(&self) -> impl Future<Output = ()> + Send + '_;
}

/// What a source hands the runner at each sync.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The objects that changed since the previous snapshot (all of them in the first).
    pub delta: ObjectDelta,
    /// When the oldest change not yet taken was queued (for network-programming latency).
    pub oldest_change: Option<Instant>,
    /// Service changes seen since start.
    pub service_changes_total: u64,
    /// EndpointSlice changes seen since start.
    pub endpoint_changes_total: u64,
}

/// Runner settings.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    pub schedule: ScheduleConfig,
    pub node: NodeContext,
}

struct FamilySlot {
    dataplane: Option<Box<dyn Dataplane>>,
    /// This family's state, updated from each snapshot's delta: a change costs work for itself only.
    builder: IncrementalBuilder,
    /// Last state the dataplane accepted.
    applied: Arc<ProxyState>,
    force_full: bool,
}

/// Drives every family's dataplane from one source.
pub struct Runner<S: StateSource> {
    source: Arc<S>,
    families: Vec<FamilySlot>,
    listener: Arc<dyn SyncListener>,
    schedule: Schedule,
    seen_rejections: HashSet<Rejection>,
    /// Whether the builders have seen every object yet (the first snapshot asks for everything).
    primed: bool,
    syncs: u64,
}

impl<S: StateSource> Runner<S> {
    /// One dataplane per IP family (one for single-stack, two for dual-stack).
    pub fn new(
        source: Arc<S>,
        cfg: RunnerConfig,
        dataplanes: Vec<Box<dyn Dataplane>>,
        listener: Arc<dyn SyncListener>,
    ) -> Runner<S> {
        let families = dataplanes
            .into_iter()
            .map(|dp| {
                let empty = Arc::new(ProxyState::empty(dp.family(), cfg.node.node_name.clone()));
                FamilySlot {
                    builder: IncrementalBuilder::new(dp.family(), cfg.node.clone()),
                    dataplane: Some(dp),
                    applied: empty,
                    force_full: true,
                }
            })
            .collect();
        Runner {
            schedule: Schedule::new(cfg.schedule),
            source,
            families,
            listener,
            seen_rejections: HashSet::new(),
            primed: false,
            syncs: 0,
        }
    }

    /// Number of sync attempts made so far.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// The states last accepted by each family's dataplane.
    pub fn applied_states(&self) -> Vec<Arc<ProxyState>> {
        self.families.iter().map(|f| f.applied.clone()).collect()
    }

    /// Waits until the source is ready. Nothing is programmed before that.
    pub async fn wait_ready(&self) {
        wait_ready(&self.source).await
    }

    /// Runs until `shutdown` completes. Programmed rules are left in place on shutdown.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let source = self.source.clone();
        tokio::select! {
            _ = wait_ready(&source) => {}
            _ = &mut shutdown => return,
        }
        tracing::info!("initial lists complete; starting to sync");
        loop {
            if self.schedule.is_due(Instant::now()) {
                self.sync_once().await;
                continue;
            }
            let due = tokio::time::Instant::from_std(self.schedule.next_due());
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = source.changed() => {
                    self.schedule.request();
                    self.listener.queued();
                }
                _ = &mut shutdown => return,
            }
        }
    }

    /// Performs one sync of every family now. Returns whether all of them succeeded.
    pub async fn sync_once(&mut self) -> bool {
        let start = Instant::now();
        self.schedule.started(start);
        self.syncs += 1;
        let Some(snapshot) = self.source.take_changes(!self.primed) else {
            tracing::debug!("source not ready; skipping sync");
            self.schedule.finished(true, Instant::now());
            return true;
        };
        self.primed = true;
        self.listener.snapshot_taken(&snapshot);
        let oldest_change = snapshot.oldest_change;
        let mut rejections = HashSet::new();
        let mut all_ok = true;
        for slot in &mut self.families {
            let Some(dataplane) = slot.dataplane.take() else {
                continue;
            };
            let family = dataplane.family();
            let state = slot.builder.apply(&snapshot.delta).state;
            rejections.extend(slot.builder.rejections().cloned());
            let force_full = slot.force_full;
            let began = Instant::now();
            let joined = run_blocking(move || {
                let mut dataplane = dataplane;
                let result = dataplane.sync(&state, force_full);
                (dataplane, state, result)
            })
            .await;
            let elapsed = began.elapsed();
            let (dataplane, state, result) = match joined {
                Ok(parts) => parts,
                Err(panic) => {
                    // A panicking dataplane is a bug; without it this family cannot sync any more.
                    tracing::error!(?family, "dataplane panicked: {panic}");
                    all_ok = false;
                    continue;
                }
            };
            slot.dataplane = Some(dataplane);
            match result {
                Ok(report) => {
                    slot.force_full = false;
                    let outcome = SyncOutcome {
                        family,
                        previous: &slot.applied,
                        current: &state,
                        report: &report,
                        elapsed,
                        programming_latency: oldest_change.map(|t| t.elapsed()),
                    };
                    self.listener.synced(&outcome);
                    tracing::debug!(?family, full = report.full, ?elapsed, "synced");
                    slot.applied = state;
                }
                Err(err) => {
                    all_ok = false;
                    slot.force_full = true;
                    tracing::warn!(?family, "sync failed, will retry with a full sync: {err}");
                    self.listener.failed(family, &err, elapsed);
                }
            }
        }
        for r in &rejections {
            if !self.seen_rejections.contains(r) {
                tracing::warn!("skipping invalid object: {r}");
                self.listener.rejected(r);
            }
        }
        self.seen_rejections = rejections;
        self.schedule.finished(all_ok, Instant::now());
        all_ok
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;

/// Runs a dataplane's blocking sync. On a multi-threaded runtime it runs on this thread (`block_in_place`):
/// handing it to a blocking-pool thread means waking that thread for every sync, which on an idle VM costs
/// milliseconds of latency. A current-thread runtime (tests) uses the blocking pool. A panic becomes an error.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
            .map_err(|panic| {
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into())
            })
    } else {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string())
    }
}

async fn wait_ready<S: StateSource>(source: &Arc<S>) {
    while !source.is_ready() {
        source.changed().await;
    }
}

//! The seam between the runner and a mode: a dataplane programs one family's state; a listener hears outcomes.

use std::sync::Arc;
use std::time::Duration;

use kube_proxy_model::{IpFamily, ProxyState, Rejection};

/// Errors a dataplane reports; boxed because each mode has its own typed error.
pub type DataplaneError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one successful dataplane sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether every rule was rewritten (false: only changed services).
    pub full: bool,
    /// Rule or element counts, e.g. `("nat", 1234)`, for metrics and status.
    pub counts: Vec<(String, u64)>,
    /// How long the kernel-loading step of this sync took, when the mode has one: the lifetime of the
    /// `iptables-restore` processes, or an nftables batch from its first send to its last ACK. The rest of
    /// `SyncOutcome::elapsed` is the proxy's own work.
    pub kernel_time: Option<Duration>,
}

/// One mode programming one IP family. Implementations may block (they run on a blocking thread).
pub trait Dataplane: Send + 'static {
    /// The family this dataplane programs.
    fn family(&self) -> IpFamily;
    /// Programs `state`. `force_full` asks for a full rewrite (start-up, after a failure); the dataplane may also
    /// decide on its own that a full sync is needed (e.g. its canary is gone).
    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, DataplaneError>;
}

/// The outcome of one family's sync, as listeners see it.
#[derive(Debug)]
pub struct SyncOutcome<'a> {
    pub family: IpFamily,
    /// The state programmed before this sync (empty at start-up).
    pub previous: &'a Arc<ProxyState>,
    /// The state now programmed.
    pub current: &'a Arc<ProxyState>,
    pub report: &'a SyncReport,
    /// How long the dataplane took.
    pub elapsed: Duration,
    /// How long the oldest change this sync covers had waited (network-programming latency), if known.
    pub programming_latency: Option<Duration>,
}

/// Hears what the runner does. Every method has a no-op default.
pub trait SyncListener: Send + Sync + 'static {
    /// The runner took a snapshot of the objects for a sync.
    fn snapshot_taken(&self, _snapshot: &crate::Snapshot) {}
    /// A change arrived and a sync is now pending for every family.
    fn queued(&self) {}
    /// A family synced successfully.
    fn synced(&self, _outcome: &SyncOutcome<'_>) {}
    /// A family's sync failed; it will be retried as a full sync.
    fn failed(&self, _family: IpFamily, _error: &DataplaneError, _elapsed: Duration) {}
    /// An object (or part of one) was skipped. Called once per distinct rejection while it persists.
    fn rejected(&self, _rejection: &Rejection) {}
}

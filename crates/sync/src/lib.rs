//! The sync runner: turns "something changed" and "time passed" into rate-limited, retried syncs.
//!
//! It snapshots the objects a source holds, builds each IP family's [`ProxyState`](kube_proxy_model::ProxyState)
//! with the pure model, hands it to that family's [`Dataplane`], and reports outcomes to a [`SyncListener`]
//! (metrics, health, conntrack cleanup, health-check ports). It never touches the kernel itself and never dies:
//! a failed sync is counted, logged, and retried with backoff as a full sync.
#![forbid(unsafe_code)]

mod dataplane;
mod runner;
mod schedule;

pub use dataplane::{Dataplane, DataplaneError, SyncListener, SyncOutcome, SyncReport};
pub use runner::{Runner, RunnerConfig, Snapshot, StateSource};

mod tracker_source;
pub use schedule::{Schedule, ScheduleConfig};

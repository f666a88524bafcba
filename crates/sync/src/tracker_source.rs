//! The change tracker of `kube-proxy-sources` as the runner's [`StateSource`].

use std::future::Future;

use kube_proxy_sources::ChangeTracker;

use crate::runner::{Snapshot, StateSource};

impl StateSource for ChangeTracker {
    fn is_ready(&self) -> bool {
        ChangeTracker::is_ready(self)
    }

    fn take_changes(&self, everything: bool) -> Option<Snapshot> {
        ChangeTracker::take_changes(self, everything).map(|(delta, counters)| Snapshot {
            delta,
            oldest_change: counters.oldest_pending,
            service_changes_total: counters.service_changes_total,
            endpoint_changes_total: counters.endpoint_changes_total,
        })
    }

    fn changed(&self) -> impl Future<Output = ()> + Send + '_ {
        ChangeTracker::changed(self)
    }
}

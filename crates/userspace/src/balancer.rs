//! Backend choice for one service port: round-robin over the usable endpoints, ClientIP session affinity, and
//! the ordered list of distinct endpoints to try for one client.
//!
//! Holds no sockets. The endpoint list itself comes from the current snapshot on every call, so a removed
//! endpoint is never chosen again while connections already made to it are left alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube_proxy_model::Endpoint;

/// Affinity entries are pruned of expired ones when the table grows past this size.
const AFFINITY_PRUNE_AT: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Sticky {
    backend: SocketAddr,
    last_used: Instant,
}

/// Round-robin position and affinity table of one service port; kept across snapshots of that port.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    next: AtomicUsize,
    affinity: Mutex<HashMap<IpAddr, Sticky>>,
}

impl Balancer {
    /// Up to `max_attempts` distinct endpoints to try, in order, for a new connection from `client`.
    ///
    /// With affinity (`Some(timeout)`) an unexpired entry for the client whose endpoint is still in `endpoints`
    /// comes first and the round-robin position does not move; otherwise the round-robin position advances by one.
    pub(crate) fn candidates(
        &self,
        client: IpAddr,
        endpoints: &[Endpoint],
        affinity: Option<Duration>,
        max_attempts: usize,
    ) -> Vec<SocketAddr> {
        let addrs: Vec<SocketAddr> = endpoints
            .iter()
            .map(|e| SocketAddr::new(e.ip, e.port))
            .collect();
        if addrs.is_empty() {
            return Vec::new();
        }
        let take = max_attempts.clamp(1, addrs.len());
        let sticky_index = affinity.and_then(|timeout| {
            let table = self.affinity.lock().ok()?;
            let sticky = table.get(&client)?;
            if sticky.last_used.elapsed() > timeout {
                return None;
            }
            addrs.iter().position(|a| *a == sticky.backend)
        });
        let start = match sticky_index {
            Some(i) => i,
            None => self.next.fetch_add(1, Ordering::Relaxed) % addrs.len(),
        };
        (0..take)
            .map(|i| addrs[(start + i) % addrs.len()])
            .collect()
    }

    /// The client reached `backend`: remember it when the service has affinity.
    pub(crate) fn record_success(
        &self,
        client: IpAddr,
        backend: SocketAddr,
        affinity: Option<Duration>,
    ) {
        let Some(timeout) = affinity else {
            return;
        };
        let Ok(mut table) = self.affinity.lock() else {
            return;
        };
        if table.len() >= AFFINITY_PRUNE_AT {
            table.retain(|_, s| s.last_used.elapsed() <= timeout);
        }
        table.insert(
            client,
            Sticky {
                backend,
                last_used: Instant::now(),
            },
        );
    }

    /// `backend` failed for this client: forget an affinity entry that points at it.
    pub(crate) fn record_failure(&self, client: IpAddr, backend: SocketAddr) {
        if let Ok(mut table) = self.affinity.lock() {
            if table.get(&client).is_some_and(|s| s.backend == backend) {
                table.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(last: u8) -> Endpoint {
        Endpoint {
            ip: IpAddr::from([10, 0, 0, last]),
            port: 80,
            is_local: false,
            ready: true,
            serving: true,
            terminating: false,
            hints: None,
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::from([10, 0, 0, last]), 80)
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn round_robin_rotates_and_bounds_attempts() {
        let b = Balancer::default();
        let eps = [ep(1), ep(2), ep(3)];
        assert_eq!(b.candidates(CLIENT, &eps, None, 2), vec![addr(1), addr(2)]);
        assert_eq!(
            b.candidates(CLIENT, &eps, None, 5),
            vec![addr(2), addr(3), addr(1)]
        );
        assert_eq!(b.candidates(CLIENT, &eps, None, 1), vec![addr(3)]);
        assert!(b.candidates(CLIENT, &[], None, 3).is_empty());
    }

    #[test]
    fn affinity_sticks_until_failure() {
        let b = Balancer::default();
        let eps = [ep(1), ep(2), ep(3)];
        let day = Some(Duration::from_secs(86400));
        let first = b.candidates(CLIENT, &eps, day, 3);
        b.record_success(CLIENT, first[1], day);
        for _ in 0..5 {
            assert_eq!(b.candidates(CLIENT, &eps, day, 3)[0], first[1]);
        }
        // Another client is not affected.
        let other = IpAddr::from([127, 0, 0, 2]);
        assert_ne!(b.candidates(other, &eps, day, 1)[0], addr(9));
        b.record_failure(CLIENT, first[1]);
        let after: Vec<_> = (0..3)
            .map(|_| b.candidates(CLIENT, &eps, day, 1)[0])
            .collect();
        assert!(after.iter().any(|a| *a != first[1]));
    }

    #[test]
    fn affinity_to_a_removed_endpoint_is_ignored() {
        let b = Balancer::default();
        let day = Some(Duration::from_secs(86400));
        b.record_success(CLIENT, addr(9), day);
        let c = b.candidates(CLIENT, &[ep(1), ep(2)], day, 2);
        assert!(!c.contains(&addr(9)));
        assert_eq!(c.len(), 2);
    }
}

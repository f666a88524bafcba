//! Per-service counters of the data path, as plain atomics the binary can export however it likes.
//!
//! Updated with relaxed atomic adds on the data path; the per-endpoint failure map is only touched when a dial
//! fails. Holds no exporter and no names: mapping to Prometheus metrics is the caller's job.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

/// Live counters of one service port.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    /// TCP connections and UDP flows currently open (a gauge).
    pub active_connections: AtomicU64,
    /// TCP connections accepted and UDP flows opened since the service appeared.
    pub accepted_total: AtomicU64,
    /// Payload bytes from clients to backends.
    pub bytes_in: AtomicU64,
    /// Payload bytes from backends to clients.
    pub bytes_out: AtomicU64,
    /// Connection attempts to a backend that failed or timed out (UDP: a backend that answered "port unreachable").
    pub dial_failures: AtomicU64,
    /// Client connections closed (or datagrams dropped) because no endpoint was usable or every attempt failed.
    pub no_endpoint_drops: AtomicU64,
    /// Client connections closed (or datagrams dropped) because of the per-service connection limit.
    pub over_limit_drops: AtomicU64,
    failed_endpoints: Mutex<BTreeMap<SocketAddr, u64>>,
}

/// A copy of [`ServiceMetrics`] at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMetricsSnapshot {
    pub active_connections: u64,
    pub accepted_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dial_failures: u64,
    pub no_endpoint_drops: u64,
    pub over_limit_drops: u64,
    /// Failed dials per endpoint.
    pub failed_endpoints: BTreeMap<SocketAddr, u64>,
}

impl ServiceMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> ServiceMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceMetricsSnapshot {
            active_connections: get(&self.active_connections),
            accepted_total: get(&self.accepted_total),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            dial_failures: get(&self.dial_failures),
            no_endpoint_drops: get(&self.no_endpoint_drops),
            over_limit_drops: get(&self.over_limit_drops),
            failed_endpoints: self
                .failed_endpoints
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn record_dial_failure(&self, endpoint: SocketAddr) {
        self.dial_failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.failed_endpoints.lock() {
            *map.entry(endpoint).or_default() += 1;
        }
    }
}

/// Holds one slot of a service's connection budget; counts as active until dropped.
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    metrics: Arc<ServiceMetrics>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl ActiveGuard {
    pub(crate) fn new(metrics: Arc<ServiceMetrics>, permit: Option<OwnedSemaphorePermit>) -> Self {
        metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        metrics.accepted_total.fetch_add(1, Ordering::Relaxed);
        ActiveGuard {
            metrics,
            _permit: permit,
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

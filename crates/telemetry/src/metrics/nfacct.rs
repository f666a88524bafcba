//! The iptables mode's nfacct packet counters, exposed on each scrape from the last values read from the
//! kernel (upstream registers these as custom collectors; they expose nothing while the counter is missing).

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// The last read values of the two nfacct counters.
#[derive(Debug, Default)]
pub(super) struct NfacctPackets {
    values: Mutex<[Option<u64>; 2]>,
}

impl NfacctPackets {
    pub(super) fn set(
        &self,
        ct_state_invalid_dropped: Option<u64>,
        localhost_nodeports_accepted: Option<u64>,
    ) {
        *self.values.lock().unwrap_or_else(|e| e.into_inner()) =
            [ct_state_invalid_dropped, localhost_nodeports_accepted];
    }
}

/// Exposed names without the `_total` the counter encoding appends, and help texts.
const NAMES: [(&str, &str); 2] = [
    (
        "kubeproxy_iptables_ct_state_invalid_dropped_packets",
        "[ALPHA] Packets dropped by iptables because conntrack marked them INVALID",
    ),
    (
        "kubeproxy_iptables_localhost_nodeports_accepted_packets",
        "[ALPHA] Packets accepted on NodePorts of the loopback interface",
    ),
];

impl Collector for NfacctPackets {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = *self.values.lock().unwrap_or_else(|e| e.into_inner());
        for ((name, help), value) in NAMES.iter().zip(values) {
            if let Some(value) = value {
                let counter = ConstCounter::new(value);
                let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(metric)?;
            }
        }
        Ok(())
    }
}

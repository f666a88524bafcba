//! Chain names: the fixed top-level chains and the hashed per-service / per-endpoint chains.
//!
//! Per-service chain names follow upstream exactly: sha256 of `"<ns>/<name>[:<port>]" + "<protocol lower>"`
//! (plus the endpoint string `ip:port` for SEP chains), standard base32, first 16 characters, after a prefix.
//! Pure functions only.

use kube_proxy_model::{Endpoint, ServicePortName};
use sha2::{Digest, Sha256};

pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
pub const KUBE_PROXY_CANARY: &str = "KUBE-PROXY-CANARY";
/// Shared with kubelet (the martian-localhost DROP rule); never deleted by cleanup.
pub const KUBE_FIREWALL: &str = "KUBE-FIREWALL";

pub const SVC_PREFIX: &str = "KUBE-SVC-";
pub const SVL_PREFIX: &str = "KUBE-SVL-";
pub const FW_PREFIX: &str = "KUBE-FW-";
pub const EXT_PREFIX: &str = "KUBE-EXT-";
pub const SEP_PREFIX: &str = "KUBE-SEP-";

/// nfacct counter counting localhost NodePort packets (upstream's metric source).
pub const NFACCT_LOCALHOST_NODEPORTS: &str = "localhost_nps_accepted_pkts";
/// nfacct counter counting packets dropped for ctstate INVALID.
pub const NFACCT_CT_STATE_INVALID: &str = "ct_state_invalid_dropped_pkts";

fn hash16(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let encoded = base32::encode(base32::Alphabet::Rfc4648 { padding: true }, &digest);
    encoded[..16].to_string()
}

/// The 16-character hash of a service port (name string + lower-case protocol).
pub fn port_proto_hash(name: &ServicePortName) -> String {
    hash16(&format!("{}{}", name, name.protocol.as_lower()))
}

/// `KUBE-SVC-…`: dispatch to the endpoints of the Cluster traffic policy.
pub fn svc_chain(name: &ServicePortName) -> String {
    format!("{SVC_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-SVL-…`: dispatch to the endpoints of the Local traffic policy.
pub fn svl_chain(name: &ServicePortName) -> String {
    format!("{SVL_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-FW-…`: loadBalancerSourceRanges filtering.
pub fn fw_chain(name: &ServicePortName) -> String {
    format!("{FW_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-EXT-…`: external traffic (NodePort, externalIP, LB) before the policy chain.
pub fn ext_chain(name: &ServicePortName) -> String {
    format!("{EXT_PREFIX}{}", port_proto_hash(name))
}

/// `KUBE-SEP-…`: one endpoint of one service port.
pub fn sep_chain(name: &ServicePortName, ep: &Endpoint) -> String {
    format!(
        "{SEP_PREFIX}{}",
        hash16(&format!(
            "{}{}{}",
            name,
            name.protocol.as_lower(),
            ep.addr_string()
        ))
    )
}

/// Whether a chain is one of the per-service chains this proxy creates and garbage-collects.
pub fn is_service_chain(chain: &str) -> bool {
    [SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX]
        .iter()
        .any(|p| chain.starts_with(p))
}

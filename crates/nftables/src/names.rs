//! Upstream's object names: fixed chain/set/map names and the hashed per-service and per-endpoint names
//! (`service-HASH-ns/name/proto/port`, `endpoint-HASH-ns/name/proto/port__ip/port`, ...).

use kube_proxy_model::{Endpoint, ServicePortName};
use sha2::{Digest, Sha256};

pub const SERVICES_CHAIN: &str = "services";
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const NODEPORT_IPS_SET: &str = "nodeport-ips";
pub const CLUSTER_IPS_SET: &str = "cluster-ips";
pub const SERVICE_ENDPOINTS_CHECK_CHAIN: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK_CHAIN: &str = "nodeport-endpoints-check";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const CLUSTER_IPS_CHECK_CHAIN: &str = "cluster-ips-check";
pub const FIREWALL_IPS_MAP: &str = "firewall-ips";
pub const FIREWALL_CHECK_CHAIN: &str = "firewall-check";
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
pub const MASQUERADING_CHAIN: &str = "masquerading";
/// `saddr . daddr` pairs `P . P` of endpoints chosen through `backends-K` maps (hairpin masquerade).
pub const HAIRPIN_SET: &str = "hairpin";

/// nf_tables' name length limit (NFT_NAME_MAXLEN is 256 including the NUL).
const NAME_LENGTH_MAX: usize = 255;
/// Longest prefix we put before a base name, including its hyphen.
const PREFIX_LENGTH_MAX: usize = 16;
const BASE_LENGTH_MAX: usize = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX;

/// First 8 characters of base32(sha256(name)), a hyphen, then `name`, truncated with "..." if too long.
fn hash_and_truncate(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let encoded = base32::encode(base32::Alphabet::Rfc4648 { padding: true }, &digest);
    let mut out = format!("{}-{}", &encoded[..8], name);
    if out.len() > BASE_LENGTH_MAX {
        out.truncate(BASE_LENGTH_MAX - 3);
        out.push_str("...");
    }
    out
}

/// `HASH-ns/name/proto/port` for a service port.
pub fn service_base(n: &ServicePortName) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        n.namespace,
        n.name,
        n.protocol.as_lower(),
        n.port
    ))
}

/// `HASH-ns/name/proto/port__ip/port` for an endpoint (IPv6 colons become dots).
pub fn endpoint_base(n: &ServicePortName, ep: &Endpoint) -> String {
    let ip = ep.ip.to_string().replace(':', ".");
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        n.namespace,
        n.name,
        n.protocol.as_lower(),
        n.port,
        ip,
        ep.port
    ))
}

/// Chain and set names of one service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNames {
    pub cluster: String,
    pub local: String,
    pub external: String,
    pub firewall: String,
}

impl ServiceNames {
    pub fn of(n: &ServicePortName) -> ServiceNames {
        let base = service_base(n);
        ServiceNames {
            cluster: format!("service-{base}"),
            local: format!("local-{base}"),
            external: format!("external-{base}"),
            firewall: format!("firewall-{base}"),
        }
    }
}

/// `endpoint-BASE` chain name.
pub fn endpoint_chain(n: &ServicePortName, ep: &Endpoint) -> String {
    format!("endpoint-{}", endpoint_base(n, ep))
}

/// `affinity-BASE` set name.
pub fn affinity_set(n: &ServicePortName, ep: &Endpoint) -> String {
    format!("affinity-{}", endpoint_base(n, ep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::Protocol;

    #[test]
    fn service_chain_name_has_hash_and_readable_part() {
        let n = ServicePortName {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port: "p80".into(),
            protocol: Protocol::Tcp,
        };
        let names = ServiceNames::of(&n);
        // base32 of sha256("ns1/svc1/tcp/p80"), first 8 chars (upstream's documented example).
        assert_eq!(names.cluster, "service-ULMVA6XW-ns1/svc1/tcp/p80");
        assert!(names.external.starts_with("external-ULMVA6XW-"));
    }

    #[test]
    fn endpoint_names_replace_ipv6_colons() {
        let n = ServicePortName {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port: "p80".into(),
            protocol: Protocol::Tcp,
        };
        let ep = Endpoint {
            ip: "fd00::1".parse().unwrap(),
            port: 80,
            is_local: false,
            ready: true,
            serving: true,
            terminating: false,
            hints: None,
        };
        let c = endpoint_chain(&n, &ep);
        assert!(c.starts_with("endpoint-"), "{c}");
        assert!(c.ends_with("-ns1/svc1/tcp/p80__fd00..1/80"), "{c}");
    }

    #[test]
    fn long_names_are_truncated() {
        let long = "a".repeat(300);
        let s = hash_and_truncate(&long);
        assert_eq!(s.len(), BASE_LENGTH_MAX);
        assert!(s.ends_with("..."));
    }
}

//! nftables mode's `cluster-ips-check`: a wrong port on a ClusterIP is rejected, and traffic to unallocated
//! addresses inside the service CIDRs is dropped — the CIDRs coming from ServiceCIDR objects when the API serves
//! them, else from `--service-cluster-ip-range`. Root only; fails (not skips) when CI=true and not root.

mod common;

use common::objects::{ep, service, slice};
use common::{privileged, sa, tcp, Cluster, Mode};
use kube_proxy_testkit::apiserver::Kind;
use kube_proxy_testkit::netns::Family;
use serde_json::json;

#[test]
fn nftables_service_cidrs_from_objects_else_flag() {
    if !privileged("nftables_service_cidrs_from_objects_else_flag") {
        return;
    }
    let c = Cluster::new();
    c.apply(service("web", "10.96.0.10", 80, "TCP", json!({})));
    c.apply(slice(
        "web",
        "web-1",
        "IPv4",
        "TCP",
        &[ep("10.244.2.10", "node2")],
    ));
    c.apply(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                   "metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/16"]}}),
    );
    c.start_proxy(&[
        "--proxy-mode",
        "nftables",
        "--service-cluster-ip-range",
        "10.97.0.0/16",
    ]);
    let pod_a = c.pod("pod-a");
    // 10.96.0.77 is a real address on node2 with nothing listening: reached, it answers with a reset. Only the
    // service-CIDR drop on node1 turns that into a timeout.
    c.topo
        .node2
        .ip(&["addr", "add", "10.96.0.77/32", "dev", "lo"])
        .unwrap();
    c.topo
        .node1
        .ip(&["route", "add", "10.96.0.77/32", "via", "10.100.0.2"])
        .unwrap();
    c.wait_until("web works", || tcp(pod_a, sa("10.96.0.10", 80)).is_ok());
    // A port the ClusterIP does not serve: rejected (refused), not left to time out.
    c.wait_until(
        "wrong port rejected",
        || matches!(tcp(pod_a, sa("10.96.0.10", 81)), Err(e) if e.is_rejected()),
    );
    // The object's range is programmed, not the flag's.
    let rules = c.rules(Mode::Nftables, Family::V4);
    assert!(rules.contains("10.96.0.0/16"), "{rules}");
    assert!(!rules.contains("10.97.0.0/16"), "{rules}");
    // An unallocated address inside the range is dropped (a timeout, not a refusal).
    c.wait_until(
        "unallocated service IP dropped",
        || matches!(tcp(pod_a, sa("10.96.0.77", 80)), Err(e) if !e.is_rejected()),
    );
    // Without ServiceCIDR objects the flag's range applies.
    c.delete(Kind::ServiceCidr, "", "kubernetes");
    c.wait_until("flag range programmed", || {
        let rules = c.rules(Mode::Nftables, Family::V4);
        rules.contains("10.97.0.0/16") && !rules.contains("10.96.0.0/16")
    });
    c.wait_until("web still works", || {
        tcp(pod_a, sa("10.96.0.10", 80)).is_ok()
    });
    c.wait_until(
        "10.96.0.77 is outside the service CIDR now: reached and reset",
        || matches!(tcp(pod_a, sa("10.96.0.77", 80)), Err(e) if e.is_rejected()),
    );
}

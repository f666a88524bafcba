//! Defaults equal upstream's v1alpha1 defaulting plus Linux platform defaults.

mod common;

use std::time::Duration;

use kube_proxy_config::{
    DetectLocal, IptablesBackend, KubeProxyConfiguration, NodePortAddresses, ProxyMode,
};

#[test]
fn v1alpha1_defaults_match_upstream() {
    let d = KubeProxyConfiguration::defaulted();
    let got = serde_json::to_value(&d).unwrap();
    let expect = serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": "0.0.0.0",
        "bindAddressHardFail": false,
        "clientConnection": {"acceptContentTypes": "", "burst": 10,
            "contentType": "application/vnd.kubernetes.protobuf", "kubeconfig": "", "qps": 5},
        "clusterCIDR": "",
        "configSyncPeriod": "15m0s",
        "conntrack": {"maxPerCore": 32768, "min": 131072, "tcpBeLiberal": false,
            "tcpCloseWaitTimeout": "1h0m0s", "tcpEstablishedTimeout": "24h0m0s",
            "udpStreamTimeout": "0s", "udpTimeout": "0s"},
        "detectLocal": {"bridgeInterface": "", "interfaceNamePrefix": ""},
        "detectLocalMode": "",
        "enableProfiling": false,
        "healthzBindAddress": "0.0.0.0:10256",
        "hostnameOverride": "",
        "iptables": {"localhostNodePorts": true, "masqueradeAll": false, "masqueradeBit": 14,
            "minSyncPeriod": "1s", "syncPeriod": "30s"},
        "ipvs": {"excludeCIDRs": null, "minSyncPeriod": "0s", "scheduler": "", "strictARP": false,
            "syncPeriod": "30s", "tcpFinTimeout": "0s", "tcpTimeout": "0s", "udpTimeout": "0s"},
        "logging": {"flushFrequency": "5s", "format": "text", "verbosity": 0,
            "options": {"json": {"infoBufferSize": "0"}, "text": {"infoBufferSize": "0"}}},
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": "",
        "nftables": {"masqueradeAll": false, "masqueradeBit": 14, "minSyncPeriod": "1s", "syncPeriod": "30s"},
        "nodePortAddresses": null,
        "oomScoreAdj": -999,
        "portRange": "",
        "showHiddenMetricsForVersion": "",
        "winkernel": {"enableDSR": false, "forwardHealthCheckVip": false, "networkName": "",
            "rootHnsEndpointName": "", "sourceVip": ""},
    });
    assert_eq!(got, expect);
}

#[test]
fn ipv6_bind_address_defaults_ipv6_servers() {
    let mut c = KubeProxyConfiguration {
        bind_address: "::".into(),
        ..Default::default()
    };
    c.set_defaults();
    assert_eq!(c.healthz_bind_address, "[::]:10256");
    assert_eq!(c.metrics_bind_address, "[::1]:10249");
}

#[test]
fn bare_ip_server_addresses_get_default_ports() {
    let mut c = KubeProxyConfiguration {
        healthz_bind_address: "10.0.0.1".into(),
        metrics_bind_address: "::1".into(),
        ..Default::default()
    };
    c.set_defaults();
    assert_eq!(c.healthz_bind_address, "10.0.0.1:10256");
    assert_eq!(c.metrics_bind_address, "[::1]:10249");
}

#[test]
fn typed_defaults_without_flags() {
    let l = common::ok(&[]);
    let c = &l.config;
    assert_eq!(c.mode, ProxyMode::Iptables);
    assert_eq!(c.bind_address.to_string(), "0.0.0.0");
    assert_eq!(
        c.healthz_bind_address,
        Some("0.0.0.0:10256".parse().unwrap())
    );
    assert_eq!(
        c.metrics_bind_address,
        Some("127.0.0.1:10249".parse().unwrap())
    );
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(c.min_sync_period, Duration::from_secs(1));
    assert_eq!(c.config_sync_period, Duration::from_secs(900));
    assert_eq!(c.masquerade_bit, 14);
    assert!(!c.masquerade_all);
    assert!(c.localhost_node_ports);
    assert_eq!(c.conntrack.max_per_core, 32768);
    assert_eq!(c.conntrack.min, 131072);
    assert_eq!(
        c.conntrack.tcp_established_timeout,
        Duration::from_secs(86400)
    );
    assert_eq!(
        c.conntrack.tcp_close_wait_timeout,
        Duration::from_secs(3600)
    );
    assert_eq!(c.conntrack.udp_timeout, Duration::ZERO);
    assert!(!c.conntrack.tcp_be_liberal);
    assert_eq!(c.oom_score_adj, -999);
    assert_eq!(c.detect_local, DetectLocal::ClusterCidr(vec![]));
    assert_eq!(c.node_port_addresses, NodePortAddresses::All);
    assert_eq!(c.client.qps, 5.0);
    assert_eq!(c.client.burst, 10);
    assert_eq!(c.client.content_type, "application/vnd.kubernetes.protobuf");
    assert_eq!(c.client.kubeconfig, None);
    assert_eq!(c.verbosity, 0);
    assert_eq!(c.iptables_backend, IptablesBackend::Auto);
    assert!(!c.userspace_bind_vips);
    assert!(!c.cleanup && !c.init_only);
    assert_eq!(c.hostname_override, None);
    // Platform defaults show in the effective v1alpha1 object.
    assert_eq!(l.raw.mode, "iptables");
    assert_eq!(l.raw.detect_local_mode, "ClusterCIDR");
    assert!(
        l.warnings.iter().any(|w| w.contains("no cluster CIDR")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn nftables_mode_defaults_nodeport_addresses_to_primary() {
    let l = common::ok(&["--proxy-mode=nftables"]);
    assert_eq!(l.config.node_port_addresses, NodePortAddresses::Primary);
    assert_eq!(l.config.sync_period, Duration::from_secs(30));
    assert_eq!(l.config.min_sync_period, Duration::from_secs(1));
    let l = common::ok(&["--proxy-mode=nftables", "--nodeport-addresses=10.0.0.0/8"]);
    assert_eq!(
        l.config.node_port_addresses,
        NodePortAddresses::Cidrs(vec!["10.0.0.0/8".parse().unwrap()])
    );
}

#[test]
fn ipvs_sync_defaults_depend_on_where_the_mode_comes_from() {
    // Flags only: upstream converts the defaults while the mode is still blank (iptables
    // section: 30s/1s), then sets the mode, so ipvs inherits minSyncPeriod 1s.
    let l = common::ok(&["--proxy-mode=ipvs"]);
    assert_eq!(l.config.sync_period, Duration::from_secs(30));
    assert_eq!(l.config.min_sync_period, Duration::from_secs(1));
    // From a file, the ipvs section's own default (0s) applies.
    let (_dir, path) = common::config_file(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n",
    );
    let l = common::ok(&["--config", path.to_str().unwrap()]);
    assert_eq!(l.config.mode, ProxyMode::Ipvs);
    assert_eq!(l.config.sync_period, Duration::from_secs(30));
    assert_eq!(l.config.min_sync_period, Duration::ZERO);
}

#[test]
fn proxy_config_defaults_equal_an_empty_command_line() {
    assert_eq!(
        kube_proxy_config::ProxyConfig::defaults(),
        common::ok(&[]).config
    );
}

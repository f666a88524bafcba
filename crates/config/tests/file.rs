//! The `--config` file: every field, strict/lenient decoding, precedence against flags, and
//! `--write-config-to` round trips.

mod common;

use std::time::Duration;

use kube_proxy_config::{ConfigError, DetectLocal, NodePortAddresses, ProxyMode};

const EVERY_FIELD: &str = r#"
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 10.0.0.7
bindAddressHardFail: true
clientConnection:
  acceptContentTypes: application/json
  burst: 50
  contentType: application/json
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 25
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
configSyncPeriod: 10m
conntrack:
  maxPerCore: 0
  min: 65536
  tcpBeLiberal: true
  tcpCloseWaitTimeout: 30m0s
  tcpEstablishedTimeout: 12h
  udpStreamTimeout: 2m
  udpTimeout: 30s
detectLocal:
  bridgeInterface: cbr0
  interfaceNamePrefix: veth
detectLocalMode: ClusterCIDR
enableProfiling: true
featureGates:
  SomeGate: true
healthzBindAddress: 0.0.0.0:12345
hostnameOverride: Worker-1
iptables:
  localhostNodePorts: false
  masqueradeAll: true
  masqueradeBit: 13
  minSyncPeriod: 2s
  syncPeriod: 1m
ipvs:
  excludeCIDRs: [10.9.0.0/16]
  minSyncPeriod: 3s
  scheduler: lc
  strictARP: true
  syncPeriod: 2m
  tcpFinTimeout: 5s
  tcpTimeout: 6s
  udpTimeout: 7s
logging:
  flushFrequency: 10s
  format: json
  verbosity: 3
metricsBindAddress: 0.0.0.0:10249
mode: iptables
nftables:
  masqueradeAll: false
  masqueradeBit: 12
  minSyncPeriod: 4s
  syncPeriod: 3m
nodePortAddresses: [192.168.0.0/16]
oomScoreAdj: -500
portRange: ""
showHiddenMetricsForVersion: "1.33"
winkernel:
  enableDSR: false
  networkName: ""
"#;

fn load_file(text: &str, extra: &[&str]) -> Result<kube_proxy_config::Loaded, ConfigError> {
    let (_dir, path) = common::config_file(text);
    let mut args = vec![
        "kube-proxy".to_string(),
        format!("--config={}", path.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    kube_proxy_config::load(args)
}

#[test]
fn every_field_is_read() {
    let l = load_file(EVERY_FIELD, &[]).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.mode, ProxyMode::Iptables);
    assert_eq!(c.bind_address.to_string(), "10.0.0.7");
    assert!(c.bind_address_hard_fail);
    assert_eq!(c.client.accept_content_types, "application/json");
    assert_eq!(c.client.burst, 50);
    assert_eq!(c.client.qps, 25.0);
    assert_eq!(
        c.client.kubeconfig.as_deref(),
        Some("/var/lib/kube-proxy/kubeconfig.conf".as_ref())
    );
    assert_eq!(
        c.detect_local,
        DetectLocal::ClusterCidr(vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap()
        ])
    );
    assert_eq!(c.config_sync_period, Duration::from_secs(600));
    assert_eq!(c.conntrack.max_per_core, 0);
    assert_eq!(c.conntrack.min, 65536);
    assert!(c.conntrack.tcp_be_liberal);
    assert_eq!(
        c.conntrack.tcp_close_wait_timeout,
        Duration::from_secs(1800)
    );
    assert_eq!(
        c.conntrack.tcp_established_timeout,
        Duration::from_secs(43200)
    );
    assert_eq!(c.conntrack.udp_stream_timeout, Duration::from_secs(120));
    assert_eq!(c.conntrack.udp_timeout, Duration::from_secs(30));
    assert!(c.enable_profiling);
    assert_eq!(c.feature_gates.get("SomeGate"), Some(&true));
    assert_eq!(
        c.healthz_bind_address,
        Some("0.0.0.0:12345".parse().unwrap())
    );
    assert_eq!(
        c.metrics_bind_address,
        Some("0.0.0.0:10249".parse().unwrap())
    );
    // Used as the node name: trimmed and lower-cased (the raw object keeps the file's text).
    assert_eq!(c.hostname_override.as_deref(), Some("worker-1"));
    assert_eq!(l.raw.hostname_override, "Worker-1");
    assert!(!c.localhost_node_ports);
    assert!(c.masquerade_all);
    assert_eq!(c.masquerade_bit, 13);
    assert_eq!(c.sync_period, Duration::from_secs(60));
    assert_eq!(c.min_sync_period, Duration::from_secs(2));
    assert_eq!(c.ipvs.exclude_cidrs, vec!["10.9.0.0/16".parse().unwrap()]);
    assert_eq!(c.ipvs.scheduler, "lc");
    assert!(c.ipvs.strict_arp);
    assert_eq!(c.ipvs.tcp_fin_timeout, Duration::from_secs(5));
    assert_eq!(c.ipvs.tcp_timeout, Duration::from_secs(6));
    assert_eq!(c.ipvs.udp_timeout, Duration::from_secs(7));
    assert_eq!(c.logging_format, "json");
    assert_eq!(c.verbosity, 3);
    assert_eq!(
        c.node_port_addresses,
        NodePortAddresses::Cidrs(vec!["192.168.0.0/16".parse().unwrap()])
    );
    assert_eq!(c.oom_score_adj, -500);
    assert_eq!(c.show_hidden_metrics_for_version.as_deref(), Some("1.33"));
}

#[test]
fn mode_selects_the_section_for_sync_periods_and_masquerading() {
    let cases = [
        ("iptables", 60, 2, true, 13),
        ("ipvs", 120, 3, true, 13),
        ("nftables", 180, 4, false, 12),
    ];
    for (mode, sync, min_sync, masq_all, bit) in cases {
        let text = EVERY_FIELD.replace("mode: iptables", &format!("mode: {mode}"));
        let c = load_file(&text, &[]).unwrap().config;
        assert_eq!(c.sync_period, Duration::from_secs(sync), "{mode}");
        assert_eq!(c.min_sync_period, Duration::from_secs(min_sync), "{mode}");
        assert_eq!(c.masquerade_all, masq_all, "{mode}");
        assert_eq!(c.masquerade_bit, bit, "{mode}");
    }
}

#[test]
fn config_file_replaces_config_bound_flags() {
    let file =
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n";
    let l = load_file(
        file,
        &[
            "--proxy-mode=nftables",
            "--masquerade-all",
            "--cluster-cidr=10.0.0.0/8",
            "--iptables-sync-period=5s",
        ],
    )
    .unwrap();
    assert_eq!(l.config.mode, ProxyMode::Ipvs);
    assert!(!l.config.masquerade_all);
    assert_eq!(l.config.detect_local, DetectLocal::ClusterCidr(vec![]));
    assert_eq!(l.config.sync_period, Duration::from_secs(30));
    let w = l.warnings.join("\n");
    for flag in [
        "--proxy-mode",
        "--masquerade-all",
        "--cluster-cidr",
        "--iptables-sync-period",
    ] {
        assert!(w.contains(flag), "{flag} not reported as ignored in {w}");
    }
}

#[test]
fn some_flags_still_apply_over_the_file() {
    let l = load_file(
        EVERY_FIELD,
        &[
            "--hostname-override= Node-9 ",
            "-v=7",
            "--logging-format=text",
            "--master=https://10.0.0.1:6443",
            "--cleanup",
            "--manifests=/m",
            "--iptables-backend=nft",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--userspace-bind-vips",
        ],
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.hostname_override.as_deref(), Some("node-9"));
    assert_eq!(c.verbosity, 7);
    assert_eq!(c.logging_format, "text");
    assert_eq!(c.client.master.as_deref(), Some("https://10.0.0.1:6443"));
    assert!(c.cleanup);
    assert_eq!(c.manifests.as_deref(), Some("/m".as_ref()));
    assert_eq!(c.iptables_backend, kube_proxy_config::IptablesBackend::Nft);
    assert_eq!(c.service_cluster_ip_range.len(), 1);
    assert!(c.userspace_bind_vips);
    assert_eq!(l.raw.hostname_override, "node-9");
    assert_eq!(l.raw.logging.verbosity, 7);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn blank_hostname_override_is_an_error() {
    assert!(matches!(
        common::err(&["--hostname-override=  "]),
        ConfigError::HostnameOverride
    ));
}

#[test]
fn unknown_and_duplicate_fields_warn_and_still_load() {
    let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                bogus: 1\niptables:\n  masqueradeBit: 9\n  extra: x\nfeatureGates:\n  AnyGate: false\n";
    let l = load_file(text, &[]).unwrap();
    assert_eq!(l.config.masquerade_bit, 9);
    let w = l.warnings.join("\n");
    assert!(
        w.contains("\"bogus\"") && w.contains("\"iptables.extra\""),
        "{w}"
    );
    assert!(
        !w.contains("AnyGate"),
        "feature gate names are free-form: {w}"
    );

    let dup = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nmode: nftables\n";
    let l = load_file(dup, &[]).unwrap();
    assert_eq!(l.config.mode, ProxyMode::Nftables);
    assert!(
        l.warnings.iter().any(|w| w.contains("lenient")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn wrong_or_missing_type_information_is_an_error() {
    let cases = [
        ("apiVersion: kubeproxy.config.k8s.io/v1beta9\nkind: KubeProxyConfiguration\n", "v1beta9"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n", "KubeletConfiguration"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n", "Kind"),
        ("kind: KubeProxyConfiguration\n", "apiVersion"),
        ("- just\n- a list\n", "mapping"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  masqueradeBit: lots\n", "iptables.masqueradeBit"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nconfigSyncPeriod: 15\n", "configSyncPeriod"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nconfigSyncPeriod: 15q\n", "configSyncPeriod"),
    ];
    for (text, needle) in cases {
        match load_file(text, &[]) {
            Err(ConfigError::DecodeConfigFile { message, .. }) => {
                assert!(message.contains(needle), "{needle:?} not in {message:?}")
            }
            other => panic!("{text:?}: expected a decode error, got {other:?}"),
        }
    }
    assert!(matches!(
        common::err(&["--config=/nonexistent/kube-proxy.yaml"]),
        ConfigError::ReadConfigFile { .. }
    ));
}

#[test]
fn nulls_and_empty_sections_are_zero_values() {
    let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                clusterCIDR: null\nfeatureGates:\niptables: {}\nnodePortAddresses: []\n";
    let l = load_file(text, &[]).unwrap();
    assert_eq!(l.config.masquerade_bit, 14);
    assert_eq!(l.config.node_port_addresses, NodePortAddresses::All);
}

#[test]
fn write_config_to_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("written.yaml");
    let flag_sets: &[&[&str]] = &[
        &[],
        &[
            "--proxy-mode=ipvs",
            "--ipvs-sync-period=20s",
            "--ipvs-scheduler=sh",
            "--masquerade-all",
        ],
        &[
            "--proxy-mode=nftables",
            "--iptables-min-sync-period=3s",
            "--masquerade-all",
            "--cluster-cidr=10.1.0.0/16",
        ],
        &[
            "--hostname-override=n1",
            "--nodeport-addresses=primary",
            "--feature-gates=X=true",
            "-v=2",
        ],
    ];
    for flags in flag_sets {
        let mut args = vec![format!("--write-config-to={}", out.display())];
        args.extend(flags.iter().map(|s| s.to_string()));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = common::ok(&arg_refs);
        assert_eq!(first.write_config_to.as_deref(), Some(out.as_path()));
        assert!(first.write_config_if_requested().unwrap());
        let again = common::ok(&[&format!("--config={}", out.display())]);
        let mut expect = first.config.clone();
        expect.config_file = again.config.config_file.clone();
        assert_eq!(again.config, expect, "{flags:?}");
        assert_eq!(again.raw, first.raw, "{flags:?}");
        assert!(
            again.warnings.iter().all(|w| !w.contains("lenient")),
            "{:?}",
            again.warnings
        );
    }
}

#[test]
fn raw_config_serialises_to_json_for_configz() {
    let l = common::ok(&["--proxy-mode=nftables"]);
    let json = serde_json::to_value(&l.raw).unwrap();
    assert_eq!(json["mode"], "nftables");
    assert_eq!(json["nftables"]["syncPeriod"], "30s");
    assert_eq!(json["iptables"]["syncPeriod"], "0s");
    assert_eq!(json["nodePortAddresses"], serde_json::json!(["primary"]));
}

#[test]
fn blank_hostname_override_in_the_file_is_an_error() {
    let blank = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nhostnameOverride: \"  \"\n";
    assert!(matches!(
        load_file(blank, &[]),
        Err(ConfigError::HostnameOverride)
    ));
    // An empty flag means "not given".
    assert_eq!(
        common::ok(&["--hostname-override="])
            .config
            .hostname_override,
        None
    );
}

#[test]
fn written_yaml_looks_like_upstream() {
    let l = common::ok(&[]);
    assert!(!l.write_config_if_requested().unwrap());
    let yaml = kube_proxy_config::to_yaml(&l.raw).unwrap();
    for line in [
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1",
        "kind: KubeProxyConfiguration",
        "  qps: 5",
        "configSyncPeriod: 15m0s",
        "  tcpEstablishedTimeout: 24h0m0s",
        "mode: iptables",
    ] {
        assert!(
            yaml.lines().any(|l| l == line),
            "{line:?} missing from:\n{yaml}"
        );
    }
    assert!(
        !yaml.contains("featureGates"),
        "empty featureGates is omitted:\n{yaml}"
    );
    // Keys come out sorted, as upstream's encoder writes them.
    let top: Vec<&str> = yaml
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split(':').next())
        .collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted);
}

//! Validation errors name the v1alpha1 field, as upstream's validation does.

mod common;

use kube_proxy_config::ConfigError;

fn file_errors(body: &str) -> Vec<String> {
    let text = format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}"
    );
    let (_dir, path) = common::config_file(&text);
    let e = common::err(&[&format!("--config={}", path.display())]);
    common::fields(&e)
}

#[test]
fn flag_values_fail_by_field() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--iptables-masquerade-bit=40"],
            &["iptables.masqueradeBit"],
        ),
        (
            &["--iptables-masquerade-bit=-1"],
            &["iptables.masqueradeBit"],
        ),
        (&["--oom-score-adj=1001"], &["oomScoreAdj"]),
        (&["--oom-score-adj=-1001"], &["oomScoreAdj"]),
        (
            &["--conntrack-max-per-core=-1", "--conntrack-min=-1"],
            &["conntrack.maxPerCore", "conntrack.min"],
        ),
        (
            &[
                "--conntrack-tcp-timeout-established=-1s",
                "--conntrack-tcp-timeout-close-wait=-1s",
            ],
            &[
                "conntrack.tcpEstablishedTimeout",
                "conntrack.tcpCloseWaitTimeout",
            ],
        ),
        (
            &["--conntrack-udp-timeout-stream=-1s"],
            &["conntrack.udpStreamTimeout"],
        ),
        (
            &[
                "--proxy-mode=ipvs",
                "--ipvs-tcp-timeout=-1s",
                "--ipvs-tcpfin-timeout=-1s",
                "--ipvs-udp-timeout=-1s",
                "--ipvs-exclude-cidrs=192.168.0.0/16,invalid",
            ],
            &[
                "ipvs.tcpTimeout",
                "ipvs.tcpFinTimeout",
                "ipvs.udpTimeout",
                "ipvs.excludeCIDRs[1]",
            ],
        ),
        // ipvs-only checks do not run in other modes.
        (
            &["--ipvs-tcp-timeout=-1s", "--oom-score-adj=2000"],
            &["oomScoreAdj"],
        ),
        (&["--kube-api-burst=-1"], &["clientConnection.burst"]),
        (&["--config-sync-period=0s"], &["configSyncPeriod"]),
        (&["--proxy-mode=kernelspace"], &["mode"]),
        (&["--detect-local-mode=Magic"], &["detectLocalMode"]),
        (
            &["--detect-local-mode=BridgeInterface"],
            &["detectLocal.bridgeInterface"],
        ),
        (
            &["--detect-local-mode=InterfaceNamePrefix"],
            &["detectLocal.interfaceNamePrefix"],
        ),
        (
            &["--nodeport-addresses=192.168.0.0/16,invalid"],
            &["nodePortAddresses[1]"],
        ),
        (
            &["--nodeport-addresses=10.0.0.0/8,primary"],
            &["nodePortAddresses[1]"],
        ),
        (
            &["--nodeport-addresses=primary,10.0.0.0/8"],
            &["nodePortAddresses[0]"],
        ),
        (
            &["--show-hidden-metrics-for-version=invalid"],
            &["showHiddenMetricsForVersion"],
        ),
        (&["--logging-format=xml"], &["logging.format"]),
        (&["--cluster-cidr=192.168.0.0/16,invalid"], &["clusterCIDR"]),
        (
            &["--cluster-cidr=192.168.0.0/16,10.0.0.0/8"],
            &["clusterCIDR"],
        ),
        (
            &["--cluster-cidr=10.0.0.0/8,fd00::/48,10.1.0.0/16"],
            &["clusterCIDR"],
        ),
        (&["--cluster-cidr="], &["clusterCIDR"]),
        // Zero is refused, and is also below the 1s minimum: upstream reports both.
        (
            &["--iptables-sync-period=0s"],
            &["iptables.syncPeriod", "iptables.syncPeriod"],
        ),
        (
            &["--iptables-min-sync-period=-1s"],
            &["iptables.minSyncPeriod"],
        ),
        (
            &["--iptables-sync-period=1s", "--iptables-min-sync-period=2s"],
            &["iptables.syncPeriod"],
        ),
        (
            &[
                "--proxy-mode=ipvs",
                "--ipvs-sync-period=1s",
                "--ipvs-min-sync-period=2s",
            ],
            &["ipvs.syncPeriod"],
        ),
        (
            &[
                "--proxy-mode=nftables",
                "--iptables-sync-period=1s",
                "--iptables-min-sync-period=2s",
            ],
            &["nftables.syncPeriod"],
        ),
        (&["--metrics-bind-address="], &["metricsBindAddress"]),
        (&["--metrics-port=0"], &["metricsBindAddress"]),
    ];
    for (args, want) in cases {
        let e = common::err(args);
        let mut got = common::fields(&e);
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{args:?}: {e}");
    }
}

#[test]
fn file_values_fail_by_field() {
    let cases: &[(&str, &[&str])] = &[
        ("bindAddress: 10.10.12.11:2000\n", &["bindAddress"]),
        (
            "healthzBindAddress: 1.2.3.4:99999\n",
            &["healthzBindAddress"],
        ),
        ("metricsBindAddress: nope:80\n", &["metricsBindAddress"]),
        (
            "mode: nftables\nnftables:\n  masqueradeBit: 32\n",
            &["nftables.masqueradeBit"],
        ),
        ("mode: iptables\nnftables:\n  masqueradeBit: 32\n", &[]),
        ("portRange: 2000-300\n", &["portRange"]),
        (
            "featureGates: {}\nconfigSyncPeriod: -1m\n",
            &["configSyncPeriod"],
        ),
        (
            "mode: ipvs\nipvs:\n  syncPeriod: 1s\n  minSyncPeriod: 5s\n",
            &["ipvs.syncPeriod"],
        ),
        (
            "mode: nftables\nnftables:\n  minSyncPeriod: -1s\n",
            &["nftables.minSyncPeriod"],
        ),
        (
            "detectLocalMode: ClusterCIDR\nclusterCIDR: 192.168.0.0/16,10.0.0.0/8\n",
            &["clusterCIDR"],
        ),
    ];
    for (body, want) in cases {
        if want.is_empty() {
            let text = format!("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}");
            let (_dir, path) = common::config_file(&text);
            common::ok(&[&format!("--config={}", path.display())]);
            continue;
        }
        let mut got = file_errors(body);
        got.sort();
        assert_eq!(got, want.to_vec(), "{body:?}");
    }
}

#[test]
fn messages_read_like_upstream() {
    let cases: &[(&[&str], &str)] = &[
        (&["--iptables-masquerade-bit=40"], "iptables.masqueradeBit: Invalid value: 40: must be within the range [0, 31]"),
        (
            &["--detect-local-mode=Magic"],
            "detectLocalMode: Unsupported value: \"Magic\": supported values: \"ClusterCIDR\", \"NodeCIDR\", \
             \"BridgeInterface\", \"InterfaceNamePrefix\", \"\"",
        ),
        (
            &["--iptables-sync-period=1s", "--iptables-min-sync-period=2s"],
            "iptables.syncPeriod: Invalid value: \"2s\": must be greater than or equal to iptables.minSyncPeriod",
        ),
        (
            &["--nodeport-addresses=bad"],
            "nodePortAddresses[0]: Invalid value: \"bad\": must be a valid CIDR",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(common::err(args).to_string(), *want, "{args:?}");
    }
    // Several errors are listed together.
    let many = common::err(&["--oom-score-adj=5000", "--kube-api-burst=-2"]).to_string();
    assert!(
        many.starts_with('[')
            && many.contains("oomScoreAdj")
            && many.contains("clientConnection.burst"),
        "{many}"
    );
}

#[test]
fn accepted_edge_values() {
    for args in [
        &["--iptables-masquerade-bit=0"][..],
        &["--iptables-masquerade-bit=31"],
        &["--oom-score-adj=1000"],
        &["--iptables-sync-period=2s", "--iptables-min-sync-period=2s"],
        &["--iptables-min-sync-period=0s"],
        &["--conntrack-max-per-core=0"],
        &["--detect-local-mode=ClusterCIDR"],
        &["--cluster-cidr=10.0.0.0/8,fd00::/48"],
        &["--nodeport-addresses=10.0.0.1/24"],
        &["--healthz-bind-address="],
        &[
            "--proxy-mode=ipvs",
            "--iptables-sync-period=1s",
            "--iptables-min-sync-period=5s",
        ],
    ] {
        common::ok(args);
    }
}

#[test]
fn write_config_to_skips_the_deprecated_port_defaulting() {
    // Upstream only appends the default port to a bare IP when neither --config nor
    // --write-config-to is given; otherwise the bare IP fails validation.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.yaml");
    let e = common::err(&[
        "--healthz-bind-address=10.0.0.1",
        &format!("--write-config-to={}", out.display()),
    ]);
    assert_eq!(common::fields(&e), vec!["healthzBindAddress"]);
    assert!(matches!(e, ConfigError::Validate(_)));
}

//! Every flag parses and lands in the right field; Go-style booleans and durations.

mod common;

use std::time::Duration;

use kube_proxy_config::{
    parse_flags, ConfigError, DetectLocal, IptablesBackend, NodePortAddresses, ProxyConfig,
    ProxyMode,
};

type Check = fn(&ProxyConfig) -> bool;

#[test]
fn every_flag_lands_in_its_field() {
    let secs = Duration::from_secs;
    let cases: &[(&[&str], Check)] = &[
        (&["--kubeconfig=/etc/kp.conf"], |c| {
            c.client.kubeconfig.as_deref() == Some("/etc/kp.conf".as_ref())
        }),
        (&["--master", "https://1.2.3.4:6443"], |c| {
            c.client.master.as_deref() == Some("https://1.2.3.4:6443")
        }),
        (&["--hostname-override=Node-A "], |c| {
            c.hostname_override.as_deref() == Some("node-a")
        }),
        (&["--proxy-mode=ipvs"], |c| c.mode == ProxyMode::Ipvs),
        (&["--proxy-mode=nftables"], |c| {
            c.mode == ProxyMode::Nftables
        }),
        (&["--proxy-mode=ipvs", "--proxy-mode=nftables"], |c| {
            c.mode == ProxyMode::Nftables
        }),
        (&["--proxy-mode=userspace"], |c| {
            c.mode == ProxyMode::Userspace
        }),
        (&["--proxy-mode="], |c| c.mode == ProxyMode::Iptables),
        (&["--cluster-cidr=10.244.0.0/16,fd00::/48"], |c| {
            c.detect_local
                == DetectLocal::ClusterCidr(vec![
                    "10.244.0.0/16".parse().unwrap(),
                    "fd00::/48".parse().unwrap(),
                ])
        }),
        (&["--detect-local-mode=NodeCIDR"], |c| {
            c.detect_local == DetectLocal::NodeCidr
        }),
        (
            &[
                "--detect-local-mode=BridgeInterface",
                "--pod-bridge-interface=cbr0",
            ],
            |c| c.detect_local == DetectLocal::BridgeInterface("cbr0".into()),
        ),
        (
            &[
                "--detect-local-mode=InterfaceNamePrefix",
                "--pod-interface-name-prefix=veth",
            ],
            |c| c.detect_local == DetectLocal::InterfaceNamePrefix("veth".into()),
        ),
        (&["--nodeport-addresses=primary"], |c| {
            c.node_port_addresses == NodePortAddresses::Primary
        }),
        (&["--nodeport-addresses=10.0.0.0/8,fd00::/64"], |c| {
            c.node_port_addresses
                == NodePortAddresses::Cidrs(vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "fd00::/64".parse().unwrap(),
                ])
        }),
        (
            &[
                "--nodeport-addresses=10.0.0.0/8",
                "--nodeport-addresses=192.168.0.0/16",
            ],
            |c| matches!(&c.node_port_addresses, NodePortAddresses::Cidrs(v) if v.len() == 2),
        ),
        (&["--nodeport-addresses="], |c| {
            c.node_port_addresses == NodePortAddresses::All
        }),
        (&["--masquerade-all"], |c| c.masquerade_all),
        (&["--iptables-masquerade-bit=5"], |c| c.masquerade_bit == 5),
        (&["--iptables-localhost-nodeports=false"], |c| {
            !c.localhost_node_ports
        }),
        (&["--iptables-sync-period=1m"], |c| {
            c.sync_period == Duration::from_secs(60)
        }),
        (&["--iptables-min-sync-period=500ms"], |c| {
            c.min_sync_period == Duration::from_millis(500)
        }),
        (
            &[
                "--proxy-mode=ipvs",
                "--ipvs-sync-period=45s",
                "--ipvs-min-sync-period=2s",
            ],
            |c| {
                c.sync_period == Duration::from_secs(45)
                    && c.min_sync_period == Duration::from_secs(2)
            },
        ),
        (
            &["--proxy-mode=nftables", "--iptables-sync-period=40s"],
            |c| c.sync_period == Duration::from_secs(40),
        ),
        (&["--ipvs-scheduler=wrr"], |c| c.ipvs.scheduler == "wrr"),
        (&["--ipvs-exclude-cidrs=10.1.0.0/16,10.2.0.0/16"], |c| {
            c.ipvs.exclude_cidrs.len() == 2
        }),
        (&["--ipvs-strict-arp"], |c| c.ipvs.strict_arp),
        (
            &[
                "--ipvs-tcp-timeout=1h",
                "--ipvs-tcpfin-timeout=2m",
                "--ipvs-udp-timeout=3s",
            ],
            |c| {
                c.ipvs.tcp_timeout == Duration::from_secs(3600)
                    && c.ipvs.tcp_fin_timeout == Duration::from_secs(120)
                    && c.ipvs.udp_timeout == Duration::from_secs(3)
            },
        ),
        (&["--healthz-bind-address=127.0.0.1:9999"], |c| {
            c.healthz_bind_address == Some("127.0.0.1:9999".parse().unwrap())
        }),
        (&["--healthz-bind-address=10.0.0.1"], |c| {
            c.healthz_bind_address == Some("10.0.0.1:10256".parse().unwrap())
        }),
        (&["--healthz-bind-address="], |c| {
            c.healthz_bind_address.is_none()
        }),
        (&["--healthz-port=0"], |c| c.healthz_bind_address.is_none()),
        (&["--metrics-bind-address=[::]:10249"], |c| {
            c.metrics_bind_address == Some("[::]:10249".parse().unwrap())
        }),
        (&["--metrics-bind-address=0.0.0.0"], |c| {
            c.metrics_bind_address == Some("0.0.0.0:10249".parse().unwrap())
        }),
        (&["--bind-address=10.0.0.5"], |c| {
            c.bind_address.to_string() == "10.0.0.5"
        }),
        (&["--bind-address-hard-fail"], |c| c.bind_address_hard_fail),
        (&["--oom-score-adj=-500"], |c| c.oom_score_adj == -500),
        (&["--oom-score-adj", "-500"], |c| c.oom_score_adj == -500),
        (&["--conntrack-max-per-core=0", "--conntrack-min=5"], |c| {
            c.conntrack.max_per_core == 0 && c.conntrack.min == 5
        }),
        (
            &[
                "--conntrack-tcp-timeout-established=12h",
                "--conntrack-tcp-timeout-close-wait=30m",
            ],
            |c| {
                c.conntrack.tcp_established_timeout == Duration::from_secs(43200)
                    && c.conntrack.tcp_close_wait_timeout == Duration::from_secs(1800)
            },
        ),
        (&["--conntrack-tcp-be-liberal"], |c| {
            c.conntrack.tcp_be_liberal
        }),
        (
            &[
                "--conntrack-udp-timeout=30s",
                "--conntrack-udp-timeout-stream=2m",
            ],
            |c| {
                c.conntrack.udp_timeout == Duration::from_secs(30)
                    && c.conntrack.udp_stream_timeout == Duration::from_secs(120)
            },
        ),
        (&["-v=4"], |c| c.verbosity == 4),
        (&["-v", "5"], |c| c.verbosity == 5),
        (&["--v=6"], |c| c.verbosity == 6),
        (&["--logging-format=json"], |c| c.logging_format == "json"),
        (
            &["--feature-gates=A=true,B=false", "--feature-gates=C=1"],
            |c| {
                c.feature_gates.get("A") == Some(&true)
                    && c.feature_gates.get("B") == Some(&false)
                    && c.feature_gates.get("C") == Some(&true)
            },
        ),
        (&["--kube-api-qps=20.5", "--kube-api-burst=40"], |c| {
            c.client.qps == 20.5 && c.client.burst == 40
        }),
        (&["--kube-api-content-type=application/json"], |c| {
            c.client.content_type == "application/json"
        }),
        (&["--config-sync-period=5m"], |c| {
            c.config_sync_period == Duration::from_secs(300)
        }),
        (&["--profiling"], |c| c.enable_profiling),
        (&["--show-hidden-metrics-for-version=1.32"], |c| {
            c.show_hidden_metrics_for_version.as_deref() == Some("1.32")
        }),
        (&["--cleanup"], |c| c.cleanup),
        (&["--init-only"], |c| c.init_only),
        (&["--manifests=/srv/manifests"], |c| {
            c.manifests.as_deref() == Some("/srv/manifests".as_ref())
        }),
        (&["--iptables-backend=legacy"], |c| {
            c.iptables_backend == IptablesBackend::Legacy
        }),
        (&["--iptables-backend=nft"], |c| {
            c.iptables_backend == IptablesBackend::Nft
        }),
        (&["--userspace-bind-vips"], |c| c.userspace_bind_vips),
        (&["--userspace-bind-vips=true"], |c| c.userspace_bind_vips),
        (&["--userspace-bind-vips=false"], |c| !c.userspace_bind_vips),
        (
            &["--userspace-bind-vips=1", "--userspace-bind-vips=F"],
            |c| !c.userspace_bind_vips,
        ),
        (
            &["--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112"],
            |c| {
                c.service_cluster_ip_range
                    == vec![
                        "10.96.0.0/12".parse().unwrap(),
                        "fd00:10:96::/112".parse().unwrap(),
                    ]
            },
        ),
    ];
    for (args, check) in cases {
        let l = common::ok(args);
        assert!(check(&l.config), "{args:?} gave {:#?}", l.config);
    }
    let _ = secs;
}

#[test]
fn go_style_booleans() {
    let cases: &[(&[&str], bool)] = &[
        (&[], false),
        (&["--masquerade-all"], true),
        (&["--masquerade-all=true"], true),
        (&["--masquerade-all=false"], false),
        (&["--masquerade-all=1"], true),
        (&["--masquerade-all=0"], false),
        (&["--masquerade-all=T"], true),
        (&["--masquerade-all=FALSE"], false),
        (&["--masquerade-all", "--masquerade-all=false"], false),
    ];
    for (args, want) in cases {
        assert_eq!(common::ok(args).config.masquerade_all, *want, "{args:?}");
    }
    // A boolean takes its value only after '=', as pflag: a following word is a positional.
    assert!(matches!(
        common::err(&["--masquerade-all", "false"]),
        ConfigError::ParseFlags(_)
    ));
    assert!(matches!(
        common::err(&["--masquerade-all=yes"]),
        ConfigError::ParseFlags(_)
    ));
}

#[test]
fn bad_flag_values_are_parse_errors() {
    for args in [
        &["--iptables-sync-period=30"][..],
        &["--iptables-sync-period=abc"],
        &["--bind-address=not-an-ip"],
        &["--healthz-bind-address=1.2.3.4:http"],
        &["--oom-score-adj=lots"],
        &["--feature-gates=NoValue"],
        &["--iptables-backend=other"],
        &["--userspace-bind-vips=yes"],
        &["--service-cluster-ip-range=10.96.0.0/99"],
        &["--no-such-flag"],
    ] {
        assert!(
            matches!(common::err(args), ConfigError::ParseFlags(_)),
            "{args:?}"
        );
    }
}

#[test]
fn negative_durations_parse_and_fail_validation_by_field() {
    let e = common::err(&["--conntrack-udp-timeout=-5s"]);
    assert_eq!(common::fields(&e), vec!["conntrack.udpTimeout"]);
    assert_eq!(
        e.to_string(),
        "conntrack.udpTimeout: Invalid value: \"-5s\": must be greater than or equal to 0"
    );
}

#[test]
fn flags_are_flattenable_into_a_binary_with_subcommands() {
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Option<Cmd>,
        #[command(flatten)]
        flags: kube_proxy_config::ProxyFlags,
    }
    #[derive(Subcommand)]
    enum Cmd {
        Render {
            #[command(flatten)]
            flags: kube_proxy_config::ProxyFlags,
        },
    }
    let cli = Cli::try_parse_from([
        "kube-proxy-rs",
        "render",
        "--proxy-mode=nftables",
        "--masquerade-all",
    ])
    .unwrap();
    let Some(Cmd::Render { flags }) = cli.cmd else {
        panic!("render not parsed")
    };
    let l = kube_proxy_config::resolve(&flags).unwrap();
    assert_eq!(l.config.mode, ProxyMode::Nftables);
    assert!(l.config.masquerade_all);
    let flags = parse_flags(["kube-proxy", "--v=2"]).unwrap();
    assert_eq!(flags.verbosity, Some(2));
}

//! Start-up helpers: logging, the node's name, the API client, the iptables backend and each family's settings.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use ipnet::IpNet;
use kube_proxy_config::{DetectLocal, IptablesBackend, ProxyConfig};
use kube_proxy_iptables::exec::choose_backend;
use kube_proxy_iptables::{Backend, IptablesExec, LocalDetector, RealExec, RenderConfig, Table};
use kube_proxy_model::IpFamily;

use crate::node_addresses::resolve_nodeport_addresses;

/// Logs to stderr. `RUST_LOG` wins; otherwise `-v` picks the level as klog's verbosity roughly maps to it.
pub fn init_logging(verbosity: u32) {
    let default = match verbosity {
        0..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `--hostname-override`, else the host name, lower-cased (as upstream).
pub fn node_name(cfg: &ProxyConfig) -> anyhow::Result<String> {
    if let Some(name) = &cfg.hostname_override {
        return Ok(name.clone());
    }
    let host = nix::unistd::gethostname().context("reading the host name")?;
    Ok(host.to_string_lossy().trim().to_lowercase())
}

/// A client for `--master` and/or `--kubeconfig`, else the in-cluster or default kubeconfig.
pub async fn kube_client(cfg: &ProxyConfig) -> anyhow::Result<kube::Client> {
    let master = cfg.client.master.as_deref().filter(|m| !m.is_empty());
    let mut config = match (&cfg.client.kubeconfig, master) {
        (Some(path), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        (None, Some(master)) => {
            let url = master
                .parse()
                .with_context(|| format!("--master: invalid URL {master:?}"))?;
            kube::Config::new(url)
        }
        (None, None) => kube::Config::infer()
            .await
            .context("no --master or --kubeconfig given and no in-cluster or default kubeconfig")?,
    };
    if let (Some(master), Some(_)) = (master, &cfg.client.kubeconfig) {
        config.cluster_url = master
            .parse()
            .with_context(|| format!("--master: invalid URL {master:?}"))?;
    }
    kube::Client::try_from(config).context("building the API client")
}

/// The iptables backend to drive.
pub fn iptables_exec(cfg: &ProxyConfig) -> Arc<dyn IptablesExec> {
    Arc::new(RealExec::new(iptables_backend(cfg)))
}

/// `--iptables-backend`, or the backend kubelet uses (auto).
pub fn iptables_backend(cfg: &ProxyConfig) -> Backend {
    let explicit = match cfg.iptables_backend {
        IptablesBackend::Auto => None,
        IptablesBackend::Nft => Some(Backend::Nft),
        IptablesBackend::Legacy => Some(Backend::Legacy),
    };
    let backend = choose_backend(explicit);
    tracing::info!(?backend, "using iptables backend");
    backend
}

/// The families this host can program: IPv4 always; IPv6 when the kernel has it and ip6tables works.
pub fn usable_families(exec: &dyn IptablesExec) -> Vec<IpFamily> {
    let mut families = vec![IpFamily::V4];
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        match exec.save(IpFamily::V6, Table::Nat) {
            Ok(_) => families.push(IpFamily::V6),
            Err(e) => {
                tracing::warn!("IPv6 is not usable with ip6tables, running single-stack: {e}")
            }
        }
    }
    families
}

/// One family's renderer settings, from the configuration and what is known about this node.
pub fn render_config(
    cfg: &ProxyConfig,
    family: IpFamily,
    node_ips: &[IpAddr],
    node_pod_cidrs: &[IpNet],
    local_addresses: &[IpAddr],
) -> RenderConfig {
    let of_family = |nets: &[IpNet]| -> Vec<IpNet> {
        nets.iter()
            .filter(|n| family.contains(&n.addr()))
            .copied()
            .collect()
    };
    let local_detector = match &cfg.detect_local {
        DetectLocal::ClusterCidr(cidrs) if !of_family(cidrs).is_empty() => {
            LocalDetector::Cidrs(of_family(cidrs))
        }
        DetectLocal::ClusterCidr(_) => LocalDetector::None,
        DetectLocal::NodeCidr if !of_family(node_pod_cidrs).is_empty() => {
            LocalDetector::Cidrs(of_family(node_pod_cidrs))
        }
        DetectLocal::NodeCidr => {
            tracing::warn!(
                ?family,
                "detect-local-mode NodeCIDR but the Node has no podCIDR of this family"
            );
            LocalDetector::None
        }
        DetectLocal::BridgeInterface(name) => LocalDetector::BridgeInterface(name.clone()),
        DetectLocal::InterfaceNamePrefix(prefix) => {
            LocalDetector::InterfaceNamePrefix(prefix.clone())
        }
    };
    let family_ips: Vec<IpAddr> = node_ips
        .iter()
        .filter(|ip| family.contains(ip))
        .copied()
        .collect();
    RenderConfig {
        masquerade_all: cfg.masquerade_all,
        masquerade_bit: cfg.masquerade_bit.min(31) as u8,
        local_detector,
        node_port_addresses: resolve_nodeport_addresses(
            &cfg.node_port_addresses,
            family,
            local_addresses,
            node_ips,
        ),
        localhost_nodeports: cfg.localhost_node_ports,
        node_ips: family_ips,
        ..RenderConfig::default()
    }
}

/// The nftables renderer's settings: the same concepts as iptables', plus the service CIDRs of this family.
pub fn nftables_config(
    ipt: &RenderConfig,
    family: IpFamily,
    service_cidrs: &[IpNet],
) -> kube_proxy_nftables::RenderConfig {
    use kube_proxy_nftables::{LocalDetector as NftDetector, NodePortAddresses as NftNodePorts};
    let local_detector = match &ipt.local_detector {
        LocalDetector::None => NftDetector::None,
        LocalDetector::Cidrs(c) => NftDetector::Cidrs(c.clone()),
        LocalDetector::BridgeInterface(b) => NftDetector::BridgeInterface(b.clone()),
        LocalDetector::InterfaceNamePrefix(p) => NftDetector::InterfaceNamePrefix(p.clone()),
    };
    let node_port_addresses = match &ipt.node_port_addresses {
        kube_proxy_iptables::NodePortAddresses::All => NftNodePorts::All,
        kube_proxy_iptables::NodePortAddresses::Ips(ips) => NftNodePorts::Ips(ips.clone()),
    };
    kube_proxy_nftables::RenderConfig {
        masquerade_all: ipt.masquerade_all,
        masquerade_bit: ipt.masquerade_bit,
        local_detector,
        node_port_addresses,
        node_ips: ipt.node_ips.clone(),
        service_cidrs: service_cidrs
            .iter()
            .filter(|c| family.contains(&c.addr()))
            .copied()
            .collect(),
    }
}

/// Removes what the other modes may have left behind, as upstream does at start-up. Failures are logged.
pub fn cleanup_other_modes(mode: kube_proxy_config::ProxyMode) {
    use kube_proxy_config::ProxyMode;
    if mode != ProxyMode::Nftables {
        if let Err(e) = kube_proxy_nftables::cleanup() {
            tracing::debug!("removing nftables leftovers: {e}");
        }
    }
    for backend in [Backend::Nft, Backend::Legacy] {
        let exec = RealExec::new(backend);
        if mode != ProxyMode::Ipvs && kube_proxy_ipvs::ipvs_available() {
            if let Err(e) = kube_proxy_ipvs::cleanup_host(backend) {
                tracing::debug!(?backend, "removing IPVS leftovers: {e}");
            }
        }
        if mode != ProxyMode::Userspace {
            if let Err(e) = crate::userspace_mode::cleanup(&exec) {
                tracing::debug!(?backend, "removing userspace leftovers: {e}");
            }
        }
        if !matches!(mode, ProxyMode::Iptables | ProxyMode::Ipvs) {
            for family in [IpFamily::V4, IpFamily::V6] {
                if let Err(e) = kube_proxy_iptables::cleanup(&exec, family) {
                    tracing::debug!(?backend, ?family, "removing iptables leftovers: {e}");
                }
            }
        }
    }
}

/// The IPVS proxier's settings for one family.
pub fn ipvs_config(
    cfg: &ProxyConfig,
    ipt: &RenderConfig,
    family: IpFamily,
    local_addresses: &[IpAddr],
) -> anyhow::Result<kube_proxy_ipvs::IpvsConfig> {
    let mut out = kube_proxy_ipvs::IpvsConfig::new(family);
    out.scheduler = cfg
        .ipvs
        .scheduler
        .parse()
        .map_err(|e| anyhow::anyhow!("--ipvs-scheduler: {e}"))?;
    out.node_port_ips = match &ipt.node_port_addresses {
        kube_proxy_iptables::NodePortAddresses::Ips(ips) => ips.clone(),
        // Every address of the node except loopback (and link-local), as upstream binds NodePorts.
        kube_proxy_iptables::NodePortAddresses::All => local_addresses
            .iter()
            .filter(|ip| family.contains(ip) && !ip.is_loopback() && !is_link_local(ip))
            .copied()
            .collect(),
    };
    out.exclude_cidrs = cfg.ipvs.exclude_cidrs.clone();
    out.masquerade_all = cfg.masquerade_all;
    out.masquerade_bit = cfg.masquerade_bit;
    out.local_detector = ipt.local_detector.clone();
    out.strict_arp = cfg.ipvs.strict_arp;
    out.timeouts = kube_proxy_ipvs::Timeouts {
        tcp: cfg.ipvs.tcp_timeout.as_secs() as u32,
        tcp_fin: cfg.ipvs.tcp_fin_timeout.as_secs() as u32,
        udp: cfg.ipvs.udp_timeout.as_secs() as u32,
    };
    Ok(out)
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// `--proxy-mode ipvs` on a kernel without IPVS runs iptables mode instead, as upstream's documents describe.
pub fn effective_mode(mode: kube_proxy_config::ProxyMode) -> kube_proxy_config::ProxyMode {
    use kube_proxy_config::ProxyMode;
    if mode != ProxyMode::Ipvs {
        return mode;
    }
    match kube_proxy_ipvs::ipvs_support(std::path::Path::new("/proc")) {
        Ok(()) => ProxyMode::Ipvs,
        Err(why) => {
            tracing::warn!(
                "IPVS is not available on this node ({}); falling back to iptables mode",
                why.0
            );
            ProxyMode::Iptables
        }
    }
}

//! The proxy daemon: load configuration, watch objects, program the kernel until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kube_proxy_config::{Loaded, ProxyConfig, ProxyFlags, ProxyMode};
use kube_proxy_conntrack::{ConntrackOps, NetlinkConntrack};
use kube_proxy_iptables::{IptablesDataplane, IptablesExec, ProcSysctl};
use kube_proxy_model::{IpFamily, NodeContext};
use kube_proxy_nftables::NftablesDataplane;
use kube_proxy_servers::{ListenAddresses, ServiceHealthServer};
use kube_proxy_sources::{ChangeTracker, ObjectKind};
use kube_proxy_sync::{Dataplane, Runner, RunnerConfig, ScheduleConfig};
use kube_proxy_telemetry::{Metrics, NodeInfo, ProxyHealth, StatusBoard};

use crate::dataplanes::{ConntrackReconciler, IptablesMode, IpvsMode, NftablesMode, ServiceCidrs};
use crate::listener::Listener;
use crate::node_addresses::{local_addresses, node_ips, NodePortSelection};
use crate::setup;

pub fn main(flags: ProxyFlags, sync_once: bool) -> ExitCode {
    let loaded = match kube_proxy_config::resolve(&flags) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kube-proxy-rs: {e}");
            return ExitCode::FAILURE;
        }
    };
    setup::init_logging(loaded.config.verbosity);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    match loaded.write_config_if_requested() {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("kube-proxy-rs: {e}");
            return ExitCode::FAILURE;
        }
    }
    if loaded.config.cleanup {
        return cleanup(&loaded.config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-proxy-rs: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded, sync_once)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("kube-proxy-rs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--cleanup`: remove every rule kube-proxy-rs may have created, in every mode, backend and family.
fn cleanup(cfg: &ProxyConfig) -> ExitCode {
    let _ = cfg;
    let mut ok = true;
    if let Err(e) = kube_proxy_nftables::cleanup() {
        tracing::warn!("cleanup of the nftables tables: {e}");
        ok = false;
    }
    if kube_proxy_ipvs::ipvs_available() {
        for backend in [
            kube_proxy_iptables::Backend::Nft,
            kube_proxy_iptables::Backend::Legacy,
        ] {
            if let Err(e) = kube_proxy_ipvs::cleanup_host(backend) {
                tracing::warn!(?backend, "cleanup of IPVS mode: {e}");
                ok = false;
            }
        }
    }
    for backend in [
        kube_proxy_iptables::Backend::Nft,
        kube_proxy_iptables::Backend::Legacy,
    ] {
        let exec = kube_proxy_iptables::RealExec::new(backend);
        if let Err(e) = crate::userspace_mode::cleanup(&exec) {
            tracing::warn!(?backend, "cleanup of userspace redirect rules: {e}");
            ok = false;
        }
        for family in [IpFamily::V4, IpFamily::V6] {
            if let Err(e) = kube_proxy_iptables::cleanup(&exec, family) {
                tracing::warn!(?backend, ?family, "cleanup: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(loaded: Loaded, sync_once: bool) -> anyhow::Result<()> {
    let mut cfg = loaded.config.clone();
    if cfg.mode == ProxyMode::Ipvs {
        // A bad scheduler is a configuration error: report it before touching anything.
        if let Err(e) = cfg.ipvs.scheduler.parse::<kube_proxy_ipvs::Scheduler>() {
            anyhow::bail!("ipvs.scheduler: {e}");
        }
    }
    cfg.mode = setup::effective_mode(cfg.mode);
    let node_name = setup::node_name(&cfg)?;
    tracing::info!(node = %node_name, mode = cfg.mode.as_str(), "starting kube-proxy-rs");
    apply_host_settings(&cfg);
    if cfg.init_only {
        tracing::info!("--init-only: initialisation done, exiting");
        return Ok(());
    }

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(ProxyHealth::new(cfg.sync_period));
    let status = Arc::new(StatusBoard::new(cfg.mode.as_str()));
    let mut servers = Vec::new();
    if let Some(addr) = cfg.healthz_bind_address {
        match kube_proxy_servers::serve_healthz(addr, health.clone(), metrics.clone()).await {
            Ok(s) => servers.push(s),
            Err(e) => tracing::error!("healthz server: {e}"),
        }
    }
    if let Some(addr) = cfg.metrics_bind_address {
        let configz = serde_json::to_value(&loaded.raw).unwrap_or_default();
        match kube_proxy_servers::serve_metrics_with_status(
            addr,
            metrics.clone(),
            cfg.mode.as_str().into(),
            configz,
            status.clone(),
        )
        .await
        {
            Ok(s) => servers.push(s),
            Err(e) => tracing::error!("metrics server: {e}"),
        }
    }

    let tracker = Arc::new(ChangeTracker::new(&ObjectKind::ALL));
    let mut events = None;
    let source = match &cfg.manifests {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "serving objects from manifests");
            tokio::spawn(kube_proxy_sources::run_manifest_source(
                dir.clone(),
                node_name.clone(),
                tracker.clone(),
            ))
        }
        None => {
            let client = setup::kube_client(&cfg).await?;
            let recorder =
                kube_proxy_sources::EventRecorder::new(client.clone(), node_name.clone());
            let starting = recorder.clone();
            tokio::spawn(async move {
                if let Err(e) = starting.node_starting().await {
                    tracing::warn!("{e}");
                }
            });
            events = Some(recorder);
            tokio::spawn(kube_proxy_sources::run_api_sources(
                client,
                node_name.clone(),
                tracker.clone(),
            ))
        }
    };

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let ready = async {
        while !tracker.is_ready() {
            tracker.changed().await;
        }
    };
    tokio::select! {
        _ = ready => {}
        _ = &mut shutdown => { source.abort(); return Ok(()); }
    }
    tracing::info!("initial lists complete");
    let node = tracker.peek().node;
    if let Some(node) = &node {
        health.sync_node(&NodeInfo::from_node(node));
    }
    let ips = node_ips(node.as_deref(), Some(cfg.bind_address));
    if ips.is_empty() {
        tracing::warn!("no node IP known (no Node object with addresses and no --bind-address)");
    }
    let pod_cidrs = node_pod_cidrs(node.as_deref());
    let local = local_addresses().unwrap_or_else(|e| {
        tracing::warn!("listing local addresses: {e}");
        Vec::new()
    });

    setup::cleanup_other_modes(cfg.mode);
    let exec_backend = setup::iptables_backend(&cfg);
    let exec: Arc<dyn IptablesExec> = Arc::new(kube_proxy_iptables::RealExec::new(exec_backend));
    let families = setup::usable_families(exec.as_ref());
    let conntrack: Option<Arc<dyn ConntrackOps>> = Some(Arc::new(NetlinkConntrack::new()));
    let mut dataplanes: Vec<Box<dyn Dataplane>> = Vec::new();
    let service_cidrs = Arc::new(ServiceCidrs::default());
    let mut hc_addresses = Vec::new();
    let mut hc_all = false;
    for family in &families {
        let rcfg = setup::render_config(&cfg, *family, &ips, &pod_cidrs, &local);
        match &rcfg.node_port_addresses {
            NodePortSelection::All => hc_all = true,
            NodePortSelection::Ips(v) => hc_addresses.extend(v.iter().copied()),
        }
        let reconciler = ConntrackReconciler::new(conntrack.clone(), metrics.clone());
        if cfg.mode == ProxyMode::Userspace {
            continue;
        }
        if cfg.mode == ProxyMode::Ipvs {
            let icfg = setup::ipvs_config(&cfg, &rcfg, *family, &local)?;
            let ipvs = kube_proxy_ipvs::IpvsDataplane::with_real_system(icfg, exec_backend)
                .with_context(|| format!("preparing the {family:?} IPVS proxier"))?;
            dataplanes.push(Box::new(IpvsMode {
                family: *family,
                ipvs,
                conntrack: reconciler,
            }));
        } else if cfg.mode == ProxyMode::Nftables {
            let ncfg = setup::nftables_config(&rcfg, *family, &cfg.service_cluster_ip_range);
            let nftables = NftablesDataplane::new(*family, ncfg.clone())
                .with_context(|| format!("preparing the {family:?} nftables proxier"))?;
            dataplanes.push(Box::new(NftablesMode {
                family: *family,
                nftables,
                conntrack: reconciler,
                base_config: ncfg,
                service_cidrs: service_cidrs.clone(),
            }));
        } else {
            let mut iptables = IptablesDataplane::new(exec.clone(), &ProcSysctl, *family, rcfg)
                .with_context(|| format!("preparing the {family:?} iptables proxier"))?;
            // Upstream watches its canary every syncPeriod.
            iptables.set_canary_check_period(cfg.sync_period);
            dataplanes.push(Box::new(IptablesMode {
                iptables,
                conntrack: reconciler,
            }));
        }
    }
    if cfg.mode == ProxyMode::Userspace {
        dataplanes = crate::userspace_mode::userspace_dataplanes(
            &families,
            &cfg,
            &node_name,
            &ips,
            &local,
            &crate::userspace_mode::Seams::host(exec.clone()),
            metrics.clone(),
        )?;
    }
    let hc_server = Arc::new(ServiceHealthServer::new(
        if hc_all {
            ListenAddresses::All
        } else {
            ListenAddresses::Ips(hc_addresses)
        },
        health.clone(),
    ));
    let listener = Arc::new(Listener::new(
        families.clone(),
        metrics.clone(),
        health.clone(),
        hc_server.clone(),
        status.clone(),
        events,
        service_cidrs,
    ));
    let mut runner = Runner::new(
        tracker.clone(),
        RunnerConfig {
            schedule: ScheduleConfig {
                min_interval: cfg.min_sync_period,
                max_interval: cfg.sync_period,
            },
            node: NodeContext {
                node_name: node_name.clone(),
            },
        },
        dataplanes,
        listener,
    );
    for f in &families {
        health.updated(*f);
    }
    if sync_once {
        let ok = runner.sync_once().await;
        source.abort();
        return if ok {
            Ok(())
        } else {
            Err(anyhow::anyhow!("the sync failed"))
        };
    }
    runner.run(shutdown).await;
    tracing::info!("shutting down; programmed rules stay in place");
    source.abort();
    hc_server.shutdown().await;
    for s in servers {
        s.shutdown().await;
    }
    Ok(())
}

fn node_pod_cidrs(node: Option<&k8s_openapi::api::core::v1::Node>) -> Vec<ipnet::IpNet> {
    let Some(spec) = node.and_then(|n| n.spec.as_ref()) else {
        return Vec::new();
    };
    let mut list: Vec<String> = spec.pod_cidrs.clone().unwrap_or_default();
    if list.is_empty() {
        list.extend(spec.pod_cidr.clone());
    }
    list.iter()
        .filter_map(|c| kube_proxy_model::parse_cidr_sloppy(c))
        .collect()
}

/// OOM score and conntrack tuning, as upstream does at start-up. Failures are logged, not fatal: in a container
/// or a non-initial network namespace some of these files are read-only.
fn apply_host_settings(cfg: &ProxyConfig) {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", cfg.oom_score_adj.to_string()) {
        tracing::warn!("setting oom_score_adj to {}: {e}", cfg.oom_score_adj);
    }
    let c = &cfg.conntrack;
    let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    let tuning = kube_proxy_conntrack::ConntrackTuning {
        max_per_core: Some(c.max_per_core),
        min: Some(c.min),
        tcp_established_timeout: nonzero(c.tcp_established_timeout),
        tcp_close_wait_timeout: nonzero(c.tcp_close_wait_timeout),
        tcp_be_liberal: c.tcp_be_liberal,
        udp_timeout: nonzero(c.udp_timeout),
        udp_stream_timeout: nonzero(c.udp_stream_timeout),
    };
    let cpus = kube_proxy_conntrack::sysctl::detect_num_cpus();
    if let Err(e) = kube_proxy_conntrack::apply_conntrack_tuning(
        &kube_proxy_conntrack::SysRoot::host(),
        &tuning,
        cpus,
    ) {
        tracing::warn!("conntrack tuning: {e}");
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("installing the SIGTERM handler: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}

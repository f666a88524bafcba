//! `kube-proxy-rs demo`: the proxy at work on the bundled examples, in a sandbox of network namespaces.
//!
//! Builds the test kit's two-node cluster (plus a client pod on node-1), starts echo backends in the pods that
//! back the example Services, runs this very executable as the proxy inside node-1 with `--manifests`, sends
//! requests to every service address from the client pod and from the external client, and prints who answered
//! and the rules that were programmed. Everything lives in namespaces this command creates; they are removed on
//! every exit path (Drop guards, plus a SIGINT/SIGTERM/SIGHUP handler that turns a signal into an orderly
//! return). The host's own namespace, rules and sysctls are never touched.

mod sandbox;
mod traffic;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube_proxy_model::{build_state, IpFamily, NodeContext};
use kube_proxy_testkit::netns::NetnsError;

/// The node the proxy runs as (the examples' Node object).
pub const DEMO_NODE: &str = "node-1";

/// The bundled example objects, written to a temporary directory when `--manifests` is not given.
const BUNDLED_EXAMPLES: &str = include_str!("../../../examples/cluster.yaml");

/// Set by the signal handler; every wait and every request checks it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The mode the sandboxed proxy runs in.
    #[arg(long = "proxy-mode", default_value = "iptables", value_parser = ["iptables", "nftables"])]
    pub proxy_mode: String,
    /// Requests sent to each service address from each client.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub requests: u32,
    /// Load these manifests instead of the bundled examples (their pod addresses must be the sandbox's:
    /// 10.244.1.10 and 10.244.1.11 on node-1, 10.244.2.10 on node-2).
    #[arg(long)]
    pub manifests: Option<PathBuf>,
    /// Do not print the programmed rules.
    #[arg(long = "no-rules")]
    pub no_rules: bool,
}

/// What stopped the demo, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo needs root: it creates network namespaces (try: sudo kube-proxy-rs demo)")]
    CheckRoot,
    #[error("installing the signal handler: {0}")]
    InstallSignalHandler(std::io::Error),
    #[error("writing the bundled examples to {path}: {source}")]
    WriteExamples {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading the manifests: {0}")]
    LoadManifests(#[from] kube_proxy_sources::SourceError),
    #[error("building the network namespaces: {0}")]
    BuildNamespaces(NetnsError),
    #[error("starting a backend: {0}")]
    StartBackend(NetnsError),
    #[error("finding this executable: {0}")]
    FindExecutable(std::io::Error),
    #[error("starting the proxy: {0}")]
    StartProxy(NetnsError),
    #[error("the proxy exited early ({status}); its log:\n{log}")]
    ProxyExited { status: String, log: String },
    #[error("the proxy did not program every service within {timeout:?}; its log:\n{log}")]
    WaitForRules { timeout: Duration, log: String },
    #[error("interrupted; the namespaces were removed")]
    Interrupted,
}

/// Entry point of `kube-proxy-rs demo`.
pub fn main(args: DemoArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(DemoError::Interrupted) => {
            eprintln!("kube-proxy-rs demo: {}", DemoError::Interrupted);
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("kube-proxy-rs demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns `Err(Interrupted)` once a signal arrived.
pub(crate) fn check_interrupt() -> Result<(), DemoError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(DemoError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps up to `d`, returning early (with an error) on a signal.
pub(crate) fn pause(d: Duration) -> Result<(), DemoError> {
    let deadline = std::time::Instant::now() + d;
    while std::time::Instant::now() < deadline {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
    check_interrupt()
}

/// From now on SIGINT, SIGTERM and SIGHUP only set [`INTERRUPTED`]; the demo then unwinds through its Drop
/// guards, which remove the namespaces. Registered before anything is created.
fn install_signal_handler() -> Result<(), DemoError> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DemoError::InstallSignalHandler)?;
    let mut signals = rt
        .block_on(async {
            Ok::<_, std::io::Error>([
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ])
        })
        .map_err(DemoError::InstallSignalHandler)?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let [int, term, hup] = &mut signals;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("kube-proxy-rs demo: signal received, removing the namespaces...");
                }
            }
        })
    });
    Ok(())
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bundled_examples() -> Result<TempDir, DemoError> {
    let dir = std::env::temp_dir().join(format!("kprs-demo-{}", std::process::id()));
    let write = || {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cluster.yaml"), BUNDLED_EXAMPLES)
    };
    let guard = TempDir(dir.clone());
    write().map_err(|source| DemoError::WriteExamples { path: dir, source })?;
    Ok(guard)
}

fn run(args: &DemoArgs) -> Result<(), DemoError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DemoError::CheckRoot);
    }
    install_signal_handler()?;
    let _examples_guard;
    let dir = match &args.manifests {
        Some(d) => d.clone(),
        None => {
            let g = bundled_examples()?;
            let d = g.0.clone();
            _examples_guard = g;
            d
        }
    };
    let (objects, warnings) = kube_proxy_sources::load_manifests(&dir, DEMO_NODE)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let ctx = NodeContext {
        node_name: DEMO_NODE.to_string(),
    };
    let state = build_state(&objects, &ctx, IpFamily::V4, None).state;

    eprintln!("building the sandbox: a LAN, two nodes, three backend pods, a client pod and an external client");
    // Declared first so that it is dropped last: the proxy and the backends go before their namespaces.
    let sandbox = sandbox::Sandbox::build()?;
    check_interrupt()?;
    let backends = sandbox.start_backends(&state)?;
    check_interrupt()?;
    eprintln!(
        "starting kube-proxy-rs --proxy-mode {} in node-1 on {}",
        args.proxy_mode,
        dir.display()
    );
    let mut proxy = sandbox.start_proxy(&args.proxy_mode, &dir)?;
    proxy.wait_for_rules(&sandbox, &state, &args.proxy_mode)?;
    eprintln!("rules programmed; sending traffic");

    let plan = traffic::plan(&state, &sandbox);
    let results = traffic::send(&plan, &sandbox, args.requests)?;
    println!(
        "kube-proxy-rs demo: {} mode, {} requests per row\n",
        args.proxy_mode, args.requests
    );
    print!("{}", traffic::table(&results));
    if let Some(hc) = sandbox.health_check_report(&state) {
        println!("\n{hc}");
    }
    if !args.no_rules {
        println!("\n# Rules programmed in node-1 ({}):", args.proxy_mode);
        print!("{}", sandbox.rules(&args.proxy_mode));
    }
    drop(proxy);
    drop(backends);
    let names = sandbox.namespace_names();
    drop(sandbox);
    println!("\nremoved the namespaces {}", names.join(" "));
    Ok(())
}

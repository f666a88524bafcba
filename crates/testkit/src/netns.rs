//! Network namespaces for end-to-end tests of the proxy: [`Netns`] (an RAII `ip netns` namespace that runs
//! commands and closures inside itself), link/address/route helpers ([`link`]), a whole small cluster
//! ([`topology::ClusterTopology`]: client, LAN, two nodes, three pods, dual-stack) and socket helpers that report
//! which backend answered and which source address it saw ([`sockets`]).
//!
//! Everything happens inside namespaces this module creates (named `kprs-<pid>-<n>-<role>`); nothing in the
//! caller's namespace is touched. Namespaces are deleted on drop, also when a test panics, and namespaces left
//! behind by test processes that died are swept when the next one is created. Needs root.

pub mod link;
pub mod sockets;
pub mod topology;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use sockets::{
    tcp_echo_server, tcp_exchange, tcp_request, udp_echo_server, udp_exchange, udp_exchange_from,
    udp_request, EchoServer, Reply, RequestError,
};
pub use topology::{pod_cidr, ClusterTopology, Family, Pod, TopologyOpts};

/// Prefix of every namespace this kit creates.
pub const NETNS_PREFIX: &str = "kprs-";

/// What went wrong while building or using a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A command could not be started at all.
    #[error("running {cmd}: {source}")]
    RunCommand { cmd: String, source: std::io::Error },
    /// A command exited unsuccessfully.
    #[error("{cmd} failed ({status}): {stderr}")]
    CommandFailed {
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// The namespace file under /run/netns could not be opened.
    #[error("opening namespace {name}: {source}")]
    OpenNamespace {
        name: String,
        source: std::io::Error,
    },
    /// setns() into the namespace failed.
    #[error("entering namespace {name}: {source}")]
    EnterNamespace { name: String, source: nix::Error },
    /// Writing a sysctl inside the namespace failed.
    #[error("setting sysctl {key} in {name}: {source}")]
    SetSysctl {
        name: String,
        key: String,
        source: std::io::Error,
    },
    /// Spawning a process inside the namespace failed.
    #[error("spawning {cmd} in {name}: {source}")]
    SpawnProcess {
        name: String,
        cmd: String,
        source: std::io::Error,
    },
    /// Creating a socket inside the namespace failed.
    #[error("binding {addr} in {name}: {source}")]
    BindSocket {
        name: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = NetnsError> = std::result::Result<T, E>;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command to completion; an unsuccessful exit is an error carrying stderr. Returns stdout.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let text = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| NetnsError::RunCommand {
        cmd: text.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(NetnsError::CommandFailed {
            cmd: text,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deletes namespaces with our prefix whose creating process no longer exists.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// A network namespace created with `ip netns add`; deleted on drop together with the processes started in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    role: String,
    children: Mutex<Vec<u32>>,
}

impl Netns {
    /// Creates `kprs-<pid>-<n>-<role>` with loopback up and IPv6 DAD disabled (addresses usable at once).
    pub fn new(role: &str) -> Result<Netns> {
        sweep_stale();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NETNS_PREFIX}{}-{n}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns {
            name,
            role: role.to_string(),
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
        ] {
            ns.sysctl(key, "0")?;
        }
        Ok(ns)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role given at creation (e.g. `node1`, `pod-a`); the echo servers answer with it.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Runs `args` inside the namespace with `ip netns exec` and returns its output, whatever the exit status.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        let text = format!("{cmd:?}");
        cmd.output()
            .map_err(|source| NetnsError::RunCommand { cmd: text, source })
    }

    /// Like [`exec`](Self::exec), but an unsuccessful exit is an error. Returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// Runs `ip -n <ns> <args>` and fails on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Spawns `cmd` inside the namespace (from a thread that entered it, so every setting of `cmd` is kept) in its
    /// own process group. The group is killed when this `Netns` is dropped.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let text = format!("{cmd:?}");
        let child = self
            .run_in(|| cmd.spawn())?
            .map_err(|source| NetnsError::SpawnProcess {
                name: self.name.clone(),
                cmd: text,
                source,
            })?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        Ok(child)
    }

    /// Runs `f` on a thread that has entered this namespace and returns its result (a panic in `f` is resumed
    /// here). Sockets created by `f` belong to this namespace for their whole life, wherever they are used later.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|source| NetnsError::OpenNamespace {
            name: self.name.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                    |source| NetnsError::EnterNamespace {
                        name: self.name.clone(),
                        source,
                    },
                )?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Writes a sysctl of this namespace, e.g. `sysctl("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run_in(|| std::fs::write(&path, value))?
            .map_err(|source| NetnsError::SetSysctl {
                name: self.name.clone(),
                key: key.to_string(),
                source,
            })
    }

    /// Reads a sysctl of this namespace.
    pub fn get_sysctl(&self, key: &str) -> Result<String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run_in(|| std::fs::read_to_string(&path))?
            .map(|s| s.trim().to_string())
            .map_err(|source| NetnsError::SetSysctl {
                name: self.name.clone(),
                key: key.to_string(),
                source,
            })
    }

    /// Turns on IPv4 and IPv6 forwarding and turns off reverse-path filtering (a router).
    pub fn enable_forwarding(&self) -> Result<()> {
        for key in [
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv6.conf.default.forwarding",
        ] {
            self.sysctl(key, "1")?;
        }
        for key in [
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.rp_filter",
        ] {
            self.sysctl(key, "0")?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in children {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::SIGKILL,
            );
        }
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("netns: could not delete {}: {e}", self.name);
        }
    }
}

/// Names of the namespaces this process created that still exist (for leak checks).
pub fn leftover_namespaces() -> Vec<String> {
    let prefix = format!("{NETNS_PREFIX}{}-", std::process::id());
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|n| n.starts_with(&prefix));
    out.sort();
    out
}

/// Calls `f` until it returns `Some` or `timeout` has passed (checking every 50 ms); returns the last result.
/// For waiting on an eventual state (e.g. the proxy under test has synced), never for asserting durations.
pub fn eventually<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether tests that need root should run: true as root; otherwise panics when `CI=true`, else prints a note
/// and returns false (the test then returns early).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root when CI=true"
    );
    eprintln!("skipping {test}: needs root (CI is unset)");
    false
}

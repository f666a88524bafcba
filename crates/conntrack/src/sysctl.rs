//! Conntrack tuning applied once at start-up, as upstream kube-proxy does: `nf_conntrack_max` (scaled by CPU
//! count, with a floor) and the hash size that goes with it, TCP established / close-wait timeouts,
//! `nf_conntrack_tcp_be_liberal`, and the UDP timeouts. Zero or unset values leave the kernel's setting alone.
//!
//! All file access goes through [`SysRoot`], whose root is `/` in production and a temporary directory in tests.
//! A value is only written when it differs from the current one. When the hash size must grow but /sys is
//! mounted read-only (a known container-runtime quirk), the hash size is skipped with a warning and start-up goes
//! on ([`TuningOutcome::sysfs_read_only`] tells the caller, who may record a node event).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConntrackError;
use crate::Result;

/// The `conntrack` section of the proxy configuration (`--conntrack-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConntrackTuning {
    /// `--conntrack-max-per-core`; `None` or 0 leaves `nf_conntrack_max` alone.
    pub max_per_core: Option<u32>,
    /// `--conntrack-min`: floor for the scaled maximum.
    pub min: Option<u32>,
    /// `--conntrack-tcp-timeout-established`.
    pub tcp_established_timeout: Option<Duration>,
    /// `--conntrack-tcp-timeout-close-wait`.
    pub tcp_close_wait_timeout: Option<Duration>,
    /// `--conntrack-tcp-be-liberal`.
    pub tcp_be_liberal: bool,
    /// `--conntrack-udp-timeout`.
    pub udp_timeout: Option<Duration>,
    /// `--conntrack-udp-timeout-stream`.
    pub udp_stream_timeout: Option<Duration>,
}

impl Default for ConntrackTuning {
    /// Upstream's defaults: 32768 per core, at least 131072, 24h established, 1h close-wait, the rest untouched.
    fn default() -> ConntrackTuning {
        ConntrackTuning {
            max_per_core: Some(32768),
            min: Some(131072),
            tcp_established_timeout: Some(Duration::from_secs(24 * 3600)),
            tcp_close_wait_timeout: Some(Duration::from_secs(3600)),
            tcp_be_liberal: false,
            udp_timeout: None,
            udp_stream_timeout: None,
        }
    }
}

/// The `nf_conntrack_max` to set: `max_per_core × cpus` unless `min` is larger; 0 means "leave it alone".
pub fn conntrack_max(tuning: &ConntrackTuning, num_cpus: usize) -> u64 {
    match tuning.max_per_core {
        Some(per_core) if per_core > 0 => {
            let scaled = u64::from(per_core) * num_cpus as u64;
            scaled.max(u64::from(tuning.min.unwrap_or(0)))
        }
        _ => 0,
    }
}

/// Where /proc and /sys live.
#[derive(Clone, Debug)]
pub struct SysRoot {
    root: PathBuf,
}

impl SysRoot {
    /// The real filesystem.
    pub fn host() -> SysRoot {
        SysRoot {
            root: PathBuf::from("/"),
        }
    }

    /// A fake root (tests): files are looked up under `root/proc/...` and `root/sys/...`.
    pub fn at(root: impl Into<PathBuf>) -> SysRoot {
        SysRoot { root: root.into() }
    }

    /// `proc/sys/net/netfilter/<name>` under the root.
    pub fn netfilter_sysctl(&self, name: &str) -> PathBuf {
        self.root.join("proc/sys/net/netfilter").join(name)
    }

    /// The conntrack hash size module parameter.
    pub fn hashsize(&self) -> PathBuf {
        self.root
            .join("sys/module/nf_conntrack/parameters/hashsize")
    }

    /// The mount table.
    pub fn mounts(&self) -> PathBuf {
        self.root.join("proc/mounts")
    }

    /// Whether the first sysfs mount is read-write.
    fn sysfs_writable(&self) -> Result<bool> {
        let path = self.mounts();
        let text = std::fs::read_to_string(&path).map_err(|source| ConntrackError::ReadMounts {
            path: path.clone(),
            source,
        })?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 4 && fields[2] == "sysfs" {
                return Ok(fields[3].split(',').next() == Some("rw"));
            }
        }
        Err(ConntrackError::NoSysfs { path })
    }
}

fn read_int(path: &Path) -> Result<i64> {
    let text = std::fs::read_to_string(path).map_err(|source| ConntrackError::ReadSysctl {
        path: path.into(),
        source,
    })?;
    text.trim()
        .parse()
        .map_err(|_| ConntrackError::ParseSysctl {
            path: path.into(),
            value: text.trim().to_string(),
        })
}

fn write_int(path: &Path, value: i64) -> Result<()> {
    std::fs::write(path, value.to_string()).map_err(|source| ConntrackError::WriteSysctl {
        path: path.into(),
        source,
    })
}

/// What [`apply_conntrack_tuning`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TuningOutcome {
    /// Sysctls written (name under net/netfilter, value), in order. Values already equal are not listed.
    pub written: Vec<(String, i64)>,
    /// The hash size written, if it had to grow.
    pub hashsize: Option<i64>,
    /// The hash size had to grow but /sys is read-only: it was left alone.
    pub sysfs_read_only: bool,
}

/// Writes `net/netfilter/<name>` when it differs from `value`.
fn set_sysctl(root: &SysRoot, out: &mut TuningOutcome, name: &str, value: i64) -> Result<()> {
    let path = root.netfilter_sysctl(name);
    if read_int(&path).ok() == Some(value) {
        return Ok(());
    }
    tracing::info!(entry = %format!("net/netfilter/{name}"), value, "setting sysctl");
    write_int(&path, value)?;
    out.written.push((name.to_string(), value));
    Ok(())
}

fn secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_secs() as i64).filter(|s| *s > 0)
}

/// Applies `tuning` under `root` for a machine with `num_cpus` CPUs.
pub fn apply_conntrack_tuning(
    root: &SysRoot,
    tuning: &ConntrackTuning,
    num_cpus: usize,
) -> Result<TuningOutcome> {
    let mut out = TuningOutcome::default();
    let max = conntrack_max(tuning, num_cpus) as i64;
    if max > 0 {
        set_sysctl(root, &mut out, "nf_conntrack_max", max)?;
        // The hash size is global (writable only from the initial network namespace): touch it only when it is
        // too small for the new maximum.
        let want = max / 4;
        if read_int(&root.hashsize())? < want {
            if root.sysfs_writable()? {
                tracing::info!(hashsize = want, "setting conntrack hash size");
                write_int(&root.hashsize(), want)?;
                out.hashsize = Some(want);
            } else {
                tracing::warn!(
                    wanted_hashsize = want,
                    "/sys is mounted read-only, so the conntrack hash size cannot grow to match nf_conntrack_max; \
                     conntrack lookups may slow down (container runtimes sometimes mount /sys read-only)"
                );
                out.sysfs_read_only = true;
            }
        }
    }
    if let Some(s) = secs(tuning.tcp_established_timeout) {
        set_sysctl(root, &mut out, "nf_conntrack_tcp_timeout_established", s)?;
    }
    if let Some(s) = secs(tuning.tcp_close_wait_timeout) {
        set_sysctl(root, &mut out, "nf_conntrack_tcp_timeout_close_wait", s)?;
    }
    if tuning.tcp_be_liberal {
        set_sysctl(root, &mut out, "nf_conntrack_tcp_be_liberal", 1)?;
    }
    if let Some(s) = secs(tuning.udp_timeout) {
        set_sysctl(root, &mut out, "nf_conntrack_udp_timeout", s)?;
    }
    if let Some(s) = secs(tuning.udp_stream_timeout) {
        set_sysctl(root, &mut out, "nf_conntrack_udp_timeout_stream", s)?;
    }
    Ok(out)
}

/// CPUs usable by this process (used to scale `nf_conntrack_max`).
pub fn detect_num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests;

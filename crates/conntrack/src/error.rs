//! The error type of this crate: one variant per step that can fail.

use std::path::PathBuf;

/// What went wrong while talking to conntrack or tuning its sysctls.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// Creating, binding or connecting the NETLINK_NETFILTER socket failed.
    #[error("opening the netfilter netlink socket: {0}")]
    OpenSocket(#[source] std::io::Error),
    /// Sending a ctnetlink request failed.
    #[error("sending a conntrack request: {0}")]
    SendRequest(#[source] std::io::Error),
    /// Receiving a ctnetlink reply failed.
    #[error("receiving a conntrack reply: {0}")]
    ReceiveReply(#[source] std::io::Error),
    /// A reply could not be decoded.
    #[error("decoding a conntrack reply: {0}")]
    DecodeReply(String),
    /// The kernel answered the table dump with an error (an errno value).
    #[error("dumping the conntrack table failed: {}", std::io::Error::from_raw_os_error(*errno))]
    DumpFlows { errno: i32 },
    /// Some deletions were refused by the kernel (entries already gone are not failures).
    #[error("deleting conntrack flows: {failed} failed (first: {first_flow}: {}), {deleted} deleted", std::io::Error::from_raw_os_error(*first_errno))]
    DeleteFlows {
        deleted: usize,
        failed: usize,
        first_flow: String,
        first_errno: i32,
    },
    /// Reading a sysctl or sysfs file failed.
    #[error("reading {path}: {source}")]
    ReadSysctl {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A sysctl or sysfs file did not hold an integer.
    #[error("parsing {path}: {value:?} is not an integer")]
    ParseSysctl { path: PathBuf, value: String },
    /// Writing a sysctl or sysfs file failed.
    #[error("writing {path}: {source}")]
    WriteSysctl {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The mount table could not be read to decide whether /sys is writable.
    #[error("reading the mount table {path}: {source}")]
    ReadMounts {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No sysfs is mounted, so the conntrack hash size cannot be changed.
    #[error("no sysfs mount found in {path}")]
    NoSysfs { path: PathBuf },
}

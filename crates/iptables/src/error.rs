//! The crate's error type: one variant per step that can fail.

use kube_proxy_model::IpFamily;

/// Why an iptables operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// A binary could not be started or waited for.
    #[error("running {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// `iptables-restore` rejected the input.
    #[error("{binary} failed ({status}): {stderr}")]
    Restore {
        binary: String,
        status: String,
        stderr: String,
    },
    /// `iptables-save` failed.
    #[error("{binary} failed ({status}): {stderr}")]
    Save {
        binary: String,
        status: String,
        stderr: String,
    },
    /// Checking whether a chain exists failed for a reason other than "no such chain".
    #[error("checking chain {chain} in table {table}: {detail}")]
    ChainCheck {
        table: String,
        chain: String,
        detail: String,
    },
    /// Reading or writing a sysctl failed.
    #[error("sysctl {name}: {source}")]
    Sysctl {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The state handed to a dataplane is of the other IP family.
    #[error("state is {got:?} but this dataplane programs {want:?}")]
    FamilyMismatch { want: IpFamily, got: IpFamily },
    /// The fake rejected an input (tests only).
    #[error("simulated iptables-restore failed at line {line}: {reason}")]
    Simulated { line: usize, reason: String },
}

//! The sysctl seam: read and write `/proc/sys` values (route_localnet, nf_conntrack_tcp_be_liberal).
//!
//! [`ProcSysctl`] touches the system; [`MemSysctl`] is an in-memory fake for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::IptablesError;

/// `net/ipv4/conf/all/route_localnet`: needed for localhost NodePorts (IPv4).
pub const ROUTE_LOCALNET: &str = "net/ipv4/conf/all/route_localnet";
/// `net/netfilter/nf_conntrack_tcp_be_liberal`: when set, the INVALID DROP rule is not installed.
pub const TCP_BE_LIBERAL: &str = "net/netfilter/nf_conntrack_tcp_be_liberal";

/// Reads and writes integer sysctls named with `/` separators.
pub trait Sysctl: Send + Sync {
    fn get(&self, name: &str) -> Result<i64, IptablesError>;
    fn set(&self, name: &str, value: i64) -> Result<(), IptablesError>;
}

/// Sets `name` to `value` unless it already has it (upstream's `EnsureSysctl`).
pub fn ensure(sysctl: &dyn Sysctl, name: &str, value: i64) -> Result<(), IptablesError> {
    match sysctl.get(name) {
        Ok(v) if v == value => Ok(()),
        _ => sysctl.set(name, value),
    }
}

/// The real sysctls under `/proc/sys`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSysctl;

fn io_err(name: &str, source: std::io::Error) -> IptablesError {
    IptablesError::Sysctl {
        name: name.to_string(),
        source,
    }
}

impl Sysctl for ProcSysctl {
    fn get(&self, name: &str) -> Result<i64, IptablesError> {
        let text =
            std::fs::read_to_string(format!("/proc/sys/{name}")).map_err(|e| io_err(name, e))?;
        text.trim().parse().map_err(|_| {
            io_err(
                name,
                std::io::Error::new(std::io::ErrorKind::InvalidData, text.trim().to_string()),
            )
        })
    }

    fn set(&self, name: &str, value: i64) -> Result<(), IptablesError> {
        std::fs::write(format!("/proc/sys/{name}"), format!("{value}\n"))
            .map_err(|e| io_err(name, e))
    }
}

/// In-memory sysctls; unknown names read as "not found".
#[derive(Debug, Default)]
pub struct MemSysctl {
    pub values: Mutex<BTreeMap<String, i64>>,
}

impl MemSysctl {
    pub fn value(&self, name: &str) -> Option<i64> {
        self.values.lock().unwrap().get(name).copied()
    }
}

impl Sysctl for MemSysctl {
    fn get(&self, name: &str) -> Result<i64, IptablesError> {
        self.value(name)
            .ok_or_else(|| io_err(name, std::io::ErrorKind::NotFound.into()))
    }

    fn set(&self, name: &str, value: i64) -> Result<(), IptablesError> {
        self.values.lock().unwrap().insert(name.to_string(), value);
        Ok(())
    }
}

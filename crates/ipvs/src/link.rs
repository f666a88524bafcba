//! The kube-ipvs0 seam: the dummy interface every service address is bound to. [`IpLink`] drives the `ip`
//! command (iproute2); [`FakeLink`] keeps addresses in memory for tests.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;

use kube_proxy_model::IpFamily;

use crate::IpvsError;

/// Operations on the dummy interface.
pub trait DummyLink: Send + Sync {
    /// Creates the interface when missing.
    fn ensure(&self) -> Result<(), IpvsError>;
    /// Addresses of `family` currently on the interface (empty when it does not exist).
    fn addresses(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, IpvsError>;
    fn add_address(&self, ip: IpAddr) -> Result<(), IpvsError>;
    fn delete_address(&self, ip: IpAddr) -> Result<(), IpvsError>;
    /// Removes the interface (cleanup); no error when it does not exist.
    fn delete(&self) -> Result<(), IpvsError>;
}

/// kube-ipvs0 through `ip`.
#[derive(Clone, Debug)]
pub struct IpLink {
    pub name: String,
}

impl IpLink {
    pub fn new(name: impl Into<String>) -> IpLink {
        IpLink { name: name.into() }
    }

    fn ip(&self, args: &[&str]) -> Result<String, IpvsError> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| IpvsError::Command {
                binary: "ip".into(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(IpvsError::Command {
                binary: "ip".into(),
                detail: format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn exists(&self) -> bool {
        self.ip(&["link", "show", "dev", &self.name]).is_ok()
    }
}

fn prefix(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// Parses `ip -j addr show` output into addresses.
pub fn parse_ip_json(json: &str) -> Result<BTreeSet<IpAddr>, IpvsError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| IpvsError::Command {
        binary: "ip".into(),
        detail: format!("parsing ip -j output: {e}"),
    })?;
    let mut out = BTreeSet::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                out.insert(ip);
            }
        }
    }
    Ok(out)
}

impl DummyLink for IpLink {
    fn ensure(&self) -> Result<(), IpvsError> {
        if !self.exists() {
            self.ip(&["link", "add", &self.name, "type", "dummy"])?;
        }
        Ok(())
    }

    fn addresses(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, IpvsError> {
        if !self.exists() {
            return Ok(BTreeSet::new());
        }
        let flag = match family {
            IpFamily::V4 => "-4",
            IpFamily::V6 => "-6",
        };
        let json = self.ip(&["-j", flag, "addr", "show", "dev", &self.name])?;
        Ok(parse_ip_json(&json)?
            .into_iter()
            .filter(|ip| family.contains(ip))
            .collect())
    }

    fn add_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        let p = prefix(&ip);
        let mut args = vec!["addr", "replace", &p, "dev", &self.name];
        if ip.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(|_| ())
    }

    fn delete_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        let p = prefix(&ip);
        self.ip(&["addr", "del", &p, "dev", &self.name]).map(|_| ())
    }

    fn delete(&self) -> Result<(), IpvsError> {
        if self.exists() {
            self.ip(&["link", "del", &self.name])?;
        }
        Ok(())
    }
}

/// An in-memory kube-ipvs0.
#[derive(Default)]
pub struct FakeLink {
    pub state: Mutex<Option<BTreeSet<IpAddr>>>,
}

impl DummyLink for FakeLink {
    fn ensure(&self) -> Result<(), IpvsError> {
        self.state.lock().unwrap().get_or_insert_with(BTreeSet::new);
        Ok(())
    }

    fn addresses(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, IpvsError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .filter(|ip| family.contains(ip))
            .copied()
            .collect())
    }

    fn add_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        self.state
            .lock()
            .unwrap()
            .get_or_insert_with(BTreeSet::new)
            .insert(ip);
        Ok(())
    }

    fn delete_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        if let Some(s) = self.state.lock().unwrap().as_mut() {
            s.remove(&ip);
        }
        Ok(())
    }

    fn delete(&self) -> Result<(), IpvsError> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json_addresses() {
        let j = r#"[{"ifindex":3,"ifname":"kube-ipvs0","addr_info":[{"family":"inet","local":"10.96.0.10","prefixlen":32},{"family":"inet6","local":"fd00::1","prefixlen":128}]}]"#;
        let got = parse_ip_json(j).unwrap();
        assert!(got.contains(&"10.96.0.10".parse().unwrap()));
        assert!(got.contains(&"fd00::1".parse().unwrap()));
    }
}

//! The IPVS seam: [`Ipvs`] is everything the applier asks of the kernel's IPVS table, implemented by the
//! generic netlink client ([`crate::genl::GenlIpvs`]) and by the in-memory [`FakeIpvs`] for tests.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::types::{RealServer, ServiceKey, Timeouts, VirtualServer, SVC_F_HASHED};
use crate::IpvsError;

/// Operations on the IPVS table. Errors from the kernel keep their errno ([`IpvsError::Kernel`]).
pub trait Ipvs: Send + Sync {
    /// All address/port virtual services (firewall-mark services are not listed).
    fn services(&self) -> Result<Vec<VirtualServer>, IpvsError>;
    fn add_service(&self, vs: &VirtualServer) -> Result<(), IpvsError>;
    /// Changes scheduler, flags or timeout of an existing service in place (its real servers stay).
    fn update_service(&self, vs: &VirtualServer) -> Result<(), IpvsError>;
    fn delete_service(&self, key: &ServiceKey) -> Result<(), IpvsError>;
    fn real_servers(&self, key: &ServiceKey) -> Result<Vec<RealServer>, IpvsError>;
    fn add_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError>;
    /// Changes weight (and forwarding method) of an existing real server.
    fn update_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError>;
    fn delete_real_server(
        &self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError>;
    /// Removes every virtual service.
    fn flush(&self) -> Result<(), IpvsError>;
    /// Sets the TCP, TCP FIN and UDP connection timeouts (0 = leave unchanged).
    fn set_timeouts(&self, t: &Timeouts) -> Result<(), IpvsError>;
}

const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;

/// An in-memory IPVS table with the kernel's error behaviour (EEXIST, ESRCH, ENOENT) and an operation log.
#[derive(Default)]
pub struct FakeIpvs {
    inner: Mutex<FakeInner>,
}

type FakeReals = BTreeMap<(IpAddr, u16), RealServer>;

#[derive(Default)]
struct FakeInner {
    services: BTreeMap<ServiceKey, (VirtualServer, FakeReals)>,
    log: Vec<String>,
    timeouts: Timeouts,
}

impl FakeIpvs {
    pub fn new() -> FakeIpvs {
        FakeIpvs::default()
    }

    /// Operations performed so far (`add-service TCP 10.0.0.1:80`, `update-real ...`), then cleared.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().log)
    }

    /// Sets the connection counters of a real server, as traffic would.
    pub fn set_conns(&self, key: &ServiceKey, addr: IpAddr, port: u16, active: u32, inactive: u32) {
        let mut g = self.inner.lock().unwrap();
        if let Some(rs) = g
            .services
            .get_mut(key)
            .and_then(|(_, r)| r.get_mut(&(addr, port)))
        {
            rs.active_conns = active;
            rs.inactive_conns = inactive;
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        self.inner.lock().unwrap().timeouts
    }
}

fn kerr(op: &'static str, errno: i32) -> IpvsError {
    IpvsError::Kernel { op, errno }
}

impl Ipvs for FakeIpvs {
    fn services(&self) -> Result<Vec<VirtualServer>, IpvsError> {
        let g = self.inner.lock().unwrap();
        Ok(g.services.values().map(|(v, _)| v.clone()).collect())
    }

    fn add_service(&self, vs: &VirtualServer) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        if g.services.contains_key(&vs.key) {
            return Err(kerr("add service", EEXIST));
        }
        let mut stored = vs.clone();
        stored.flags |= SVC_F_HASHED;
        g.services.insert(vs.key, (stored, BTreeMap::new()));
        g.log.push(format!("add-service {}", vs.key));
        Ok(())
    }

    fn update_service(&self, vs: &VirtualServer) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        let Some(entry) = g.services.get_mut(&vs.key) else {
            return Err(kerr("update service", ESRCH));
        };
        entry.0 = vs.clone();
        entry.0.flags |= SVC_F_HASHED;
        g.log.push(format!("update-service {}", vs.key));
        Ok(())
    }

    fn delete_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        if g.services.remove(key).is_none() {
            return Err(kerr("delete service", ESRCH));
        }
        g.log.push(format!("delete-service {key}"));
        Ok(())
    }

    fn real_servers(&self, key: &ServiceKey) -> Result<Vec<RealServer>, IpvsError> {
        let g = self.inner.lock().unwrap();
        let Some((_, reals)) = g.services.get(key) else {
            return Err(kerr("list real servers", ESRCH));
        };
        Ok(reals.values().cloned().collect())
    }

    fn add_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        let Some((_, reals)) = g.services.get_mut(key) else {
            return Err(kerr("add real server", ESRCH));
        };
        if reals.contains_key(&(rs.addr, rs.port)) {
            return Err(kerr("add real server", EEXIST));
        }
        reals.insert((rs.addr, rs.port), rs.clone());
        g.log.push(format!(
            "add-real {key} -> {} w{}",
            rs.socket_addr(),
            rs.weight
        ));
        Ok(())
    }

    fn update_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        let Some((_, reals)) = g.services.get_mut(key) else {
            return Err(kerr("update real server", ESRCH));
        };
        let Some(existing) = reals.get_mut(&(rs.addr, rs.port)) else {
            return Err(kerr("update real server", ENOENT));
        };
        existing.weight = rs.weight;
        existing.forward = rs.forward;
        g.log.push(format!(
            "update-real {key} -> {} w{}",
            rs.socket_addr(),
            rs.weight
        ));
        Ok(())
    }

    fn delete_real_server(
        &self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        let Some((_, reals)) = g.services.get_mut(key) else {
            return Err(kerr("delete real server", ESRCH));
        };
        if reals.remove(&(addr, port)).is_none() {
            return Err(kerr("delete real server", ENOENT));
        }
        g.log.push(format!(
            "delete-real {key} -> {}",
            std::net::SocketAddr::new(addr, port)
        ));
        Ok(())
    }

    fn flush(&self) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        g.services.clear();
        g.log.push("flush".into());
        Ok(())
    }

    fn set_timeouts(&self, t: &Timeouts) -> Result<(), IpvsError> {
        let mut g = self.inner.lock().unwrap();
        g.timeouts = *t;
        Ok(())
    }
}

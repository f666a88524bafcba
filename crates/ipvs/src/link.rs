//! The kube-ipvs0 seam: the dummy interface every service address is bound to. [`RtnlLink`] programs it
//! over rtnetlink (no `ip` process); [`FakeLink`] keeps addresses in memory for tests.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{mpsc, Mutex};

use futures::TryStreamExt;
use kube_proxy_model::IpFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkDummy};
use tokio::runtime::Runtime;

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

type Job = Box<dyn FnOnce(&Runtime, &Handle) + Send>;

/// kube-ipvs0 over rtnetlink. rtnetlink is asynchronous: a dedicated thread owns a single-threaded tokio
/// runtime and the connection, and every call runs there to completion (so the seam stays synchronous and
/// callable from anywhere, inside or outside another runtime). The socket is opened by [`RtnlLink::new`]
/// in the caller's network namespace.
pub struct RtnlLink {
    name: String,
    jobs: Mutex<mpsc::Sender<Job>>,
}

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

/// The errno of a netlink error reply, if `e` is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

fn host_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl RtnlLink {
    pub fn new(name: impl Into<String>) -> Result<RtnlLink, IpvsError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        // The runtime is built, used and dropped on its own thread (dropping one inside an async context
        // would panic); a thread starts in its creator's network namespace, so the socket is the caller's.
        std::thread::Builder::new()
            .name("kube-ipvs0-rtnl".into())
            .spawn(move || {
                let opened = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .and_then(|rt| {
                        let (conn, handle, _) = {
                            let _enter = rt.enter();
                            rtnetlink::new_connection()?
                        };
                        rt.spawn(conn);
                        Ok((rt, handle))
                    });
                let (rt, handle) = match opened {
                    Ok(v) => {
                        let _ = ready_tx.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in rx {
                    job(&rt, &handle);
                }
            })
            .map_err(IpvsError::OpenSocket)?;
        ready_rx
            .recv()
            .map_err(|_| IpvsError::OpenSocket(std::io::Error::other("rtnetlink thread ended")))?
            .map_err(IpvsError::OpenSocket)?;
        Ok(RtnlLink {
            name: name.into(),
            jobs: Mutex::new(tx),
        })
    }

    fn err(&self, op: &'static str, detail: impl ToString) -> IpvsError {
        IpvsError::Link {
            op,
            link: self.name.clone(),
            detail: detail.to_string(),
        }
    }

    /// Runs `f` on the rtnetlink thread and waits for its result.
    fn run<T, F>(
        &self,
        op: &'static str,
        f: impl FnOnce(Handle, String) -> F + Send + 'static,
    ) -> Result<T, IpvsError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, rtnetlink::Error>>,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let name = self.name.clone();
        let job: Job = Box::new(move |rt, h| {
            let _ = tx.send(rt.block_on(f(h.clone(), name)));
        });
        self.jobs
            .lock()
            .unwrap()
            .send(job)
            .map_err(|_| self.err(op, "the rtnetlink thread is gone"))?;
        rx.recv()
            .map_err(|_| self.err(op, "the rtnetlink thread is gone"))?
            .map_err(|e| self.err(op, e))
    }

    /// The interface index, None when the interface does not exist.
    fn index(&self) -> Result<Option<u32>, IpvsError> {
        self.run("looking up", |h, name| async move {
            match h.link().get().match_name(name).execute().try_next().await {
                Ok(m) => Ok(m.map(|m| m.header.index)),
                Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn require_index(&self, op: &'static str) -> Result<u32, IpvsError> {
        self.index()?
            .ok_or_else(|| self.err(op, "the interface does not exist"))
    }
}

impl DummyLink for RtnlLink {
    fn ensure(&self) -> Result<(), IpvsError> {
        if self.index()?.is_some() {
            return Ok(());
        }
        self.run("creating", |h, name| async move {
            match h.link().add(LinkDummy::new(&name).build()).execute().await {
                Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
                r => r,
            }
        })
    }

    fn addresses(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, IpvsError> {
        let Some(index) = self.index()? else {
            return Ok(BTreeSet::new());
        };
        let want = match family {
            IpFamily::V4 => AddressFamily::Inet,
            IpFamily::V6 => AddressFamily::Inet6,
        };
        self.run("listing addresses of", move |h, _| async move {
            let mut out = BTreeSet::new();
            let mut dump = h.address().get().set_link_index_filter(index).execute();
            while let Some(m) = dump.try_next().await? {
                if m.header.family != want {
                    continue;
                }
                let local = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let address = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                if let Some(ip) = local.or(address) {
                    out.insert(ip);
                }
            }
            Ok(out)
        })
    }

    fn add_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        let index = self.require_index("adding an address to")?;
        self.run("adding an address to", move |h, _| async move {
            let mut req = h.address().add(index, ip, host_prefix(&ip)).replace();
            if ip.is_ipv6() {
                // No duplicate address detection: the address is usable at once (as `ip addr ... nodad`).
                req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            }
            req.execute().await
        })
    }

    fn delete_address(&self, ip: IpAddr) -> Result<(), IpvsError> {
        let Some(index) = self.index()? else {
            return Ok(());
        };
        self.run("deleting an address from", move |h, _| async move {
            let mut dump = h
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(ip)
                .execute();
            while let Some(m) = dump.try_next().await? {
                match h.address().del(m).execute().await {
                    Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
                    r => r?,
                }
            }
            Ok(())
        })
    }

    fn delete(&self) -> Result<(), IpvsError> {
        let Some(index) = self.index()? else {
            return Ok(());
        };
        self.run("deleting", move |h, _| async move {
            match h.link().del(index).execute().await {
                Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
                r => r,
            }
        })
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

//! The seam between conntrack decisions and the kernel: [`ConntrackOps`], plus [`FakeConntrack`], an in-memory
//! table for tests of code that reconciles conntrack (this crate's and its callers').

use std::sync::Mutex;

use kube_proxy_model::IpFamily;

use crate::flow::{Flow, IPPROTO_UDP};
use crate::Result;

/// Lists and deletes conntrack entries. The netlink implementation is [`NetlinkConntrack`](crate::NetlinkConntrack).
pub trait ConntrackOps: Send + Sync {
    /// Every UDP entry of `family` in the table (all zones).
    fn list_udp(&self, family: IpFamily) -> Result<Vec<Flow>>;
    /// Deletes the entries matching each flow's original tuple and zone. Returns how many were deleted; entries
    /// that vanished in the meantime are not errors and are not counted.
    fn delete(&self, flows: &[Flow]) -> Result<usize>;
}

/// An in-memory conntrack table.
#[derive(Debug, Default)]
pub struct FakeConntrack {
    flows: Mutex<Vec<Flow>>,
    deleted: Mutex<Vec<Flow>>,
}

impl FakeConntrack {
    /// A fake table holding `flows`.
    pub fn new(flows: Vec<Flow>) -> FakeConntrack {
        FakeConntrack {
            flows: Mutex::new(flows),
            deleted: Mutex::new(Vec::new()),
        }
    }

    /// The entries still in the table.
    pub fn flows(&self) -> Vec<Flow> {
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every entry deleted so far, in deletion order.
    pub fn deleted(&self) -> Vec<Flow> {
        self.deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ConntrackOps for FakeConntrack {
    fn list_udp(&self, family: IpFamily) -> Result<Vec<Flow>> {
        Ok(self
            .flows()
            .into_iter()
            .filter(|f| f.protocol == IPPROTO_UDP && family.contains(&f.original.src))
            .collect())
    }

    fn delete(&self, flows: &[Flow]) -> Result<usize> {
        let mut table = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        let mut deleted = self.deleted.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for want in flows {
            let before = table.len();
            table.retain(|f| {
                let hit = f.protocol == want.protocol
                    && f.original == want.original
                    && f.zone == want.zone;
                if hit {
                    deleted.push(*f);
                }
                !hit
            });
            n += before - table.len();
        }
        Ok(n)
    }
}

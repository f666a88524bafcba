//! The difference between two states: which service ports need re-rendering.

use std::collections::BTreeSet;

use crate::state::{ProxyState, ServicePortName};

/// Service ports added, removed or changed between two states of the same family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDiff {
    pub added: BTreeSet<ServicePortName>,
    pub removed: BTreeSet<ServicePortName>,
    pub changed: BTreeSet<ServicePortName>,
}

impl StateDiff {
    /// Compares `old` with `new`. Unchanged ports that share an `Arc` are skipped without a deep compare.
    pub fn between(old: &ProxyState, new: &ProxyState) -> StateDiff {
        let mut diff = StateDiff::default();
        for (name, svc) in &new.services {
            match old.services.get(name) {
                None => {
                    diff.added.insert(name.clone());
                }
                Some(prev) => {
                    if !std::sync::Arc::ptr_eq(prev, svc) && prev != svc {
                        diff.changed.insert(name.clone());
                    }
                }
            }
        }
        for name in old.services.keys() {
            if !new.services.contains_key(name) {
                diff.removed.insert(name.clone());
            }
        }
        diff
    }

    /// No service port changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Every name that was added, removed or changed.
    pub fn touched(&self) -> BTreeSet<ServicePortName> {
        self.added
            .iter()
            .chain(&self.removed)
            .chain(&self.changed)
            .cloned()
            .collect()
    }
}

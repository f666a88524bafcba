//! [`EndpointList`]: an immutable endpoint list that several views share.
//!
//! A service port's derived views (cluster, local, all-reachable endpoints) are usually equal to one another;
//! the model builds each distinct list once and the equal views point at it, so 100,000 endpoints are not held
//! three times over. The list reads as `&[Endpoint]` (it dereferences to a slice) and builds from a `Vec`.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use serde::{Serialize, Serializer};

use crate::state::Endpoint;

/// The list every empty view shares, so empty views allocate nothing.
static EMPTY: LazyLock<Arc<[Endpoint]>> = LazyLock::new(|| Arc::from(Vec::new()));

/// A shared, immutable list of endpoints; cloning it clones a pointer.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointList(Arc<[Endpoint]>);

impl EndpointList {
    /// The endpoints, as a slice.
    pub fn as_slice(&self) -> &[Endpoint] {
        &self.0
    }

    /// Whether both lists are one and the same allocation (not only equal).
    pub fn shares(&self, other: &EndpointList) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for EndpointList {
    fn default() -> Self {
        EndpointList(Arc::clone(&EMPTY))
    }
}

impl Deref for EndpointList {
    type Target = [Endpoint];
    fn deref(&self) -> &[Endpoint] {
        &self.0
    }
}

impl AsRef<[Endpoint]> for EndpointList {
    fn as_ref(&self) -> &[Endpoint] {
        &self.0
    }
}

impl std::fmt::Debug for EndpointList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Vec<Endpoint>> for EndpointList {
    fn from(v: Vec<Endpoint>) -> Self {
        if v.is_empty() {
            EndpointList::default()
        } else {
            EndpointList(Arc::from(v))
        }
    }
}

impl From<&[Endpoint]> for EndpointList {
    fn from(v: &[Endpoint]) -> Self {
        EndpointList::from(v.to_vec())
    }
}

impl FromIterator<Endpoint> for EndpointList {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        EndpointList::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a EndpointList {
    type Item = &'a Endpoint;
    type IntoIter = std::slice::Iter<'a, Endpoint>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<[Endpoint]> for EndpointList {
    fn eq(&self, other: &[Endpoint]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Vec<Endpoint>> for EndpointList {
    fn eq(&self, other: &Vec<Endpoint>) -> bool {
        *self.0 == **other
    }
}

impl<const N: usize> PartialEq<[Endpoint; N]> for EndpointList {
    fn eq(&self, other: &[Endpoint; N]) -> bool {
        *self.0 == *other
    }
}

impl Serialize for EndpointList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ep;

    #[test]
    fn reads_as_a_slice_and_shares_on_clone() {
        let list = EndpointList::from(vec![ep("10.0.0.1", 80, false), ep("10.0.0.2", 80, true)]);
        assert_eq!(list.len(), 2);
        assert_eq!(
            list,
            vec![ep("10.0.0.1", 80, false), ep("10.0.0.2", 80, true)]
        );
        assert_eq!((&list).into_iter().filter(|e| e.is_local).count(), 1);
        let copy = list.clone();
        assert!(copy.shares(&list));
        let equal: EndpointList = list.iter().cloned().collect();
        assert!(equal == list && !equal.shares(&list));
        assert!(EndpointList::from(Vec::new()).shares(&EndpointList::default()));
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::to_value(list.as_slice()).unwrap()
        );
    }
}

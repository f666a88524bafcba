//! The API server's object store: objects as JSON, one global resourceVersion, a bounded change history and
//! the broadcast channel that open watches read. Holds no HTTP code.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::kinds::Kind;

/// How many changes the history keeps before the oldest are forgotten (watches from before them get 410).
pub const HISTORY_LIMIT: usize = 10_000;

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One recorded change to a stored object.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub etype: EventType,
    /// The object before the change (None for a creation).
    pub old: Option<Value>,
    /// The object after the change (for a deletion: the deleted object stamped with the deletion's RV).
    pub new: Value,
}

/// Key of a stored object: kind, namespace ("" when cluster-scoped), name.
pub type StoreKey = (Kind, String, String);

/// Mutable state behind the server's lock.
pub struct Store {
    pub rv: u64,
    pub objects: BTreeMap<StoreKey, Value>,
    pub history: VecDeque<Arc<Change>>,
    /// Watches that resume from a resourceVersion lower than this get 410 Gone.
    pub oldest_valid_rv: u64,
    pub tx: broadcast::Sender<Arc<Change>>,
}

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object has no apiVersion/kind the server knows: {0}/{1}")]
    UnknownKind(String, String),
    #[error("object has no metadata.name")]
    MissingName,
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest_valid_rv: 0,
            tx,
        }
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.oldest_valid_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(change);
    }

    /// Creates or updates an object; returns the stored object (with its new resourceVersion).
    pub fn apply(&mut self, mut obj: Value, default_ns: Option<&str>) -> Result<Value, StoreError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind_name = obj["kind"].as_str().unwrap_or_default().to_string();
        let kind = Kind::from_type(&api_version, &kind_name)
            .ok_or(StoreError::UnknownKind(api_version, kind_name))?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or(StoreError::MissingName)?
            .to_string();
        let ns = if kind.namespaced() {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| default_ns.unwrap_or("default").to_string());
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            String::new()
        };
        let key = (kind, ns, name);
        let old = self.objects.get(&key).cloned();
        self.rv += 1;
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(self.rv.to_string());
        let uid = old
            .as_ref()
            .and_then(|o| o.pointer("/metadata/uid").cloned())
            .unwrap_or_else(|| json!(format!("00000000-0000-4000-8000-{:012x}", self.rv)));
        if meta.get("uid").is_none_or(Value::is_null) {
            meta["uid"] = uid;
        }
        if meta.get("creationTimestamp").is_none_or(Value::is_null) {
            meta["creationTimestamp"] = old
                .as_ref()
                .and_then(|o| o.pointer("/metadata/creationTimestamp").cloned())
                .unwrap_or_else(|| json!("2026-01-01T00:00:00Z"));
        }
        let etype = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.objects.insert(key, obj.clone());
        self.record(Change {
            rv: self.rv,
            kind,
            etype,
            old,
            new: obj.clone(),
        });
        Ok(obj)
    }

    /// Deletes an object; returns it (stamped with the deletion's resourceVersion) if it existed.
    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let ns = if kind.namespaced() { ns } else { "" };
        let old = self
            .objects
            .remove(&(kind, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            rv: self.rv,
            kind,
            etype: EventType::Deleted,
            old: Some(old),
            new: gone.clone(),
        });
        Some(gone)
    }

    /// Forgets all history: every resourceVersion handed out so far becomes too old to watch from.
    pub fn compact(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.oldest_valid_rv = self.rv;
    }

    /// Objects of a kind, optionally in one namespace, in key order.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> Vec<Value> {
        self.iter(kind, ns).cloned().collect()
    }

    /// [`list`](Self::list) without copying the objects.
    pub fn iter<'s>(&'s self, kind: Kind, ns: Option<&'s str>) -> impl Iterator<Item = &'s Value> {
        self.objects
            .iter()
            .filter(move |((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
    }
}

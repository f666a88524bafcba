//! The manifest source: Services, EndpointSlices and this node's Node read from a directory of YAML/JSON files
//! instead of an API server. Multi-document YAML and `kind: List` are understood; a malformed document is
//! reported (file, document index, line) and skipped while the rest loads. The whole set replaces the tracker's
//! objects at once, and is re-read when files change (file notifications, with polling as a fallback).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_proxy_model::{ClusterObjects, CompactSlice, NameInterner};
use serde_json::Value;

use crate::error::SourceError;
use crate::tracker::{object_key, slice_key, ChangeTracker};

/// Labels that make kube-proxy ignore a Service or EndpointSlice.
pub const EXCLUDING_LABELS: [&str; 2] = [
    "service.kubernetes.io/service-proxy-name",
    "service.kubernetes.io/headless",
];

/// How often the directory is checked for changes when no file notification arrives.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long to wait after a file notification for more to arrive before re-reading.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// A document that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestWarning {
    pub file: PathBuf,
    /// 0-based index of the document in the file (non-empty documents only).
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ManifestWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: document {} (line {}): {}",
            self.file.display(),
            self.document,
            self.line,
            self.message
        )
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    ) && !path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let read_err = |source| SourceError::ReadManifestDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if is_manifest(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Splits YAML text into documents at `---` lines; returns (start line, text) of each non-empty document.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    let flush = |cur: &mut String, start: usize, docs: &mut Vec<(usize, String)>| {
        let meaningful = cur
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if meaningful {
            docs.push((start, std::mem::take(cur)));
        }
        cur.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.trim_end() == "---";
        if marker || line.trim_end() == "..." {
            flush(&mut cur, start, &mut docs);
            start = i + 2;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    flush(&mut cur, start, &mut docs);
    docs
}

fn excluded(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| EXCLUDING_LABELS.iter().any(|k| l.contains_key(*k)))
}

/// Collects objects into `out`; returns a message when the document must be reported.
struct Loader<'a> {
    node_name: &'a str,
    out: ClusterObjects,
    warnings: Vec<ManifestWarning>,
    /// Shares node names between the loaded slices.
    node_names: NameInterner,
}

impl Loader<'_> {
    fn add_value(&mut self, value: Value, file: &Path, document: usize, line: usize) {
        let warn = |message: String| ManifestWarning {
            file: file.to_path_buf(),
            document,
            line,
            message,
        };
        if value.is_null() {
            return;
        }
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        if kind.ends_with("List") {
            match value.get("items").and_then(Value::as_array) {
                Some(items) => {
                    for item in items.clone() {
                        self.add_value(item, file, document, line);
                    }
                }
                None => self.warnings.push(warn(format!("{kind} without items"))),
            }
            return;
        }
        let result = match (api_version.as_str(), kind.as_str()) {
            ("v1", "Service") => serde_json::from_value::<Service>(value).map(|svc| {
                if !excluded(&svc.metadata) {
                    if let Some(key) = object_key(&svc.metadata) {
                        self.out.services.insert(key, Arc::new(svc));
                    }
                }
            }),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                serde_json::from_value::<EndpointSlice>(value).map(|slice| {
                    if !excluded(&slice.metadata) {
                        let slice = CompactSlice::new(&slice, &mut self.node_names);
                        if let Some(key) = slice_key(&slice) {
                            self.out.endpoint_slices.insert(key, Arc::new(slice));
                        }
                    }
                })
            }
            ("v1", "Node") => serde_json::from_value::<Node>(value).map(|node| {
                if node.metadata.name.as_deref() == Some(self.node_name) {
                    self.out.node = Some(Arc::new(node));
                }
            }),
            ("", _) | (_, "") => {
                self.warnings
                    .push(warn("document has no apiVersion or kind".into()));
                return;
            }
            _ => {
                tracing::debug!(file = %file.display(), %api_version, %kind, "ignoring object kind");
                return;
            }
        };
        if let Err(e) = result {
            self.warnings.push(warn(format!("invalid {kind}: {e}")));
        }
    }

    fn add_file(&mut self, file: &Path) {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                self.warnings.push(ManifestWarning {
                    file: file.to_path_buf(),
                    document: 0,
                    line: 0,
                    message: format!("cannot read file: {e}"),
                });
                return;
            }
        };
        let is_json = file.extension().and_then(|e| e.to_str()) == Some("json");
        let docs = if is_json {
            vec![(1, text)]
        } else {
            split_documents(&text)
        };
        for (index, (line, doc)) in docs.into_iter().enumerate() {
            let parsed = if is_json {
                serde_json::from_str::<Value>(&doc).map_err(|e| e.to_string())
            } else {
                serde_saphyr::from_str::<Value>(&doc).map_err(|e| e.to_string())
            };
            match parsed {
                Ok(value) => self.add_value(value, file, index, line),
                Err(message) => self.warnings.push(ManifestWarning {
                    file: file.to_path_buf(),
                    document: index,
                    line,
                    message: format!("malformed document: {message}"),
                }),
            }
        }
    }
}

/// Reads every manifest in `dir` (sorted by file name; later definitions of the same object win).
pub fn load_manifests(
    dir: &Path,
    node_name: &str,
) -> Result<(ClusterObjects, Vec<ManifestWarning>), SourceError> {
    let mut loader = Loader {
        node_name,
        out: ClusterObjects::default(),
        warnings: Vec::new(),
        node_names: NameInterner::default(),
    };
    for file in manifest_files(dir)? {
        loader.add_file(&file);
    }
    Ok((loader.out, loader.warnings))
}

/// What identifies the directory's content cheaply: names, sizes and modification times.
fn fingerprint(dir: &Path) -> Option<Vec<(PathBuf, u64, SystemTime)>> {
    let files = manifest_files(dir).ok()?;
    Some(
        files
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((p, m.len(), m.modified().ok()?))
            })
            .collect(),
    )
}

fn reload(dir: &Path, node_name: &str, tracker: &ChangeTracker) {
    match load_manifests(dir, node_name) {
        Ok((objects, warnings)) => {
            for w in &warnings {
                tracing::warn!(warning = %w, "skipping manifest document");
            }
            tracing::info!(
                services = objects.services.len(),
                endpoint_slices = objects.endpoint_slices.len(),
                node = objects.node.is_some(),
                "loaded manifests"
            );
            tracker.replace_all(objects);
        }
        Err(error) => {
            tracing::error!(%error, "cannot load manifests; keeping the previous objects")
        }
    }
}

/// Loads the manifests in `dir` into `tracker`, then re-reads them whenever they change. Never returns.
pub async fn run_manifest_source(dir: PathBuf, node_name: String, tracker: Arc<ChangeTracker>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Our own reads show up as access events: only changes count, or every reload would trigger another.
        if res.is_ok_and(|event| is_change(&event.kind)) {
            // A full channel already holds a pending wake-up.
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| {
        notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::NonRecursive).map(|_| w)
    });
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(source) => {
            let error = SourceError::WatchManifestDir {
                path: dir.clone(),
                source,
            };
            tracing::warn!(%error, "falling back to polling every {:?}", POLL_INTERVAL);
            None
        }
    };
    let mut last = None;
    let mut notified = true;
    loop {
        let current = fingerprint(&dir);
        if notified || current != last {
            let (d, n, t) = (dir.clone(), node_name.clone(), tracker.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || reload(&d, &n, &t)).await {
                tracing::error!(error = %e, "manifest reload task failed");
            }
            last = current;
        }
        notified = tokio::select! {
            Some(()) = rx.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                true
            }
            _ = tokio::time::sleep(POLL_INTERVAL) => false,
        };
    }
}

/// Whether a file-system event may have changed what the directory holds.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{MetadataKind, ModifyKind};
    use notify::EventKind;
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))
    )
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;

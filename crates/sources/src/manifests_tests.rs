//! Tests of manifest loading and the directory-watching source.

use super::*;
use std::time::Duration;

const MULTI: &str = r#"# leading comment
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.0.0.10
  ports:
  - port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: broken
  namespace: shop
spec:
  ports: [ {port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: headless
  labels:
    service.kubernetes.io/headless: ""
spec:
  clusterIP: None
---
apiVersion: v1
kind: Service
metadata:
  name: other-proxy
  labels:
    service.kubernetes.io/service-proxy-name: foo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ignored
---
apiVersion: v1
kind: List
items:
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: web-abc
    namespace: shop
    labels:
      kubernetes.io/service-name: web
  addressType: IPv4
  endpoints:
  - addresses: ["10.1.0.5"]
- apiVersion: v1
  kind: Node
  metadata:
    name: node-a
- apiVersion: v1
  kind: Node
  metadata:
    name: node-b
---
kind: Service
metadata:
  name: no-api-version
"#;

const JSON: &str = r#"{"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "dns", "namespace": "kube-system"},
  "spec": {"clusterIP": "10.0.0.53", "ports": [{"port": 53, "protocol": "UDP"}]}}"#;

#[test]
fn loads_multi_document_files_and_skips_bad_documents() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), MULTI).unwrap();
    std::fs::write(dir.path().join("b.json"), JSON).unwrap();
    std::fs::write(dir.path().join("c.yml"), "{not: [valid").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let (objs, warnings) = load_manifests(dir.path(), "node-a").unwrap();

    let services: Vec<_> = objs.services.keys().cloned().collect();
    assert_eq!(
        services,
        [
            ("kube-system".to_string(), "dns".to_string()),
            ("shop".to_string(), "web".to_string())
        ]
    );
    assert_eq!(objs.endpoint_slices.len(), 1);
    assert_eq!(
        objs.node.as_ref().and_then(|n| n.metadata.name.as_deref()),
        Some("node-a")
    );

    let summary: Vec<_> = warnings
        .iter()
        .map(|w| {
            (
                w.file.file_name().unwrap().to_str().unwrap().to_string(),
                w.document,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a.yaml".to_string(), 1),
            ("a.yaml".to_string(), 6),
            ("c.yml".to_string(), 0)
        ]
    );
    assert_eq!(warnings[0].line, 12);
    assert!(warnings[0]
        .to_string()
        .contains("a.yaml: document 1 (line 12)"));
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_manifests(&dir.path().join("nope"), "n").unwrap_err();
    assert!(matches!(err, SourceError::ReadManifestDir { .. }));
}

#[test]
fn document_splitting() {
    let docs = split_documents("---\na: 1\n--- # second\nb: 2\n...\n# only a comment\n---\n");
    assert_eq!(docs, [(2, "a: 1\n".to_string()), (4, "b: 2\n".to_string())]);
}

async fn wait_for(tracker: &ChangeTracker, pred: impl Fn(&ClusterObjects) -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(snap) = tracker.snapshot() {
                if pred(&snap) {
                    return;
                }
            }
            tracker.changed().await;
        }
    })
    .await
    .expect("manifest source never produced the expected objects")
}

#[tokio::test]
async fn source_rereads_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), JSON).unwrap();
    let tracker = Arc::new(ChangeTracker::new(&crate::ObjectKind::ALL));
    let task = tokio::spawn(run_manifest_source(
        dir.path().to_path_buf(),
        "node-a".into(),
        tracker.clone(),
    ));
    wait_for(&tracker, |o| o.services.len() == 1 && o.node.is_none()).await;

    std::fs::write(dir.path().join("more.yaml"), MULTI).unwrap();
    wait_for(&tracker, |o| o.services.len() == 2 && o.node.is_some()).await;

    std::fs::remove_file(dir.path().join("svc.yaml")).unwrap();
    wait_for(&tracker, |o| {
        o.services.keys().map(|k| k.1.as_str()).collect::<Vec<_>>() == ["web"]
    })
    .await;
    task.abort();
}

#[test]
fn reads_do_not_count_as_changes() {
    use notify::event::{AccessKind, AccessMode, CreateKind, MetadataKind, ModifyKind};
    use notify::EventKind;
    assert!(!is_change(&EventKind::Access(AccessKind::Open(
        AccessMode::Read
    ))));
    assert!(!is_change(&EventKind::Access(AccessKind::Close(
        AccessMode::Read
    ))));
    assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
        MetadataKind::AccessTime
    ))));
    assert!(is_change(&EventKind::Create(CreateKind::File)));
    assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    assert!(is_change(&EventKind::Remove(
        notify::event::RemoveKind::File
    )));
}

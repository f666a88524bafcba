//! Runner tests with a fake source and a fake dataplane.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube_proxy_model::{ClusterObjects, IpFamily, NodeContext, ProxyState, Rejection};
use kube_proxy_sources::{ChangeTracker, ObjectKind};
use tokio::sync::Notify;

use super::*;
use crate::dataplane::{DataplaneError, SyncReport};
use crate::schedule::ScheduleConfig;

/// The real change tracker as the source; `set` replaces every object, as the manifest source does.
type Source = ChangeTracker;

fn source() -> Arc<Source> {
    Arc::new(ChangeTracker::new(&ObjectKind::ALL))
}

trait SetAll {
    fn set(&self, objects: ClusterObjects);
}

impl SetAll for Source {
    fn set(&self, objects: ClusterObjects) {
        self.replace_all(objects);
    }
}

#[derive(Clone, Default)]
struct Record {
    /// (service count, force_full) per sync call.
    calls: Arc<Mutex<Vec<(usize, bool)>>>,
    fail_next: Arc<Mutex<u32>>,
}

struct FakeDataplane {
    family: IpFamily,
    record: Record,
}

impl Dataplane for FakeDataplane {
    fn family(&self) -> IpFamily {
        self.family
    }
    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, DataplaneError> {
        self.record
            .calls
            .lock()
            .unwrap()
            .push((state.services.len(), force_full));
        let mut fail = self.record.fail_next.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err("restore failed".into());
        }
        Ok(SyncReport {
            full: force_full,
            counts: vec![],
            kernel_time: None,
        })
    }
}

#[derive(Default)]
struct Heard {
    synced: Mutex<Vec<(IpFamily, usize, usize)>>,
    failed: Mutex<u32>,
    rejected: Mutex<Vec<Rejection>>,
}

impl SyncListener for Heard {
    fn synced(&self, o: &SyncOutcome<'_>) {
        self.synced.lock().unwrap().push((
            o.family,
            o.previous.services.len(),
            o.current.services.len(),
        ));
    }
    fn failed(&self, _f: IpFamily, _e: &DataplaneError, _d: Duration) {
        *self.failed.lock().unwrap() += 1;
    }
    fn rejected(&self, r: &Rejection) {
        self.rejected.lock().unwrap().push(r.clone());
    }
}

fn objects(json: serde_json::Value) -> ClusterObjects {
    let mut objs = ClusterObjects::default();
    for item in json.as_array().unwrap() {
        let svc: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(item.clone()).unwrap();
        let key = (
            svc.metadata.namespace.clone().unwrap(),
            svc.metadata.name.clone().unwrap(),
        );
        objs.services.insert(key, Arc::new(svc));
    }
    objs
}

fn svc(name: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                 "ports": [{"port": 80, "protocol": "TCP"}]}
    })
}

fn runner(source: Arc<Source>, families: &[IpFamily]) -> (Runner<Source>, Record, Arc<Heard>) {
    let record = Record::default();
    let heard = Arc::new(Heard::default());
    let dataplanes: Vec<Box<dyn Dataplane>> = families
        .iter()
        .map(|f| {
            Box::new(FakeDataplane {
                family: *f,
                record: record.clone(),
            }) as Box<dyn Dataplane>
        })
        .collect();
    let cfg = RunnerConfig {
        schedule: ScheduleConfig {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_secs(30),
        },
        node: NodeContext {
            node_name: "node1".into(),
        },
    };
    (
        Runner::new(source, cfg, dataplanes, heard.clone()),
        record,
        heard,
    )
}

#[tokio::test]
async fn first_sync_is_full_and_later_ones_are_not() {
    let source = source();
    source.set(objects(serde_json::json!([svc("a", "10.96.0.10")])));
    let (mut r, record, heard) = runner(source.clone(), &[IpFamily::V4]);
    assert!(r.sync_once().await);
    source.set(objects(serde_json::json!([
        svc("a", "10.96.0.10"),
        svc("b", "10.96.0.11")
    ])));
    assert!(r.sync_once().await);
    assert_eq!(*record.calls.lock().unwrap(), vec![(1, true), (2, false)]);
    assert_eq!(
        *heard.synced.lock().unwrap(),
        vec![(IpFamily::V4, 0, 1), (IpFamily::V4, 1, 2)]
    );
}

#[tokio::test]
async fn failure_forces_full_retry_and_keeps_last_applied_state() {
    let source = source();
    source.set(objects(serde_json::json!([svc("a", "10.96.0.10")])));
    let (mut r, record, heard) = runner(source.clone(), &[IpFamily::V4]);
    assert!(r.sync_once().await);
    *record.fail_next.lock().unwrap() = 1;
    source.set(objects(serde_json::json!([
        svc("a", "10.96.0.10"),
        svc("b", "10.96.0.11")
    ])));
    assert!(!r.sync_once().await);
    assert_eq!(
        r.applied_states()[0].services.len(),
        1,
        "failed sync applied nothing"
    );
    assert!(r.sync_once().await);
    assert_eq!(
        *record.calls.lock().unwrap(),
        vec![(1, true), (2, false), (2, true)]
    );
    assert_eq!(*heard.failed.lock().unwrap(), 1);
    assert_eq!(r.applied_states()[0].services.len(), 2);
}

#[tokio::test]
async fn each_family_gets_its_own_state() {
    let source = source();
    source.set(objects(serde_json::json!([
        svc("v4", "10.96.0.10"),
        {
            "metadata": {"namespace": "default", "name": "dual"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12", "fd00::12"],
                     "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80, "protocol": "TCP"}]}
        }
    ])));
    let (mut r, _record, heard) = runner(source, &[IpFamily::V4, IpFamily::V6]);
    assert!(r.sync_once().await);
    assert_eq!(
        *heard.synced.lock().unwrap(),
        vec![(IpFamily::V4, 0, 2), (IpFamily::V6, 0, 1)]
    );
}

#[tokio::test]
async fn rejections_are_reported_once_while_they_persist() {
    let source = source();
    source.set(objects(serde_json::json!([
        svc("good", "10.96.0.10"),
        svc("bad", "10.96.0.999")
    ])));
    let (mut r, record, heard) = runner(source, &[IpFamily::V4]);
    assert!(r.sync_once().await);
    assert!(r.sync_once().await);
    let rejected = heard.rejected.lock().unwrap().clone();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].object.contains("default/bad"), "{rejected:?}");
    assert_eq!(
        record.calls.lock().unwrap()[0].0,
        1,
        "the good service is programmed"
    );
}

#[tokio::test]
async fn run_waits_for_readiness_then_syncs_on_change() {
    let source = source();
    let (r, record, _heard) = runner(source.clone(), &[IpFamily::V4]);
    let stop = Arc::new(Notify::new());
    let stop2 = stop.clone();
    let task = tokio::spawn(r.run(async move { stop2.notified().await }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        record.calls.lock().unwrap().is_empty(),
        "nothing before ready"
    );
    source.set(objects(serde_json::json!([svc("a", "10.96.0.10")])));
    wait_for(|| record.calls.lock().unwrap().len() == 1).await;
    source.set(objects(serde_json::json!([
        svc("a", "10.96.0.10"),
        svc("b", "10.96.0.11")
    ])));
    wait_for(|| record.calls.lock().unwrap().iter().any(|c| c.0 == 2)).await;
    stop.notify_one();
    task.await.unwrap();
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

struct PanickingDataplane;

impl Dataplane for PanickingDataplane {
    fn family(&self) -> IpFamily {
        IpFamily::V4
    }
    fn sync(&mut self, _: &Arc<ProxyState>, _: bool) -> Result<SyncReport, DataplaneError> {
        panic!("dataplane bug")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_threaded_runtime_syncs_run_in_place_and_survive_a_panicking_dataplane() {
    let source = source();
    source.set(objects(serde_json::json!([svc("a", "10.96.0.10")])));
    let (mut r, record, heard) = runner(source.clone(), &[IpFamily::V4]);
    assert!(r.sync_once().await);
    assert_eq!(*record.calls.lock().unwrap(), vec![(1, true)]);
    assert_eq!(heard.synced.lock().unwrap().len(), 1);

    let heard = Arc::new(Heard::default());
    let cfg = RunnerConfig {
        schedule: ScheduleConfig {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_secs(30),
        },
        node: NodeContext {
            node_name: "node1".into(),
        },
    };
    let mut r = Runner::new(
        source,
        cfg,
        vec![Box::new(PanickingDataplane)],
        heard.clone(),
    );
    assert!(!r.sync_once().await, "a panicking dataplane fails the sync");
    assert!(heard.synced.lock().unwrap().is_empty());
}

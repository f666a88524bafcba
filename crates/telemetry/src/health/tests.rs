//! Table tests of the health state machine, driven by a fake clock.

use super::*;
use crate::FakeClock;
use std::time::UNIX_EPOCH;
use IpFamily::{V4, V6};

const SYNC_PERIOD: Duration = Duration::from_secs(30); // timeout 60 s

#[derive(Clone, Debug)]
enum Step {
    Advance(Duration),
    Queued(IpFamily),
    Updated(IpFamily),
    Node(NodeInfo),
    NodeRemoved,
}
use Step::*;

fn secs(s: u64) -> Step {
    Advance(Duration::from_secs(s))
}

struct Want {
    healthy: bool,
    node_eligible: bool,
    unhealthy_families: &'static [IpFamily],
}

fn run(steps: &[Step]) -> (HealthStatus, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let health = ProxyHealth::with_clock(SYNC_PERIOD, clock.clone());
    for step in steps {
        match step {
            Advance(d) => clock.advance(*d),
            Queued(f) => health.queued_update(*f),
            Updated(f) => health.updated(*f),
            Node(n) => health.sync_node(n),
            NodeRemoved => health.sync_node_removed(),
        }
    }
    (health.status(), clock)
}

fn deleting() -> NodeInfo {
    NodeInfo {
        deleting: true,
        taint_keys: vec![],
    }
}

fn tainted() -> NodeInfo {
    NodeInfo {
        deleting: false,
        taint_keys: vec!["other".into(), TO_BE_DELETED_TAINT.into()],
    }
}

#[test]
fn state_machine_table() {
    let ok = Want {
        healthy: true,
        node_eligible: true,
        unhealthy_families: &[],
    };
    let cases: Vec<(&str, Vec<Step>, Want)> = vec![
        ("fresh proxy is healthy", vec![], ok),
        (
            "synced long ago with nothing pending stays healthy",
            vec![Updated(V4), secs(3600)],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "queued just under the timeout is still healthy",
            vec![
                Updated(V4),
                Queued(V4),
                Advance(Duration::from_secs(60) - Duration::from_nanos(1)),
            ],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "queued without update past the timeout is unhealthy",
            vec![Updated(V4), Queued(V4), secs(60)],
            Want {
                healthy: false,
                node_eligible: true,
                unhealthy_families: &[V4],
            },
        ),
        (
            "the oldest queued update counts, later ones do not reset it",
            vec![Updated(V4), Queued(V4), secs(40), Queued(V4), secs(20)],
            Want {
                healthy: false,
                node_eligible: true,
                unhealthy_families: &[V4],
            },
        ),
        (
            "an update clears the pending change",
            vec![Updated(V4), Queued(V4), secs(59), Updated(V4), secs(120)],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "a family that never synced is not judged (starting up)",
            vec![Queued(V6), secs(600)],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "one late family makes the proxy unhealthy, the other stays healthy",
            vec![
                Updated(V4),
                Updated(V6),
                Queued(V6),
                Queued(V4),
                secs(30),
                Updated(V4),
                secs(30),
            ],
            Want {
                healthy: false,
                node_eligible: true,
                unhealthy_families: &[V6],
            },
        ),
        (
            "node being deleted: healthz fails, proxy itself healthy",
            vec![Updated(V4), Node(deleting())],
            Want {
                healthy: true,
                node_eligible: false,
                unhealthy_families: &[],
            },
        ),
        (
            "node tainted by the autoscaler is not eligible",
            vec![Node(tainted())],
            Want {
                healthy: true,
                node_eligible: false,
                unhealthy_families: &[],
            },
        ),
        (
            "node back to normal is eligible again",
            vec![Node(tainted()), Node(NodeInfo::default())],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "node object removed is not eligible, until it comes back",
            vec![NodeRemoved],
            Want {
                healthy: true,
                node_eligible: false,
                unhealthy_families: &[],
            },
        ),
        (
            "node object back after removal",
            vec![NodeRemoved, Node(NodeInfo::default())],
            Want {
                healthy: true,
                node_eligible: true,
                unhealthy_families: &[],
            },
        ),
        (
            "late and node deleting: both fail",
            vec![Updated(V4), Queued(V4), secs(61), Node(deleting())],
            Want {
                healthy: false,
                node_eligible: false,
                unhealthy_families: &[V4],
            },
        ),
    ];
    for (name, steps, want) in cases {
        let (status, _) = run(&steps);
        assert_eq!(status.healthy, want.healthy, "{name}: healthy");
        assert_eq!(
            status.node_eligible, want.node_eligible,
            "{name}: node_eligible"
        );
        assert_eq!(status.livez_ok(), want.healthy, "{name}: livez");
        assert_eq!(
            status.healthz_ok(),
            want.healthy && want.node_eligible,
            "{name}: healthz"
        );
        let unhealthy: Vec<IpFamily> = status
            .families
            .iter()
            .filter(|(_, f)| !f.healthy)
            .map(|(fam, _)| *fam)
            .collect();
        assert_eq!(
            unhealthy, want.unhealthy_families,
            "{name}: unhealthy families"
        );
    }
}

#[test]
fn last_updated_is_the_most_recent_family_sync() {
    let (status, clock) = run(&[Updated(V6), secs(5), Updated(V4), secs(7)]);
    let now = clock.now();
    assert_eq!(status.current_time, now);
    assert_eq!(status.last_updated, Some(now - Duration::from_secs(7)));
    assert_eq!(
        status.families[&V6].last_updated,
        now - Duration::from_secs(12)
    );
    assert_eq!(run(&[]).0.last_updated, None);
}

#[test]
fn status_at_is_pure_in_time() {
    let clock = Arc::new(FakeClock::new(UNIX_EPOCH + Duration::from_secs(1_000)));
    let health = ProxyHealth::with_clock(SYNC_PERIOD, clock.clone());
    health.updated(V4);
    health.queued_update(V4);
    let t0 = clock.now();
    assert!(health.status_at(t0 + Duration::from_secs(59)).healthy);
    assert!(!health.status_at(t0 + Duration::from_secs(60)).healthy);
    // Asking about the future does not change the present.
    assert!(health.status().healthy);
    assert_eq!(health.timeout(), Duration::from_secs(60));
}

#[test]
fn node_info_from_node_object() {
    use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut node = Node::default();
    assert!(NodeInfo::from_node(&node).eligible());
    node.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: TO_BE_DELETED_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }]),
        ..NodeSpec::default()
    });
    assert!(!NodeInfo::from_node(&node).eligible());
    node.spec = None;
    node.metadata.deletion_timestamp = Some(Time(Default::default()));
    let info = NodeInfo::from_node(&node);
    assert!(info.deleting && !info.eligible());
}

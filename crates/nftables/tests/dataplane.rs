//! The applier on a fake kernel: full at start, incremental afterwards, full again after a failure, a
//! tampered table or a configuration change; cleanup.

mod common;

use common::*;
use kube_proxy_model::IpFamily;
use kube_proxy_nftables::netlink::FakeTransport;
use kube_proxy_nftables::plan::{Family, Op};
use kube_proxy_nftables::{FullReason, NftError, NftablesDataplane, RenderConfig, SyncKind};

fn dataplane() -> (NftablesDataplane<FakeTransport>, FakeTransport) {
    let fake = FakeTransport::default();
    let dp = NftablesDataplane::with_transport(IpFamily::V4, RenderConfig::default(), fake.clone());
    (dp, fake)
}

#[test]
fn first_sync_is_full_then_incremental() {
    let (mut dp, fake) = dataplane();
    let a = v4_state("10.0.1.7");
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(
        (r.kind, r.full_reason),
        (SyncKind::Full, Some(FullReason::NoPreviousState))
    );
    assert!(r.messages > 0 && r.bytes > 0);
    let b = v4_state("10.0.1.8");
    let r = dp.sync(&b, false).unwrap();
    assert_eq!((r.kind, r.full_reason), (SyncKind::Partial, None));
    let k = fake.kernel.lock().unwrap();
    assert_eq!(k.committed.len(), 2);
    let inc = &k.committed[1].0;
    assert!(
        !inc.ops.iter().any(|op| matches!(op, Op::DeleteTable)),
        "incremental never recreates the table"
    );
    assert!(
        inc.ops
            .iter()
            .any(|op| matches!(op, Op::DeleteChain(c) if c.contains("10.0.1.7"))),
        "the old endpoint's chain is removed"
    );
}

#[test]
fn unchanged_state_sends_nothing() {
    let (mut dp, fake) = dataplane();
    let a = v4_state("10.0.1.7");
    dp.sync(&a, false).unwrap();
    let r = dp.sync(&a, false).unwrap();
    assert_eq!((r.kind, r.ops, r.messages), (SyncKind::Partial, 0, 0));
    assert_eq!(fake.kernel.lock().unwrap().committed.len(), 1);
}

#[test]
fn failure_makes_the_next_sync_full() {
    let (mut dp, fake) = dataplane();
    let a = v4_state("10.0.1.7");
    dp.sync(&a, false).unwrap();
    fake.kernel.lock().unwrap().fail_next = Some(22);
    let b = v4_state("10.0.1.8");
    let err = dp.sync(&b, false).unwrap_err();
    assert!(matches!(err, NftError::Rejected { errno: 22, .. }), "{err}");
    let r = dp.sync(&b, false).unwrap();
    assert_eq!(
        (r.kind, r.full_reason),
        (SyncKind::Full, Some(FullReason::NoPreviousState))
    );
}

#[test]
fn tampering_is_detected_without_listing() {
    let (mut dp, fake) = dataplane();
    let a = v4_state("10.0.1.7");
    dp.sync(&a, false).unwrap();
    dp.sync(&v4_state("10.0.1.8"), false).unwrap();
    fake.kernel.lock().unwrap().delete_table(Family::Ip);
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(
        (r.kind, r.full_reason),
        (SyncKind::Full, Some(FullReason::Tampered))
    );
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
}

#[test]
fn forced_and_config_change_syncs_are_full() {
    let (mut dp, _fake) = dataplane();
    let a = v4_state("10.0.1.7");
    dp.sync(&a, false).unwrap();
    let r = dp.sync(&a, true).unwrap();
    assert_eq!(r.full_reason, Some(FullReason::Forced));
    dp.set_config(RenderConfig {
        masquerade_all: true,
        ..RenderConfig::default()
    });
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(r.full_reason, Some(FullReason::NoPreviousState));
}

#[test]
fn cleanup_deletes_the_table_once() {
    let (mut dp, fake) = dataplane();
    dp.sync(&v4_state("10.0.1.7"), false).unwrap();
    dp.cleanup().unwrap();
    assert!(fake.kernel.lock().unwrap().table(Family::Ip).is_none());
    let before = fake.kernel.lock().unwrap().committed.len();
    dp.cleanup().unwrap();
    assert_eq!(
        fake.kernel.lock().unwrap().committed.len(),
        before,
        "nothing to delete"
    );
    let r = dp.sync(&v4_state("10.0.1.7"), false).unwrap();
    assert_eq!(r.kind, SyncKind::Full);
}

#[test]
fn full_sync_period_forces_a_full_sync() {
    let (mut dp, _fake) = dataplane();
    let a = v4_state("10.0.1.7");
    dp.sync(&a, false).unwrap();
    dp.set_full_sync_period(std::time::Duration::ZERO);
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(r.full_reason, Some(FullReason::Periodic));
    dp.set_full_sync_period(kube_proxy_nftables::FULL_SYNC_PERIOD);
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
}

#[test]
fn report_counts_services_without_local_endpoints() {
    let (mut dp, _fake) = dataplane();
    // v4_state: "itp" has internalTrafficPolicy Local and only a remote endpoint.
    let r = dp.sync(&v4_state("10.0.1.7"), false).unwrap();
    assert_eq!(r.no_local_endpoints, (1, 0));
}

#[test]
fn rejected_full_sync_names_the_operation_and_the_plan_reaches_the_transport() {
    let (mut dp, fake) = dataplane();
    let a = v4_state("10.0.1.7");
    fake.kernel.lock().unwrap().fail_next = Some(22);
    let err = dp.sync(&a, false).unwrap_err();
    // The fake rejects the last message: the service ports' elements come last.
    assert!(
        matches!(&err, NftError::Rejected { errno: 22, op } if op.starts_with("add element ip kube-proxy")),
        "{err}"
    );
    let r = dp.sync(&a, false).unwrap();
    assert_eq!(r.kind, SyncKind::Full);
    let k = fake.kernel.lock().unwrap();
    let full = kube_proxy_nftables::render_full(&a, &RenderConfig::default());
    assert_eq!(k.committed[0].0, full);
    assert_eq!((r.ops, r.counts), (full.len(), full.counts()));
    assert_eq!(k.committed[0].1, r.bytes);
}

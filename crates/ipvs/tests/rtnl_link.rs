//! RtnlLink's address handling against the host kernel, in a fresh namespace. This kernel has no dummy
//! links, so the addresses go on `lo` here; creating kube-ipvs0 itself is covered by the guest scenario
//! `rtnl-dummy-link` (docs/vm-tests.md). Root only.

use kube_proxy_ipvs::{DummyLink, RtnlLink};
use kube_proxy_model::IpFamily;
use kube_proxy_testkit::netns::{require_root, Netns};

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn addresses_are_listed_added_and_deleted_over_rtnetlink() {
    if !require_root("addresses_are_listed_added_and_deleted_over_rtnetlink") {
        return;
    }
    let ns = Netns::new("rtnl").unwrap();
    let (lo, missing) = ns
        .run_in(|| {
            (
                RtnlLink::new("lo").unwrap(),
                RtnlLink::new("kube-ipvs0").unwrap(),
            )
        })
        .unwrap();

    // A missing interface has no addresses, and deleting it or an address on it is no error.
    assert!(missing.addresses(IpFamily::V4).unwrap().is_empty());
    missing.delete().unwrap();
    missing.delete_address(ip("10.96.0.1")).unwrap();
    let err = missing
        .add_address(ip("10.96.0.1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kube-ipvs0") && err.contains("does not exist"),
        "{err}"
    );

    lo.ensure().unwrap();
    let before4 = lo.addresses(IpFamily::V4).unwrap();
    assert!(before4.contains(&ip("127.0.0.1")), "{before4:?}");
    for a in ["10.96.0.10", "10.96.0.11", "fd00:96::10"] {
        lo.add_address(ip(a)).unwrap();
    }
    lo.add_address(ip("10.96.0.10")).unwrap(); // replace: no error
    let v4 = lo.addresses(IpFamily::V4).unwrap();
    let v6 = lo.addresses(IpFamily::V6).unwrap();
    assert!(v4.contains(&ip("10.96.0.10")) && v4.contains(&ip("10.96.0.11")));
    assert!(!v4.contains(&ip("fd00:96::10")), "families are separate");
    assert!(v6.contains(&ip("fd00:96::10")), "{v6:?}");
    let shown = ns.ip(&["addr", "show", "dev", "lo"]).unwrap();
    assert!(shown.contains("inet 10.96.0.11/32"), "{shown}");
    assert!(shown.contains("inet6 fd00:96::10/128"), "{shown}");
    assert!(!shown.contains("tentative"), "no DAD: {shown}");

    lo.delete_address(ip("10.96.0.11")).unwrap();
    lo.delete_address(ip("10.96.0.11")).unwrap();
    lo.delete_address(ip("fd00:96::10")).unwrap();
    let shown = ns.ip(&["addr", "show", "dev", "lo"]).unwrap();
    assert!(!shown.contains("10.96.0.11"), "{shown}");
    assert!(!shown.contains("fd00:96::10"), "{shown}");
    assert!(shown.contains("inet 10.96.0.10/32"), "{shown}");
}

//! Builders for states used by the tests, and the network-namespace helpers of the privileged tests.
#![allow(dead_code)]

pub mod sim;

use std::process::Command;

use std::sync::Arc;

use kube_proxy_model::{IpFamily, Protocol, ProxyState};

pub use kube_proxy_model::fixtures::{ep, finish, ip, name, state, svc};

/// Every feature of the mode in one IPv4 state; `second_ep` varies the web service's second endpoint.
pub fn v4_state(second_ep: &str) -> Arc<ProxyState> {
    let mut web = svc(name("default", "web", "http"), "172.30.0.10", 80);
    web.node_port = Some(30080);
    web.session_affinity_timeout = Some(300);
    web.endpoints = vec![ep("10.0.1.5", 8080, true), ep(second_ep, 8080, false)];
    let mut lb = svc(name("default", "lb", ""), "172.30.0.11", 443);
    lb.node_port = Some(30443);
    lb.load_balancer_ips = vec![ip("192.0.2.10")];
    lb.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
    lb.external_policy_local = true;
    lb.health_check_node_port = Some(32000);
    lb.endpoints = vec![ep("10.0.1.6", 8443, true)];
    let mut dns = svc(name("kube-system", "dns", "dns"), "172.30.0.12", 53);
    dns.name.protocol = Protocol::Udp;
    dns.protocol = Protocol::Udp;
    dns.external_ips = vec![ip("192.0.2.53")];
    dns.endpoints = vec![
        ep("10.0.2.1", 53, false),
        ep("10.0.2.2", 53, false),
        ep("10.0.2.3", 53, false),
    ];
    let none = svc(name("default", "empty", ""), "172.30.0.13", 80);
    let mut itp = svc(name("default", "itp", ""), "172.30.0.14", 80);
    itp.internal_policy_local = true;
    itp.endpoints = vec![ep("10.0.3.1", 80, false)];
    Arc::new(state(
        IpFamily::V4,
        vec![
            finish(web),
            finish(lb),
            finish(dns),
            finish(none),
            finish(itp),
        ],
    ))
}

pub fn v6_state() -> Arc<ProxyState> {
    let mut web = svc(name("default", "web6", "http"), "fd00:30::10", 80);
    web.node_port = Some(30081);
    web.session_affinity_timeout = Some(60);
    web.endpoints = vec![ep("fd00:1::5", 8080, true), ep("fd00:1::6", 8080, false)];
    let none = svc(name("default", "empty6", ""), "fd00:30::13", 80);
    Arc::new(state(IpFamily::V6, vec![finish(web), finish(none)]))
}

/// Root is required: fail under CI=true, otherwise skip with a note.
pub fn can_run_privileged() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !root || !nft {
        assert!(!ci, "privileged nftables test needs root and nft (CI=true)");
        eprintln!("note: skipping privileged nftables test (root: {root}, nft: {nft})");
        return false;
    }
    true
}

/// Runs `f` on a fresh thread inside a new, private network namespace (gone when the thread ends).
pub fn in_private_netns<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// `nft -f -` with `script` on stdin, in the caller thread's namespace.
pub fn nft_load(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `nft list table FAMILY kube-proxy`, or None when the table does not exist.
pub fn nft_list(family: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", family, "kube-proxy"])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sorts the entries of every `elements = { ... }` block (hash sets list in a per-set random order).
pub fn normalise(listing: &str) -> String {
    let mut out = Vec::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        if let Some(idx) = line.find("elements = { ") {
            let mut body = line[idx + 13..].to_string();
            while !body.trim_end().ends_with('}') {
                body.push(' ');
                body.push_str(lines.next().unwrap().trim());
            }
            let body = body.trim_end().trim_end_matches('}');
            let mut items: Vec<String> = body
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            items.sort();
            out.push(format!(
                "{}elements = {{ {} }}",
                &line[..idx],
                items.join(", ")
            ));
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

//! `kube-proxy-rs demo` end to end: run it as root in both modes, check the per-backend table (each verdict the
//! bundled examples imply) and that no `kprs-<pid>-` namespace of the demo process is left, also after SIGINT.
//! Needs root: fails when CI=true and not root, skips with a note otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const REQUESTS: u32 = 30;

fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root when CI=true"
    );
    eprintln!("skipping {test}: needs root (CI is unset)");
    false
}

/// Namespaces whose name says process `pid` created them.
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("kprs-{pid}-");
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.starts_with(&prefix));
    names
}

/// One table line: service, via, destination, who answered, the source it saw, count.
#[derive(Debug)]
struct Row {
    service: String,
    via: String,
    answered: String,
    seen: String,
    count: u32,
}

/// Parses the table: columns are separated by two or more spaces.
fn rows(stdout: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if line.starts_with("SERVICE") {
            in_table = true;
            continue;
        }
        if in_table && line.trim().is_empty() {
            break;
        }
        if !in_table {
            continue;
        }
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells.len(), 7, "table line {line:?}");
        let (count, sent) = cells[6].split_once('/').expect("count/sent");
        assert_eq!(sent.parse::<u32>().unwrap(), REQUESTS, "{line}");
        out.push(Row {
            service: cells[0].into(),
            via: cells[1].into(),
            answered: cells[4].into(),
            seen: cells[5].into(),
            count: count.parse().unwrap(),
        });
    }
    out
}

/// `{answered-by: count}` for one service address.
fn answers(rows: &[Row], service: &str, via: &str) -> BTreeMap<String, u32> {
    rows.iter()
        .filter(|r| r.service == service && r.via == via)
        .map(|r| (r.answered.clone(), r.count))
        .collect()
}

fn seen(rows: &[Row], service: &str, via: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r.service == service && r.via == via)
        .map(|r| r.seen.clone())
        .collect()
}

fn run_demo(mode: &str) {
    let child = Command::new(env!("CARGO_BIN_EXE_kube-proxy-rs"))
        .args(["demo", "--proxy-mode", mode, "--requests"])
        .arg(REQUESTS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "namespaces left");

    let rows = rows(&stdout);
    let ctx = format!("{mode}:\n{stdout}");
    // Three backends behind web, each reached, every request answered, no masquerade for pod traffic.
    let web = answers(&rows, "default/web:http", "cluster IP");
    assert_eq!(
        web.keys().collect::<Vec<_>>(),
        [
            "pod-a 10.244.1.10",
            "pod-b 10.244.1.11",
            "pod-c 10.244.2.10"
        ],
        "{ctx}"
    );
    assert_eq!(web.values().sum::<u32>(), REQUESTS, "{ctx}");
    assert!(seen(&rows, "default/web:http", "cluster IP")
        .iter()
        .all(|s| s == "10.244.1.50 (kept)"));
    // No endpoints: rejected, every time.
    assert_eq!(
        answers(&rows, "default/nobody-home", "cluster IP"),
        BTreeMap::from([("rejected".to_string(), REQUESTS)]),
        "{ctx}"
    );
    // NodePort with externalTrafficPolicy Cluster: both backends, masqueraded.
    let np = answers(&rows, "default/web-nodeport:http", "node port");
    assert_eq!(np.values().sum::<u32>(), REQUESTS, "{ctx}");
    assert!(np.keys().all(|k| k.starts_with("pod-")), "{ctx}");
    assert!(seen(&rows, "default/web-nodeport:http", "node port")
        .iter()
        .all(|s| s.ends_with("(masqueraded)")));
    // externalTrafficPolicy Local: only the local backend, client address kept.
    for via in ["load balancer", "node port"] {
        assert_eq!(
            answers(&rows, "store/shop:https", via),
            BTreeMap::from([("pod-b 10.244.1.11".to_string(), REQUESTS)]),
            "{via}: {ctx}"
        );
        assert_eq!(
            seen(&rows, "store/shop:https", via),
            ["10.100.0.100 (kept)"]
        );
    }
    // ClientIP affinity: one backend per client.
    for via in ["cluster IP", "external IP"] {
        let dns = answers(&rows, "kube-system/dns:dns", via);
        assert_eq!(dns.len(), 1, "{via}: {ctx}");
        assert_eq!(dns.values().sum::<u32>(), REQUESTS, "{ctx}");
    }
    assert!(stdout.contains("\"localEndpoints\": 1"), "{ctx}");
    let rules_marker = if mode == "iptables" {
        "-A KUBE-SERVICES"
    } else {
        "table ip kube-proxy"
    };
    assert!(stdout.contains(rules_marker), "rules printed: {ctx}");
}

#[test]
fn demo_iptables_prints_backend_counts_and_leaves_no_namespace() {
    if privileged("demo_iptables_prints_backend_counts_and_leaves_no_namespace") {
        run_demo("iptables");
    }
}

#[test]
fn demo_nftables_prints_backend_counts_and_leaves_no_namespace() {
    if privileged("demo_nftables_prints_backend_counts_and_leaves_no_namespace") {
        run_demo("nftables");
    }
}

#[test]
fn demo_removes_its_namespaces_on_sigint() {
    if !privileged("demo_removes_its_namespaces_on_sigint") {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-proxy-rs"))
        .args(["demo", "--requests", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Interrupt once the proxy is running (namespaces, backends and the proxy process all exist).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("demo ended before starting the proxy:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("starting kube-proxy-rs") {
            break;
        }
    }
    assert!(
        !namespaces_of(pid).is_empty(),
        "namespaces exist while running"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "namespaces left");
}

//! The demo's traffic: which addresses to try from which client ([`plan`]), sending the requests ([`send`]) and
//! the per-service, per-backend count table ([`table`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube_proxy_model::{Protocol, ProxyState};
use kube_proxy_testkit::netns::{tcp_exchange, udp_exchange, Netns, RequestError};

use super::sandbox::Sandbox;
use super::{check_interrupt, DemoError};

/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// After this many timeouts in a row a row stops: the traffic is being dropped.
const TIMEOUTS_BEFORE_GIVING_UP: u32 = 2;

/// Who sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Client {
    /// The client pod on node-1.
    Pod,
    /// The external client on the LAN.
    External,
}

/// One service address tried from one client.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `ns/name:port`.
    pub service: String,
    /// `cluster IP`, `node port`, `external IP` or `load balancer`.
    pub via: &'static str,
    pub client: Client,
    pub dst: SocketAddr,
    pub protocol: Protocol,
}

/// What one request came back with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A backend answered and saw the request coming from `seen`.
    Answered { backend: String, seen: IpAddr },
    /// Refused, reset or unreachable (a REJECT).
    Rejected,
    /// No answer in time (a DROP).
    Dropped,
    /// Anything else.
    Failed(String),
}

/// The outcomes of one probe.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub probe: Probe,
    pub client_ip: IpAddr,
    pub sent: u32,
    pub outcomes: BTreeMap<Outcome, u32>,
}

/// Every service address of `state`, from the client that can reach it: cluster IPs from the client pod;
/// node ports, externalIPs and load-balancer IPs from the external client.
pub fn plan(state: &ProxyState, sandbox: &Sandbox) -> Vec<Probe> {
    let mut out = Vec::new();
    for svc in state.services.values() {
        if svc.protocol == Protocol::Sctp {
            continue;
        }
        let mut add = |via, client, ip: IpAddr, port| {
            out.push(Probe {
                service: svc.name.to_string(),
                via,
                client,
                dst: SocketAddr::new(ip, port),
                protocol: svc.protocol,
            })
        };
        add("cluster IP", Client::Pod, svc.cluster_ip, svc.port);
        if let Some(np) = svc.node_port {
            add("node port", Client::External, sandbox.node_ip(), np);
        }
        for ip in &svc.external_ips {
            add("external IP", Client::External, *ip, svc.port);
        }
        for ip in &svc.load_balancer_ips {
            add("load balancer", Client::External, *ip, svc.port);
        }
    }
    out
}

fn client_ns(sandbox: &Sandbox, c: Client) -> &Netns {
    match c {
        Client::Pod => &sandbox.client_pod,
        Client::External => &sandbox.topo.client,
    }
}

fn client_ip(sandbox: &Sandbox, c: Client) -> IpAddr {
    match c {
        Client::Pod => super::sandbox::CLIENT_POD_IP
            .parse()
            .expect("a valid address"),
        Client::External => sandbox
            .topo
            .client_ip(kube_proxy_testkit::netns::Family::V4),
    }
}

/// `pod-a 10.244.1.10` for the echo server identity `pod-a`.
fn backend_label(sandbox: &Sandbox, identity: &str) -> String {
    match sandbox.topo.pods.iter().find(|p| p.name == identity) {
        Some(p) => match p.ipv4 {
            Some(ip) => format!("{identity} {ip}"),
            None => identity.to_string(),
        },
        None => identity.to_string(),
    }
}

/// Sends `n` requests for each probe (fewer when they time out) and counts the outcomes.
pub fn send(plan: &[Probe], sandbox: &Sandbox, n: u32) -> Result<Vec<ProbeResult>, DemoError> {
    let mut results = Vec::new();
    for probe in plan {
        let ns = client_ns(sandbox, probe.client);
        let mut outcomes = BTreeMap::new();
        let (mut sent, mut timeouts) = (0, 0);
        while sent < n && timeouts < TIMEOUTS_BEFORE_GIVING_UP {
            check_interrupt()?;
            let reply = match probe.protocol {
                Protocol::Udp => udp_exchange(ns, probe.dst, REQUEST_TIMEOUT),
                _ => tcp_exchange(ns, probe.dst, REQUEST_TIMEOUT),
            };
            let outcome = match reply {
                Ok(r) => Outcome::Answered {
                    backend: backend_label(sandbox, &r.backend),
                    seen: r.source,
                },
                Err(RequestError::Timeout) => Outcome::Dropped,
                Err(e) if e.is_rejected() => Outcome::Rejected,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            timeouts = if outcome == Outcome::Dropped {
                timeouts + 1
            } else {
                0
            };
            *outcomes.entry(outcome).or_insert(0) += 1;
            sent += 1;
        }
        results.push(ProbeResult {
            probe: probe.clone(),
            client_ip: client_ip(sandbox, probe.client),
            sent,
            outcomes,
        });
    }
    check_interrupt()?;
    Ok(results)
}

/// The count table: one line per service address, client and outcome (backend and the source it saw).
pub fn table(results: &[ProbeResult]) -> String {
    let header = [
        "SERVICE",
        "VIA",
        "FROM",
        "DESTINATION",
        "ANSWERED BY",
        "SOURCE SEEN BY BACKEND",
        "COUNT",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for r in results {
        let from = match r.probe.client {
            Client::Pod => format!("pod {}", r.client_ip),
            Client::External => format!("external {}", r.client_ip),
        };
        let dst = format!("{}/{}", r.probe.dst, r.probe.protocol);
        for (outcome, count) in &r.outcomes {
            let (who, seen) = match outcome {
                Outcome::Answered { backend, seen } => {
                    let how = if *seen == r.client_ip {
                        "kept"
                    } else {
                        "masqueraded"
                    };
                    (backend.clone(), format!("{seen} ({how})"))
                }
                Outcome::Rejected => ("rejected".into(), "-".into()),
                Outcome::Dropped => ("dropped (no answer)".into(), "-".into()),
                Outcome::Failed(e) => (format!("error: {e}"), "-".into()),
            };
            rows.push([
                r.probe.service.clone(),
                r.probe.via.to_string(),
                from.clone(),
                dst.clone(),
                who,
                seen,
                format!("{count}/{}", r.sent),
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                let _ = write!(l, "{cell:>w$}");
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_one_line_per_outcome_and_marks_masquerade() {
        let probe = Probe {
            service: "default/web:http".into(),
            via: "cluster IP",
            client: Client::Pod,
            dst: "10.96.0.10:80".parse().unwrap(),
            protocol: Protocol::Tcp,
        };
        let mut outcomes = BTreeMap::new();
        outcomes.insert(
            Outcome::Answered {
                backend: "pod-a".into(),
                seen: "10.244.1.50".parse().unwrap(),
            },
            2,
        );
        outcomes.insert(
            Outcome::Answered {
                backend: "pod-c".into(),
                seen: "10.100.0.1".parse().unwrap(),
            },
            1,
        );
        outcomes.insert(Outcome::Rejected, 1);
        let text = table(&[ProbeResult {
            probe,
            client_ip: "10.244.1.50".parse().unwrap(),
            sent: 4,
            outcomes,
        }]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("SERVICE"));
        assert!(lines[1].contains("pod-a") && lines[1].contains("10.244.1.50 (kept)"));
        assert!(lines[1].ends_with("2/4"), "{text}");
        assert!(lines[2].contains("10.100.0.1 (masqueraded)"), "{text}");
        assert!(lines[3].contains("rejected") && lines[3].ends_with("1/4"));
        assert!(lines[1].contains("10.96.0.10:80/TCP"));
    }
}

//! EndpointSlices of one family, indexed by Service and merged into per-port endpoint lists.
//!
//! Follows upstream's EndpointSliceCache: a slice belongs to the Service named by its `kubernetes.io/service-name`
//! label in its namespace; a slice port is keyed by port name + protocol; only an endpoint's first address counts;
//! condition defaults are ready=true, serving=true, terminating=false when unset; an `ip:port` seen in several
//! slices is kept once, the first occurrence winning unless a later one is local (slices are read in name order).

use std::net::IpAddr;
use std::sync::Arc;

use crate::parse::parse_ip_sloppy;
use crate::service::Rejector;
use crate::slice::{CompactSlice, SliceAddress, SliceEndpoint};
use crate::state::{Endpoint, IpFamily, Protocol, Rejection, RejectionKind};

/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The `addressType` of a family's slices.
pub(crate) fn address_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

pub(crate) fn slice_rejector<'r>(
    slice: &'r CompactSlice,
    out: &'r mut Vec<Rejection>,
) -> Rejector<'r> {
    Rejector {
        kind: "EndpointSlice",
        namespace: slice.namespace.as_deref().unwrap_or_default(),
        name: slice.name.as_deref().unwrap_or_default(),
        out,
    }
}

/// All endpoints of one `(port name, protocol)` across a Service's slices, merged and sorted.
pub(crate) struct PortEndpoints {
    pub port_name: String,
    pub protocol: Protocol,
    pub endpoints: Vec<Endpoint>,
}

/// An endpoint of a slice, validated once and shared by all of the slice's ports.
fn read_endpoint(
    ep: &SliceEndpoint,
    family: IpFamily,
    node_name: &str,
    rej: &mut Rejector<'_>,
) -> Option<Endpoint> {
    let ip = match &ep.address {
        SliceAddress::Missing => {
            rej.reject(RejectionKind::InvalidEndpointAddress(String::new()));
            return None;
        }
        SliceAddress::Ip(ip) if family.contains(ip) => *ip,
        SliceAddress::Ip(ip) => {
            rej.reject(RejectionKind::InvalidEndpointAddress(ip.to_string()));
            return None;
        }
        SliceAddress::Text(raw) => match parse_ip_sloppy(raw) {
            Some(ip) if family.contains(&ip) => ip,
            _ => {
                rej.reject(RejectionKind::InvalidEndpointAddress(raw.to_string()));
                return None;
            }
        },
    };
    Some(Endpoint {
        ip,
        port: 0,
        is_local: !node_name.is_empty() && ep.node_name.as_deref() == Some(node_name),
        ready: ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        hints: ep.hints.clone(),
    })
}

/// Every occurrence of one port key's endpoints, with a sequence number giving the arrival order.
struct Arrivals {
    port_name: String,
    protocol: Protocol,
    seen: Vec<(Endpoint, usize)>,
}

/// Merges the Service's slices into endpoint lists per `(port name, protocol)`.
pub(crate) fn merge_slices(
    slices: &[&Arc<CompactSlice>],
    family: IpFamily,
    node_name: &str,
    rejections: &mut Vec<Rejection>,
) -> Vec<PortEndpoints> {
    // Endpoints with their arrival order, per port key; deduplicated after sorting.
    let mut groups: Vec<Arrivals> = Vec::new();
    let mut seq = 0usize;
    for slice in slices {
        let mut rej = slice_rejector(slice, rejections);
        let endpoints: Vec<Endpoint> = slice
            .endpoints
            .iter()
            .filter_map(|ep| read_endpoint(ep, family, node_name, &mut rej))
            .collect();
        for port in &slice.ports {
            let Some(name) = port.name.as_ref() else {
                rej.reject(RejectionKind::Other(
                    "port without a name (use \"\" for an unnamed port)".into(),
                ));
                continue;
            };
            let number = match port.port.unwrap_or(0) {
                0 => {
                    rej.reject(RejectionKind::InvalidPort(0));
                    continue;
                }
                p => match u16::try_from(p) {
                    Ok(p) => p,
                    Err(_) => {
                        rej.reject(RejectionKind::InvalidPort(i64::from(p)));
                        continue;
                    }
                },
            };
            let raw_protocol = port.protocol.as_deref().unwrap_or("TCP");
            let Some(protocol) = Protocol::from_k8s(raw_protocol) else {
                rej.reject(RejectionKind::UnknownProtocol(raw_protocol.to_string()));
                continue;
            };
            let idx = match groups
                .iter()
                .position(|g| g.port_name == *name && g.protocol == protocol)
            {
                Some(i) => i,
                None => {
                    groups.push(Arrivals {
                        port_name: name.clone(),
                        protocol,
                        seen: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            let list = &mut groups[idx].seen;
            list.reserve(endpoints.len());
            for ep in &endpoints {
                list.push((
                    Endpoint {
                        port: number,
                        ..ep.clone()
                    },
                    seq,
                ));
                seq += 1;
            }
        }
    }
    groups
        .into_iter()
        .map(|g| PortEndpoints {
            port_name: g.port_name,
            protocol: g.protocol,
            endpoints: dedup(g.seen),
        })
        .collect()
}

/// Keeps one endpoint per `ip:port`: the last local occurrence if there is one, else the first occurrence.
fn dedup(mut list: Vec<(Endpoint, usize)>) -> Vec<Endpoint> {
    list.sort_unstable_by_key(|(ep, seq)| (ep.ip, ep.port, *seq));
    let mut out: Vec<Endpoint> = Vec::with_capacity(list.len());
    let mut last_key: Option<(IpAddr, u16)> = None;
    for (ep, _) in list {
        let key = (ep.ip, ep.port);
        if last_key == Some(key) {
            if ep.is_local {
                if let Some(slot) = out.last_mut() {
                    *slot = ep;
                }
            }
        } else {
            last_key = Some(key);
            out.push(ep);
        }
    }
    out
}

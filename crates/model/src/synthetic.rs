//! Synthetic clusters for tests and benchmarks in other crates: many Services, each with one EndpointSlice.
//!
//! Deterministic; builds k8s-openapi objects directly (no JSON), as [`SyntheticObjects`] for whoever serves them
//! to a proxy, or converted into [`ClusterObjects`]. Not used by the proxy itself.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::endpoints::LABEL_SERVICE_NAME;
use crate::objects::{ClusterObjects, ObjectKey};
use crate::slice::{CompactSlice, NameInterner};

/// The API objects of a synthetic cluster, keyed `(namespace, name)`.
#[derive(Clone, Debug, Default)]
pub struct SyntheticObjects {
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
}

/// [`synthetic_api_objects`] as the model keeps them.
pub fn synthetic_cluster(
    services: usize,
    endpoints_per_service: usize,
    node_name: &str,
) -> ClusterObjects {
    let api = synthetic_api_objects(services, endpoints_per_service, node_name);
    let mut names = NameInterner::default();
    ClusterObjects {
        services: api.services,
        endpoint_slices: api
            .endpoint_slices
            .into_iter()
            .map(|(k, s)| (k, Arc::new(CompactSlice::new(&s, &mut names))))
            .collect(),
        ..Default::default()
    }
}

/// `services` IPv4 ClusterIP Services `bench/svc-N` (port "http" 80/TCP, ClusterIP 10.96.0.0/12 + N), each with
/// one slice of `endpoints_per_service` ready endpoints on port 8080; every tenth endpoint is on `node_name`.
pub fn synthetic_api_objects(
    services: usize,
    endpoints_per_service: usize,
    node_name: &str,
) -> SyntheticObjects {
    let mut objs = SyntheticObjects::default();
    let mut next_ep: u32 = 0;
    for i in 0..services {
        let name = format!("svc-{i}");
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let cluster_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)).wrapping_add(index));
        let svc = Service {
            metadata: ObjectMeta {
                namespace: Some("bench".into()),
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.to_string()),
                cluster_ips: Some(vec![cluster_ip.to_string()]),
                type_: Some("ClusterIP".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        let endpoints = (0..endpoints_per_service)
            .map(|j| {
                next_ep = next_ep.wrapping_add(1);
                let addr =
                    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)).wrapping_add(next_ep));
                Endpoint {
                    addresses: vec![addr.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    node_name: Some(if j % 10 == 0 {
                        node_name.to_string()
                    } else {
                        format!("node-{}", j % 7)
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(endpoints),
            metadata: ObjectMeta {
                namespace: Some("bench".into()),
                name: Some(format!("{name}-abcde")),
                labels: Some(BTreeMap::from([(
                    LABEL_SERVICE_NAME.to_string(),
                    name.clone(),
                )])),
                ..Default::default()
            },
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        };
        objs.services
            .insert(("bench".into(), name.clone()), Arc::new(svc));
        objs.endpoint_slices
            .insert(("bench".into(), format!("{name}-abcde")), Arc::new(slice));
    }
    objs
}

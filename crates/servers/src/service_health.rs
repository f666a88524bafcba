//! [`ServiceHealthServer`]: health-check node ports of `externalTrafficPolicy: Local` load balancers
//! (pkg/proxy/healthcheck/service_health.go behaviour).
//!
//! `sync_services` opens one listener per service's `healthCheckNodePort` on every listen address (all
//! addresses, or the nodePortAddresses IPs) and closes listeners of services that went away or changed port.
//! A port that fails to bind is reported and left out, so the next sync tries again. `sync_endpoints` sets each
//! service's local endpoint count. A probe answers 200 when the service has local endpoints and the proxy is
//! healthy (node eligibility not considered), else 503, with the count in `X-Load-Balancing-Endpoint-Weight`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use kube_proxy_telemetry::ProxyHealth;
use tokio::net::TcpListener;

use crate::running::RunningServer;
use crate::ServersError;

/// A Service's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where health-check node ports listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddresses {
    /// Every address of the node (one dual-stack socket, or IPv4-only when IPv6 is unavailable).
    All,
    /// Only these node IPs (the addresses matching `nodePortAddresses`).
    Ips(Vec<IpAddr>),
}

/// The JSON body upstream answers a health-check probe with (tab-indented, as upstream writes it).
pub fn service_health_body(
    service: &NamespacedName,
    local_endpoints: usize,
    proxy_healthy: bool,
) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": {}\n}}",
        quote(&service.namespace),
        quote(&service.name),
        local_endpoints,
        proxy_healthy
    )
}

struct Shared {
    health: Arc<ProxyHealth>,
    endpoints: RwLock<HashMap<NamespacedName, usize>>,
}

struct Instance {
    port: u16,
    servers: Vec<RunningServer>,
}

/// Manages the health-check node port listeners. Share it behind an `Arc`; methods take `&self`.
pub struct ServiceHealthServer {
    addresses: ListenAddresses,
    shared: Arc<Shared>,
    services: tokio::sync::Mutex<BTreeMap<NamespacedName, Instance>>,
}

impl fmt::Debug for ServiceHealthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHealthServer")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl ServiceHealthServer {
    /// A manager listening on `addresses`, reporting the proxy as healthy per `health`.
    pub fn new(addresses: ListenAddresses, health: Arc<ProxyHealth>) -> Self {
        ServiceHealthServer {
            addresses,
            shared: Arc::new(Shared {
                health,
                endpoints: RwLock::new(HashMap::new()),
            }),
            services: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes `services` (name → healthCheckNodePort) the set of open health checks: closes the ones no longer
    /// wanted or whose port changed, keeps the unchanged ones, opens the new ones. Returns one error per
    /// service whose port could not be opened (the binary turns these into `FailedToStartServiceHealthcheck`
    /// events); those services are retried on the next call.
    pub async fn sync_services(
        &self,
        services: &BTreeMap<NamespacedName, u16>,
    ) -> Vec<ServersError> {
        let mut open = self.services.lock().await;
        let stale: Vec<NamespacedName> = open
            .iter()
            .filter(|(name, inst)| services.get(*name) != Some(&inst.port))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(inst) = open.remove(&name) {
                tracing::debug!(service = %name, port = inst.port, "closing health check");
                for server in inst.servers {
                    server.shutdown().await;
                }
            }
        }
        let mut errors = Vec::new();
        for (name, &port) in services {
            if open.contains_key(name) {
                continue;
            }
            match self.listen_all(name, port).await {
                Ok(servers) => {
                    tracing::debug!(service = %name, port, "opened health check");
                    open.insert(name.clone(), Instance { port, servers });
                }
                Err(err) => {
                    tracing::warn!(service = %name, port, %err, "failed to start health check");
                    errors.push(err);
                }
            }
        }
        errors
    }

    /// Sets the number of ready local endpoints of each service; services not listed have none.
    pub fn sync_endpoints(&self, endpoints: &BTreeMap<NamespacedName, usize>) {
        let mut map = self
            .shared
            .endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *map = endpoints.iter().map(|(k, v)| (k.clone(), *v)).collect();
    }

    /// The open health checks and the addresses each listens on.
    pub async fn listening(&self) -> BTreeMap<NamespacedName, Vec<SocketAddr>> {
        let open = self.services.lock().await;
        open.iter()
            .map(|(name, inst)| {
                (
                    name.clone(),
                    inst.servers.iter().map(|s| s.local_addr()).collect(),
                )
            })
            .collect()
    }

    /// Closes every health check.
    pub async fn shutdown(&self) {
        let mut open = self.services.lock().await;
        for (_, inst) in std::mem::take(&mut *open) {
            for server in inst.servers {
                server.shutdown().await;
            }
        }
    }

    /// Opens `port` on every listen address; on any failure closes what was opened and reports it.
    async fn listen_all(
        &self,
        name: &NamespacedName,
        port: u16,
    ) -> Result<Vec<RunningServer>, ServersError> {
        let listeners = match &self.addresses {
            ListenAddresses::All => vec![bind_any(name, port).await?],
            ListenAddresses::Ips(ips) => {
                let mut ls = Vec::with_capacity(ips.len());
                for ip in ips {
                    ls.push(bind_one(name, SocketAddr::new(*ip, port)).await?);
                }
                ls
            }
        };
        let mut servers = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let router = Router::new().fallback(any(probe)).with_state(ProbeState {
                name: Arc::new(name.clone()),
                shared: self.shared.clone(),
            });
            servers.push(RunningServer::spawn(
                "service health check",
                listener,
                router,
            )?);
        }
        Ok(servers)
    }
}

async fn bind_one(name: &NamespacedName, addr: SocketAddr) -> Result<TcpListener, ServersError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServersError::BindHealthCheck {
            service: name.clone(),
            port: addr.port(),
            addr,
            source,
        })
}

/// Binds `[::]:port` (dual-stack on Linux), falling back to `0.0.0.0:port` where IPv6 is unavailable.
async fn bind_any(name: &NamespacedName, port: u16) -> Result<TcpListener, ServersError> {
    match bind_one(name, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)).await {
        Err(ServersError::BindHealthCheck { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
            ) || source.raw_os_error() == Some(97) =>
        {
            // 97 is EAFNOSUPPORT on Linux: the kernel has no IPv6.
            bind_one(name, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)).await
        }
        other => other,
    }
}

#[derive(Clone)]
struct ProbeState {
    name: Arc<NamespacedName>,
    shared: Arc<Shared>,
}

async fn probe(State(st): State<ProbeState>) -> Response {
    let count = {
        let map = st
            .shared
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&*st.name).copied().unwrap_or(0)
    };
    let healthy = st.shared.health.is_healthy();
    let code = if count > 0 && healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let weight = HeaderValue::from(count);
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::HeaderName::from_static("x-load-balancing-endpoint-weight"),
                weight,
            ),
        ],
        service_health_body(&st.name, count, healthy),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_upstreams_tab_indented_json() {
        let body = service_health_body(&NamespacedName::new("default", "web"), 2, true);
        assert_eq!(
            body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["service"]["name"], "web");
    }
}

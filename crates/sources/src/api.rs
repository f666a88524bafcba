//! The Kubernetes API source: kube-runtime watchers for Services, EndpointSlices and this node's Node,
//! feeding a [`ChangeTracker`]. Initial lists (and relists after 410 Gone) are buffered from `Init` to
//! `InitDone` and replace the kind's objects in one step, so a half-finished list is never visible. Each object
//! is reduced as it arrives: trimmed ([`Trim`]), and EndpointSlices converted to their compact form.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use kube_proxy_model::{CompactSlice, NameInterner};
use serde::de::DeserializeOwned;

use crate::tracker::{Change, ChangeTracker, ObjectKind};
use crate::trim::Trim;

/// Services and EndpointSlices that kube-proxy must ignore: those owned by another proxy and headless ones.
pub const PROXY_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/// How the API watches are set up.
#[derive(Clone, Debug, Default)]
pub struct ApiSourceOptions {
    /// Use streaming lists (`sendInitialEvents`) instead of list + watch; needs a server that supports it.
    pub streaming_lists: bool,
}

/// Watches Services, EndpointSlices and the Node named `node_name` forever, feeding `tracker`.
pub async fn run_api_sources(client: Client, node_name: String, tracker: Arc<ChangeTracker>) {
    run_api_sources_with(client, node_name, tracker, ApiSourceOptions::default()).await
}

/// [`run_api_sources`] with explicit options.
pub async fn run_api_sources_with(
    client: Client,
    node_name: String,
    tracker: Arc<ChangeTracker>,
    options: ApiSourceOptions,
) {
    let base = if options.streaming_lists {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    };
    let proxied = base.clone().labels(PROXY_LABEL_SELECTOR);
    let this_node = base.clone().fields(&format!("metadata.name={node_name}"));
    let service_cidrs = {
        let (client, tracker) = (client.clone(), tracker.clone());
        async move {
            if serves_service_cidrs(&client).await {
                watch_kind(
                    Api::<ServiceCIDR>::all(client),
                    base,
                    ObjectKind::ServiceCidrs,
                    tracker,
                    trimmed,
                    ChangeTracker::apply_service_cidr,
                )
                .await
            } else {
                tracing::info!(
                    "the API does not serve ServiceCIDRs; using --service-cluster-ip-range"
                );
            }
        }
    };
    tokio::join!(
        service_cidrs,
        watch_kind(
            Api::<Service>::all(client.clone()),
            proxied.clone(),
            ObjectKind::Services,
            tracker.clone(),
            trimmed,
            ChangeTracker::apply_service,
        ),
        watch_kind(
            Api::<EndpointSlice>::all(client.clone()),
            proxied,
            ObjectKind::EndpointSlices,
            tracker.clone(),
            {
                let mut node_names = NameInterner::default();
                move |slice: EndpointSlice| CompactSlice::new(&slice, &mut node_names)
            },
            ChangeTracker::apply_slice,
        ),
        watch_kind(
            Api::<Node>::all(client),
            this_node,
            ObjectKind::Node,
            tracker,
            trimmed,
            // A server that ignores the field selector sends every Node: keep only ours.
            move |t: &ChangeTracker, change: Change<Node>| {
                let ours = |n: &Node| n.metadata.name.as_deref() == Some(node_name.as_str());
                match change {
                    Change::Apply(n) | Change::Delete(n) if !ours(&n) => {}
                    Change::Replace(list) => {
                        t.apply_node(Change::Replace(list.into_iter().filter(ours).collect()))
                    }
                    other => t.apply_node(other),
                }
            },
        ),
    );
}

/// Whether the API serves networking.k8s.io/v1 ServiceCIDRs (GA since Kubernetes 1.33).
async fn serves_service_cidrs(client: &Client) -> bool {
    match client
        .list_api_group_resources("networking.k8s.io/v1")
        .await
    {
        Ok(list) => list.resources.iter().any(|r| r.name == "servicecidrs"),
        Err(e) => {
            tracing::debug!("discovering networking.k8s.io/v1: {e}");
            false
        }
    }
}

/// An object with what the proxy does not use cleared.
fn trimmed<K: Trim>(mut object: K) -> K {
    object.trim();
    object
}

/// Watches one kind, reducing each object with `reduce` as it arrives and handing changes to `apply`.
async fn watch_kind<K, T, R, F>(
    api: Api<K>,
    config: watcher::Config,
    kind: ObjectKind,
    tracker: Arc<ChangeTracker>,
    mut reduce: R,
    apply: F,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    R: FnMut(K) -> T,
    F: Fn(&ChangeTracker, Change<T>),
{
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut buffer: Vec<T> = Vec::new();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(?kind, %error, "watch failed; retrying with backoff");
                continue;
            }
        };
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(obj) => buffer.push(reduce(obj)),
            Event::InitDone => {
                tracing::debug!(?kind, objects = buffer.len(), "initial list done");
                apply(&tracker, Change::Replace(std::mem::take(&mut buffer)));
            }
            Event::Apply(obj) => apply(&tracker, Change::Apply(reduce(obj))),
            Event::Delete(obj) => apply(&tracker, Change::Delete(reduce(obj))),
        }
    }
    tracing::error!(?kind, "watch stream ended unexpectedly");
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;

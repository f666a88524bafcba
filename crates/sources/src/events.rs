//! Kubernetes Events kube-proxy posts about itself (events.k8s.io/v1, through kube-runtime's recorder).
//!
//! As upstream: a Normal `Starting` event on this node's Node object at start-up, and a Warning
//! `FailedToStartServiceHealthcheck` on a Service whose health-check node port could not be bound. Events are
//! reported by controller `kube-proxy` with this node's name as the instance. Posting an event is best effort:
//! callers log the error and carry on; nothing here retries or blocks the proxy.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The reporting controller name upstream's kube-proxy uses.
pub const REPORTING_CONTROLLER: &str = "kube-proxy";

/// Why an event could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API server refused or did not answer the event's create (or patch) request.
    #[error("posting the {reason} event: {source}")]
    PublishEvent {
        reason: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Posts kube-proxy's events for one node.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
    node_name: String,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder posting through `client` as controller `kube-proxy`, instance `node_name`.
    pub fn new(client: kube::Client, node_name: impl Into<String>) -> EventRecorder {
        let node_name = node_name.into();
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_string(),
            instance: Some(node_name.clone()),
        };
        EventRecorder {
            recorder: Recorder::new(client, reporter),
            node_name,
        }
    }

    /// The reference upstream uses for its own node: kind Node, the name also serving as UID, no namespace (the
    /// event itself lands in `default`).
    pub fn node_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.node_name.clone()),
            uid: Some(self.node_name.clone()),
            ..ObjectReference::default()
        }
    }

    /// Normal event `Starting` (action `StartKubeProxy`) on this node, posted once at start-up.
    pub async fn node_starting(&self) -> Result<(), EventError> {
        let event = Event {
            type_: EventType::Normal,
            reason: "Starting".into(),
            note: None,
            action: "StartKubeProxy".into(),
            secondary: None,
        };
        self.publish("Starting", &event, &self.node_reference())
            .await
    }

    /// Warning event `FailedToStartServiceHealthcheck` (action `Listen`) on Service `namespace/name`, whose
    /// health-check node `port` could not be bound because of `error`.
    pub async fn health_check_port_failed(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        error: &str,
    ) -> Result<(), EventError> {
        let service = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            uid: Some(format!("{namespace}/{name}")),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "FailedToStartServiceHealthcheck".into(),
            note: Some(format!(
                "node {} failed to start healthcheck \"{namespace}/{name}\" on port {port}: {error}",
                self.node_name
            )),
            action: "Listen".into(),
            secondary: None,
        };
        self.publish("FailedToStartServiceHealthcheck", &event, &service)
            .await
    }

    async fn publish(
        &self,
        reason: &'static str,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), EventError> {
        self.recorder
            .publish(event, regarding)
            .await
            .map_err(|source| EventError::PublishEvent { reason, source })
    }
}

#[cfg(test)]
mod tests {
    use kube_proxy_testkit::apiserver::ApiServer;

    use super::*;

    #[tokio::test]
    async fn posts_node_starting_and_failed_health_check_events() {
        let server = ApiServer::start().await.unwrap();
        let rec = EventRecorder::new(server.client(), "node-1");

        rec.node_starting().await.unwrap();
        rec.health_check_port_failed("store", "shop", 32100, "address already in use")
            .await
            .unwrap();

        let events = server.events();
        assert_eq!(events.len(), 2, "{events:#?}");
        let start = &events[0];
        assert_eq!(start["apiVersion"], "events.k8s.io/v1");
        assert_eq!(start["type"], "Normal");
        assert_eq!(start["reason"], "Starting");
        assert_eq!(start["action"], "StartKubeProxy");
        assert_eq!(start["reportingController"], "kube-proxy");
        assert_eq!(start["reportingInstance"], "node-1");
        assert_eq!(start["regarding"]["kind"], "Node");
        assert_eq!(start["regarding"]["name"], "node-1");
        assert_eq!(start["metadata"]["namespace"], "default");

        let hc = &events[1];
        assert_eq!(hc["type"], "Warning");
        assert_eq!(hc["reason"], "FailedToStartServiceHealthcheck");
        assert_eq!(hc["action"], "Listen");
        assert_eq!(hc["regarding"]["kind"], "Service");
        assert_eq!(hc["regarding"]["namespace"], "store");
        assert_eq!(hc["regarding"]["name"], "shop");
        assert_eq!(hc["metadata"]["namespace"], "store");
        assert_eq!(
            hc["note"],
            "node node-1 failed to start healthcheck \"store/shop\" on port 32100: address already in use"
        );
    }

    #[tokio::test]
    async fn a_refused_post_is_a_typed_error() {
        let server = ApiServer::start().await.unwrap();
        let rec = EventRecorder::new(server.client(), "node-1");
        server.fail_requests(10);
        let err = rec.node_starting().await.unwrap_err();
        assert!(
            matches!(
                err,
                EventError::PublishEvent {
                    reason: "Starting",
                    ..
                }
            ),
            "{err}"
        );
        assert!(server.events().is_empty());
    }
}

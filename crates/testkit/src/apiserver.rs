//! A small in-process Kubernetes API server for tests: list/watch of Services, EndpointSlices, Nodes and
//! ServiceCIDRs over real HTTP, good enough for kube-rs' `watcher` and client-go style clients.
//!
//! It keeps objects as JSON under one global, monotonically increasing resourceVersion, keeps a bounded
//! change history (watches from compacted RVs get a 410 `ERROR` event), supports label/field selectors,
//! bookmarks, paginated lists (`limit`/`continue`), `sendInitialEvents` streaming lists and `timeoutSeconds`,
//! and stores posted Events. Tests drive
//! it through [`ApiServer`]: apply/delete objects, compact history, drop watch connections, inject 500s,
//! read the request log. PUT/POST/DELETE on the resource paths do the same over HTTP. Not for production.

mod kinds;
mod paging;
mod routes;
mod selector;
mod store;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use kinds::Kind;
pub use selector::{FieldSelector, LabelSelector};
pub use store::StoreError;

/// Errors of the test API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Binding the listening socket failed.
    #[error("binding the API server socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The object given to `apply` could not be turned into JSON.
    #[error("serializing the object to apply: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The object could not be stored (unknown kind, no name).
    #[error("storing the object: {0}")]
    Store(#[from] StoreError),
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

impl RequestRecord {
    /// Whether this was a `watch=true` request.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|v| v == "true" || v == "1")
    }

    /// Whether this was a plain list (GET of a collection without `watch`), for `path`.
    pub fn is_list_of(&self, path: &str) -> bool {
        self.method == "GET" && self.path == path && !self.is_watch()
    }
}

/// Settings of a test API server.
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How often open watches that allow bookmarks get a BOOKMARK event.
    pub bookmark_interval: Duration,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_millis(500),
        }
    }
}

/// State shared by the handle and the HTTP handlers.
pub(crate) struct Shared {
    store: Mutex<store::Store>,
    events: Mutex<Vec<Value>>,
    requests: Mutex<Vec<RequestRecord>>,
    fail_next: AtomicUsize,
    /// Cancelled (and replaced) by `drop_watches`.
    cancel: Mutex<CancellationToken>,
    open_watches: AtomicUsize,
    bookmark_interval: Duration,
}

/// A running test API server; dropping it stops the server.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with a free port. Needs a tokio runtime.
    pub async fn start() -> Result<ApiServer, ApiServerError> {
        Self::start_with(ApiServerOptions::default()).await
    }

    /// Starts a server with explicit options.
    pub async fn start_with(opts: ApiServerOptions) -> Result<ApiServer, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(ApiServerError::Bind)?;
        Self::serve(listener, opts)
    }

    /// Starts a server on an already bound listener (e.g. one bound inside a network namespace);
    /// `opts.addr` is ignored.
    pub async fn start_on(
        listener: std::net::TcpListener,
        opts: ApiServerOptions,
    ) -> Result<ApiServer, ApiServerError> {
        listener
            .set_nonblocking(true)
            .map_err(ApiServerError::Bind)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(ApiServerError::Bind)?;
        Self::serve(listener, opts)
    }

    fn serve(
        listener: tokio::net::TcpListener,
        opts: ApiServerOptions,
    ) -> Result<ApiServer, ApiServerError> {
        let addr = listener.local_addr().map_err(ApiServerError::Bind)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new()),
            events: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            fail_next: AtomicUsize::new(0),
            cancel: Mutex::new(CancellationToken::new()),
            open_watches: AtomicUsize::new(0),
            bookmark_interval: opts.bookmark_interval,
        });
        let app = axum::Router::new()
            .fallback(routes::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "test API server stopped");
            }
        });
        Ok(ApiServer { shared, addr, task })
    }

    /// The base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("server URL is a valid URI"));
        kube::Client::try_from(config).expect("kube client for a plain-HTTP URL")
    }

    /// Creates or updates an object (a k8s-openapi type or a `serde_json::Value` with apiVersion/kind).
    /// Returns the stored object with its new resourceVersion.
    pub fn apply<T: Serialize>(&self, obj: &T) -> Result<Value, ApiServerError> {
        let value = serde_json::to_value(obj).map_err(ApiServerError::Serialize)?;
        Ok(self.store().apply(value, None)?)
    }

    /// Deletes an object; returns whether it existed. `ns` is ignored for cluster-scoped kinds.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> bool {
        self.store().delete(kind, ns, name).is_some()
    }

    /// Forgets the change history: every resourceVersion handed out so far becomes too old, so a watch
    /// resuming from one gets an `ERROR` event with a 410 Status (and kube's watcher relists).
    pub fn compact(&self) {
        self.store().compact();
    }

    /// Breaks every open watch connection mid-stream (clients see an aborted body).
    pub fn drop_watches(&self) {
        let mut cancel = self.shared.cancel.lock().expect("cancel lock");
        cancel.cancel();
        *cancel = CancellationToken::new();
    }

    /// Makes the next `n` non-control requests (everything but PUT/DELETE) fail with 500.
    pub fn fail_requests(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// How many injected failures are still to come.
    pub fn pending_failures(&self) -> usize {
        self.shared.fail_next.load(Ordering::SeqCst)
    }

    /// Events posted to `/api/v1/.../events` or `/apis/events.k8s.io/v1/.../events`.
    pub fn events(&self) -> Vec<Value> {
        self.shared.events.lock().expect("events lock").clone()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("requests lock").clear();
    }

    /// The number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().rv
    }

    /// The stored objects of a kind.
    pub fn objects(&self, kind: Kind) -> Vec<Value> {
        self.store().list(kind, None)
    }

    /// Waits (polling every 10 ms) until `pred` holds for the request log. No deadline: wrap in a test timeout.
    pub async fn wait_for_requests(&self, pred: impl Fn(&[RequestRecord]) -> bool) {
        loop {
            if pred(&self.shared.requests.lock().expect("requests lock")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, store::Store> {
        self.shared.store.lock().expect("store lock")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.cancel.lock().expect("cancel lock").cancel();
        self.task.abort();
    }
}

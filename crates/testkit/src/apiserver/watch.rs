//! Watch requests: the newline-delimited JSON event stream (`ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`/`ERROR`).
//!
//! A watch starts from a resourceVersion (replaying the history after it, or `410 Gone` when that history was
//! compacted away), or with the current objects as `ADDED` events (no RV, RV "0", or `sendInitialEvents=true`,
//! the latter ending with a bookmark annotated `k8s.io/initial-events-end`). It then follows the store's
//! broadcast. Objects entering or leaving the selector are sent as ADDED / DELETED, as the real server does.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::kinds::Kind;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Change, EventType};
use super::Shared;

/// What a watch request asked for.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
}

impl WatchRequest {
    /// Whether an object (of this request's kind) is visible to the watch.
    pub fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(ns) => obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns),
            None => true,
        };
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watch should see for a change, if any.
    fn translate(&self, change: &Change) -> Option<(&'static str, Value)> {
        if change.kind != self.kind {
            return None;
        }
        let was = change.old.as_ref().is_some_and(|o| self.matches(o));
        match change.etype {
            EventType::Deleted => was.then(|| ("DELETED", change.new.clone())),
            EventType::Added | EventType::Modified => {
                let is = self.matches(&change.new);
                match (was, is) {
                    (true, true) => Some(("MODIFIED", change.new.clone())),
                    (false, true) => Some(("ADDED", change.new.clone())),
                    (true, false) => Some(("DELETED", change.new.clone())),
                    (false, false) => None,
                }
            }
        }
    }
}

fn line(etype: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": etype, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": meta}),
    )
}

/// The `Status` object of a 410 Gone watch error.
pub fn gone_status(requested: &str, oldest: u64) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired", "code": 410
    })
}

type Chunk = Result<Bytes, std::io::Error>;

/// Starts a watch and returns the streaming response.
pub fn start(shared: Arc<Shared>, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Chunk>(256);
    let mut initial = Vec::new();
    let (sub, current_rv) = {
        let store = shared.store.lock().expect("store lock");
        let rv_param = req.resource_version.as_deref().unwrap_or("");
        let from_state = req.send_initial_events || rv_param.is_empty() || rv_param == "0";
        if from_state {
            for obj in store.list(req.kind, req.namespace.as_deref()) {
                if req.matches(&obj) {
                    initial.push(line("ADDED", &obj));
                }
            }
        } else {
            let from: u64 = rv_param.parse().unwrap_or(0);
            if from < store.oldest_valid_rv {
                initial.push(line("ERROR", &gone_status(rv_param, store.oldest_valid_rv)));
                drop(store);
                finish_with(tx, initial);
                return stream_response(rx);
            }
            for change in store.history.iter().filter(|c| c.rv > from) {
                if let Some((t, obj)) = req.translate(change) {
                    initial.push(line(t, &obj));
                }
            }
        }
        if req.send_initial_events {
            initial.push(bookmark(req.kind, store.rv, true));
        }
        (store.tx.subscribe(), store.rv)
    };
    let cancel = shared.cancel.lock().expect("cancel lock").clone();
    let interval = shared.bookmark_interval;
    let shared2 = shared.clone();
    tokio::spawn(async move {
        shared2.open_watches.fetch_add(1, Ordering::SeqCst);
        follow(req, tx, initial, sub, current_rv, cancel, interval).await;
        shared2.open_watches.fetch_sub(1, Ordering::SeqCst);
    });
    stream_response(rx)
}

fn finish_with(tx: mpsc::Sender<Chunk>, lines: Vec<Bytes>) {
    for l in lines {
        // The channel is fresh and large enough for a single error line.
        let _ = tx.try_send(Ok(l));
    }
}

fn stream_response(rx: mpsc::Receiver<Chunk>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("static response parts")
}

async fn follow(
    req: WatchRequest,
    tx: mpsc::Sender<Chunk>,
    initial: Vec<Bytes>,
    mut sub: broadcast::Receiver<Arc<Change>>,
    mut last_rv: u64,
    cancel: tokio_util::sync::CancellationToken,
    bookmark_interval: Duration,
) {
    for l in initial {
        if tx.send(Ok(l)).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(bookmark_interval);
    ticker.tick().await;
    loop {
        let out = tokio::select! {
            _ = cancel.cancelled() => {
                // Abort the body mid-stream: the client sees a broken connection, not a clean end.
                let _ = tx.send(Err(std::io::Error::other("watch dropped by test"))).await;
                return;
            }
            _ = &mut deadline => return,
            _ = ticker.tick(), if req.bookmarks => bookmark(req.kind, last_rv, false),
            r = sub.recv() => match r {
                Ok(change) => {
                    last_rv = change.rv;
                    match req.translate(&change) {
                        Some((t, obj)) => line(t, &obj),
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Ok(line("ERROR", &gone_status(&last_rv.to_string(), last_rv)))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
        };
        if tx.send(Ok(out)).await.is_err() {
            return;
        }
    }
}

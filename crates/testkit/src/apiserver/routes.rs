//! HTTP routing of the test API server: path parsing, list/get/watch, apply (PUT/POST), delete, events and
//! discovery documents. Lists are paginated when the client asks (`limit`, see `paging`). Every request is
//! logged; `fail_requests` turns reads into 500s here.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::kinds::Kind;
use super::paging::{self, PageError};
use super::selector::{FieldSelector, LabelSelector};
use super::watch::{self, WatchRequest};
use super::{RequestRecord, Shared};

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .expect("static response parts")
}

/// A `Status` failure response.
pub fn status(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

/// What a resource path names.
struct Target<'a> {
    group: &'a str,
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

fn parse_path(path: &str) -> Option<Target<'_>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (namespace, resource, name) = match rest {
        [r] => (None, *r, None),
        [r, n] => (None, *r, Some(*n)),
        ["namespaces", ns, r] => (Some(*ns), *r, None),
        ["namespaces", ns, r, n] => (Some(*ns), *r, Some(*n)),
        _ => return None,
    };
    Some(Target {
        group,
        resource,
        namespace,
        name,
    })
}

fn discovery(path: &str) -> Option<Value> {
    let res = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
               "verbs": ["create", "delete", "get", "list", "update", "watch"]})
    };
    let group = |g: &str| {
        json!({"name": g, "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}],
               "preferredVersion": {"groupVersion": format!("{g}/v1"), "version": "v1"}})
    };
    Some(match path {
        "/version" => json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-testkit",
                             "platform": "linux/amd64", "goVersion": "go1.25", "compiler": "gc",
                             "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z"}),
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        }
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            group("discovery.k8s.io"), group("networking.k8s.io"), group("events.k8s.io")]}),
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            res("services", "Service", true), res("nodes", "Node", false), res("events", "Event", true)]}),
        "/apis/discovery.k8s.io/v1" => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "discovery.k8s.io/v1", "resources": [res("endpointslices", "EndpointSlice", true)]}),
        "/apis/networking.k8s.io/v1" => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "networking.k8s.io/v1", "resources": [res("servicecidrs", "ServiceCIDR", false)]}),
        "/apis/events.k8s.io/v1" => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "events.k8s.io/v1", "resources": [res("events", "Event", true)]}),
        _ => return None,
    })
}

/// The single handler behind every path.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let path = uri.path().to_string();
    shared
        .requests
        .lock()
        .expect("requests lock")
        .push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
    let is_control = method == Method::PUT || method == Method::DELETE;
    if !is_control
        && shared
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return status(500, "InternalError", "injected failure (fail_requests)");
    }
    if method == Method::GET {
        if let Some(doc) = discovery(&path) {
            return json_response(200, &doc);
        }
    }
    let Some(t) = parse_path(&path) else {
        return status(404, "NotFound", &format!("no route for {path}"));
    };
    if t.resource == "events" && (t.group.is_empty() || t.group == "events.k8s.io") {
        return events(&shared, &method, &t, &body);
    }
    let Some(kind) = Kind::from_path(t.group, t.resource) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource {path}"),
        );
    };
    let ns = if kind.namespaced() { t.namespace } else { None };
    match (method.clone(), t.name) {
        (Method::GET, None) => {
            let labels =
                match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
                    Ok(s) => s,
                    Err(e) => return status(400, "BadRequest", &e),
                };
            let fields =
                match FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)) {
                    Ok(s) => s,
                    Err(e) => return status(400, "BadRequest", &e),
                };
            let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
            let req = WatchRequest {
                kind,
                namespace: ns.map(str::to_string),
                labels,
                fields,
                resource_version: query.get("resourceVersion").cloned(),
                send_initial_events: flag("sendInitialEvents"),
                bookmarks: flag("allowWatchBookmarks"),
                timeout: Duration::from_secs(
                    query
                        .get("timeoutSeconds")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(1800),
                ),
            };
            if flag("watch") {
                return watch::start(shared, req);
            }
            let store = shared.store.lock().expect("store lock");
            let matching: Vec<&Value> = store.iter(kind, ns).filter(|o| req.matches(o)).collect();
            let limit = query.get("limit").map(String::as_str);
            let token = query.get("continue").map(String::as_str);
            let (items, next) = match paging::page(matching, limit, token, store.rv) {
                Ok(page) => page,
                Err(PageError::Invalid(e)) => return status(400, "BadRequest", &e),
                Err(PageError::Expired(e)) => return status(410, "Expired", &e),
            };
            let mut metadata = json!({"resourceVersion": store.rv.to_string()});
            if let Some(next) = next {
                metadata["continue"] = json!(next);
            }
            json_response(
                200,
                &json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(),
                        "metadata": metadata, "items": items}),
            )
        }
        (Method::GET, Some(name)) => {
            let store = shared.store.lock().expect("store lock");
            let key = (kind, ns.unwrap_or("").to_string(), name.to_string());
            match store.objects.get(&key) {
                Some(o) => json_response(200, o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.resource),
                ),
            }
        }
        (Method::PUT | Method::POST | Method::PATCH, _) => {
            let mut obj = match parse_body(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e),
            };
            if obj.get("kind").is_none_or(Value::is_null) {
                obj["kind"] = json!(kind.kind());
                obj["apiVersion"] = json!(kind.api_version());
            }
            if let (Some(name), None) = (t.name, obj.pointer("/metadata/name")) {
                obj["metadata"]["name"] = json!(name);
            }
            let created = !shared
                .store
                .lock()
                .expect("store lock")
                .objects
                .contains_key(&(
                    kind,
                    ns.unwrap_or("").to_string(),
                    obj.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ));
            match shared.store.lock().expect("store lock").apply(obj, ns) {
                Ok(stored) => json_response(if created { 201 } else { 200 }, &stored),
                Err(e) => status(422, "Invalid", &e.to_string()),
            }
        }
        (Method::DELETE, Some(name)) => {
            match shared
                .store
                .lock()
                .expect("store lock")
                .delete(kind, ns.unwrap_or(""), name)
            {
                Some(o) => json_response(200, &o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.resource),
                ),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            &format!("{method} not supported on {path}"),
        ),
    }
}

/// A request body as JSON, or YAML for hand-written `curl --data-binary @obj.yaml` calls.
fn parse_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).or_else(|json_err| {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|yaml_err| format!("body is neither JSON ({json_err}) nor YAML ({yaml_err})"))
    })
}

fn events(shared: &Shared, method: &Method, t: &Target<'_>, body: &Bytes) -> Response {
    if *method == Method::POST || *method == Method::PUT || *method == Method::PATCH {
        let mut ev: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", &format!("body is not JSON: {e}")),
        };
        if let Some(ns) = t.namespace {
            if ev.pointer("/metadata/namespace").is_none() && ev["metadata"].is_object() {
                ev["metadata"]["namespace"] = json!(ns);
            }
        }
        shared.events.lock().expect("events lock").push(ev.clone());
        return json_response(201, &ev);
    }
    if *method == Method::GET {
        let items = shared.events.lock().expect("events lock").clone();
        let rv = shared.store.lock().expect("store lock").rv;
        return json_response(
            200,
            &json!({"kind": "EventList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        );
    }
    status(405, "MethodNotAllowed", "events support POST and GET only")
}

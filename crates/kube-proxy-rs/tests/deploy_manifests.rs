//! Checks the deployment files under deploy/ and the Containerfile: every YAML parses, API versions and kinds
//! are the expected ones, RBAC is exactly the least privilege kube-proxy needs, the DaemonSet has kube-proxy's
//! invariants, the Helm chart only references values it defines, and the KubeProxyConfiguration in the
//! ConfigMap (plain and Helm-rendered with default values) is accepted by the binary's own config loader with
//! no warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn chart() -> PathBuf {
    deploy().join("helm/kube-proxy-rs")
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_template(p: &Path) -> bool {
    p.components().any(|c| c.as_os_str() == "templates")
}

fn parse_docs(text: &str, what: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{what} does not parse: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// All objects of deploy/manifests, in file order.
fn manifests() -> Vec<Value> {
    let files = yaml_files(&deploy().join("manifests"));
    assert!(!files.is_empty(), "no manifests under deploy/manifests");
    files
        .iter()
        .flat_map(|f| parse_docs(&read(f), &f.display().to_string()))
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v}"))
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

/// A ConfigMap's `data` entry (keys contain dots, so not through [`at`]).
fn data<'a>(cm: &'a Value, key: &str) -> &'a str {
    cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap has no data key {key}"))
}

fn object<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found[0]
}

const EXPECTED_KINDS: &[(&str, &str)] = &[
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("apps/v1", "DaemonSet"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
];

#[test]
fn every_yaml_under_deploy_parses() {
    let files = yaml_files(&deploy());
    let plain: Vec<&PathBuf> = files.iter().filter(|f| !is_template(f)).collect();
    // manifests (4) + Chart.yaml + values.yaml at least.
    assert!(plain.len() >= 6, "{plain:?}");
    for f in plain {
        let docs = parse_docs(&read(f), &f.display().to_string());
        assert!(!docs.is_empty(), "{} is empty", f.display());
    }
}

#[test]
fn manifests_have_the_expected_api_versions_and_kinds() {
    let objs = manifests();
    let got: BTreeSet<(String, String)> = objs
        .iter()
        .map(|o| {
            (
                str_at(o, "apiVersion").to_string(),
                str_at(o, "kind").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = EXPECTED_KINDS
        .iter()
        .map(|(a, k)| (a.to_string(), k.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(objs.len(), EXPECTED_KINDS.len(), "one object of each kind");
    for o in &objs {
        assert_eq!(str_at(o, "metadata.name"), "kube-proxy-rs");
        let cluster_scoped = matches!(
            o["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        if cluster_scoped {
            assert!(o["metadata"]["namespace"].is_null(), "{o}");
        } else {
            assert_eq!(str_at(o, "metadata.namespace"), "kube-system", "{o}");
        }
    }
}

/// (apiGroup, resource) → verbs granted by a ClusterRole, with lists expanded.
fn grants(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for rule in role["rules"].as_array().unwrap() {
        assert!(
            rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(),
            "{rule}"
        );
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                out.entry((g.clone(), r))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    out
}

fn expected_grants() -> BTreeMap<(String, String), BTreeSet<String>> {
    let e = |g: &str, r: &str, verbs: &[&str]| {
        (
            (g.to_string(), r.to_string()),
            verbs.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>(),
        )
    };
    BTreeMap::from([
        e("", "services", &["list", "watch"]),
        e("discovery.k8s.io", "endpointslices", &["list", "watch"]),
        e("", "nodes", &["get", "list", "watch"]),
        e("networking.k8s.io", "servicecidrs", &["list", "watch"]),
        e("", "events", &["create", "patch", "update"]),
        e("events.k8s.io", "events", &["create", "patch", "update"]),
    ])
}

#[test]
fn rbac_is_exactly_least_privilege() {
    let objs = manifests();
    let role = object(&objs, "ClusterRole");
    let got = grants(role);
    assert_eq!(got, expected_grants());
    let text = role.to_string();
    assert!(!text.contains('*'), "no wildcards: {text}");
    assert!(!text.contains("secrets"), "no secrets: {text}");

    let binding = object(&objs, "ClusterRoleBinding");
    assert_eq!(
        str_at(binding, "roleRef.apiGroup"),
        "rbac.authorization.k8s.io"
    );
    assert_eq!(str_at(binding, "roleRef.kind"), "ClusterRole");
    assert_eq!(
        str_at(binding, "roleRef.name"),
        str_at(role, "metadata.name")
    );
    let subjects = binding["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1);
    let sa = object(&objs, "ServiceAccount");
    assert_eq!(str_at(&subjects[0], "kind"), "ServiceAccount");
    assert_eq!(str_at(&subjects[0], "name"), str_at(sa, "metadata.name"));
    assert_eq!(
        str_at(&subjects[0], "namespace"),
        str_at(sa, "metadata.namespace")
    );
    let ds = object(&objs, "DaemonSet");
    assert_eq!(
        str_at(ds, "spec.template.spec.serviceAccountName"),
        str_at(sa, "metadata.name")
    );
}

/// The single container of the DaemonSet.
fn container(ds: &Value) -> &Value {
    let cs = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    &cs[0]
}

/// The container's command line (command + args).
fn command_line(c: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|k| c[*k].as_array())
        .flatten()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn mount<'a>(c: &'a Value, path: &str) -> &'a Value {
    c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("no mount at {path}"))
}

fn volume<'a>(ds: &'a Value, name: &str) -> &'a Value {
    ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn daemonset_has_kube_proxy_invariants() {
    let objs = manifests();
    let ds = object(&objs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(str_at(pod, "priorityClassName"), "system-node-critical");
    assert_eq!(str_at(ds, "spec.updateStrategy.type"), "RollingUpdate");
    let tolerations = pod["tolerations"].as_array().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "tolerates every taint: {tolerations:?}"
    );
    // The selector selects the pod template.
    let selector = ds["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }

    let c = container(ds);
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(!str_at(c, "image").is_empty());
    // NODE_NAME from the downward API, passed as --hostname-override.
    let env = c["env"].as_array().unwrap();
    let node_name = env
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME env");
    assert_eq!(
        str_at(node_name, "valueFrom.fieldRef.fieldPath"),
        "spec.nodeName"
    );
    let cmd = command_line(c);
    assert!(
        cmd.contains(&"--hostname-override=$(NODE_NAME)".to_string()),
        "{cmd:?}"
    );

    // The usual kube-proxy mounts.
    let lock = mount(c, "/run/xtables.lock");
    let lock_vol = volume(ds, str_at(lock, "name"));
    assert_eq!(str_at(lock_vol, "hostPath.path"), "/run/xtables.lock");
    assert_eq!(str_at(lock_vol, "hostPath.type"), "FileOrCreate");
    assert_ne!(lock["readOnly"], true, "the lock must be writable");
    let modules = mount(c, "/lib/modules");
    assert_eq!(modules["readOnly"], true);
    assert_eq!(
        str_at(volume(ds, str_at(modules, "name")), "hostPath.path"),
        "/lib/modules"
    );

    // --config points into the ConfigMap's mount, at a key the ConfigMap has.
    let cm = object(&objs, "ConfigMap");
    let (dir, key) = config_path(&cmd);
    let cfg_mount = mount(c, &dir);
    let cfg_vol = volume(ds, str_at(cfg_mount, "name"));
    assert_eq!(
        str_at(cfg_vol, "configMap.name"),
        str_at(cm, "metadata.name")
    );
    assert!(cm["data"][&key].is_string(), "ConfigMap has no key {key}");
}

/// Splits `--config=/dir/key` into (dir, key).
fn config_path(cmd: &[String]) -> (String, String) {
    let path = cmd
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config=PATH in the command");
    let (dir, key) = path.rsplit_once('/').unwrap();
    (dir.to_string(), key.to_string())
}

/// Loads the ConfigMap's files with the DaemonSet's command line, paths moved into a temporary directory.
fn load_like_the_daemonset(cm: &Value, ds: &Value) -> kube_proxy_config::Loaded {
    let tmp = tempfile::tempdir().unwrap();
    for (key, text) in cm["data"].as_object().unwrap() {
        std::fs::write(tmp.path().join(key), text.as_str().unwrap()).unwrap();
    }
    let cmd = command_line(container(ds));
    let (dir, _) = config_path(&cmd);
    let tmp_dir = tmp.path().to_str().unwrap();
    let args: Vec<String> = std::iter::once("kube-proxy".to_string())
        .chain(cmd.iter().skip(1).map(|a| {
            a.replace("$(NODE_NAME)", "Worker-1")
                .replace(&format!("{dir}/"), &format!("{tmp_dir}/"))
        }))
        .collect();
    kube_proxy_config::load(&args).unwrap_or_else(|e| panic!("loader rejects {args:?}: {e}"))
}

/// Checks a ConfigMap's config.conf and kubeconfig.conf against the binary's loaders.
fn assert_config_map_accepted(cm: &Value, ds: &Value) {
    let (dir, key) = config_path(&command_line(container(ds)));
    let text = data(cm, &key);
    let decoded = kube_proxy_config::decode_config(text).expect("config.conf decodes");
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert_eq!(decoded.config.kind, "KubeProxyConfiguration");
    assert_eq!(
        decoded.config.api_version,
        "kubeproxy.config.k8s.io/v1alpha1"
    );

    let loaded = load_like_the_daemonset(cm, ds);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let cfg = &loaded.config;
    assert_eq!(cfg.hostname_override.as_deref(), Some("worker-1"));
    assert!(
        matches!(&cfg.detect_local, kube_proxy_config::DetectLocal::ClusterCidr(c) if !c.is_empty()),
        "{:?}",
        cfg.detect_local
    );
    assert!(kube_proxy_config::VALID_MODES.contains(&cfg.mode.as_str()));

    // The kubeconfig the config names is in the same ConfigMap and parses with the client library.
    let kubeconfig = decoded.config.client_connection.kubeconfig.clone();
    let (kdir, kkey) = kubeconfig.rsplit_once('/').expect("kubeconfig path");
    assert_eq!(kdir, dir, "kubeconfig is in the ConfigMap mount");
    let kc = kube::config::Kubeconfig::from_yaml(data(cm, kkey)).expect("kubeconfig parses");
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(
        user.token_file.as_deref(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    let server = cluster.server.as_deref().unwrap();
    assert!(server.starts_with("https://"), "{server}");
    assert!(
        !server.contains("kubernetes.default"),
        "kube-proxy must not reach the API server through a Service"
    );
}

#[test]
fn configmap_config_is_accepted_by_the_loader_without_warnings() {
    let objs = manifests();
    assert_config_map_accepted(object(&objs, "ConfigMap"), object(&objs, "DaemonSet"));
}

#[test]
fn the_loader_check_can_fail() {
    // Guard against a vacuous check: an unknown key must produce a warning, a bad mode an error.
    let objs = manifests();
    let cm = object(&objs, "ConfigMap");
    let text = data(cm, "config.conf");
    let with_unknown = format!("{text}notAField: 1\n");
    let d = kube_proxy_config::decode_config(&with_unknown).unwrap();
    assert!(!d.warnings.is_empty());
    assert!(text.contains("mode: iptables"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.conf");
    std::fs::write(&path, text.replace("mode: iptables", "mode: bogus")).unwrap();
    let args = [
        "kube-proxy".to_string(),
        format!("--config={}", path.display()),
    ];
    assert!(kube_proxy_config::load(&args).is_err());
}

// ---- Helm chart ----

fn values() -> Value {
    let docs = parse_docs(&read(&chart().join("values.yaml")), "values.yaml");
    docs.into_iter().next().unwrap()
}

fn templates() -> Vec<(PathBuf, String)> {
    let dir = chart().join("templates");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "tpl")))
        .map(|p| {
            let t = read(&p);
            (p, t)
        })
        .collect();
    out.sort();
    out
}

/// Every `.Values.a.b` path referenced in `text`.
fn value_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(".Values.") {
        let tail = &rest[i + ".Values.".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].trim_end_matches('.').to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn chart_metadata_and_values_parse() {
    let c = parse_docs(&read(&chart().join("Chart.yaml")), "Chart.yaml").remove(0);
    assert_eq!(c["apiVersion"], "v2");
    assert_eq!(c["name"], "kube-proxy-rs");
    assert!(c["version"].is_string() && c["appVersion"].is_string());
    let v = values();
    for key in [
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "mode",
        "clusterCIDR",
        "resources",
        "tolerations",
        "nodeSelector",
        "extraArgs",
    ] {
        assert!(!at(&v, key).is_null(), "values.yaml lacks {key}");
    }
    assert!(kube_proxy_config::VALID_MODES.contains(&v["mode"].as_str().unwrap()));
    assert!(v["extraArgs"].is_array() && v["tolerations"].is_array());
}

#[test]
fn chart_templates_reference_only_existing_values_and_use_them_all() {
    let v = values();
    let mut used = BTreeSet::new();
    for (path, text) in templates() {
        for r in value_refs(&text) {
            assert!(
                !at(&v, &r).is_null(),
                "{} references .Values.{r}, which values.yaml does not define",
                path.display()
            );
            used.insert(r.split('.').next().unwrap().to_string());
        }
    }
    let defined: BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(used, defined, "every top-level value is used by a template");
}

/// Renders this chart's templates with the Go-template constructs they use (`.Values` paths, `quote`,
/// `default .Chart.AppVersion`, `with`, `range`, `toYaml … | nindent N`, the labels `include`), enough to compare
/// the output with the plain manifests. Panics on anything else, so a new construct needs a look here.
struct Chart {
    values: Value,
    app_version: String,
}

impl Chart {
    fn load(values: Value) -> Chart {
        let c = parse_docs(&read(&chart().join("Chart.yaml")), "Chart.yaml").remove(0);
        Chart {
            values,
            app_version: c["appVersion"].as_str().unwrap().to_string(),
        }
    }

    fn render(&self, name: &str) -> Vec<Value> {
        let text = template(name);
        let lines: Vec<&str> = text.lines().collect();
        let mut out = String::new();
        self.lines(&lines, &Value::Null, &mut out);
        parse_docs(&out, &format!("rendered {name}:\n{out}"))
    }

    fn lines(&self, lines: &[&str], dot: &Value, out: &mut String) {
        let mut i = 0;
        while i < lines.len() {
            let t = lines[i].trim();
            let block = ["with", "range"]
                .into_iter()
                .find_map(|kw| Some((kw, t.strip_prefix(&format!("{{{{- {kw} "))?)));
            if let Some((kw, rest)) = block {
                let end = matching_end(lines, i);
                let val = self.eval(rest.trim_end_matches("}}").trim(), dot);
                let body = &lines[i + 1..end];
                if kw == "with" && truthy(&val) {
                    self.lines(body, &val, out);
                } else if kw == "range" {
                    for item in val.as_array().cloned().unwrap_or_default() {
                        self.lines(body, &item, out);
                    }
                }
                i = end + 1;
                continue;
            }
            if let Some((expr, n)) = t
                .strip_prefix("{{-")
                .and_then(|r| r.strip_suffix("}}"))
                .and_then(|r| r.split_once("| nindent "))
            {
                let n: usize = n.trim().parse().unwrap();
                let expr = expr.trim();
                let yaml = if expr.starts_with("include \"kube-proxy-rs.labels\"") {
                    "app.kubernetes.io/name: kube-proxy-rs".to_string()
                } else {
                    let e = expr.strip_prefix("toYaml ").expect("toYaml");
                    serde_saphyr::to_string(&self.eval(e, dot)).unwrap()
                };
                for l in yaml.trim_end().lines() {
                    out.push_str(&format!("{}{l}\n", " ".repeat(n)));
                }
                i += 1;
                continue;
            }
            out.push_str(&self.inline(lines[i], dot));
            out.push('\n');
            i += 1;
        }
    }

    fn inline(&self, line: &str, dot: &Value) -> String {
        let mut l = line.to_string();
        while let Some(start) = l.find("{{") {
            let end = l[start..].find("}}").expect("closed action") + start + 2;
            let action = l[start + 2..end - 2].trim().trim_start_matches('-').trim();
            let mut parts = action.split('|').map(str::trim);
            let first = parts.next().unwrap();
            let mut val = if first.starts_with("include (print $.Template.BasePath") {
                "checksum".to_string()
            } else {
                scalar(&self.eval(first, dot))
            };
            for f in parts {
                val = match f {
                    "quote" => format!("{val:?}"),
                    "sha256sum" => val,
                    "default .Chart.AppVersion" if val.is_empty() => self.app_version.clone(),
                    "default .Chart.AppVersion" => val,
                    other => panic!("unknown filter {other}"),
                };
            }
            l.replace_range(start..end, &val);
        }
        l
    }

    fn eval(&self, expr: &str, dot: &Value) -> Value {
        if expr == "." {
            return dot.clone();
        }
        if expr == ".Chart.AppVersion" {
            return Value::String(self.app_version.clone());
        }
        let key = expr
            .strip_prefix(".Values.")
            .unwrap_or_else(|| panic!("cannot evaluate {expr}"));
        at(&self.values, key).clone()
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Index of the `{{- end }}` closing the block opened at `open`.
fn matching_end(lines: &[&str], open: usize) -> usize {
    let mut depth = 0;
    for (i, l) in lines.iter().enumerate().skip(open) {
        let t = l.trim();
        if ["{{- with ", "{{- range ", "{{- if "]
            .iter()
            .any(|p| t.starts_with(p))
        {
            depth += 1;
        } else if t == "{{- end }}" {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unclosed block at line {}", open + 1)
}

fn template(name: &str) -> String {
    read(&chart().join("templates").join(name))
}

#[test]
fn chart_renders_the_same_objects_as_the_manifests() {
    let v = values();
    let chart = Chart::load(v.clone());
    let objs = manifests();
    // The kinds the chart creates are the manifests' kinds.
    let mut kinds = BTreeSet::new();
    for (_, text) in templates() {
        for line in text.lines() {
            if let Some(k) = line.strip_prefix("kind: ") {
                kinds.insert(k.trim().to_string());
            }
        }
    }
    let want: BTreeSet<String> = EXPECTED_KINDS.iter().map(|(_, k)| k.to_string()).collect();
    assert_eq!(kinds, want);

    // RBAC and the ServiceAccount render to the very same objects (labels aside).
    let strip_labels = |mut o: Value| {
        o["metadata"].as_object_mut().unwrap().remove("labels");
        o
    };
    for (file, kinds) in [
        ("rbac.yaml", &["ClusterRole", "ClusterRoleBinding"][..]),
        ("serviceaccount.yaml", &["ServiceAccount"][..]),
    ] {
        let rendered = chart.render(file);
        for (kind, got) in kinds.iter().zip(rendered) {
            assert_eq!(
                strip_labels(got),
                strip_labels(object(&objs, kind).clone()),
                "{file}: {kind}"
            );
        }
    }
    assert_eq!(grants(&chart.render("rbac.yaml")[0]), expected_grants());

    // The ConfigMap rendered with the default values is accepted like the plain one.
    let cm = chart.render("configmap.yaml").remove(0);
    assert_config_map_accepted(&cm, object(&objs, "DaemonSet"));
    let loaded = load_like_the_daemonset(&cm, object(&objs, "DaemonSet"));
    assert_eq!(loaded.config.mode.as_str(), v["mode"].as_str().unwrap());
    assert_eq!(loaded.raw.cluster_cidr, v["clusterCIDR"].as_str().unwrap());

    // The DaemonSet renders to the plain one (labels and the config checksum annotation aside).
    let strip_ds = |o: Value| {
        let mut o = strip_labels(o);
        o["spec"]["template"]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        o
    };
    let ds = chart.render("daemonset.yaml").remove(0);
    assert_eq!(strip_ds(ds), strip_ds(object(&objs, "DaemonSet").clone()));
}

#[test]
fn chart_values_reach_the_daemonset_and_the_loader_accepts_them() {
    let mut v = values();
    v["extraArgs"] = serde_json::json!(["--v=4", "--iptables-backend=nft"]);
    v["image"]["tag"] = Value::String("1.2.3".into());
    v["nodeSelector"] = serde_json::json!({});
    v["mode"] = Value::String("nftables".into());
    let chart = Chart::load(v);
    let ds = chart.render("daemonset.yaml").remove(0);
    let c = container(&ds);
    assert_eq!(str_at(c, "image"), "kube-proxy-rs:1.2.3");
    assert!(
        ds["spec"]["template"]["spec"]["nodeSelector"].is_null(),
        "empty nodeSelector left out"
    );
    let cmd = command_line(c);
    assert_eq!(&cmd[cmd.len() - 2..], ["--v=4", "--iptables-backend=nft"]);
    let cm = chart.render("configmap.yaml").remove(0);
    let loaded = load_like_the_daemonset(&cm, &ds);
    assert_eq!(loaded.config.mode.as_str(), "nftables");
    assert_eq!(loaded.config.verbosity, 4);
}

#[test]
fn containerfile_is_multi_stage_with_the_dataplane_tools() {
    let text = read(&repo().join("Containerfile"));
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(
        froms[0].contains("rust:1") && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert!(froms[1].contains("debian:12-slim"), "{}", froms[1]);
    let install = text
        .lines()
        .find(|l| l.contains("apt-get install"))
        .expect("apt-get install");
    for pkg in ["iptables", "nftables", "conntrack", "ipset"] {
        assert!(
            install.split_whitespace().any(|w| w == pkg),
            "{pkg} not installed"
        );
    }
    assert!(text.contains("COPY --from=builder"));
    // The binary lands where the DaemonSet runs it.
    let objs = manifests();
    let bin = command_line(container(object(&objs, "DaemonSet"))).remove(0);
    assert!(
        text.contains(&format!(" {bin}\n")),
        "Containerfile does not install {bin}"
    );
}

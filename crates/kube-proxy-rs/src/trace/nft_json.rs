//! Reads table `kube-proxy` back from the kernel as `nft -j list table FAMILY kube-proxy` prints it and turns
//! it into the nftables crate's typed plan (a [`Transaction`] of `add` operations), so that the tracer walks
//! the live table exactly as it walks a rendered one. Only the expressions this mode programs are understood;
//! a rule with anything else is left out and named in the returned warnings.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context};
use ipnet::IpNet;
use kube_proxy_model::Protocol;
use kube_proxy_nftables::plan::*;
use serde_json::Value as J;

/// Parses the JSON listing of one table; returns the plan and warnings about rules left out.
pub fn parse(json: &str) -> anyhow::Result<(Transaction, Vec<String>)> {
    let doc: J = serde_json::from_str(json).context("nft -j output is not JSON")?;
    let items = doc["nftables"]
        .as_array()
        .ok_or_else(|| anyhow!("no `nftables` array in nft -j output"))?;
    let family = items
        .iter()
        .find_map(|i| i.get("table"))
        .and_then(|t| t["family"].as_str())
        .ok_or_else(|| anyhow!("no table in nft -j output"))?;
    let family = match family {
        "ip" => Family::Ip,
        "ip6" => Family::Ip6,
        other => bail!("unexpected table family {other}"),
    };
    let mut tx = Transaction::new(family);
    let mut warnings = Vec::new();
    let mut elements = Vec::new();
    for item in items {
        if let Some(c) = item.get("chain") {
            tx.ops.push(Op::AddChain(chain(c)?));
        } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let set = set(s)?;
            for e in s["elem"].as_array().into_iter().flatten() {
                elements.push(element(&set, e)?);
            }
            tx.ops.push(Op::AddSet(set));
        } else if let Some(r) = item.get("rule") {
            match rule(r) {
                Ok(r) => tx.ops.push(Op::AddRule(r)),
                Err(e) => warnings.push(format!(
                    "rule in chain {} left out: {e:#}",
                    r["chain"].as_str().unwrap_or("?")
                )),
            }
        }
    }
    tx.ops.extend(elements.into_iter().map(Op::AddElement));
    Ok((tx, warnings))
}

fn str_of<'a>(v: &'a J, what: &str) -> anyhow::Result<&'a str> {
    v.as_str()
        .ok_or_else(|| anyhow!("{what}: expected a string, got {v}"))
}

fn chain(c: &J) -> anyhow::Result<Chain> {
    let name = str_of(&c["name"], "chain name")?.to_string();
    let base = match c.get("hook").and_then(J::as_str) {
        None => None,
        Some(hook) => Some(BaseChain {
            chain_type: match c["type"].as_str() {
                Some("nat") => ChainType::Nat,
                _ => ChainType::Filter,
            },
            hook: match hook {
                "prerouting" => Hook::Prerouting,
                "input" => Hook::Input,
                "forward" => Hook::Forward,
                "output" => Hook::Output,
                "postrouting" => Hook::Postrouting,
                other => bail!("chain {name}: unknown hook {other}"),
            },
            priority: c["prio"].as_i64().unwrap_or(0) as i32,
        }),
    };
    Ok(Chain {
        name,
        base,
        comment: c["comment"].as_str().map(str::to_string),
    })
}

fn data_type(s: &str) -> anyhow::Result<DataType> {
    Ok(match s.trim() {
        "ipv4_addr" => DataType::Ipv4Addr,
        "ipv6_addr" => DataType::Ipv6Addr,
        "inet_proto" => DataType::InetProto,
        "inet_service" => DataType::InetService,
        "integer" => DataType::Slot,
        other => bail!("unknown data type {other}"),
    })
}

fn types(v: &J) -> anyhow::Result<Vec<DataType>> {
    match v {
        J::String(s) => s.split(" . ").map(data_type).collect(),
        J::Array(a) => a.iter().map(|t| data_type(str_of(t, "type")?)).collect(),
        other => bail!("unexpected set type {other}"),
    }
}

fn set(s: &J) -> anyhow::Result<Set> {
    let name = str_of(&s["name"], "set name")?.to_string();
    let key = types(&s["type"]).with_context(|| format!("set {name}"))?;
    let (verdict_map, data) = match s.get("map") {
        Some(J::String(m)) if m == "verdict" => (true, Vec::new()),
        Some(m) => (false, types(m).with_context(|| format!("map {name}"))?),
        None => (false, Vec::new()),
    };
    Ok(Set {
        name,
        key,
        verdict_map,
        data,
        timeout_secs: s["timeout"].as_u64().map(|t| t as u32),
        comment: s["comment"].as_str().map(str::to_string),
    })
}

fn values(v: &J, types: &[DataType]) -> anyhow::Result<Vec<Value>> {
    let parts: Vec<&J> = match v.get("concat") {
        Some(J::Array(a)) => a.iter().collect(),
        _ => vec![v],
    };
    if parts.len() != types.len() {
        bail!("element {v} does not fit its set's type");
    }
    parts
        .into_iter()
        .zip(types)
        .map(|(p, t)| {
            Ok(match t {
                DataType::Ipv4Addr | DataType::Ipv6Addr => {
                    Value::Addr(str_of(p, "address")?.parse()?)
                }
                DataType::InetProto => Value::Proto(protocol(p)?),
                DataType::InetService => Value::Port(number(p)? as u16),
                DataType::Slot => Value::Slot(number(p)? as u32),
            })
        })
        .collect()
}

fn number(v: &J) -> anyhow::Result<u64> {
    v.as_u64()
        .ok_or_else(|| anyhow!("expected a number, got {v}"))
}

fn protocol(v: &J) -> anyhow::Result<Protocol> {
    match v {
        J::String(s) => Protocol::from_k8s(&s.to_ascii_uppercase())
            .ok_or_else(|| anyhow!("unknown protocol {s}")),
        J::Number(n) => match n.as_u64() {
            Some(6) => Ok(Protocol::Tcp),
            Some(17) => Ok(Protocol::Udp),
            Some(132) => Ok(Protocol::Sctp),
            _ => bail!("unknown protocol {n}"),
        },
        other => bail!("unknown protocol {other}"),
    }
}

/// One element: a key (possibly `{"elem": {"val": KEY, "comment": ...}}`), or `[key, data]` in a map.
fn element(set: &Set, e: &J) -> anyhow::Result<Element> {
    let (key, data) = match e {
        J::Array(kv) if kv.len() == 2 => (&kv[0], Some(&kv[1])),
        other => (other, None),
    };
    let (key, comment) = match key.get("elem") {
        Some(inner) => (&inner["val"], inner["comment"].as_str().map(str::to_string)),
        None => (key, None),
    };
    let key = values(key, &set.key).with_context(|| format!("element of {}", set.name))?;
    let (verdict, data) = match data {
        None => (None, None),
        Some(d) if set.verdict_map => (Some(verdict(d)?), None),
        Some(d) => (None, Some(values(d, &set.data)?)),
    };
    Ok(Element {
        set: set.name.clone(),
        key,
        verdict,
        data,
        comment,
    })
}

fn verdict(v: &J) -> anyhow::Result<Verdict> {
    let target = |k: &str| -> anyhow::Result<String> {
        Ok(str_of(&v[k]["target"], "verdict target")?.to_string())
    };
    Ok(if v.get("accept").is_some() {
        Verdict::Accept
    } else if v.get("drop").is_some() {
        Verdict::Drop
    } else if v.get("return").is_some() {
        Verdict::Return
    } else if v.get("jump").is_some() {
        Verdict::Jump(target("jump")?)
    } else if v.get("goto").is_some() {
        Verdict::Goto(target("goto")?)
    } else {
        bail!("unknown verdict {v}")
    })
}

fn rule(r: &J) -> anyhow::Result<Rule> {
    let chain = str_of(&r["chain"], "rule chain")?;
    let mut stmts = Vec::new();
    for e in r["expr"].as_array().into_iter().flatten() {
        stmts.push(stmt(e)?);
    }
    Ok(Rule {
        chain: chain.to_string(),
        stmts,
        comment: r["comment"].as_str().map(str::to_string),
    })
}

fn addr_field(v: &J) -> Option<AddrField> {
    let p = v.get("payload")?;
    if !matches!(p["protocol"].as_str(), Some("ip" | "ip6")) {
        return None;
    }
    match p["field"].as_str()? {
        "saddr" => Some(AddrField::Saddr),
        "daddr" => Some(AddrField::Daddr),
        _ => None,
    }
}

fn meta_key(v: &J) -> Option<&str> {
    v.get("meta")?.get("key")?.as_str()
}

fn stmt(e: &J) -> anyhow::Result<Stmt> {
    if let Some(m) = e.get("match") {
        return Ok(Stmt::Match(match_expr(m)?));
    }
    if e.get("counter").is_some() {
        return Ok(Stmt::Counter);
    }
    if let Some(m) = e.get("mangle") {
        if meta_key(&m["key"]) == Some("mark") {
            if let Some(J::Array(a)) = m["value"].get("|") {
                return Ok(Stmt::MarkOr(number(&a[1])? as u32));
            }
            if let Some(J::Array(a)) = m["value"].get("^") {
                return Ok(Stmt::MarkXor(number(&a[1])? as u32));
            }
        }
        bail!("unsupported statement {e}");
    }
    if let Some(s) = e.get("set") {
        if s["op"].as_str() == Some("update") && addr_field(&s["elem"]) == Some(AddrField::Saddr) {
            let set = str_of(&s["set"], "set")?
                .trim_start_matches('@')
                .to_string();
            return Ok(Stmt::UpdateSaddr { set });
        }
        bail!("unsupported statement {e}");
    }
    if let Some(d) = e.get("dnat") {
        let addr = &d["addr"];
        if let Some(map) = addr.get("map") {
            let ng = &map["key"]["numgen"];
            return Ok(Stmt::DnatNumgenMap {
                modulus: number(&ng["mod"])? as u32,
                offset: ng["offset"].as_u64().unwrap_or(0) as u32,
                map: str_of(&map["data"], "map")?
                    .trim_start_matches('@')
                    .to_string(),
            });
        }
        let ip: IpAddr = str_of(addr, "dnat address")?.parse()?;
        return Ok(Stmt::Dnat {
            addr: ip,
            port: number(&d["port"])? as u16,
        });
    }
    if let Some(m) = e.get("masquerade") {
        let flags = m.get("flags").map(|f| f.to_string()).unwrap_or_default();
        return Ok(Stmt::Masquerade {
            fully_random: flags.contains("fully-random"),
        });
    }
    if e.get("reject").is_some() {
        return Ok(Stmt::Reject);
    }
    if let Some(v) = e.get("vmap") {
        let key = &v["key"];
        let parts: Vec<&J> = match key.get("concat") {
            Some(J::Array(a)) => a.iter().collect(),
            _ => vec![key],
        };
        let mut fields = Vec::new();
        for p in parts {
            fields.push(if let Some(a) = addr_field(p) {
                KeyField::Addr(a)
            } else if meta_key(p) == Some("l4proto") {
                KeyField::L4Proto
            } else if p["payload"]["protocol"].as_str() == Some("th")
                && p["payload"]["field"].as_str() == Some("dport")
            {
                KeyField::ThDport
            } else {
                bail!("unsupported vmap key {p}");
            });
        }
        let map = str_of(&v["data"], "vmap")?
            .trim_start_matches('@')
            .to_string();
        return Ok(Stmt::Vmap { key: fields, map });
    }
    Ok(Stmt::Verdict(
        verdict(e).with_context(|| format!("unsupported statement {e}"))?,
    ))
}

fn match_expr(m: &J) -> anyhow::Result<Match> {
    let op = match m["op"].as_str() {
        Some("!=") => CmpOp::Neq,
        _ => CmpOp::Eq,
    };
    let (left, right) = (&m["left"], &m["right"]);
    let set_ref = right.as_str().and_then(|s| s.strip_prefix('@'));
    if let Some(ct) = left.get("ct") {
        return match (ct["key"].as_str(), right.as_str()) {
            (Some("state"), Some("new")) => Ok(Match::CtStateNew),
            (Some("status"), Some("dnat")) => Ok(Match::CtStatusDnat),
            _ => bail!("unsupported ct match {m}"),
        };
    }
    if let Some(field) = addr_field(left) {
        if let Some(set) = set_ref {
            return Ok(Match::AddrInSet {
                field,
                set: set.to_string(),
            });
        }
        let net: IpNet = match right {
            J::String(s) => IpNet::from(s.parse::<IpAddr>()?),
            J::Object(o) if o.contains_key("prefix") => {
                let p = &right["prefix"];
                IpNet::new(
                    str_of(&p["addr"], "prefix")?.parse()?,
                    number(&p["len"])? as u8,
                )?
            }
            other => bail!("unsupported address match {other}"),
        };
        return Ok(Match::Addr { field, op, net });
    }
    if let Some(J::Array(parts)) = left.get("concat") {
        if parts.len() == 2
            && addr_field(&parts[0]) == Some(AddrField::Saddr)
            && addr_field(&parts[1]) == Some(AddrField::Daddr)
        {
            if let Some(set) = set_ref {
                return Ok(Match::SaddrDaddrInSet(set.to_string()));
            }
        }
        bail!("unsupported concatenation match {m}");
    }
    if let Some(p) = left.get("payload") {
        if p["field"].as_str() == Some("dport") {
            let proto = protocol(&p["protocol"])?;
            return Ok(Match::Dport(proto, number(right)? as u16));
        }
        bail!("unsupported payload match {m}");
    }
    match meta_key(left) {
        Some("l4proto") => return Ok(Match::L4Proto(protocol(right)?)),
        Some("iifname") => {
            return Ok(Match::Iifname {
                op,
                name: str_of(right, "iifname")?.to_string(),
            })
        }
        _ => {}
    }
    if let Some(f) = left.get("fib") {
        let flags = f["flags"].to_string();
        if f["result"].as_str() == Some("type") && right.as_str() == Some("local") {
            if flags.contains("daddr") {
                return Ok(Match::FibDaddrLocal);
            }
            if flags.contains("saddr") {
                return Ok(Match::FibSaddrLocal);
            }
        }
        bail!("unsupported fib match {m}");
    }
    if let Some(J::Array(a)) = left.get("&") {
        if a.len() == 2 && meta_key(&a[0]) == Some("mark") && number(right)? == 0 {
            return Ok(Match::MarkMaskZero(number(&a[1])? as u32));
        }
    }
    if let Some(ng) = left.get("numgen") {
        if number(right)? == 0 {
            return Ok(Match::NumgenModZero(number(&ng["mod"])? as u32));
        }
    }
    bail!("unsupported match {m}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::fixtures::{ep, finish, ip, name, svc};
    use kube_proxy_nftables::{render_full, LocalDetector, RenderConfig};

    /// The JSON nft 1.0.6 printed for a table loaded from the golden script (trimmed to a few objects).
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
 {"table": {"family": "ip", "name": "kube-proxy", "handle": 1, "comment": "rules for kube-proxy"}},
 {"chain": {"family": "ip", "table": "kube-proxy", "name": "nat-prerouting", "handle": 6, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "ip", "table": "kube-proxy", "name": "services", "handle": 12}},
 {"chain": {"family": "ip", "table": "kube-proxy", "name": "service-X-ns/web/tcp/http", "handle": 20}},
 {"map": {"family": "ip", "name": "service-ips", "table": "kube-proxy", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 97, "map": "verdict",
   "elem": [[{"concat": ["172.30.0.10", "tcp", 80]}, {"goto": {"target": "service-X-ns/web/tcp/http"}}],
            [{"elem": {"val": {"concat": ["172.30.0.13", "tcp", 80]}, "comment": "default/empty"}}, {"drop": null}]]}},
 {"map": {"family": "ip", "name": "backends-6", "table": "kube-proxy", "type": "integer", "handle": 39, "map": "ipv4_addr . inet_service",
   "elem": [[9, {"concat": ["10.0.2.1", 53]}], [10, {"concat": ["10.0.2.2", 53]}]]}},
 {"set": {"family": "ip", "name": "affinity-A", "table": "kube-proxy", "type": "ipv4_addr", "handle": 40, "flags": ["dynamic", "timeout"], "timeout": 10800,
   "elem": [{"elem": {"val": "10.0.3.7", "timeout": 10800, "expires": 10000}}]}},
 {"rule": {"family": "ip", "table": "kube-proxy", "chain": "nat-prerouting", "handle": 50, "expr": [{"jump": {"target": "services"}}]}},
 {"rule": {"family": "ip", "table": "kube-proxy", "chain": "services", "handle": 51, "expr": [{"vmap": {"key": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "data": "@service-ips"}}]}},
 {"rule": {"family": "ip", "table": "kube-proxy", "chain": "service-X-ns/web/tcp/http", "handle": 52, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "172.30.0.10"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 16}}}}, {"jump": {"target": "mark-for-masquerade"}}]}},
 {"rule": {"family": "ip", "table": "kube-proxy", "chain": "service-X-ns/web/tcp/http", "handle": 53, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"dnat": {"family": "ip", "addr": {"map": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 9}}, "data": "@backends-6"}}}}]}},
 {"rule": {"family": "ip", "table": "kube-proxy", "chain": "services", "handle": 54, "comment": "odd", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": 0}}, {"drop": null}]}}
]}"#;

    #[test]
    fn parses_chains_maps_elements_and_rules_into_the_plan() {
        let (tx, warnings) = parse(LISTING).unwrap();
        assert_eq!(tx.family, Family::Ip);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("skuid"), "{warnings:?}");
        let rules: Vec<&Rule> = tx
            .ops
            .iter()
            .filter_map(|o| match o {
                Op::AddRule(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[3].stmts,
            vec![
                Stmt::Match(Match::L4Proto(Protocol::Tcp)),
                Stmt::DnatNumgenMap {
                    modulus: 2,
                    offset: 9,
                    map: "backends-6".into()
                }
            ]
        );
        assert_eq!(
            rules[2].stmts[2],
            Stmt::Match(Match::Addr {
                field: AddrField::Saddr,
                op: CmpOp::Neq,
                net: "10.0.0.0/16".parse().unwrap()
            })
        );
        let elements: Vec<&Element> = tx
            .ops
            .iter()
            .filter_map(|o| match o {
                Op::AddElement(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(elements.len(), 5);
        assert_eq!(elements[1].comment.as_deref(), Some("default/empty"));
        assert_eq!(elements[1].verdict, Some(Verdict::Drop));
        assert_eq!(
            elements[2].data,
            Some(vec![Value::Addr(ip("10.0.2.1")), Value::Port(53)])
        );
        assert_eq!(elements[4].key, vec![Value::Addr(ip("10.0.3.7"))]);
    }

    /// Every statement the renderer writes survives the trip through nft's JSON vocabulary: the plan printed
    /// as nft text and as JSON-then-parsed agree rule by rule.
    fn sample_plan() -> Transaction {
        let mut web = svc(name("ns1", "web", "http"), "172.30.0.10", 80);
        web.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.3.1", 8080, true)];
        web.node_port = Some(30080);
        web.load_balancer_ips = vec![ip("192.0.2.10")];
        web.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
        let empty = svc(name("ns1", "empty", ""), "172.30.0.12", 80);
        let mut sticky = svc(name("ns1", "sticky", ""), "172.30.0.11", 80);
        sticky.session_affinity_timeout = Some(100);
        sticky.endpoints = vec![ep("10.0.1.1", 8080, false)];
        let st = kube_proxy_model::fixtures::state(
            kube_proxy_model::IpFamily::V4,
            vec![finish(web), finish(sticky), finish(empty)],
        );
        let cfg = RenderConfig {
            local_detector: LocalDetector::InterfaceNamePrefix("veth".into()),
            service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
            ..RenderConfig::default()
        };
        render_full(&st, &cfg)
    }

    #[test]
    fn every_rendered_statement_kind_is_understood() {
        let tx = sample_plan();
        let json = to_json(&tx);
        let (back, warnings) = parse(&json).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let rules = |t: &Transaction| -> Vec<Rule> {
            t.ops
                .iter()
                .filter_map(|o| match o {
                    Op::AddRule(r) => Some(r.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(rules(&back), rules(&tx));
    }

    /// The real `nft -j` listing of a table loaded from the rendered script reads back as the same table:
    /// same rules in every chain, same elements in every set and map.
    #[test]
    fn the_kernels_listing_reads_back_as_the_rendered_table() {
        if !kube_proxy_testkit::netns::require_root(
            "the_kernels_listing_reads_back_as_the_rendered_table",
        ) {
            return;
        }
        let tx = sample_plan();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kp.nft");
        std::fs::write(&path, kube_proxy_nftables::text::to_nft_script(&tx)).unwrap();
        let ns = kube_proxy_testkit::netns::Netns::new("nftjson").unwrap();
        ns.exec_ok(&["nft", "-f", path.to_str().unwrap()]).unwrap();
        let json = ns
            .exec_ok(&["nft", "-j", "list", "table", "ip", "kube-proxy"])
            .unwrap();
        let (back, warnings) = parse(&json).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let want = kube_proxy_trace::nft::NftTable::from_transaction(&tx);
        let got = kube_proxy_trace::nft::NftTable::from_transaction(&back);
        assert_eq!(
            got.chains.keys().collect::<Vec<_>>(),
            want.chains.keys().collect::<Vec<_>>()
        );
        for (name, c) in &want.chains {
            assert_eq!(got.chains[name].rules, c.rules, "chain {name}");
            assert_eq!(got.chains[name].base, c.base, "chain {name}");
        }
        for (name, s) in &want.sets {
            let sorted = |v: &[Element]| {
                let mut v: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
                v.sort();
                v
            };
            let g = &got.sets[name];
            assert_eq!(sorted(&g.elements), sorted(&s.elements), "set {name}");
            assert_eq!(
                (
                    &g.def.key,
                    &g.def.data,
                    g.def.verdict_map,
                    g.def.timeout_secs
                ),
                (
                    &s.def.key,
                    &s.def.data,
                    s.def.verdict_map,
                    s.def.timeout_secs
                ),
                "set {name}"
            );
        }
    }

    /// A minimal JSON writer for the statements the renderer uses, in nft 1.0.6's vocabulary (as listed
    /// above), so that the parser is checked against every kind without a kernel.
    fn to_json(tx: &Transaction) -> String {
        use serde_json::json;
        let f = tx.family.as_str();
        let addr = |a: &AddrField| json!({"payload": {"protocol": f, "field": a.as_str()}});
        let verdict = |v: &Verdict| match v {
            Verdict::Accept => json!({"accept": null}),
            Verdict::Drop => json!({"drop": null}),
            Verdict::Return => json!({"return": null}),
            Verdict::Jump(t) => json!({"jump": {"target": t}}),
            Verdict::Goto(t) => json!({"goto": {"target": t}}),
        };
        let mut items = vec![json!({"table": {"family": f, "name": "kube-proxy"}})];
        for op in &tx.ops {
            let Op::AddRule(r) = op else { continue };
            let expr: Vec<J> = r
                .stmts
                .iter()
                .map(|s| match s {
                    Stmt::Match(m) => {
                        let (left, right, op) = match m {
                            Match::Addr { field, op, net } => {
                                let right = if net.prefix_len() == net.max_prefix_len() {
                                    json!(net.addr().to_string())
                                } else {
                                    json!({"prefix": {"addr": net.addr().to_string(), "len": net.prefix_len()}})
                                };
                                (addr(field), right, *op)
                            }
                            Match::AddrInSet { field, set } => (addr(field), json!(format!("@{set}")), CmpOp::Eq),
                            Match::Iifname { op, name } => (json!({"meta": {"key": "iifname"}}), json!(name), *op),
                            Match::L4Proto(p) => (json!({"meta": {"key": "l4proto"}}), json!(p.as_lower()), CmpOp::Eq),
                            Match::Dport(p, port) => (json!({"payload": {"protocol": p.as_lower(), "field": "dport"}}), json!(port), CmpOp::Eq),
                            Match::FibDaddrLocal => (json!({"fib": {"result": "type", "flags": ["daddr"]}}), json!("local"), CmpOp::Eq),
                            Match::FibSaddrLocal => (json!({"fib": {"result": "type", "flags": ["saddr"]}}), json!("local"), CmpOp::Eq),
                            Match::MarkMaskZero(m) => (json!({"&": [{"meta": {"key": "mark"}}, m]}), json!(0), CmpOp::Eq),
                            Match::CtStateNew => (json!({"ct": {"key": "state"}}), json!("new"), CmpOp::Eq),
                            Match::NumgenModZero(n) => (json!({"numgen": {"mode": "random", "mod": n, "offset": 0}}), json!(0), CmpOp::Eq),
                            Match::SaddrDaddrInSet(set) => (json!({"concat": [addr(&AddrField::Saddr), addr(&AddrField::Daddr)]}), json!(format!("@{set}")), CmpOp::Eq),
                            Match::CtStatusDnat => (json!({"ct": {"key": "status"}}), json!("dnat"), CmpOp::Eq),
                        };
                        let op = if op == CmpOp::Neq { "!=" } else { "==" };
                        json!({"match": {"op": op, "left": left, "right": right}})
                    }
                    Stmt::Counter => json!({"counter": {"packets": 0, "bytes": 0}}),
                    Stmt::MarkOr(m) => json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"meta": {"key": "mark"}}, m]}}}),
                    Stmt::MarkXor(m) => json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"^": [{"meta": {"key": "mark"}}, m]}}}),
                    Stmt::UpdateSaddr { set } => json!({"set": {"op": "update", "elem": addr(&AddrField::Saddr), "set": format!("@{set}")}}),
                    Stmt::Dnat { addr, port } => json!({"dnat": {"addr": addr.to_string(), "port": port}}),
                    Stmt::DnatNumgenMap { modulus, offset, map } => json!({"dnat": {"family": f, "addr": {"map": {"key": {"numgen": {"mode": "random", "mod": modulus, "offset": offset}}, "data": format!("@{map}")}}}}),
                    Stmt::Masquerade { fully_random } => if *fully_random { json!({"masquerade": {"flags": "fully-random"}}) } else { json!({"masquerade": null}) },
                    Stmt::Reject => json!({"reject": {"type": "icmp", "expr": "port-unreachable"}}),
                    Stmt::Vmap { key, map } => {
                        let k: Vec<J> = key.iter().map(|k| match k {
                            KeyField::Addr(a) => addr(a),
                            KeyField::L4Proto => json!({"meta": {"key": "l4proto"}}),
                            KeyField::ThDport => json!({"payload": {"protocol": "th", "field": "dport"}}),
                        }).collect();
                        json!({"vmap": {"key": {"concat": k}, "data": format!("@{map}")}})
                    }
                    Stmt::Verdict(v) => verdict(v),
                })
                .collect();
            let mut rule =
                json!({"family": f, "table": "kube-proxy", "chain": r.chain, "expr": expr});
            if let Some(c) = &r.comment {
                rule["comment"] = json!(c);
            }
            items.push(json!({ "rule": rule }));
        }
        json!({ "nftables": items }).to_string()
    }
}

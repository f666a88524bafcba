//! `kube-test-apiserver`: serves the test API server for manual demos and script-driven end-to-end tests.
//!
//! Usage: `kube-test-apiserver [--dir DIR] [--addr 127.0.0.1:PORT] [--bookmark-interval-ms N]`.
//! Loads every *.yaml/*.yml/*.json file of DIR (multi-document, `kind: List` too), prints the base URL as the
//! first line of stdout, and serves until killed. Objects can be changed with PUT/POST (JSON body) and DELETE
//! on the normal resource paths, e.g. `curl -X DELETE $URL/api/v1/namespaces/default/services/web`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube_proxy_testkit::apiserver::{ApiServer, ApiServerOptions};
use serde_json::Value;

fn usage() -> ! {
    eprintln!("usage: kube-test-apiserver [--dir DIR] [--addr IP:PORT] [--bookmark-interval-ms N]");
    std::process::exit(2)
}

fn load_dir(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            match doc.get("items").and_then(Value::as_array) {
                Some(items) if doc["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                    out.extend(items.iter().cloned())
                }
                _ => out.push(doc),
            }
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut opts = ApiServerOptions::default();
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(value())),
            "--addr" => opts.addr = value().parse::<SocketAddr>().unwrap_or_else(|_| usage()),
            "--bookmark-interval-ms" => {
                opts.bookmark_interval =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            _ => usage(),
        }
    }
    let server = ApiServer::start_with(opts).await?;
    if let Some(dir) = dir {
        for obj in load_dir(&dir)? {
            if let Err(e) = server.apply(&obj) {
                eprintln!("skipping object: {e}");
            }
        }
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.url())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}

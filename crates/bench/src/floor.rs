//! The kernel floor: the time the stock tool alone takes to load the same ruleset into an empty namespace.
//! The ruleset is the proxy's own `render` output over a manifests directory holding the benchmark's objects,
//! loaded the way the proxy's first sync loads it (`iptables-restore --noflush`, or `nft -f`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use kube_proxy_testkit::netns::Netns;
use serde_json::{json, Value};

use crate::config::{BenchConfig, Variant};
use crate::error::{BenchError, Result};
use crate::workload::NODE;

/// One floor measurement.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Floor {
    /// The command that loaded the ruleset.
    pub tool: String,
    /// Wall-clock seconds of that command (includes `ip netns exec`, a few ms).
    pub seconds: f64,
    /// Size of the rendered ruleset.
    pub bytes: usize,
}

/// Writes `objects` as one `kind: List` JSON manifest into `dir`.
pub fn write_manifests(dir: &Path, objects: &[Value]) -> Result<()> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let text = serde_json::to_vec(&list).map_err(|e| BenchError::WriteFile {
        what: "the manifests".into(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(dir.join("objects.json"), text).map_err(|source| BenchError::WriteFile {
        what: "the manifests".into(),
        source,
    })
}

/// Renders `objects` with `kube-proxy-rs render` for the variant's mode. `Ok(Err(reason))` when the binary cannot
/// render this mode.
pub fn render(cfg: &BenchConfig, objects: &[Value]) -> Result<std::result::Result<String, String>> {
    let dir = tempfile::tempdir().map_err(|source| BenchError::WriteFile {
        what: "a manifests directory".into(),
        source,
    })?;
    write_manifests(dir.path(), objects)?;
    let out = Command::new(&cfg.proxy_binary)
        .arg("render")
        .arg("--manifests")
        .arg(dir.path())
        .args(["--hostname-override", NODE])
        .args(cfg.variant.proxy_args())
        .output()
        .map_err(|e| BenchError::Render(e.to_string()))?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Loads `rules` into a fresh namespace with the variant's tool and times it; gives up after `limit` (the tool is
/// run under `timeout`, e.g. `iptables-nft-restore --noflush` of a 10k ruleset can take tens of minutes).
pub fn load(variant: Variant, rules: &str, limit: std::time::Duration) -> Result<Floor> {
    let file = tempfile::NamedTempFile::new().map_err(|source| BenchError::WriteFile {
        what: "the rendered rules".into(),
        source,
    })?;
    std::fs::write(file.path(), rules).map_err(|source| BenchError::WriteFile {
        what: "the rendered rules".into(),
        source,
    })?;
    let path = file.path().to_string_lossy().into_owned();
    let args: Vec<&str> = match variant {
        Variant::IptablesNft => vec!["iptables-nft-restore", "--noflush", &path],
        Variant::IptablesLegacy => vec!["iptables-legacy-restore", "--noflush", &path],
        Variant::Nftables => vec!["nft", "-f", &path],
    };
    let ns = Netns::new("bench-floor")?;
    let secs = format!("{}s", limit.as_secs().max(1));
    let mut cmd = vec!["timeout", secs.as_str()];
    cmd.extend(&args);
    let start = Instant::now();
    let out = ns.exec(&cmd)?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(BenchError::KernelFloor {
            tool: args[0].to_string(),
            message: if out.status.code() == Some(124) {
                format!("did not finish within {secs}")
            } else {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            },
        });
    }
    Ok(Floor {
        tool: args[..args.len() - 1].join(" "),
        seconds,
        bytes: rules.len(),
    })
}

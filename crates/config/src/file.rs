//! Reading and writing KubeProxyConfiguration YAML. Decoding mirrors upstream: a strict pass
//! first; if only strictness fails (unknown or duplicate fields) the file is decoded leniently
//! and the problem is returned as a warning. A wrong or missing apiVersion/kind is an error.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::v1alpha1::{KubeProxyConfiguration, API_VERSION, KIND};

/// A decoded file and the warnings the lenient fallback produced.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub config: KubeProxyConfiguration,
    pub warnings: Vec<String>,
}

/// Keys whose values are free-form maps or lists: unknown-field checks stop there.
const OPAQUE: &[&str] = &[
    "featureGates",
    "logging.options",
    "logging.vmodule",
    "nodePortAddresses",
    "ipvs.excludeCIDRs",
];

/// Reads and decodes `path`.
pub fn read_config_file(path: &Path) -> Result<Decoded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadConfigFile {
        path: path.to_path_buf(),
        source,
    })?;
    decode_config(&text).map_err(|message| ConfigError::DecodeConfigFile {
        path: path.to_path_buf(),
        message,
    })
}

/// Decodes KubeProxyConfiguration YAML (not yet defaulted).
pub fn decode_config(text: &str) -> Result<Decoded, String> {
    let mut warnings = Vec::new();
    let value: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(strict) => {
            let options = serde_saphyr::options! {
                duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
            };
            let v = serde_saphyr::from_str_with_options(text, options)
                .map_err(|_| strict.to_string())?;
            warnings.push(format!(
                "using lenient decoding as strict decoding failed: {strict}"
            ));
            v
        }
    };
    let Value::Object(mut obj) = value else {
        return Err("config file is not a YAML mapping".into());
    };
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err("Object 'Kind' is missing".into());
    }
    if api_version.is_empty() {
        return Err("Object 'apiVersion' is missing".into());
    }
    if api_version != API_VERSION || kind != KIND {
        return Err(format!(
            "no kind {kind:?} is registered for version {api_version:?}"
        ));
    }
    strip_nulls(&mut obj);
    let mut unknown = Vec::new();
    let template = known_keys_template();
    find_unknown(&obj, &template, "", &mut unknown);
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        warnings.push(format!(
            "using lenient decoding as strict decoding failed: strict decoding error: {}",
            list.join(", ")
        ));
    }
    let config = typed_from_object(&obj)?;
    Ok(Decoded { config, warnings })
}

/// Serialises a configuration as YAML.
pub fn to_yaml(config: &KubeProxyConfiguration) -> Result<String, String> {
    serde_saphyr::to_string(config).map_err(|e| e.to_string())
}

/// Writes `config` as YAML to `path` (what `--write-config-to` does).
pub fn write_config_file(config: &KubeProxyConfiguration, path: &Path) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::WriteConfig {
        path: path.to_path_buf(),
        message,
    };
    let text = to_yaml(config).map_err(err)?;
    std::fs::write(path, text).map_err(|e| err(e.to_string()))
}

/// Go's decoder leaves a field at its zero value when the YAML says `null`; dropping the key
/// gives the same result with serde defaults.
fn strip_nulls(obj: &mut Map<String, Value>) {
    obj.retain(|_, v| !v.is_null());
    for v in obj.values_mut() {
        if let Value::Object(inner) = v {
            strip_nulls(inner);
        }
    }
}

fn known_keys_template() -> Value {
    let mut full = KubeProxyConfiguration::defaulted();
    full.windows_run_as_service = true;
    full.feature_gates.insert("Any".into(), true);
    full.iptables.snat_node_internal_ip = Some(false);
    full.logging.vmodule = Some(Value::Array(Vec::new()));
    serde_json::to_value(full).unwrap_or(Value::Null)
}

fn find_unknown(obj: &Map<String, Value>, template: &Value, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in obj {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match template.get(key) {
            None => out.push(path),
            Some(known) => {
                if let (Value::Object(inner), false) = (value, OPAQUE.contains(&path.as_str())) {
                    find_unknown(inner, known, &path, out);
                }
            }
        }
    }
}

/// Deserialises the object; on failure, narrows the error down to the field that caused it.
fn typed_from_object(obj: &Map<String, Value>) -> Result<KubeProxyConfiguration, String> {
    match serde_json::from_value(Value::Object(obj.clone())) {
        Ok(c) => Ok(c),
        Err(whole) => {
            for (key, value) in obj {
                let single = Map::from_iter([(key.clone(), value.clone())]);
                if let Err(e) =
                    serde_json::from_value::<KubeProxyConfiguration>(Value::Object(single))
                {
                    let field = narrow(key, value).unwrap_or_else(|| key.clone());
                    return Err(format!("{field}: {e}"));
                }
            }
            Err(whole.to_string())
        }
    }
}

/// For a nested section, finds which of its keys fails on its own.
fn narrow(key: &str, value: &Value) -> Option<String> {
    let Value::Object(inner) = value else {
        return None;
    };
    inner.iter().find_map(|(sub, v)| {
        let one = serde_json::json!({ key: { sub: v } });
        serde_json::from_value::<KubeProxyConfiguration>(one)
            .is_err()
            .then(|| format!("{key}.{sub}"))
    })
}

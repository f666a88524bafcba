//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use kube_proxy_config::{load, ConfigError, Loaded};

/// Loads `kube-proxy ARGS...`, panicking with the error on failure.
pub fn ok(args: &[&str]) -> Loaded {
    let mut argv = vec!["kube-proxy"];
    argv.extend_from_slice(args);
    match load(argv) {
        Ok(l) => l,
        Err(e) => panic!("{args:?} failed: {e}"),
    }
}

/// Loads `kube-proxy ARGS...`, expecting an error.
pub fn err(args: &[&str]) -> ConfigError {
    let mut argv = vec!["kube-proxy"];
    argv.extend_from_slice(args);
    match load(argv) {
        Ok(l) => panic!("{args:?} unexpectedly loaded: {:?}", l.config),
        Err(e) => e,
    }
}

/// Writes `text` to a config file in a fresh temp dir.
pub fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// The field names of a validation error.
pub fn fields(e: &ConfigError) -> Vec<String> {
    match e {
        ConfigError::Validate(list) => list.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other}"),
    }
}

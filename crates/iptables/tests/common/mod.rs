//! Builders for ProxyState / ServicePortState values used by the tests (the model's build_state is not used
//! here so that these tests pin the renderer alone).
#![allow(dead_code)]

pub use kube_proxy_model::fixtures::{ep, finish, ip, name, state, svc};

/// Lines of `text` that start with `prefix`.
pub fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

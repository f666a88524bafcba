//! Test kit for kube-proxy-rs: a Kubernetes list/watch API server ([`apiserver`]) that the real kube client talks
//! to, and network-namespace helpers ([`netns`]) for end-to-end tests with real sockets. Test-only code.

pub mod apiserver;
pub mod netns;

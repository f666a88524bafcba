//! kube-proxy-telemetry (skeleton; filled in by its owner).

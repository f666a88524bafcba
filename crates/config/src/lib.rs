//! kube-proxy-config (skeleton; filled in by its owner).

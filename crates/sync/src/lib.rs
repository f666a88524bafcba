//! kube-proxy-sync (skeleton; filled in by its owner).

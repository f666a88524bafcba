//! kube-proxy-sources (skeleton; filled in by its owner).

//! kube-proxy-servers (skeleton; filled in by its owner).

//! kube-proxy-testkit (skeleton; filled in by its owner).

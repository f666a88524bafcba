//! kube-proxy-conntrack (skeleton; filled in by its owner).

//! kube-proxy-iptables (skeleton; filled in by its owner).

//! Topology-aware routing: trafficDistribution and hints decide which ready endpoints this node uses.

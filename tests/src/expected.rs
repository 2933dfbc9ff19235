//! Output that several test crates compare against, written once.

/// `lnetctl global show` (and the `global:` block of `lnetctl export`) of
/// a node whose tunables are all at their defaults (lnetctl.md §2.9).
pub const GLOBAL_DEFAULTS: &str = "global:
    numa_range: 0
    max_interfaces: 4096
    discovery: 1
    drop_asym_route: 0
    retry_count: 2
    transaction_timeout: 150
    health_sensitivity: 100
    recovery_interval: 1
    router_sensitivity: 100
    lnd_timeout: 49
    response_tracking: 3
    recovery_limit: 0
    max_recovery_ping_interval: 900
";

//! `lnetctl set <tunable> <value>` for the global tunables (lnetctl.md §2.8).
//!
//! One variant per tunable, each with upstream's help; the tunables other
//! areas own (`routing`, `*_buffers`) join as their own flattened enum.

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::global::{self, Tunable};
use liblnetconfig::{Client, Error};

use crate::out;

/// The value word (`-1` is a value, not an option).
#[derive(Args, Debug)]
pub(crate) struct Value {
    #[arg(allow_negative_numbers = true)]
    value: String,
}

/// `set` sub-commands: the global tunables.
#[derive(Subcommand, Debug)]
pub(crate) enum SetCmd {
    /// NUMA range for NI selection.
    #[command(name = "numa_range", override_help = help("numa_range"))]
    NumaRange(Value),
    /// Most NIs per node.
    #[command(name = "max_interfaces", override_help = help("max_interfaces"))]
    MaxInterfaces(Value),
    /// Peer discovery on/off.
    #[command(name = "discovery", override_help = help("discovery"))]
    Discovery(Value),
    /// Drop messages arriving through an asymmetrical route.
    #[command(name = "drop_asym_route", override_help = help("drop_asym_route"))]
    DropAsymRoute(Value),
    /// Resends of a failed message.
    #[command(name = "retry_count", override_help = help("retry_count"))]
    RetryCount(Value),
    /// Message/response timeout.
    #[command(name = "transaction_timeout", override_help = help("transaction_timeout"))]
    TransactionTimeout(Value),
    /// Health decrement on error.
    #[command(name = "health_sensitivity", override_help = help("health_sensitivity"))]
    HealthSensitivity(Value),
    /// Deprecated; accepted.
    #[command(name = "recovery_interval", override_help = help("recovery_interval"))]
    RecoveryInterval(Value),
    /// Router health sensitivity, %.
    #[command(name = "router_sensitivity", override_help = help("router_sensitivity"))]
    RouterSensitivity(Value),
    /// Which messages get response tracking.
    #[command(name = "response_tracking", override_help = help("response_tracking"))]
    ResponseTracking(Value),
    /// How long unhealthy NIs are recovered.
    #[command(name = "recovery_limit", override_help = help("recovery_limit"))]
    RecoveryLimit(Value),
    /// Cap of the recovery ping interval.
    #[command(name = "max_recovery_ping_interval", override_help = help("max_recovery_ping_interval"))]
    MaxRecoveryPingInterval(Value),
    /// Routing on/off (`cmd::route`).
    #[command(
        name = "routing",
        override_help = "set routing: enable/disable routing\n\t0 - disable routing\n\t1 - enable routing\n"
    )]
    Routing(Value),
    /// Tiny router buffers (`cmd::route`).
    #[command(
        name = "tiny_buffers",
        override_help = "set tiny_buffers: set tiny routing buffers\n\tVALUE must be greater than 0\n"
    )]
    TinyBuffers(Value),
    /// Small router buffers (`cmd::route`).
    #[command(
        name = "small_buffers",
        override_help = "set small_buffers: set small routing buffers\n\tVALUE must be greater than 0\n"
    )]
    SmallBuffers(Value),
    /// Large router buffers (`cmd::route`).
    #[command(
        name = "large_buffers",
        override_help = "set large_buffers: set large routing buffers\n\tVALUE must be greater than 0\n"
    )]
    LargeBuffers(Value),
}

/// The help of tunable `name` (lnetctl.md §1.4).
pub(crate) fn help(name: &str) -> &'static str {
    global::tunable(name).map_or("", |t| t.help)
}

impl SetCmd {
    fn parts(&self) -> (&'static str, &str) {
        let (name, v) = match self {
            SetCmd::NumaRange(v) => ("numa_range", v),
            SetCmd::MaxInterfaces(v) => ("max_interfaces", v),
            SetCmd::Discovery(v) => ("discovery", v),
            SetCmd::DropAsymRoute(v) => ("drop_asym_route", v),
            SetCmd::RetryCount(v) => ("retry_count", v),
            SetCmd::TransactionTimeout(v) => ("transaction_timeout", v),
            SetCmd::HealthSensitivity(v) => ("health_sensitivity", v),
            SetCmd::RecoveryInterval(v) => ("recovery_interval", v),
            SetCmd::RouterSensitivity(v) => ("router_sensitivity", v),
            SetCmd::ResponseTracking(v) => ("response_tracking", v),
            SetCmd::RecoveryLimit(v) => ("recovery_limit", v),
            SetCmd::MaxRecoveryPingInterval(v) => ("max_recovery_ping_interval", v),
            SetCmd::Routing(v) => ("routing", v),
            SetCmd::TinyBuffers(v) => ("tiny_buffers", v),
            SetCmd::SmallBuffers(v) => ("small_buffers", v),
            SetCmd::LargeBuffers(v) => ("large_buffers", v),
        };
        (name, v.value.as_str())
    }
}

/// Sets one global tunable through `client` (also used by `import`);
/// prints upstream's error and returns the rc.
pub(crate) fn apply(client: &mut Client, t: &Tunable, text: &str) -> i32 {
    let value = match global::set_value(t, text) {
        Ok(v) => v,
        Err(e) => return out::arg_error(e),
    };
    match client.global_set(t.name, value) {
        Ok(()) => 0,
        Err(Error::Daemon { errno, .. }) => out::arg_error(global::set_failure(t, value, errno)),
        Err(e) => out::client_error(&e, "add", t.entity),
    }
}

/// Runs `set <tunable> <value>`.
pub(crate) fn run(cmd: &SetCmd, socket: &Path) -> i32 {
    let (name, text) = cmd.parts();
    // The routing tunables (`routing`, `*_buffers`) belong to `route`.
    if let Some(rc) = super::route::run_set(name, text, socket) {
        return rc;
    }
    let Some(t) = global::tunable(name) else {
        return out::RC_EINVAL;
    };
    // Parse errors are reported before connecting, as upstream does.
    if let Err(e) = global::set_value(t, text) {
        return out::arg_error(e);
    }
    match Client::connect(socket) {
        Ok(mut c) => apply(&mut c, t, text),
        Err(e) => out::client_error(&e, "add", t.entity),
    }
}

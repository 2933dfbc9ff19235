//! The global tunables of `lnetctl set <tunable> <value>` and `global show`
//! (lnetctl.md §2.8, §2.9): their names, the words of their errors, and the
//! client-side checks upstream's library makes before anything is sent.

use crate::args::{strtol, ArgError};
use crate::errno::{strerror, EINVAL, ENODATA};

/// One global tunable that `set` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunable {
    /// The `set` sub-command and `global show` key.
    pub name: &'static str,
    /// Its wording in `cannot parse <what> value`.
    pub what: &'static str,
    /// The entity of its classic error block.
    pub entity: &'static str,
    /// The words of `cannot configure <human>: <strerror>`.
    pub human: &'static str,
    /// `set <name> -h`: the description, then one line per accepted value.
    pub help: &'static str,
}

/// Every global tunable `set` knows, in `global show` order.
pub const TUNABLES: &[Tunable] = &[
    Tunable {
        name: "numa_range",
        what: "numa_range",
        entity: "numa_range",
        human: "numa_range",
        help: "set numa_range: set NUMA range for NI selection\n\tVALUE must be at least 0\n",
    },
    Tunable {
        name: "max_interfaces",
        what: "max_interfaces",
        entity: "max_interfaces",
        human: "max interfaces",
        help: "set max_interfaces: set maximum number of interfaces per node\n\tVALUE must be greater than 16\n",
    },
    Tunable {
        name: "discovery",
        what: "discovery",
        entity: "discovery",
        human: "discovery",
        help: "set discovery: enable/disable peer discovery\n\t0 - disable peer discovery\n\t1 - enable peer discovery (default)\n",
    },
    Tunable {
        name: "drop_asym_route",
        what: "drop_asym_route",
        entity: "drop_asym_route",
        human: "drop asym route",
        help: "set drop_asym_route: drop messages which arrive via an asymmetrical route\n\t0 - accept asymmetrical route messages (default)\n\t1 - drop asymmetrical route messages\n",
    },
    Tunable {
        name: "retry_count",
        what: "retry_count",
        entity: "retry_count",
        human: "retry count",
        help: "set retry_count: number of retries\n\t0 - turn off retries\n\t>0 - number of retries\n",
    },
    Tunable {
        name: "transaction_timeout",
        what: "transaction timeout",
        entity: "transaction_timeout",
        human: "transaction timeout",
        help: "set transaction_timeout: Message/Response timeout\n\t>0 - timeout in seconds\n",
    },
    Tunable {
        name: "health_sensitivity",
        what: "health sensitivity",
        entity: "health_sensitivity",
        human: "health sensitivity",
        help: "set health_sensitivity: value to decrement health by on error\n\t0 - turn off health evaluation\n\t>0 - sensitivity value not more than 1000\n",
    },
    Tunable {
        name: "recovery_interval",
        what: "recovery interval",
        entity: "recovery_interval",
        human: "recovery interval",
        help: "set recovery_interval: interval to ping unhealthy interfaces (deprecated, has no effect)\n\t>0 - time in seconds between pings\n",
    },
    Tunable {
        name: "router_sensitivity",
        what: "router sensitivity",
        entity: "router_sensitivity",
        human: "router health sensitivity",
        help: "set router_sensitivity: router sensitivity %\n\t100 - router interfaces need to be fully healthy to be used\n\t<100 - router interfaces can be used even if not healthy\n",
    },
    Tunable {
        name: "response_tracking",
        what: "response_tracking",
        entity: "response_tracking",
        human: "response tracking",
        help: "set response_tracking: Set the behavior of response tracking\n\t0 - Only LNet pings and discovery pushes utilize response tracking\n\t1 - GETs are eligible for response tracking\n\t2 - PUTs are eligible for response tracking\n\t3 - Both PUTs and GETs are eligible for response tracking (default)\n\tNote: Regardless of the value of the response_tracking parameter LNet\n\t      pings and discovery pushes always utilize response tracking\n",
    },
    Tunable {
        name: "recovery_limit",
        what: "recovery_limit",
        entity: "recovery_limit",
        human: "recovery limit",
        help: "set recovery_limit: Set how long LNet will attempt to recover unhealthy interfaces.\n\t0 - Recover indefinitely (default)\n\t>0 - Recover for the specified number of seconds.\n",
    },
    Tunable {
        name: "max_recovery_ping_interval",
        what: "maximum recovery interval",
        entity: "maximum recovery ping interval",
        human: "maximum recovery ping interval",
        help: "set max_recovery_ping_interval: maximum recovery ping interval\n\t>0 - maximum recovery ping interval in seconds\n",
    },
];

/// The tunable called `name` (`set` sub-command or `global show` key).
pub fn tunable(name: &str) -> Option<&'static Tunable> {
    TUNABLES.iter().find(|t| t.name == name)
}

fn classic(entity: &'static str, errno: i32, descr: String) -> ArgError {
    ArgError::Classic {
        cmd: "add",
        entity,
        errno,
        descr,
        rc: errno,
    }
}

/// Parses and checks `set <name> <text>` the way upstream's library does
/// before writing; returns the value to send.
pub fn set_value(t: &Tunable, text: &str) -> Result<i64, ArgError> {
    let parse_err = || {
        let descr = if t.name == "routing" {
            "cannot parse routing value.\nmust be 0 for disable or 1 for enable".to_string()
        } else {
            format!("cannot parse {} value", t.what)
        };
        ArgError::Classic {
            cmd: "parser",
            entity: "set",
            errno: -1,
            descr,
            rc: -1,
        }
    };
    let v = strtol(text).ok_or_else(parse_err)?;
    match t.name {
        "max_interfaces" if v < 16 => Ok(4096),
        "discovery" | "drop_asym_route" => Ok(i64::from(v != 0)),
        "response_tracking" if !(0..=3).contains(&v) => Err(classic(
            t.entity,
            -EINVAL,
            "\"Valid values are: 0, 1, 2, or 3\"".into(),
        )),
        "recovery_limit" if v < 0 => Err(classic(
            t.entity,
            -EINVAL,
            "\"Must be greater than or equal to 0\"".into(),
        )),
        "max_recovery_ping_interval" if v <= 0 => Err(classic(
            t.entity,
            -EINVAL,
            "\"must be strictly positive\"".into(),
        )),
        _ => Ok(v),
    }
}

/// How a refusal of the daemon (positive `errno`) is reported: a rejected
/// parameter write (EINVAL) is -61 (ENODATA) with `Invalid argument` in the
/// message, as upstream's sysfs writes report it; anything else keeps its errno.
pub fn set_failure(t: &Tunable, value: i64, errno: i32) -> ArgError {
    let descr = |e: i32| match t.name {
        "numa_range" | "max_interfaces" => {
            format!(
                "\"cannot configure {} to {value}: {}\"",
                t.human,
                strerror(e)
            )
        }
        _ => format!("\"cannot configure {}: {}\"", t.human, strerror(e)),
    };
    if errno == EINVAL {
        classic(t.entity, -ENODATA, descr(EINVAL))
    } else {
        classic(t.entity, -errno, descr(errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_global_show_keys_in_order() {
        let text = crate::render::global(&crate::proto::GlobalInfo::default());
        let keys: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.trim().split(':').next().unwrap_or(""))
            .filter(|k| *k != "lnd_timeout")
            .collect();
        let names: Vec<&str> = TUNABLES.iter().map(|t| t.name).collect();
        assert_eq!(keys, names);
        for t in TUNABLES {
            assert!(
                t.help.starts_with(&format!("set {}: ", t.name)),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn client_checks() {
        let t = |n| tunable(n).expect("known");
        assert_eq!(set_value(t("max_interfaces"), "8"), Ok(4096));
        assert_eq!(set_value(t("max_interfaces"), "0x20"), Ok(32));
        assert_eq!(set_value(t("discovery"), "7"), Ok(1));
        assert_eq!(set_value(t("retry_count"), "-1"), Ok(-1));
        assert_eq!(
            set_value(t("transaction_timeout"), "abc"),
            Err(ArgError::Classic {
                cmd: "parser",
                entity: "set",
                errno: -1,
                descr: "cannot parse transaction timeout value".into(),
                rc: -1
            })
        );
        let e = set_value(t("response_tracking"), "4").expect_err("range");
        assert!(matches!(e, ArgError::Classic { rc: -22, .. }), "{e:?}");
        let e = set_value(t("max_recovery_ping_interval"), "0").expect_err("range");
        assert!(
            matches!(
                e,
                ArgError::Classic {
                    entity: "maximum recovery ping interval",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            set_failure(t("retry_count"), 9, EINVAL),
            ArgError::Classic {
                cmd: "add",
                entity: "retry_count",
                errno: -61,
                descr: "\"cannot configure retry count: Invalid argument\"".into(),
                rc: -61
            }
        );
    }
}

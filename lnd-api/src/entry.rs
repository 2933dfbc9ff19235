//! What every LND's plugin entry does the same way: the net-type check of
//! its `new_lnd` constructor and of `Lnd::startup`, and strictly increasing
//! NI incarnations. Plain Rust helpers for the plugin's own code: nothing
//! here crosses the ABI (no type, vtable or extension changes).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::nid::NetId;
use crate::types::{errno, LndError};

/// The check of a plugin's `new_lnd(net_type)`: `plugin` (its name, e.g.
/// `lnd-sock`) provides network type `provided` (e.g. `tcp`) only; any
/// other is refused with `EINVAL`, saying which one it provides.
pub fn check_net_type(plugin: &str, provided: &str, net_type: &str) -> Result<(), LndError> {
    if net_type == provided {
        Ok(())
    } else {
        Err(LndError::new(
            errno::EINVAL,
            format!("{plugin} provides network type {provided}, not {net_type:?}"),
        ))
    }
}

/// The check at the top of `Lnd::startup`: the net being added is of LND
/// type `lnd_type` (see [`crate::lnd_type`]); any other is refused with
/// `EINVAL` (`cannot add net NET: PLUGIN serves PROVIDED networks only`).
pub fn check_lnd_type(
    net: NetId,
    lnd_type: u8,
    plugin: &str,
    provided: &str,
) -> Result<(), LndError> {
    if net.lnd_type == lnd_type {
        Ok(())
    } else {
        Err(LndError::new(
            errno::EINVAL,
            format!("cannot add net {net}: {plugin} serves {provided} networks only"),
        ))
    }
}

/// The next NI incarnation after the last one handed out (`last`, one per
/// LND): `now` (the wall clock in the unit that LND's wire protocol uses),
/// or one more than the last when the clock has not moved on or went
/// back, so that an NI restarted quickly in the same process is still seen
/// as new by its peers.
pub fn next_incarnation(last: &AtomicU64, now: u64) -> u64 {
    let mut cur = last.load(Ordering::Relaxed);
    loop {
        let next = now.max(cur.saturating_add(1));
        match last.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(c) => cur = c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lnd_type;

    #[test]
    fn net_type_check_names_what_the_plugin_provides() {
        assert!(check_net_type("lnd-sock", "tcp", "tcp").is_ok());
        let e = check_net_type("lnd-sock", "tcp", "o2ib").expect_err("other type");
        assert_eq!(e.errno, errno::EINVAL);
        assert_eq!(
            e.message.as_str(),
            "lnd-sock provides network type tcp, not \"o2ib\""
        );
    }

    #[test]
    fn lnd_type_check_names_the_net() {
        let tcp1 = NetId::new(lnd_type::SOCKLND, 1);
        assert!(check_lnd_type(tcp1, lnd_type::SOCKLND, "lnd-sock", "tcp").is_ok());
        let e = check_lnd_type(tcp1, lnd_type::O2IBLND, "lnd-o2ib", "o2ib").expect_err("tcp1");
        assert_eq!(e.errno, errno::EINVAL);
        assert_eq!(
            e.message.as_str(),
            "cannot add net tcp1: lnd-o2ib serves o2ib networks only"
        );
    }

    #[test]
    fn incarnations_increase_even_when_the_clock_does_not() {
        let last = AtomicU64::new(0);
        assert_eq!(next_incarnation(&last, 1000), 1000);
        assert_eq!(next_incarnation(&last, 1000), 1001, "same clock reading");
        assert_eq!(next_incarnation(&last, 900), 1002, "clock went back");
        assert_eq!(next_incarnation(&last, 5000), 5000, "clock moved on");
        last.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(next_incarnation(&last, 1), u64::MAX, "saturates");
    }
}

//! Helpers of the tests that drive the slow fixture plugin
//! ([`crate::plugin_build::slow_plugin`]: LND type `slo`, a startup or a
//! filter wrap that waits on gate files) against a node, to show that a
//! slow or re-entrant plugin call stalls only its own request.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use lnd_api::{NetTunables, Nid};
use lnetd::node::NetAdd;

/// How long a call that must not be stalled by the node's lock may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Waits (up to [`DEADLINE`]) for the plugin to create gate file `p`.
pub fn wait_file(p: &Path) {
    crate::wait_until(&format!("{} to appear", p.display()), DEADLINE, || {
        p.exists()
    });
}

/// Runs `f` on a thread; its result within [`DEADLINE`], or the test fails
/// (after `on_timeout`, which lets the plugin go so nothing stays stuck).
pub fn within<T: Send + 'static>(
    what: &str,
    on_timeout: impl FnOnce(),
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => v,
        Err(_) => {
            on_timeout();
            panic!("{what} did not finish within {DEADLINE:?}: the node's lock is held");
        }
    }
}

/// `net add --net slo --if IFACE` with no tunables.
pub fn slo(iface: &str) -> NetAdd {
    NetAdd {
        net: "slo".into(),
        interfaces: vec![iface.into()],
        tunables: NetTunables::UNSET,
        lnd_tunables: Vec::new(),
    }
}

/// `N@slo` (the fixture's LND type 0xF3).
pub fn slo_nid(n: u32) -> Nid {
    Nid::new4(lnd_api::NetId::new(0xF3, 0), n)
}

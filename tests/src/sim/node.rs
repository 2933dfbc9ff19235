//! The runtime glue of one simulated node, shaped like `lnetd::node`:
//! the engine behind a lock, LND callbacks ([`SimHost`]) turned into
//! `handle_*` calls, the engine's outputs drained after every call and
//! executed on the NI's LND **after the lock is released**.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use lnet_core::lnd_api::abi_stable::std_types::ROption;
use lnet_core::lnd_api::{
    errno, Completion, Hdr, HealthStatus, Host, LndError, LndNiHandle, LogLevel, MsgToken, Nid,
    RxToken,
};
use lnet_core::{Event, Instant, LndOp, Lnet, NiId};

use super::lnd::{lock, Shared};

/// What a node holds under its lock.
pub(crate) struct NodeState {
    pub(crate) lnet: Lnet,
    /// The LND object serving each NI, `0@lo` included.
    pub(crate) lnds: BTreeMap<NiId, LndNiHandle>,
    /// Events drained from the engine, not yet taken by the test.
    pub(crate) events: Vec<Event>,
}

/// One node: its engine and LND objects.
pub(crate) struct NodeCell {
    pub(crate) idx: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Mutex<NodeState>,
}

type Work = Vec<(LndNiHandle, LndOp)>;

impl NodeCell {
    /// Runs `f` on the engine at the virtual time, drains its outputs,
    /// releases the lock and executes them (as the real runtime does after
    /// every input).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Lnet, Instant) -> R) -> R {
        self.with_state(|st, now| f(&mut st.lnet, now))
    }

    /// As [`NodeCell::with`], with the whole node state (LND table included).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut NodeState, Instant) -> R) -> R {
        let mut st = lock(&self.state);
        let now = self.shared.now();
        let r = f(&mut st, now);
        let work = self.drain(&mut st, now);
        drop(st);
        self.execute(work);
        r
    }

    /// Takes the engine's LND operations (paired with the NI's LND object)
    /// and its events.
    fn drain(&self, st: &mut NodeState, now: Instant) -> Work {
        let mut work = Vec::new();
        while let Some(op) = st.lnet.poll_lnd() {
            let ni = match &op {
                LndOp::Send { ni, .. }
                | LndOp::Recv { ni, .. }
                | LndOp::EagerRecv { ni, .. }
                | LndOp::NotifyPeerDown { ni, .. } => *ni,
                #[allow(unreachable_patterns)]
                _ => {
                    self.shared.violation(format!(
                        "n{}: engine asked for an LND operation the fabric does not know: {op:?}",
                        self.idx
                    ));
                    continue;
                }
            };
            match st.lnds.get(&ni) {
                Some(lnd) => work.push((lnd.clone(), op)),
                None => {
                    // The NI is gone: fail what would have gone to it.
                    let fail = Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_ERROR);
                    match op {
                        LndOp::Send { tx, .. } => st.lnet.handle_done(now, tx.token, fail),
                        LndOp::Recv { rx, .. } => {
                            if let ROption::RSome(m) = rx.msg {
                                st.lnet.handle_done(now, m, fail);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        while let Some(ev) = st.lnet.poll_event() {
            self.shared
                .trace(format!("n{} event {}", self.idx, describe_event(&ev)));
            st.events.push(ev);
        }
        work
    }

    /// Executes LND operations; synchronous LND failures are fed back to the
    /// engine (whose new outputs are executed in turn).
    fn execute(&self, mut work: Work) {
        while !work.is_empty() {
            let mut failed: Vec<(MsgToken, Completion)> = Vec::new();
            for (lnd, op) in work.drain(..) {
                match op {
                    LndOp::Send { tx, ni, payload } => {
                        let token = tx.token;
                        if let Err(e) = lnd.send_span(tx, payload) {
                            self.lnd_error(ni, "send", &e);
                            failed.push((
                                token,
                                Completion::failed(e.errno, HealthStatus::LOCAL_ERROR),
                            ));
                        }
                    }
                    LndOp::Recv { rx, ni, payload } => {
                        let msg = rx.msg;
                        if let Err(e) = lnd.recv_span(rx, payload) {
                            self.lnd_error(ni, "recv", &e);
                            if let ROption::RSome(m) = msg {
                                failed.push((
                                    m,
                                    Completion::failed(e.errno, HealthStatus::LOCAL_ERROR),
                                ));
                            }
                        }
                    }
                    LndOp::EagerRecv { rx, ni } => {
                        if let Err(e) = lnd.eager_recv(rx) {
                            self.lnd_error(ni, "eager_recv", &e);
                        }
                    }
                    LndOp::NotifyPeerDown { peer, .. } => lnd.notify_peer_down(peer),
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
            if failed.is_empty() {
                break;
            }
            let mut st = lock(&self.state);
            let now = self.shared.now();
            for (t, c) in failed {
                st.lnet.handle_done(now, t, c);
            }
            work = self.drain(&mut st, now);
        }
    }

    fn lnd_error(&self, ni: NiId, what: &str, e: &LndError) {
        self.shared
            .trace(format!("n{} {ni}: lnd {what} failed: {e}", self.idx));
        if e.errno == errno::EFAULT {
            // The ABI shim caught a panic in the LND.
            self.shared
                .violation(format!("n{} {ni}: lnd {what} panicked: {e}", self.idx));
        }
    }
}

/// One line describing an engine event, for traces.
pub(crate) fn describe_event(ev: &Event) -> String {
    match ev {
        Event::Md(e) => format!(
            "{:?} md={} type={} status={} rlen={} mlen={} offset={} bits={:#x} data={:#x} unlinked={}",
            e.kind,
            e.md,
            e.msg_type.name(),
            e.status,
            e.rlength,
            e.mlength,
            e.offset,
            e.match_bits,
            e.hdr_data,
            e.unlinked
        ),
        Event::PingDone { id, result } => match result {
            Ok(info) => format!(
                "PingDone {id} ok nis=[{}]",
                info.nis
                    .iter()
                    .map(|n| n.nid.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(e) => format!("PingDone {id} failed: {e}"),
        },
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// The host callbacks of one NI (the runtime's `NiHost`).
pub(crate) struct SimHost {
    pub(crate) node: Weak<NodeCell>,
    pub(crate) ni: Arc<OnceLock<NiId>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: String,
}

impl SimHost {
    fn cell(&self) -> Option<(Arc<NodeCell>, NiId)> {
        Some((self.node.upgrade()?, *self.ni.get()?))
    }

    /// Runs an engine input, turning an engine panic (which the ABI shim
    /// would swallow) into a recorded violation.
    fn guarded<R>(&self, what: &str, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.shared
                    .violation(format!("{}: engine panicked in {what}: {msg}", self.name));
                None
            }
        }
    }
}

impl Host for SimHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError> {
        let (node, ni) = self.cell().ok_or_else(|| {
            LndError::new(errno::ENETDOWN, format!("{} is not running", self.name))
        })?;
        self.guarded("handle_rx", || {
            node.with(|l, now| l.handle_rx(now, ni, hdr, from, rx, rdma_req))
        })
        .ok_or_else(|| LndError::new(errno::EFAULT, "engine panicked"))?
        .map_err(|e| LndError::new(e.errno(), e.to_string()))
    }

    fn finalize(&self, msg: MsgToken, status: Completion) {
        if let Some(node) = self.node.upgrade() {
            self.guarded("handle_done", || {
                node.with(|l, now| l.handle_done(now, msg, status))
            });
        }
    }

    fn notify(&self, peer: Nid, alive: bool) {
        if let Some((node, ni)) = self.cell() {
            self.guarded("handle_notify", || {
                node.with(|l, now| l.handle_notify(now, ni, peer, alive))
            });
        }
    }

    fn link_state(&self, up: bool) {
        if let Some((node, ni)) = self.cell() {
            self.guarded("handle_link_state", || {
                node.with(|l, now| l.handle_link_state(now, ni, up))
            });
        }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.shared
            .trace(format!("{} log({}): {msg}", self.name, level.0));
    }
}

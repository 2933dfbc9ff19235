//! The sans-IO LNet stack: the engine, selftest on it, and the routing of
//! their outputs, in the quinn-proto style: the one loop every driver runs
//! (lnetd's node runtime, the simulated fabric of `lnet-tests` and the
//! engine tests' pump).
//!
//! A [`Stack`] sits next to the engine ([`Lnet`]) it drives, as
//! [`Selftest`] does: the engine stays a plain field of the driver, so
//! commands (`put`, `get`, `md_bind`, `ni_add`…), views and LND inputs
//! (`handle_rx`, `handle_done`, `handle_notify`, `handle_link_state`) go to
//! it directly, and every stack call takes it as `lnet`. The stack holds
//! the node's selftest (once enabled), the application's MDs and the routed
//! events:
//!
//! * outputs: [`Stack::poll_lnd`] (what to call on which NI's LND, after
//!   releasing whatever lock guards the engine), [`Stack::poll_event`]
//!   ([`StackEvent`]: an application MD's event with its tag, a finished
//!   console command, any other engine event, ping results included) and
//!   [`Stack::poll_timeout`] (the earliest of the engine's and selftest's);
//! * inputs: [`Stack::handle_timeout`] at that time, and
//!   [`Stack::handle_unsent`] for an LND operation the driver could not
//!   hand to an LND because its NI has none any more;
//! * commands: [`Stack::console`] (an `lst` command), [`Stack::app_md_add`]
//!   (an MD of the application: its events come back with its tag),
//!   [`Stack::enable_selftest`].
//!
//! Call order, for every driver: after any input or command, drain
//! [`Stack::poll_lnd`] (execute each operation on its NI's LND: a
//! synchronous LND failure goes back to the engine's `handle_done`; an NI
//! with no LND any more to [`Stack::handle_unsent`]), then
//! [`Stack::poll_event`]; call [`Stack::handle_timeout`] at
//! [`Stack::poll_timeout`]. Each `poll_*` first routes what the engine
//! produced since the last call: an application MD's events first (its user
//! pointers are its own and could look like selftest's tags), selftest's MD
//! events (tagged in `user_ptr`) to selftest, which may answer with more
//! engine work, until nothing moves. So once `poll_lnd` returns `None` and
//! `poll_event` has been drained, the engine is idle until the next input.
//!
//! Selftest's wall clock (session ids and stamps) is derived from `now`:
//! the wall time given to [`Stack::new`] plus the time since that call's
//! `now`, so a stack driven by a virtual clock is deterministic.
//!
//! Why here and not in lnet-core: selftest sits on the engine and the
//! routing needs both; the engine crate stays free of selftest, and lnetd,
//! which adds threads and sockets, only drives the stack.

use std::collections::VecDeque;
use std::fmt;

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{errno, Completion, HealthStatus};
use lnet_core::event::{Event, MdEvent};
use lnet_core::hash::FastMap;
use lnet_core::md::MdHandle;
use lnet_core::ni::{LndOp, Lnet, NiId};
use lnet_core::time::{Duration, Instant};

use crate::{ConsoleError, ConsoleReply, ConsoleRequest, Params, Selftest, TxnId};

/// Events a stack keeps room for before its queue grows (the queue keeps
/// its capacity afterwards).
const EVENTS_CAPACITY: usize = 256;

/// An output of the stack for its driver or the application.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StackEvent<T> {
    /// An event of an MD registered with [`Stack::app_md_add`], with the
    /// application's tag (the MD is forgotten with its last event).
    App {
        /// The tag the MD was registered with.
        tag: T,
        /// The event.
        event: MdEvent,
    },
    /// A console command ([`Stack::console`]) finished.
    Console {
        /// The command.
        txn: TxnId,
        /// Its result.
        result: Result<ConsoleReply, ConsoleError>,
    },
    /// Any other engine event: a ping result, or an event of an MD that is
    /// neither a registered application MD nor selftest's.
    Engine(Event),
}

/// The NI an LND operation is for.
pub fn lnd_op_ni(op: &LndOp) -> Option<NiId> {
    match op {
        LndOp::Send { ni, .. }
        | LndOp::Recv { ni, .. }
        | LndOp::EagerRecv { ni, .. }
        | LndOp::NotifyPeerDown { ni, .. } => Some(*ni),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Selftest and the routing of the engine's outputs, next to the engine
/// they drive (see the module documentation). `T` is the application's tag
/// for its MDs (the node runtime's event queue; `()` when there is none).
pub struct Stack<T = ()> {
    selftest: Option<Selftest>,
    /// The application's MDs and their tags.
    app_mds: FastMap<MdHandle, T>,
    /// Routed events not yet polled.
    events: VecDeque<StackEvent<T>>,
    /// `now` and the wall time at creation: selftest's wall clock.
    origin: (Instant, Duration),
    /// Console commands refused because selftest is off.
    next_refused: u64,
}

impl<T> fmt::Debug for Stack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("selftest", &self.selftest.is_some())
            .field("app_mds", &self.app_mds.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Stack<T> {
    /// A stack created at `now`, when the wall clock read `wall` (since the
    /// Unix epoch). Selftest is off until [`Stack::enable_selftest`].
    pub fn new(now: Instant, wall: Duration) -> Stack<T> {
        Stack {
            selftest: None,
            app_mds: FastMap::default(),
            events: VecDeque::with_capacity(EVENTS_CAPACITY),
            origin: (now, wall),
            next_refused: 0,
        }
    }

    /// Starts the node's selftest (the `lnet_selftest` module loaded): it
    /// posts its request buffers on the engine. Does nothing if it runs.
    pub fn enable_selftest(&mut self, lnet: &mut Lnet, now: Instant, params: Params) {
        if self.selftest.is_none() {
            let wall = self.wall(now);
            self.selftest = Some(Selftest::new(lnet, now, wall, params));
        }
    }

    /// Selftest, when enabled.
    pub fn selftest(&self) -> Option<&Selftest> {
        self.selftest.as_ref()
    }

    /// The wall clock at `now` (selftest's ids and stamps).
    pub fn wall(&self, now: Instant) -> Duration {
        let (t0, w0) = self.origin;
        w0.saturating_add(now.since(t0))
    }

    /// Registers an MD of the application: its events come out of
    /// [`Stack::poll_event`] as [`StackEvent::App`] with `tag`, up to the
    /// one that unlinks it.
    pub fn app_md_add(&mut self, md: MdHandle, tag: T) {
        self.app_mds.insert(md, tag);
    }

    /// Number of registered application MDs not yet unlinked.
    pub fn app_md_count(&self) -> usize {
        self.app_mds.len()
    }

    /// An `lst` console command (selftest.md §2); its result comes back as
    /// [`StackEvent::Console`] with the returned id. Without selftest the
    /// command fails (`-ENOENT`, as `lst` does when the `lnet_selftest`
    /// module is not loaded).
    pub fn console(&mut self, lnet: &mut Lnet, now: Instant, req: ConsoleRequest) -> TxnId {
        let wall = self.wall(now);
        match self.selftest.as_mut() {
            Some(st) => st.console(lnet, now, wall, req),
            None => {
                // Ids from the top down: never those of a later selftest.
                self.next_refused += 1;
                let txn = TxnId(u64::MAX - self.next_refused);
                self.events.push_back(StackEvent::Console {
                    txn,
                    result: Err(ConsoleError::new(
                        crate::errno::ENOENT,
                        "LNet selftest is not running on this node",
                    )),
                });
                txn
            }
        }
    }

    /// Runs the engine's and selftest's timers due at `now`.
    pub fn handle_timeout(&mut self, lnet: &mut Lnet, now: Instant) {
        if lnet.poll_timeout().is_some_and(|t| t <= now) {
            lnet.handle_timeout(now);
        }
        let wall = self.wall(now);
        if let Some(st) = self.selftest.as_mut() {
            if st.poll_timeout().is_some_and(|t| t <= now) {
                st.handle_timeout(lnet, now, wall);
            }
        }
    }

    /// The driver could not hand `op` to an LND: its NI has none any more
    /// (deleted between the engine's decision and now). What it carried
    /// fails as a local error (`-ENETDOWN`), a send's message and a
    /// receive's message alike, so that neither stays with an LND that will
    /// never finalize it. Eager receives and peer-down notices have nobody
    /// left to tell.
    pub fn handle_unsent(&mut self, lnet: &mut Lnet, now: Instant, op: LndOp) {
        let fail = Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_ERROR);
        match op {
            LndOp::Send { tx, .. } => lnet.handle_done(now, tx.token, fail),
            LndOp::Recv { rx, .. } => {
                if let ROption::RSome(m) = rx.msg {
                    lnet.handle_done(now, m, fail);
                }
            }
            _ => {}
        }
    }

    /// The next operation to run on an NI's LND (after releasing whatever
    /// lock guards the engine).
    #[must_use]
    pub fn poll_lnd(&mut self, lnet: &mut Lnet, now: Instant) -> Option<LndOp> {
        self.route(lnet, now);
        lnet.poll_lnd()
    }

    /// The next event for the driver or the application.
    #[must_use]
    pub fn poll_event(&mut self, lnet: &mut Lnet, now: Instant) -> Option<StackEvent<T>> {
        self.route(lnet, now);
        self.events.pop_front()
    }

    /// When [`Stack::handle_timeout`] must be called next: the earliest of
    /// the engine's and selftest's timers.
    #[must_use]
    pub fn poll_timeout(&self, lnet: &Lnet) -> Option<Instant> {
        let st = self.selftest.as_ref().and_then(Selftest::poll_timeout);
        match (lnet.poll_timeout(), st) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Routes the engine's events until it has none: the application's
    /// and the unclaimed ones to the event queue, selftest's to selftest
    /// (which may make more); then collects finished console commands.
    fn route(&mut self, lnet: &mut Lnet, now: Instant) {
        // Called before every poll (several times per message): nothing to
        // route is the common case, checked without moving anything.
        if !lnet.has_events()
            && !self
                .selftest
                .as_ref()
                .is_some_and(Selftest::has_console_done)
        {
            return;
        }
        while let Some(ev) = lnet.poll_event() {
            let ev = match ev {
                Event::Md(e) => {
                    let tag = if self.app_mds.is_empty() {
                        // No application MD (selftest's alone): no lookup.
                        None
                    } else if e.unlinked {
                        self.app_mds.remove(&e.md)
                    } else {
                        self.app_mds.get(&e.md).cloned()
                    };
                    match tag {
                        Some(tag) => StackEvent::App { tag, event: e },
                        None => {
                            let wall = self.wall(now);
                            let ours = match self.selftest.as_mut() {
                                Some(st) => st.handle_event(lnet, now, wall, &e),
                                None => false,
                            };
                            if ours {
                                continue;
                            }
                            StackEvent::Engine(Event::Md(e))
                        }
                    }
                }
                other => StackEvent::Engine(other),
            };
            self.events.push_back(ev);
        }
        if let Some(st) = self.selftest.as_mut() {
            while let Some((txn, result)) = st.poll_console_done() {
                self.events.push_back(StackEvent::Console { txn, result });
            }
        }
    }
}

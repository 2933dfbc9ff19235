//! The built-in loopback LND `lo` (`lnet/lnet/lo.c`, semantics §10.4).
//!
//! `send` hands the message straight back to the host's `parse` on the same
//! NI, with the message itself as the receive token and `0@lo` as the
//! previous hop; `recv` copies the sender's payload into the receive payload,
//! completes the receive, then the send. No credits, no health, no
//! connection. `recv` may come from inside `parse` or later (a PUT delayed on a
//! lazy portal): pending sends wait in a map until then. No lock is held while
//! calling the host.
//!
//! A payload of [`OFFLOAD_MIN`] bytes or more is copied by the NI's copy
//! threads ([`Copier`]), not by the thread that called `recv`: that thread
//! holds no lock then, but it is the one running LNet's work (the executor,
//! or an lnd-sock reader), and a 1 MiB copy would keep every other message
//! waiting for tens of microseconds. The copy threads start at the first such
//! payload (most nodes never send one to themselves), one per CPU up to
//! [`COPY_THREADS_MAX`], and finalize the receive and the send when their copy
//! is done, in that order, as the inline path does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use lnd_api::{
    errno, lnd_type, Completion, HealthStatus, HostHandle, Lnd, LndError, LndHandle, LndNi,
    LndNiHandle, MsgToken, NetTunables, NiConfig, NiInfo, NiStarted, Nid, PayloadSpan, RxAction,
    RxToken, TxMsg,
};

/// Payloads at least this long are copied by the copy threads. Below it the
/// copy (about 2 µs at 64 KiB) costs less than handing it over.
pub const OFFLOAD_MIN: usize = 128 * 1024;

/// The most copy threads one `0@lo` NI starts.
pub const COPY_THREADS_MAX: usize = 4;

/// The loopback LND.
#[derive(Debug, Default)]
pub struct LoLnd;

/// The NI `0@lo` served by [`LoLnd`].
pub struct LoNi {
    host: HostHandle,
    /// Sends whose `recv` has not come yet, by receive token (= send token).
    pending: Mutex<HashMap<u64, (TxMsg, PayloadSpan)>>,
    /// The copy threads of large payloads.
    copier: Arc<Copier>,
}

impl Lnd for LoLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        if cfg.net.lnd_type != lnd_type::LOLND {
            return Err(LndError::new(
                errno::EINVAL,
                format!(
                    "lo LND cannot serve net type {} (only lo)",
                    cfg.net.lnd_type
                ),
            ));
        }
        let info = NiInfo {
            nid: Nid::LO_0,
            interfaces: Default::default(),
            tunables: NetTunables {
                peer_timeout: 0,
                peer_credits: 0,
                peer_buffer_credits: 0,
                credits: 0,
            },
            lnd_tunables: Default::default(),
            timeout_secs: 0,
        };
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(LoNi::new(host)),
        })
    }
}

impl LoNi {
    /// An `0@lo` NI calling back into `host`.
    pub fn new(host: HostHandle) -> LoNi {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoNi {
            copier: Arc::new(Copier::new(
                host.clone(),
                threads.clamp(1, COPY_THREADS_MAX),
            )),
            host,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, rx: RxToken) -> Option<(TxMsg, PayloadSpan)> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rx.0)
    }
}

/// Copies `src` into `dst`; when they share an allocation (a PUT from an MD
/// into itself) the bytes go through a temporary copy.
fn copy_payload(src: &PayloadSpan, dst: &PayloadSpan) -> Result<usize, lnd_api::Busy> {
    match src.copy_to(dst) {
        Ok(n) => Ok(n),
        Err(_) => {
            let n = src.len().min(dst.len());
            let mut tmp = vec![0u8; n];
            src.read_at(0, &mut tmp)?;
            dst.write_at(0, &tmp)
        }
    }
}

/// Copies the sender's payload into the receive's, then finalizes the
/// receive and the send, in that order.
fn complete(host: &HostHandle, msg: MsgToken, dst: &PayloadSpan, tx: TxMsg, src: &PayloadSpan) {
    let st = copy_status(src, dst);
    host.finalize(msg, st);
    host.finalize(tx.token, st);
}

/// Copies `src` into `dst`: how the receive and the send complete.
fn copy_status(src: &PayloadSpan, dst: &PayloadSpan) -> Completion {
    match copy_payload(src, dst) {
        Ok(_) => Completion::OK,
        Err(_) => Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR),
    }
}

/// One large payload to copy: `src` (the send's) into `dst` (the receive's).
struct CopyJob {
    msg: MsgToken,
    dst: PayloadSpan,
    tx: TxMsg,
    src: PayloadSpan,
}

impl CopyJob {
    fn complete(self, host: &HostHandle) {
        complete(host, self.msg, &self.dst, self.tx, &self.src);
    }
}

/// The copy threads of one `0@lo` NI, each with its own queue (a lane).
///
/// A job goes to the lane its destination buffer maps to, so a buffer that is
/// written again and again (a server's pool buffer, a client's sink) is
/// always written by the same thread. Spread over threads by turns, each
/// copy would first pull the buffer's lines out of the other CPU's cache:
/// on a 2-vCPU AMD EPYC host, two threads copying 1 MiB buffers by turns
/// moved 19–43 GB/s between runs, each keeping its own buffers 44–56 GB/s
/// (`bench/copy-lanes.c`).
/// Jobs of one lane are copied in the order they came; a lane's queue keeps
/// its capacity (no allocation per message once it has grown).
///
/// The threads copy in parallel but finalize one at a time: a thread done
/// with a copy queues the job on `done`, and whichever thread holds
/// `completing` finalizes every job queued there (a combining lock). Each
/// finalize runs LNet's work on the calling thread under the node's lock;
/// two copy threads doing it at once spent their time waiting for that
/// lock (12–14 % of the samples at 256 KiB) instead of copying.
struct Copier {
    host: HostHandle,
    lanes: Vec<Lane>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Copied jobs waiting for their finalizes, oldest first.
    done: Mutex<VecDeque<(CopyJob, Completion)>>,
    /// A thread is finalizing the jobs in `done`.
    completing: AtomicBool,
}

struct Lane {
    state: Mutex<LaneState>,
    /// Signalled when a job comes or the NI stops.
    work: Condvar,
}

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<CopyJob>,
    /// The lane's thread was started.
    started: bool,
    /// The lane's thread waits for a job.
    idle: bool,
    stopping: bool,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lane of `dst` among `lanes`: by the address of its first byte's page.
fn lane_of(dst: &PayloadSpan, lanes: usize) -> usize {
    let addr = dst
        .frags()
        .first()
        .and_then(|f| f.borrow().ok().map(|b| b.as_ptr() as usize))
        .unwrap_or(0);
    let h = ((addr >> 12) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (h % lanes as u64) as usize
}

impl Copier {
    fn new(host: HostHandle, threads: usize) -> Copier {
        Copier {
            host,
            lanes: (0..threads.max(1))
                .map(|_| Lane {
                    state: Mutex::new(LaneState::default()),
                    work: Condvar::new(),
                })
                .collect(),
            threads: Mutex::new(Vec::new()),
            done: Mutex::new(VecDeque::new()),
            completing: AtomicBool::new(false),
        }
    }

    fn done(&self) -> MutexGuard<'_, VecDeque<(CopyJob, Completion)>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies `job` and has it finalized: by this thread, with every job
    /// other threads copied meanwhile, unless another thread is finalizing
    /// (it will finalize this one too).
    fn copy_and_finish(&self, job: CopyJob) {
        let st = copy_status(&job.src, &job.dst);
        self.done().push_back((job, st));
        loop {
            if self.completing.swap(true, AtomicOrdering::SeqCst) {
                return;
            }
            loop {
                let next = self.done().pop_front();
                let Some((job, st)) = next else { break };
                self.host.finalize(job.msg, st);
                self.host.finalize(job.tx.token, st);
            }
            self.completing.store(false, AtomicOrdering::SeqCst);
            // A job queued after the last look, by a thread that saw
            // `completing` still set, is this thread's to finalize.
            if self.done().is_empty() {
                return;
            }
        }
    }

    /// Queues `job` on its lane, waking the lane's thread if it waits, or
    /// starting it. A stopping NI, or one that cannot start the thread,
    /// copies on the caller's thread.
    fn submit(this: &Arc<Copier>, job: CopyJob) {
        let i = lane_of(&job.dst, this.lanes.len());
        let lane = &this.lanes[i];
        let mut st = lane.lock();
        if st.stopping {
            drop(st);
            job.complete(&this.host);
            return;
        }
        st.jobs.push_back(job);
        if st.idle {
            // Woken once: the thread takes every job queued by then.
            st.idle = false;
            drop(st);
            lane.work.notify_one();
            return;
        }
        if st.started {
            return;
        }
        // Started with the lane locked: `stop`, which marks the lane first,
        // then finds the thread among those to join.
        let me = Arc::clone(this);
        let started = std::thread::Builder::new()
            .name("lnet-lo-copy".into())
            .spawn(move || me.run(i));
        match started {
            Ok(t) => {
                st.started = true;
                this.threads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(t);
            }
            Err(e) => {
                let jobs = std::mem::take(&mut st.jobs);
                drop(st);
                this.host.log(
                    lnd_api::LogLevel::WARN,
                    &format!("lo: cannot start a copy thread ({e}); copying inline"),
                );
                for job in jobs {
                    job.complete(&this.host);
                }
            }
        }
    }

    /// Lane `i`'s thread: copies until the NI stops and its queue is empty.
    fn run(&self, i: usize) {
        let lane = &self.lanes[i];
        let mut st = lane.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                self.copy_and_finish(job);
                st = lane.lock();
                continue;
            }
            if st.stopping {
                return;
            }
            st.idle = true;
            while st.idle && !st.stopping {
                st = lane.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.idle = false;
        }
    }

    /// Stops the copy threads once the jobs handed over are copied and
    /// finalized. Called without the host's lock (the threads' finalizes
    /// take it).
    fn stop(&self) {
        for lane in &self.lanes {
            lane.lock().stopping = true;
            lane.work.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let me = std::thread::current().id();
        for t in threads {
            // A copy thread whose finalize shut the NI down does not wait
            // for itself; it returns once its queue is empty.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        // Still queued: the lane of the calling thread, when it is a copy
        // thread (not joined above).
        for lane in &self.lanes {
            loop {
                let job = lane.lock().jobs.pop_front();
                match job {
                    Some(job) => job.complete(&self.host),
                    None => break,
                }
            }
        }
    }
}

impl Drop for LoNi {
    fn drop(&mut self) {
        self.copier.stop();
    }
}

impl LndNi for LoNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.send_span(tx, payload)
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let (rx, payload) = rx.split_payload();
        self.recv_span(rx, payload)
    }

    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        let token = tx.token.0;
        let hdr = tx.hdr;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, (tx, payload));
        match self.host.parse(hdr, Nid::LO_0, RxToken(token), false) {
            Ok(()) => Ok(()),
            Err(e) => {
                // recv will not come; if it did already, the entry is gone and
                // the message was finalized: report success then.
                match self.take(RxToken(token)) {
                    Some(_) => Err(e),
                    None => Ok(()),
                }
            }
        }
    }

    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        let Some((tx, src)) = self.take(rx.rx) else {
            return Err(LndError::new(
                errno::EINVAL,
                format!("lo: recv for unknown token {:#x}", rx.rx.0),
            ));
        };
        match rx.msg.into_option() {
            Some(msg) if src.len().min(payload.len()) >= OFFLOAD_MIN => {
                Copier::submit(
                    &self.copier,
                    CopyJob {
                        msg,
                        dst: payload,
                        tx,
                        src,
                    },
                );
            }
            Some(msg) => complete(&self.host, msg, &payload, tx, &src),
            None => self.host.finalize(tx.token, Completion::OK),
        }
        Ok(())
    }

    fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        // The sender's payload stays valid until recv: nothing to free.
        let _ = rx;
        Ok(())
    }

    fn shutdown(&self) {
        // Copies already handed over complete first: their messages are
        // finalized as they would have been inline.
        self.copier.stop();
        let pending: Vec<TxMsg> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, (tx, _))| tx)
            .collect();
        for tx in pending {
            self.host.finalize(
                tx.token,
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
            );
        }
    }
}

fn new_lo(name: &str) -> Result<LndHandle, LndError> {
    if name == "lo" {
        Ok(LndHandle::new(LoLnd))
    } else {
        Err(LndError::new(
            errno::EINVAL,
            format!("the built-in lo LND has no net type {name:?}"),
        ))
    }
}

inventory::submit! {
    crate::host::BuiltinLnd { name: "lo", net_types: &[("lo", lnd_type::LOLND)], new_lnd: new_lo }
}

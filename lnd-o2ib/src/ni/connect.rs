//! Connection setup of an NI (`kiblnd_active_connect()`,
//! `kiblnd_passive_connect()` and their reject handling in
//! `lnet/klnds/o2iblnd/o2iblnd_cb.c`): CONNREQ/CONNACK in the CM private
//! data, the passive checks in upstream's order, reject reasons and the
//! active side's reactions, connection races.

use super::*;
use crate::soft::{connect as soft_connect, ConnRequest};
use crate::sys::rdma::{self, QueueSizes, RdmaRequest, Retries};

/// A connection request of either provider.
enum Request {
    Soft(ConnRequest),
    Rdma(RdmaRequest),
}

impl Request {
    fn private_data(&self) -> &[u8] {
        match self {
            Request::Soft(r) => &r.private_data,
            Request::Rdma(r) => &r.private_data,
        }
    }
    /// The requester's address (rdma: `rdma_get_peer_addr`).
    fn peer(&self) -> Option<SocketAddr> {
        match self {
            Request::Soft(r) => Some(r.peer),
            Request::Rdma(r) => r.peer_addr.map(SocketAddr::V4),
        }
    }

    /// The requester's port (`require_privileged_port`).
    fn peer_port(&self) -> u16 {
        match self {
            Request::Soft(r) => r.peer.port(),
            Request::Rdma(r) => r.peer_port,
        }
    }
    fn reject(self, b: &[u8]) {
        match self {
            Request::Soft(r) => r.reject(b),
            Request::Rdma(r) => {
                let _ = r.reject(b);
            }
        }
    }
}

impl NiInner {
    // -----------------------------------------------------------------
    // Connection setup
    // -----------------------------------------------------------------

    pub(super) fn spawn_connect(
        self: &Arc<Self>,
        peer: u64,
        stamp: u64,
        qd: u16,
        frags: u16,
        attempt: u32,
    ) {
        let ni = self.clone();
        let r = std::thread::Builder::new()
            .name("o2ib-connect".into())
            .spawn(move || ni.active_connect(peer, stamp, qd, frags, attempt));
        if let Err(e) = r {
            self.connect_failed(peer, &format!("cannot start a connect thread: {e}"));
        }
    }

    fn active_connect(self: &Arc<Self>, peer: u64, stamp: u64, qd: u16, frags: u16, attempt: u32) {
        let (qd, frags) = self.fit_queues(peer, qd, frags);
        let cp = ConnParams {
            queue_depth: qd,
            max_frags: frags,
            max_msg_size: MSG_SIZE as u32,
        };
        let req = MsgRepr {
            version: VERSION_2,
            credits: 0,
            src_nid: self.nid4,
            src_stamp: self.stamp,
            dst_nid: peer,
            dst_stamp: stamp,
            body: Body::ConnReq(cp),
        };
        let mut pd = [0u8; wire::CONN_MSG_SIZE];
        if let Err(e) = req.emit(Endian::NATIVE, &mut pd) {
            self.connect_failed(peer, &e.to_string());
            return;
        }
        if self.cksum {
            wire::seal_cksum(Endian::NATIVE, &mut pd);
        }
        let to = self.peer_sockaddr(peer);
        let pname = Nid::from_nid4(peer);
        let mut made: Option<Arc<Conn>> = None;
        let mut bad: Option<String> = None;
        let mut regrant: Option<ConnParams> = None;
        let r = match &self.dev {
            Provider::Soft { dev, cq } => {
                soft_connect(dev, cq, to, &pd, self.timeout, &mut |qp, ack| match self
                    .check_connack(ack, peer, cp)
                {
                    Ok((peer_stamp, got)) => {
                        match self.make_conn(Arc::new(qp.clone()), peer, peer_stamp, got) {
                            Ok(c) => {
                                made = Some(c);
                                true
                            }
                            Err(e) => {
                                bad = Some(format!("connection to {pname}: {e}"));
                                false
                            }
                        }
                    }
                    Err(e) => {
                        bad = Some(format!("bad CONNACK from {pname}: {e}"));
                        false
                    }
                })
                .map(|_| ())
            }
            Provider::Rdma { dev, .. } => {
                let (SocketAddr::V4(dst), IpAddr::V4(src)) = (to, self.local_ip()) else {
                    self.connect_failed(peer, "o2ib over rdma_cm is IPv4 only");
                    return;
                };
                // Receives are posted for the offered parameters before
                // `rdma_connect`; the CONNACK (with ESTABLISHED) gives the
                // peer's incarnation and must grant what was offered (a
                // peer o2iblnd rejects what it cannot take; a smaller
                // grant is retried with it, as a MSG_QUEUE_SIZE reject).
                let mut prep = |qp: &rdma::RdmaQp| {
                    made = Some(self.make_conn(Arc::new(qp.clone()), peer, 0, cp)?);
                    Ok(())
                };
                rdma::connect(
                    dev,
                    (src, dst),
                    &pd,
                    self.queue_sizes(qd as u32, frags as u32),
                    self.retries(),
                    self.timeout,
                    &mut prep,
                )
                .and_then(|(_, ack)| {
                    let (peer_stamp, got) = self.check_connack(&ack, peer, cp).map_err(|e| {
                        bad = Some(format!("bad CONNACK from {pname}: {e}"));
                        VerbsError::Invalid(e)
                    })?;
                    let Some(c) = &made else {
                        return Err(VerbsError::Invalid("no connection state".into()));
                    };
                    if got != cp {
                        regrant = Some(got);
                        return Err(VerbsError::Invalid(format!("CONNACK granted {got:?}")));
                    }
                    c.peer_stamp.store(peer_stamp, Ordering::Relaxed);
                    Ok(())
                })
            }
        };
        if let (Err(_), Some(c)) = (&r, &made) {
            self.unmake_conn(c);
        }
        if let Some(g) = regrant.filter(|_| attempt < 5 && !self.down()) {
            self.log(
                LogLevel::INFO,
                &format!("{pname} granted {g:?} of {cp:?}: reconnecting with it"),
            );
            return self.spawn_connect(peer, 0, g.queue_depth, g.max_frags, attempt + 1);
        }
        match (r, made, bad) {
            (Ok(_), Some(c), _) => self.established(c),
            (_, _, Some(e)) => self.connect_failed(peer, &e),
            (Err(VerbsError::Rejected(rej)), _, _) => self.rejected(peer, &rej, qd, frags, attempt),
            (Err(e), _, _) => {
                self.connect_failed(peer, &format!("cannot connect to {pname} at {to}: {e}"))
            }
            (Ok(_), None, None) => self.connect_failed(peer, "connection without a CONNACK"),
        }
    }

    fn check_connack(
        &self,
        ack: &[u8],
        peer: u64,
        offered: ConnParams,
    ) -> Result<(u64, ConnParams), String> {
        let m = Msg::new_checked(ack).map_err(|e| e.to_string())?;
        let r = MsgRepr::parse(&m).map_err(|e| e.to_string())?;
        let Body::ConnAck(cp) = r.body else {
            return Err(format!("type {:#x} instead of CONNACK", m.msg_type()));
        };
        if r.version != VERSION_2 {
            return Err(format!(
                "version {:#x} instead of {VERSION_2:#x}",
                r.version
            ));
        }
        if cp.queue_depth == 0
            || cp.queue_depth > offered.queue_depth
            || cp.max_frags == 0
            || cp.max_frags > offered.max_frags
            || cp.max_msg_size as usize > MSG_SIZE
        {
            return Err(format!("parameters {cp:?} exceed the offered {offered:?}"));
        }
        if r.src_nid != peer || r.dst_nid != self.nid4 || r.dst_stamp != self.stamp {
            return Err("stale (NID or incarnation mismatch)".into());
        }
        Ok((r.src_stamp, cp))
    }

    fn rejected(self: &Arc<Self>, peer: u64, rej: &[u8], qd: u16, frags: u16, attempt: u32) {
        let pname = Nid::from_nid4(peer);
        let Ok((r, _)) = RejRepr::parse(rej) else {
            self.connect_failed(peer, &format!("{pname} rejected the connection"));
            return;
        };
        self.log(
            LogLevel::INFO,
            &format!("{pname} rejected the connection: {}", r.why),
        );
        let retry = attempt < 5 && !self.down();
        let pause = Duration::from_millis(50 * (attempt as u64 + 1));
        match r.why {
            RejectReason::CONN_RACE => {
                // The peer's connection wins: our messages leave on it. If it
                // never comes, retry.
                let ni = self.clone();
                let _ = std::thread::Builder::new()
                    .name("o2ib-race".into())
                    .spawn(move || {
                        std::thread::sleep(Duration::from_millis(500));
                        let again = {
                            let st = lock(&ni.st);
                            st.peers
                                .get(&peer)
                                .is_some_and(|p| p.conn.is_none() && !p.waiting.is_empty())
                        };
                        if again && attempt < 5 {
                            ni.spawn_connect(peer, 0, qd, frags, attempt + 1);
                        } else {
                            let mut st = lock(&ni.st);
                            if let Some(p) = st.peers.get_mut(&peer) {
                                p.connecting = false;
                            }
                        }
                    });
            }
            RejectReason::CONN_STALE | RejectReason::EARLY if retry => {
                std::thread::sleep(pause);
                self.spawn_connect(peer, 0, qd, frags, attempt + 1);
            }
            RejectReason::MSG_QUEUE_SIZE if retry => {
                let q = r.cp.map(|c| c.queue_depth).unwrap_or(qd).clamp(1, qd);
                self.spawn_connect(peer, 0, q, frags, attempt + 1);
            }
            RejectReason::RDMA_FRAGS if retry => {
                let f = r.cp.map(|c| c.max_frags).unwrap_or(frags).clamp(1, frags);
                self.spawn_connect(peer, 0, qd, f, attempt + 1);
            }
            why => self.connect_failed(peer, &format!("{pname} rejected the connection: {why}")),
        }
    }

    /// No connection could be made: every waiting message fails.
    fn connect_failed(&self, peer: u64, why: &str) {
        let mut actions = vec![Action::Log(LogLevel::WARN, why.to_string())];
        {
            let mut st = lock(&self.st);
            if let Some(p) = st.peers.get_mut(&peer) {
                p.connecting = false;
                for t in p.waiting.drain(..) {
                    actions.push(Action::Finalize(
                        t.token,
                        Completion::failed(errno::EHOSTUNREACH, HealthStatus::REMOTE_DROPPED),
                    ));
                }
            }
        }
        actions.push(Action::Notify(Nid::from_nid4(peer), false));
        self.run(actions);
    }

    /// Makes a connection's state and posts its receives (before the
    /// connection is established, so the peer never finds none).
    /// The NI's own address (its NID's).
    fn local_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.nid4 as u32))
    }

    /// The queues of a connection of queue depth `qd` and `frags` RDMA
    /// fragments (`kiblnd_send_wrs()`, `IBLND_RECV_WRS`): a send slot per
    /// message and an RDMA WRITE per fragment of each, the receives.
    fn queue_sizes(&self, qd: u32, frags: u32) -> QueueSizes {
        let (nrx, nslots) = self.conn_bufs(qd);
        QueueSizes {
            send_wr: (nslots as u32 + qd * frags).min(16384),
            recv_wr: nrx as u32,
            sge: self.dev.wr_sge(),
        }
    }

    /// The queue depth and fragments a connection of `qd` and `frags`
    /// gets on the NI's device ([`rdma::fit_queues`]); a reduction is
    /// logged, as o2iblnd warns when it lowers a peer's queue depth to
    /// make the QP.
    fn fit_queues(&self, peer: u64, qd: u16, frags: u16) -> (u16, u16) {
        let Some(l) = self.dev.limits() else {
            return (qd, frags);
        };
        let (d, f) = rdma::fit_queues(qd as u32, frags as u32, &l, |d, f| self.queue_sizes(d, f));
        let (d, f) = (d.min(qd as u32) as u16, f.min(frags as u32) as u16);
        let p = Nid::from_nid4(peer);
        if d < qd {
            self.log(
                LogLevel::WARN,
                &format!("{p}: queue depth reduced from {qd} to {d} to fit the device ({l})"),
            );
        }
        if f < frags {
            self.log(
                LogLevel::WARN,
                &format!("{p}: max frags reduced from {frags} to {f} to fit the device ({l})"),
            );
        }
        (d, f)
    }

    fn retries(&self) -> Retries {
        Retries {
            retry_count: self.tun.get("retry_count").min(7) as u8,
            rnr_retry_count: self.tun.get("rnr_retry_count").min(7) as u8,
        }
    }

    /// Receive buffers and send slots of a connection of queue depth `qd`.
    fn conn_bufs(&self, qd: u32) -> (usize, usize) {
        let nrx = 2 * qd as usize + 2;
        let nslots = (self.tun.get("concurrent_sends") as usize).max(1) + 2 * qd as usize + 4;
        (nrx, nslots)
    }

    fn make_conn(
        &self,
        qp: Arc<dyn VerbsQp>,
        peer: u64,
        peer_stamp: u64,
        cp: ConnParams,
    ) -> Result<Arc<Conn>, VerbsError> {
        let qd = cp.queue_depth as u32;
        let (nrx, nslots) = self.conn_bufs(qd);
        // One allocation per message buffer: buffers are borrowed one at
        // a time (the NIC fills one while the LND reads another), and a
        // borrow covers its whole allocation.
        let bufs = |n: usize| {
            PayloadSpan::from((0..n).map(|_| IoBuf::zeroed(MSG_SIZE)).collect::<Payload>())
        };
        let rx_buf = bufs(nrx);
        let tx_buf = bufs(nslots);
        let (rx_mr, tx_mr) = match (
            self.dev.register(&rx_buf, Access::LOCAL_WRITE),
            self.dev.register(&tx_buf, Access(0)),
        ) {
            (Ok(r), Ok(t)) => (r, t),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        // Buffer `i` at its place in the registration (soft: offset i ×
        // MSG_SIZE of one region; rdma: its own MR's address).
        let slots = |r: &Reg, n: usize| -> Vec<Sge> {
            (0..n).map(|i| r.sges(i * MSG_SIZE, MSG_SIZE)[0]).collect()
        };
        let (rx_sge, tx_sge) = (slots(&rx_mr, nrx), slots(&tx_mr, nslots));
        let now = Instant::now();
        let c = Arc::new(Conn {
            qp,
            peer,
            peer_stamp: AtomicU64::new(peer_stamp),
            qd,
            max_frags: cp.max_frags as u32,
            rx_sge,
            tx_sge,
            rx_buf,
            tx_buf,
            _regs: [rx_mr, tx_mr],
            st: Mutex::new(ConnSt {
                credits: qd,
                outstanding: 0,
                reserved: qd,
                noops: 0,
                posted: 0,
                slots: (0..nslots).map(|_| SlotUse::Free).collect(),
                free: (0..nslots).rev().collect(),
                nocred: VecDeque::new(),
                queue: VecDeque::new(),
                active: HashMap::new(),
                sinks: HashMap::new(),
                gets: HashMap::new(),
                last_tx: now,
                last_rx: now,
                closed: false,
            }),
        });
        for i in 0..nrx {
            self.post_rx(&c, i);
        }
        // Known to the poller from now on: a completion may come as soon
        // as the connection is established, before `established` runs.
        lock(&self.st).conns.insert(c.qp.qp_num(), c.clone());
        Ok(c)
    }

    /// Tests of the rdma provider against a fake verbs table: a connection
    /// on `qp`/`cq` as an accept makes it (receives posted, its CQ
    /// thread, established); its receive and send buffers.
    #[cfg(test)]
    pub(crate) fn attach_for_test(
        self: &Arc<Self>,
        qp: Arc<dyn VerbsQp>,
        peer: u64,
        peer_stamp: u64,
        cp: ConnParams,
    ) -> (PayloadSpan, PayloadSpan) {
        let c = self
            .make_conn(qp, peer, peer_stamp, cp)
            .expect("connection on the fake HCA");
        let bufs = (c.rx_buf.clone(), c.tx_buf.clone());
        self.established(c);
        bufs
    }

    /// A connection made by `make_conn` that never got established.
    fn unmake_conn(&self, c: &Conn) {
        lock(&self.st).conns.remove(&c.qp.qp_num());
        c.qp.disconnect();
    }

    /// A connection is up (either side): move the peer's waiting messages
    /// onto it.
    fn established(self: &Arc<Self>, c: Arc<Conn>) {
        let (peer, peer_stamp, qd, max_frags) = (c.peer, c.peer_stamp(), c.qd, c.max_frags);
        let mut old = None;
        let waiting;
        {
            let mut st = lock(&self.st);
            st.conns.insert(c.qp.qp_num(), c.clone());
            let p = st.peers.entry(peer).or_insert_with(|| PeerSt {
                conn: None,
                connecting: false,
                waiting: Vec::new(),
                stamp: 0,
                races: 0,
                last_alive: None,
            });
            if p.conn
                .as_ref()
                .is_some_and(|o| o.peer_stamp() != peer_stamp)
            {
                old = p.conn.take();
            }
            if p.conn.is_none() {
                p.conn = Some(c.clone());
            }
            p.connecting = false;
            p.stamp = peer_stamp;
            p.races = 0;
            p.last_alive = Some(Instant::now());
            waiting = std::mem::take(&mut p.waiting);
        }
        if let Some(o) = old {
            self.close_conn(&o, errno::ESTALE, "peer restarted");
        }
        let down = self.down();
        if down || lock(&c.st).closed {
            // Closed while it was set up (the NI shutting down closed what
            // it knew, perhaps before this was installed, and its poller
            // may be gone; or the peer went): not kept, its waiting
            // messages failed.
            {
                let mut st = lock(&self.st);
                let qpn = c.qp.qp_num();
                if st.conns.get(&qpn).is_some_and(|x| Arc::ptr_eq(x, &c)) {
                    st.conns.remove(&qpn);
                }
                if let Some(p) = st.peers.get_mut(&peer) {
                    if p.conn.as_ref().is_some_and(|x| Arc::ptr_eq(x, &c)) {
                        p.conn = None;
                    }
                }
            }
            let gone = if down {
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT)
            } else {
                Completion::failed(errno::ECONNRESET, HealthStatus::REMOTE_DROPPED)
            };
            self.run(
                waiting
                    .into_iter()
                    .map(|t| Action::Finalize(t.token, gone))
                    .collect(),
            );
            self.close_conn_h(
                &c,
                errno::ENETDOWN,
                "NI shut down",
                HealthStatus::LOCAL_INTERRUPT,
            );
            return;
        }
        self.log(
            LogLevel::INFO,
            &format!(
                "connected to {} (queue depth {qd}, max frags {max_frags})",
                Nid::from_nid4(peer),
            ),
        );
        let target = {
            let st = lock(&self.st);
            st.peers.get(&peer).and_then(|p| p.conn.clone())
        };
        let mut actions = vec![Action::Notify(Nid::from_nid4(peer), true)];
        if let Some(t) = target {
            lock(&t.st).queue.extend(waiting);
            self.check_sends(&t, &mut actions);
        }
        self.run(actions);
    }

    pub(super) fn post_rx(&self, c: &Conn, idx: usize) {
        let _ = c.qp.post_recv(RecvWr {
            wr_id: WR_RX | idx as u64,
            sge: c.rx_sge[idx],
        });
    }

    pub(super) fn acceptor(self: Arc<Self>) {
        while !self.down() {
            let r = match lock(&self.listener).as_ref() {
                Some(Listener::Soft(l)) => l.get_request().map(|r| r.map(Request::Soft)),
                Some(Listener::Rdma(l)) => l
                    .poll_request(Duration::from_millis(200))
                    .map(|r| r.map(Request::Rdma)),
                None => return,
            };
            match r {
                Ok(Some(r)) => self.passive(r),
                Ok(None) => {
                    if matches!(self.dev, Provider::Soft { .. }) {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                }
                Err(e) => {
                    self.log(LogLevel::ERROR, &format!("acceptor: {e}"));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn reject(&self, r: Request, why: RejectReason) {
        self.counters.conns_rejected.fetch_add(1, Ordering::Relaxed);
        let from = r
            .peer()
            .map_or_else(|| "a peer".to_string(), |p| p.to_string());
        self.log(
            LogLevel::INFO,
            &format!("rejecting a connection from {from}: {why}"),
        );
        let rej = RejRepr {
            version: VERSION_2,
            why,
            incarnation: Some(self.stamp),
            cp: Some(ConnParams {
                queue_depth: self.tun.queue_depth(),
                max_frags: MAX_RDMA_FRAGS as u16,
                max_msg_size: MSG_SIZE as u32,
            }),
        };
        let mut b = [0u8; wire::REJ_SIZE];
        let _ = rej.emit(Endian::NATIVE, &mut b);
        r.reject(&b);
    }

    /// The passive side's checks, in `spec/wire.md` §7.2's order.
    fn passive(self: &Arc<Self>, r: Request) {
        if self.tun.get("require_privileged_port") != 0 && r.peer_port() > 1023 {
            return self.reject(r, RejectReason::FATAL);
        }
        let m = match Msg::new_checked(r.private_data()) {
            Ok(m) => m,
            Err(wire::Error::BadVersion(_)) => return self.reject(r, RejectReason::CONN_UNCOMPAT),
            Err(_) => return self.reject(r, RejectReason::FATAL),
        };
        let Ok(req) = MsgRepr::parse(&m) else {
            return self.reject(r, RejectReason::FATAL);
        };
        if req.dst_nid != self.nid4 {
            return self.reject(r, RejectReason::FATAL);
        }
        if self.down() {
            return self.reject(r, RejectReason::EARLY);
        }
        if req.dst_stamp != 0 && req.dst_stamp != self.stamp {
            return self.reject(r, RejectReason::CONN_STALE);
        }
        let Body::ConnReq(cp) = req.body else {
            return self.reject(r, RejectReason::FATAL);
        };
        if req.version != VERSION_2 {
            return self.reject(r, RejectReason::CONN_UNCOMPAT);
        }
        if cp.queue_depth == 0 || cp.queue_depth > self.tun.queue_depth() {
            return self.reject(r, RejectReason::MSG_QUEUE_SIZE);
        }
        if cp.max_frags as u32 > MAX_RDMA_FRAGS || cp.max_frags == 0 {
            return self.reject(r, RejectReason::RDMA_FRAGS);
        }
        if cp.max_msg_size as usize > MSG_SIZE {
            return self.reject(r, RejectReason::FATAL);
        }
        let peer = req.src_nid;
        // The CONNACK grants what the device can hold (o2iblnd's
        // `kiblnd_send_wrs()` lowers the queue depth the same way).
        let (queue_depth, max_frags) = self.fit_queues(peer, cp.queue_depth, cp.max_frags);
        let cp = ConnParams {
            queue_depth,
            max_frags,
            ..cp
        };
        let stale_conn;
        {
            let mut st = lock(&self.st);
            let p = st.peers.get_mut(&peer);
            stale_conn = p
                .as_ref()
                .and_then(|p| p.conn.clone())
                .filter(|c| c.peer_stamp() != req.src_stamp);
            if let Some(p) = p {
                if stale_conn.is_none()
                    && p.connecting
                    && p.conn.is_none()
                    && nid_hash(peer) < nid_hash(self.nid4)
                    && p.races < MAX_CONN_RACES
                {
                    p.races += 1;
                    drop(st);
                    return self.reject(r, RejectReason::CONN_RACE);
                }
            }
        }
        if let Some(old) = stale_conn {
            self.close_conn(&old, errno::ESTALE, "peer restarted");
            return self.reject(r, RejectReason::CONN_STALE);
        }
        let ack = MsgRepr {
            version: VERSION_2,
            credits: 0,
            src_nid: self.nid4,
            src_stamp: self.stamp,
            dst_nid: peer,
            dst_stamp: req.src_stamp,
            body: Body::ConnAck(cp),
        };
        let mut b = [0u8; wire::CONN_MSG_SIZE];
        if ack.emit(Endian::NATIVE, &mut b).is_err() {
            return self.reject(r, RejectReason::NO_RESOURCES);
        }
        if self.cksum {
            wire::seal_cksum(Endian::NATIVE, &mut b);
        }
        let mut made = None;
        let stamp = req.src_stamp;
        let mut prepared = |qp: Arc<dyn VerbsQp>| match self.make_conn(qp, peer, stamp, cp) {
            Ok(c) => made = Some(c),
            Err(e) => self.log(LogLevel::WARN, &format!("accept: {e}")),
        };
        let r = match (r, &self.dev) {
            (Request::Soft(r), Provider::Soft { dev, cq }) => r
                .accept(dev, cq, &b, &mut |qp| prepared(Arc::new(qp.clone())))
                .map(|_| ()),
            (Request::Rdma(r), Provider::Rdma { dev, .. }) => {
                let q = self.queue_sizes(cp.queue_depth as u32, cp.max_frags as u32);
                let rnr = self.retries().rnr_retry_count;
                r.accept(dev, &b, q, rnr, &mut |qp| prepared(Arc::new(qp.clone())))
                    .map(|_| ())
            }
            (r, _) => {
                // A request of the other provider cannot happen (one
                // listener per NI).
                r.reject(&[]);
                return;
            }
        };
        match r {
            Ok(()) => {
                if let Some(c) = made {
                    self.established(c);
                }
            }
            Err(e) => {
                if let Some(c) = made {
                    self.unmake_conn(&c);
                }
                self.log(LogLevel::WARN, &format!("accept failed: {e}"))
            }
        }
    }

    /// Tests of the NI's own flows: a connection on `qp` (any
    /// [`VerbsQp`], e.g. one that records what is posted) made and
    /// established as an accept would; its receive and send buffers.
    /// Completions are then fed to `on_wc` by the test.
    #[cfg(test)]
    pub(crate) fn attach_qp_for_test(
        self: &Arc<Self>,
        qp: Arc<dyn VerbsQp>,
        peer: u64,
        peer_stamp: u64,
        cp: ConnParams,
    ) -> (PayloadSpan, PayloadSpan) {
        let c = self
            .make_conn(qp, peer, peer_stamp, cp)
            .expect("connection on the test QP");
        let bufs = (c.rx_buf.clone(), c.tx_buf.clone());
        self.established(c);
        bufs
    }
}

//! The rule engine: drop and delay rules, their firing decisions and their
//! statistics (semantics §11), sans-IO and deterministic: time is passed in
//! (a [`Duration`] since any fixed origin) and randomness comes from a seeded
//! [`Rng`]. Delayed items are held here, per rule, in arrival order, and
//! handed back when due or when their rule is deleted.

use std::collections::VecDeque;
use std::time::Duration;

use lnd_api::hdr::{GetBody, PutBody};
use lnd_api::{errno, Hdr, HealthStatus, LndError, MsgType, Nid};

/// Message-mask bits (`fa_msg_mask`): bit `1 << type`.
pub mod msg_bit {
    /// ACK.
    pub const ACK: u32 = 1 << 0;
    /// PUT.
    pub const PUT: u32 = 1 << 1;
    /// GET.
    pub const GET: u32 = 1 << 2;
    /// REPLY.
    pub const REPLY: u32 = 1 << 3;
    /// All four (the default).
    pub const ALL: u32 = ACK | PUT | GET | REPLY;
}

/// The health-error mask meaning "any status, at random".
pub const HSTATUS_RANDOM: u32 = u32::MAX;

/// The health-error names `--health_error` takes, with their mask bits
/// (bit n = status n); `random` is every bit.
pub const HEALTH_ERRORS: &[(&str, u32)] = &[
    ("local_interrupt", 1 << 1),
    ("local_dropped", 1 << 2),
    ("local_aborted", 1 << 3),
    ("local_no_route", 1 << 4),
    ("local_error", 1 << 5),
    ("local_timeout", 1 << 6),
    ("remote_error", 1 << 7),
    ("remote_dropped", 1 << 8),
    ("remote_timeout", 1 << 9),
    ("network_timeout", 1 << 10),
    ("random", HSTATUS_RANDOM),
];

/// A small seeded generator (SplitMix64): the same seed, the same rules and
/// the same messages give the same decisions.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for test traffic, no division.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What a rule matches (`struct lnet_fault_attr`, common part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Header `src_nid`: a NID, [`Nid::ANY`], or `255.255.255.255@net`.
    pub src: Nid,
    /// Header `dest_nid`, same wildcards.
    pub dst: Nid,
    /// The local NI the message passes through: the receiving NI of a
    /// received message, the sending NI of a send; [`Nid::ANY`] = all.
    /// (Upstream uses it for receive drops only; see the crate docs.)
    pub local_nid: Nid,
    /// Portals (bit n = portal n); 0 = no filter.
    pub ptl_mask: u64,
    /// Message types ([`msg_bit`]); 0 is stored as [`msg_bit::ALL`].
    pub msg_mask: u32,
}

impl Match {
    /// Every message.
    pub const ANY: Match = Match {
        src: Nid::ANY,
        dst: Nid::ANY,
        local_nid: Nid::ANY,
        ptl_mask: 0,
        msg_mask: 0,
    };
}

/// How a rule picks the messages it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firing {
    /// One message in every window of `R` matching messages.
    Rate(u32),
    /// One message per `I`-second window, at a random time.
    Interval(u32),
    /// With an interval `I`: each matching message with probability ½.
    Random(u32),
    /// Every matching message.
    All,
}

/// A drop rule as the user gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropSpec {
    /// What it matches.
    pub m: Match,
    /// The rate (`da_rate`), 0 when an interval is given.
    pub rate: u32,
    /// The interval in seconds (`da_interval`), 0 when a rate is given.
    pub interval: u32,
    /// Health statuses to inject on send (bit n = status n,
    /// [`HSTATUS_RANDOM`] = any); 0 = drop on receive.
    pub health_mask: u32,
    /// `--random`: with an interval, drop with probability ½.
    pub random: bool,
    /// `--drop_all`: drop every matching message.
    pub drop_all: bool,
}

/// A delay rule as the user gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelaySpec {
    /// What it matches.
    pub m: Match,
    /// The rate (`la_rate`), 0 when an interval is given.
    pub rate: u32,
    /// The interval in seconds (`la_interval`), 0 when a rate is given.
    pub interval: u32,
    /// Seconds to hold a selected message (`la_latency`, > 0).
    pub latency: u32,
}

/// Per-rule statistics (`struct lnet_fault_stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Matching messages counted (rate and interval modes).
    pub count: u64,
    /// Fired PUTs.
    pub put: u64,
    /// Fired ACKs.
    pub ack: u64,
    /// Fired GETs.
    pub get: u64,
    /// Fired REPLYs.
    pub reply: u64,
    /// Messages dropped (drop rules) or delayed (delay rules).
    pub fired: u64,
}

/// The firing state of a rule (`dr_drop_at`, `dr_drop_time`, `dr_time_base`).
#[derive(Clone, Debug)]
struct Trigger {
    firing: Firing,
    /// Rate: the count at which the next message fires.
    at: u64,
    /// Interval: when the next message fires.
    target: Duration,
    /// Interval: the end of the current window.
    base: Duration,
}

impl Trigger {
    fn new(firing: Firing, now: Duration, rng: &mut Rng) -> Self {
        let mut t = Trigger {
            firing,
            at: 0,
            target: Duration::ZERO,
            base: Duration::ZERO,
        };
        t.arm(now, rng);
        t
    }

    /// (Re-)arms the random targets (on add and on reset).
    fn arm(&mut self, now: Duration, rng: &mut Rng) {
        match self.firing {
            Firing::Rate(2) => self.at = 0,
            Firing::Rate(r) => self.at = rng.below(u64::from(r)),
            Firing::Interval(i) => {
                self.base = now + secs(i);
                self.target = now + secs(rng.below(u64::from(i)) as u32);
            }
            Firing::Random(_) | Firing::All => {}
        }
    }

    /// The firing decision for one matching message (§11.3).
    fn fire(&mut self, now: Duration, stats: &mut Stats, rng: &mut Rng) -> bool {
        match self.firing {
            Firing::All => true,
            Firing::Random(i) => rng.below(u64::from(i)) >= u64::from(i / 2),
            Firing::Interval(i) => {
                stats.count += 1;
                if now < self.target {
                    return false;
                }
                self.base = self.base.max(now);
                self.target = self.base + secs(rng.below(u64::from(i)) as u32);
                self.base += secs(i);
                true
            }
            Firing::Rate(r) => {
                let fire = stats.count == self.at;
                stats.count += 1;
                if stats.count % u64::from(r) == 0 {
                    self.at = stats.count + rng.below(u64::from(r));
                }
                fire
            }
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// What the rule engine needs of a message: its header fields.
#[derive(Clone, Copy, Debug)]
pub struct MsgInfo {
    /// Header `src_nid`.
    pub src: Nid,
    /// Header `dest_nid`.
    pub dst: Nid,
    /// Message type (0..3).
    pub msg_type: u32,
    /// Portal of a PUT or GET; `u32::MAX` for the others.
    pub portal: u32,
    /// The NID of the local NI it passes through (receiving or sending);
    /// [`Nid::ANY`] when unknown (then only rules without a local NID
    /// match it).
    pub local: Nid,
}

impl MsgInfo {
    /// From an LNet header.
    pub fn of(hdr: &Hdr) -> Self {
        let portal = match hdr.msg_type {
            MsgType::PUT => PutBody::from_body(&hdr.body).ptl_index,
            MsgType::GET => GetBody::from_body(&hdr.body).ptl_index,
            _ => u32::MAX,
        };
        MsgInfo {
            src: hdr.src_nid,
            dst: hdr.dest_nid,
            msg_type: hdr.msg_type.0,
            portal,
            local: Nid::ANY,
        }
    }

    /// The same message, passing through the local NI `nid`.
    pub fn at(mut self, nid: Nid) -> Self {
        self.local = nid;
        self
    }
}

/// `lnet_fault_nid_match`: equal, the rule's NID is ANY, or it is
/// `255.255.255.255@net` (all-ones address) and the message's NID is on `net`.
pub fn nid_matches(rule: Nid, nid: Nid) -> bool {
    if rule == nid || rule.is_any() {
        return true;
    }
    is_net_wildcard(rule) && rule.net() == nid.net()
}

/// Whether `nid` is a whole-net wildcard (`255.255.255.255@net`).
pub fn is_net_wildcard(nid: Nid) -> bool {
    !nid.is_any() && nid.addr[..nid.addr_len()].iter().all(|&b| b == 0xFF)
}

impl Match {
    fn matches(&self, msg: &MsgInfo) -> bool {
        if !nid_matches(self.src, msg.src) || !nid_matches(self.dst, msg.dst) {
            return false;
        }
        if !self.local_nid.is_any() && self.local_nid != msg.local {
            return false;
        }
        if msg.msg_type > 3 || self.msg_mask & (1 << msg.msg_type) == 0 {
            return false;
        }
        // ACK and REPLY have no portal but the message mask excludes them
        // whenever a portal mask is set.
        if self.ptl_mask != 0 && (msg.portal >= 64 || self.ptl_mask & (1u64 << msg.portal) == 0) {
            return false;
        }
        true
    }

    /// `lnet_fault_attr_validate`: 0 means all types; a portal mask keeps
    /// only PUT and GET.
    fn validate(&mut self) -> Result<(), LndError> {
        if self.msg_mask == 0 {
            self.msg_mask = msg_bit::ALL;
        }
        if self.msg_mask & !msg_bit::ALL != 0 {
            return Err(LndError::new(
                errno::EINVAL,
                format!("invalid message mask {:#x}", self.msg_mask),
            ));
        }
        if self.ptl_mask != 0 {
            self.msg_mask &= msg_bit::PUT | msg_bit::GET;
            if self.msg_mask == 0 {
                return Err(LndError::new(
                    errno::EINVAL,
                    "a portal filter only matches PUT and GET, and the message mask has neither",
                ));
            }
        }
        Ok(())
    }
}

fn count_type(stats: &mut Stats, msg_type: u32) {
    match MsgType(msg_type) {
        MsgType::PUT => stats.put += 1,
        MsgType::ACK => stats.ack += 1,
        MsgType::GET => stats.get += 1,
        MsgType::REPLY => stats.reply += 1,
        _ => {}
    }
}

fn firing(rate: u32, interval: u32, what: &str) -> Result<Firing, LndError> {
    match (rate, interval) {
        (r, 0) if r > 0 => Ok(Firing::Rate(r)),
        (0, i) if i > 0 => Ok(Firing::Interval(i)),
        _ => Err(LndError::new(
            errno::EINVAL,
            format!(
                "please provide either {what} rate or interval but not both at the same time \
                 (rate {rate}, interval {interval})"
            ),
        )),
    }
}

/// A drop rule with its state.
#[derive(Clone, Debug)]
pub struct DropRule {
    /// As given (masks normalised).
    pub spec: DropSpec,
    /// Its statistics.
    pub stats: Stats,
    trigger: Trigger,
}

/// A delay rule with its state and its held items.
#[derive(Debug)]
pub struct DelayRule<T> {
    /// As given (masks normalised).
    pub spec: DelaySpec,
    /// Its statistics.
    pub stats: Stats,
    trigger: Trigger,
    held: VecDeque<(Duration, T)>,
}

impl<T> DelayRule<T> {
    /// Items held by this rule.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The health status to inject for a mask (§11.2): a random status in
/// 1..=10; with [`HSTATUS_RANDOM`] that one; if its bit is in the mask that
/// one; else the set bit closest to it (the higher one on a tie).
pub fn choose_health(mask: u32, rng: &mut Rng) -> HealthStatus {
    health_for(mask, 1 + rng.below(10) as u32)
}

/// The status [`choose_health`] picks for the draw `choice` (1..=10).
pub fn health_for(mask: u32, choice: u32) -> HealthStatus {
    if mask == HSTATUS_RANDOM || mask & (1 << choice) != 0 {
        return HealthStatus(choice);
    }
    let mut best = choice;
    let mut best_delta = u32::MAX;
    for bit in (1..=10u32).rev() {
        if mask & (1 << bit) != 0 {
            let delta = bit.abs_diff(choice);
            if delta < best_delta {
                best_delta = delta;
                best = bit;
            }
        }
    }
    HealthStatus(best)
}

/// What the send path decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<T> {
    /// Hand it to the LND.
    Pass(T),
    /// Fail it with this health status (a drop rule with a health mask).
    Fail(HealthStatus, T),
    /// Held by a delay rule.
    Held,
}

/// The rule tables of one node: drop rules and delay rules, newest first
/// (the first rule that fires wins); `T` is what a delay rule holds.
#[derive(Debug)]
pub struct Rules<T> {
    drop: Vec<DropRule>,
    delay: Vec<DelayRule<T>>,
    rng: Rng,
}

impl<T> Rules<T> {
    /// Empty tables with a seeded generator.
    pub fn new(seed: u64) -> Self {
        Rules {
            drop: Vec::new(),
            delay: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.delay.is_empty()
    }

    /// The drop rules, newest first.
    pub fn drop_rules(&self) -> &[DropRule] {
        &self.drop
    }

    /// The delay rules, newest first.
    pub fn delay_rules(&self) -> &[DelayRule<T>] {
        &self.delay
    }

    /// Adds a drop rule at the head (`lnet_drop_rule_add`).
    pub fn add_drop(&mut self, mut spec: DropSpec, now: Duration) -> Result<(), LndError> {
        let mut f = firing(spec.rate, spec.interval, "drop")?;
        spec.m.validate()?;
        if spec.random {
            match f {
                Firing::Interval(i) => f = Firing::Random(i),
                _ => {
                    return Err(LndError::new(
                        errno::EINVAL,
                        "please provide an interval to randomize",
                    ))
                }
            }
        }
        if spec.drop_all {
            f = Firing::All;
        }
        if spec.health_mask != 0
            && spec.health_mask != HSTATUS_RANDOM
            && spec.health_mask & 0x7FE == 0
        {
            return Err(LndError::new(
                errno::EINVAL,
                format!("invalid health error mask {:#x}", spec.health_mask),
            ));
        }
        let trigger = Trigger::new(f, now, &mut self.rng);
        self.drop.insert(
            0,
            DropRule {
                spec,
                stats: Stats::default(),
                trigger,
            },
        );
        Ok(())
    }

    /// Adds a delay rule at the head (`lnet_delay_rule_add`).
    pub fn add_delay(&mut self, mut spec: DelaySpec, now: Duration) -> Result<(), LndError> {
        let f = firing(spec.rate, spec.interval, "delay")?;
        if spec.latency == 0 {
            return Err(LndError::new(errno::EINVAL, "latency cannot be zero"));
        }
        spec.m.validate()?;
        let trigger = Trigger::new(f, now, &mut self.rng);
        self.delay.insert(
            0,
            DelayRule {
                spec,
                stats: Stats::default(),
                trigger,
                held: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Deletes the drop rules whose source and destination equal `src` and
    /// `dst` (ANY matches every rule); returns how many.
    pub fn del_drop(&mut self, src: Nid, dst: Nid) -> usize {
        let before = self.drop.len();
        self.drop
            .retain(|r| !(del_matches(src, r.spec.m.src) && del_matches(dst, r.spec.m.dst)));
        before - self.drop.len()
    }

    /// Deletes delay rules as [`Rules::del_drop`]; their held items are
    /// handed to `release` at once, in order. Returns how many rules.
    pub fn del_delay(&mut self, src: Nid, dst: Nid, mut release: impl FnMut(T)) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.delay.len() {
            let r = &self.delay[i];
            if del_matches(src, r.spec.m.src) && del_matches(dst, r.spec.m.dst) {
                let r = self.delay.remove(i);
                r.held.into_iter().for_each(|(_, t)| release(t));
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Zeroes the drop rules' statistics and re-arms their targets.
    pub fn reset_drop(&mut self, now: Duration) {
        for r in &mut self.drop {
            r.stats = Stats::default();
            r.trigger.arm(now, &mut self.rng);
        }
    }

    /// Zeroes the delay rules' statistics and re-arms their targets.
    pub fn reset_delay(&mut self, now: Duration) {
        for r in &mut self.delay {
            r.stats = Stats::default();
            r.trigger.arm(now, &mut self.rng);
        }
    }

    /// The receive path, drop rules without a health mask
    /// (`lnet_drop_rule_match` from `parse`): whether to discard a message
    /// received on the NI `local`.
    pub fn drop_on_receive(&mut self, msg: &MsgInfo, local: Nid, now: Duration) -> bool {
        self.drop_match(&msg.at(local), false, now).is_some()
    }

    /// The send path, drop rules with a health mask: the status to fail a
    /// send with, if one fires. A rule with a local NID matches sends of
    /// that NI only (`msg.local`).
    pub fn fail_on_send(&mut self, msg: &MsgInfo, now: Duration) -> Option<HealthStatus> {
        self.drop_match(msg, true, now)
    }

    fn drop_match(&mut self, msg: &MsgInfo, send: bool, now: Duration) -> Option<HealthStatus> {
        for r in &mut self.drop {
            // A health rule acts only on send, the others only on receive.
            if (r.spec.health_mask != 0) != send {
                continue;
            }
            if !r.spec.m.matches(msg) {
                continue;
            }
            if r.trigger.fire(now, &mut r.stats, &mut self.rng) {
                count_type(&mut r.stats, msg.msg_type);
                r.stats.fired += 1;
                return Some(if send {
                    choose_health(r.spec.health_mask, &mut self.rng)
                } else {
                    HealthStatus::OK
                });
            }
        }
        None
    }

    /// Delay rules (send or receive path; a rule with a local NID matches
    /// messages through that NI only): when one fires, `item` is held until
    /// `now + latency` and this returns `None`; otherwise `item` comes back.
    pub fn delay(&mut self, msg: &MsgInfo, now: Duration, item: T) -> Option<T> {
        for r in &mut self.delay {
            if !r.spec.m.matches(msg) {
                continue;
            }
            if r.trigger.fire(now, &mut r.stats, &mut self.rng) {
                count_type(&mut r.stats, msg.msg_type);
                r.stats.fired += 1;
                r.held.push_back((now + secs(r.spec.latency), item));
                return None;
            }
        }
        Some(item)
    }

    /// The send path in one call: a drop rule with a health mask first,
    /// then the delay rules.
    pub fn on_send(&mut self, msg: &MsgInfo, now: Duration, item: T) -> Verdict<T> {
        if let Some(h) = self.fail_on_send(msg, now) {
            return Verdict::Fail(h, item);
        }
        match self.delay(msg, now, item) {
            None => Verdict::Held,
            Some(item) => Verdict::Pass(item),
        }
    }

    /// Hands every held item due at `now` to `release`, each rule's in
    /// arrival order (rules newest first).
    pub fn release_due(&mut self, now: Duration, mut release: impl FnMut(T)) {
        for r in &mut self.delay {
            while r.held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, t)) = r.held.pop_front() {
                    release(t);
                }
            }
        }
    }

    /// When the next held item is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.delay
            .iter()
            .filter_map(|r| r.held.front().map(|(due, _)| *due))
            .min()
    }

    /// Takes out every held item for which `pred` holds (an NI going away),
    /// handing them to `take`.
    pub fn take_held(&mut self, mut pred: impl FnMut(&T) -> bool, mut take: impl FnMut(T)) {
        for r in &mut self.delay {
            let mut keep = VecDeque::with_capacity(r.held.len());
            for (due, t) in r.held.drain(..) {
                if pred(&t) {
                    take(t);
                } else {
                    keep.push_back((due, t));
                }
            }
            r.held = keep;
        }
    }

    /// Deletes every rule (`lnet unconfigure`); held items go to `release`.
    pub fn clear(&mut self, release: impl FnMut(T)) {
        self.drop.clear();
        self.del_delay(Nid::ANY, Nid::ANY, release);
    }
}

fn del_matches(given: Nid, rule: Nid) -> bool {
    given.is_any() || given == rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnd_api::hdr::BODY_SIZE;
    use lnd_api::NetId;

    const TCP: NetId = NetId::new(lnd_api::lnd_type::SOCKLND, 0);
    const TCP1: NetId = NetId::new(lnd_api::lnd_type::SOCKLND, 1);

    fn nid(a: u32) -> Nid {
        Nid::new4(TCP, a)
    }

    fn msg(t: MsgType, src: Nid, dst: Nid, portal: u32) -> MsgInfo {
        MsgInfo {
            src,
            dst,
            msg_type: t.0,
            portal: if matches!(t, MsgType::PUT | MsgType::GET) {
                portal
            } else {
                u32::MAX
            },
            local: Nid::ANY,
        }
    }

    fn put() -> MsgInfo {
        msg(MsgType::PUT, nid(1), nid(2), 4)
    }

    fn drop_spec(rate: u32, interval: u32) -> DropSpec {
        DropSpec {
            m: Match::ANY,
            rate,
            interval,
            health_mask: 0,
            random: false,
            drop_all: false,
        }
    }

    fn delay_spec(rate: u32, latency: u32) -> DelaySpec {
        DelaySpec {
            m: Match::ANY,
            rate,
            interval: 0,
            latency,
        }
    }

    const T0: Duration = Duration::from_secs(1000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nid_wildcards() {
        let any_tcp = Nid::new4(TCP, u32::MAX);
        assert!(nid_matches(nid(5), nid(5)));
        assert!(!nid_matches(nid(5), nid(6)));
        assert!(nid_matches(Nid::ANY, nid(6)));
        assert!(nid_matches(any_tcp, nid(6)));
        assert!(!nid_matches(any_tcp, Nid::new4(TCP1, 6)));
        assert!(is_net_wildcard(any_tcp));
        assert!(!is_net_wildcard(Nid::ANY));
        assert!(is_net_wildcard(Nid::new16(TCP, [0xFF; 16])));
    }

    #[test]
    fn header_fields_give_the_portal_of_puts_and_gets_only() {
        let body: [u8; BODY_SIZE] = lnd_api::hdr::PutBody {
            ack_wmd: lnd_api::WireHandle::NONE,
            match_bits: 0,
            hdr_data: 0,
            ptl_index: 9,
            offset: 0,
        }
        .to_body();
        let mut hdr = Hdr {
            dest_nid: nid(2),
            src_nid: nid(1),
            dest_pid: 0,
            src_pid: 0,
            msg_type: MsgType::PUT,
            payload_length: 0,
            body,
        };
        let m = MsgInfo::of(&hdr);
        assert_eq!((m.src, m.dst, m.msg_type, m.portal), (nid(1), nid(2), 1, 9));
        hdr.msg_type = MsgType::ACK;
        assert_eq!(MsgInfo::of(&hdr).portal, u32::MAX);
    }

    #[test]
    fn matching_by_source_destination_type_portal_and_local_nid() {
        let mut r: Rules<()> = Rules::new(1);
        let mut s = drop_spec(1, 0);
        s.m.src = nid(1);
        s.m.dst = Nid::new4(TCP, u32::MAX);
        s.m.msg_mask = msg_bit::PUT | msg_bit::ACK;
        s.m.local_nid = nid(2);
        r.add_drop(s, T0).expect("add");
        assert!(r.drop_on_receive(&put(), nid(2), T0));
        // Another local NI, source, destination net or type: no match.
        assert!(!r.drop_on_receive(&put(), nid(3), T0));
        assert!(!r.drop_on_receive(&msg(MsgType::PUT, nid(9), nid(2), 4), nid(2), T0));
        let other_net = Nid::new4(TCP1, 2);
        assert!(!r.drop_on_receive(&msg(MsgType::PUT, nid(1), other_net, 4), nid(2), T0));
        assert!(!r.drop_on_receive(&msg(MsgType::GET, nid(1), nid(2), 4), nid(2), T0));
        assert!(r.drop_on_receive(&msg(MsgType::ACK, nid(1), nid(2), 0), nid(2), T0));
        assert_eq!(r.drop_rules()[0].stats.count, 2);

        // A portal mask keeps PUT and GET only, and filters on the portal.
        let mut r: Rules<()> = Rules::new(1);
        let mut s = drop_spec(1, 0);
        s.m.ptl_mask = 1 << 4 | 1 << 63;
        r.add_drop(s, T0).expect("add");
        assert_eq!(
            r.drop_rules()[0].spec.m.msg_mask,
            msg_bit::PUT | msg_bit::GET
        );
        assert!(r.drop_on_receive(&put(), nid(2), T0));
        assert!(r.drop_on_receive(&msg(MsgType::GET, nid(1), nid(2), 63), nid(2), T0));
        assert!(!r.drop_on_receive(&msg(MsgType::GET, nid(1), nid(2), 5), nid(2), T0));
        assert!(!r.drop_on_receive(&msg(MsgType::REPLY, nid(1), nid(2), 0), nid(2), T0));
        assert!(!r.drop_on_receive(&msg(MsgType::ACK, nid(1), nid(2), 0), nid(2), T0));
    }

    #[test]
    fn invalid_rules_are_refused_and_change_nothing() {
        let mut r: Rules<()> = Rules::new(1);
        let e = r.add_drop(drop_spec(1, 1), T0).expect_err("both");
        assert_eq!(e.errno, errno::EINVAL);
        assert!(e.message.contains("either drop rate or interval"), "{e}");
        r.add_drop(drop_spec(0, 0), T0).expect_err("neither");
        let mut s = drop_spec(3, 0);
        s.random = true;
        let e = r.add_drop(s, T0).expect_err("random with rate");
        assert_eq!(
            e.message.as_str(),
            "please provide an interval to randomize"
        );
        let mut s = drop_spec(3, 0);
        s.m.ptl_mask = 1;
        s.m.msg_mask = msg_bit::ACK | msg_bit::REPLY;
        r.add_drop(s, T0).expect_err("portal with ACK only");
        let e = r.add_delay(delay_spec(1, 0), T0).expect_err("latency 0");
        assert_eq!(e.message.as_str(), "latency cannot be zero");
        let e = r.add_delay(delay_spec(0, 3), T0).expect_err("no rate");
        assert!(e.message.contains("either delay rate"), "{e}");
        assert!(r.is_empty());
    }

    /// Rate R: exactly one firing in each window of R matching messages.
    #[test]
    fn rate_fires_once_per_window_of_r() {
        for rate in [1u32, 2, 3, 7, 10, 64] {
            for seed in 0..20 {
                let mut r: Rules<()> = Rules::new(seed);
                r.add_drop(drop_spec(rate, 0), T0).expect("add");
                let windows = 50u64;
                let mut fired_in = vec![0u32; windows as usize];
                for i in 0..windows * u64::from(rate) {
                    if r.drop_on_receive(&put(), nid(2), T0) {
                        fired_in[(i / u64::from(rate)) as usize] += 1;
                    }
                }
                assert!(
                    fired_in.iter().all(|&n| n == 1),
                    "rate {rate}: {fired_in:?}"
                );
                let st = r.drop_rules()[0].stats;
                assert_eq!(st.count, windows * u64::from(rate));
                assert_eq!((st.fired, st.put), (windows, windows));
            }
        }
    }

    #[test]
    fn rate_2_drops_the_first_message_and_positions_are_spread() {
        for seed in 0..10 {
            let mut r: Rules<()> = Rules::new(seed);
            r.add_drop(drop_spec(2, 0), T0).expect("add");
            assert!(r.drop_on_receive(&put(), nid(2), T0));
        }
        // With R = 8 every position in a window is used over many windows.
        let mut r: Rules<()> = Rules::new(7);
        r.add_drop(drop_spec(8, 0), T0).expect("add");
        let mut pos = [0u32; 8];
        for i in 0..8 * 400 {
            if r.drop_on_receive(&put(), nid(2), T0) {
                pos[i % 8] += 1;
            }
        }
        assert!(pos.iter().all(|&n| n > 20), "{pos:?}");
    }

    /// Interval I: one firing per I-second window under steady traffic.
    #[test]
    fn interval_fires_once_per_window() {
        for interval in [1u32, 2, 5, 10] {
            for seed in 0..10 {
                let mut r: Rules<()> = Rules::new(seed);
                r.add_drop(drop_spec(0, interval), T0).expect("add");
                let secs_total = 100u64;
                let mut fired_in = vec![0u32; (secs_total / u64::from(interval)) as usize];
                // A message every 100 ms, in the middle of each slot.
                for k in 0..secs_total * 10 {
                    let now = T0 + ms(k * 100 + 50);
                    if r.drop_on_receive(&put(), nid(2), now) {
                        fired_in[(k / 10 / u64::from(interval)) as usize] += 1;
                    }
                }
                assert!(
                    fired_in.iter().all(|&n| n == 1),
                    "interval {interval}: {fired_in:?}"
                );
                assert_eq!(r.drop_rules()[0].stats.count, secs_total * 10);
            }
        }
    }

    #[test]
    fn interval_after_a_silence_fires_at_once_then_once_per_window() {
        let mut r: Rules<()> = Rules::new(3);
        r.add_drop(drop_spec(0, 4), T0).expect("add");
        // Nothing for 60 s, then a message: the target is long past.
        assert!(r.drop_on_receive(&put(), nid(2), T0 + Duration::from_secs(60)));
        // The next target is within [60, 64) s; nothing more before 60 s.
        let mut fired = 0;
        for k in 1..40 {
            if r.drop_on_receive(&put(), nid(2), T0 + Duration::from_secs(60) + ms(k * 100)) {
                fired += 1;
            }
        }
        assert!(fired <= 1, "{fired}");
    }

    #[test]
    fn random_drops_about_half() {
        let mut s = drop_spec(0, 10);
        s.random = true;
        let mut r: Rules<()> = Rules::new(11);
        r.add_drop(s, T0).expect("add");
        let n = 20_000;
        let fired = (0..n)
            .filter(|_| r.drop_on_receive(&put(), nid(2), T0))
            .count();
        assert!((9_000..11_000).contains(&fired), "{fired}");
        assert_eq!(r.drop_rules()[0].stats.fired, fired as u64);
        // Interval 1 with random: every message (random(0..0) >= 0).
        let mut s = drop_spec(0, 1);
        s.random = true;
        let mut r: Rules<()> = Rules::new(11);
        r.add_drop(s, T0).expect("add");
        assert!((0..100).all(|_| r.drop_on_receive(&put(), nid(2), T0)));
    }

    #[test]
    fn drop_all_drops_everything_that_matches() {
        let mut s = drop_spec(1000, 0);
        s.drop_all = true;
        s.m.msg_mask = msg_bit::GET;
        let mut r: Rules<()> = Rules::new(1);
        r.add_drop(s, T0).expect("add");
        for _ in 0..50 {
            assert!(r.drop_on_receive(&msg(MsgType::GET, nid(1), nid(2), 0), nid(2), T0));
            assert!(!r.drop_on_receive(&put(), nid(2), T0));
        }
        let st = r.drop_rules()[0].stats;
        assert_eq!((st.get, st.fired, st.put), (50, 50, 0));
    }

    #[test]
    fn health_rules_act_on_send_only_and_others_on_receive_only() {
        let mut r: Rules<()> = Rules::new(1);
        let mut s = drop_spec(1, 0);
        s.health_mask = 1 << 5; // local_error
        r.add_drop(s, T0).expect("add");
        assert!(!r.drop_on_receive(&put(), nid(2), T0));
        assert_eq!(r.fail_on_send(&put(), T0), Some(HealthStatus::LOCAL_ERROR));
        let mut r: Rules<()> = Rules::new(1);
        r.add_drop(drop_spec(1, 0), T0).expect("add");
        assert_eq!(r.fail_on_send(&put(), T0), None);
        assert_eq!(r.drop_rules()[0].stats.count, 0);
        // A health rule with a local NID fails the sends of that NI only
        // (and none whose NI is unknown).
        let mut r: Rules<()> = Rules::new(1);
        let mut s = drop_spec(1, 0);
        s.health_mask = 1 << 7;
        s.m.local_nid = nid(2);
        r.add_drop(s, T0).expect("add");
        assert_eq!(r.fail_on_send(&put(), T0), None);
        assert_eq!(r.fail_on_send(&put().at(nid(3)), T0), None);
        assert_eq!(
            r.fail_on_send(&put().at(nid(2)), T0),
            Some(HealthStatus::REMOTE_ERROR)
        );
        assert_eq!(r.drop_rules()[0].stats.fired, 1);
    }

    #[test]
    fn delay_rules_with_a_local_nid_hold_messages_of_that_ni_only() {
        let mut r: Rules<u32> = Rules::new(1);
        let mut s = delay_spec(1, 2);
        s.m.local_nid = nid(7);
        r.add_delay(s, T0).expect("add");
        assert_eq!(r.delay(&put(), T0, 1), Some(1), "NI unknown");
        assert_eq!(r.delay(&put().at(nid(8)), T0, 2), Some(2), "another NI");
        assert_eq!(r.delay(&put().at(nid(7)), T0, 3), None, "held");
        assert_eq!(r.delay_rules()[0].stats.fired, 1);
    }

    #[test]
    fn every_health_status_can_be_injected() {
        for &(name, bit) in HEALTH_ERRORS {
            let mut r: Rules<()> = Rules::new(5);
            let mut s = drop_spec(1, 0);
            s.health_mask = bit;
            r.add_drop(s, T0).expect("add");
            let mut seen = [0u32; 11];
            for _ in 0..2000 {
                let h = r.fail_on_send(&put(), T0).expect("fires");
                seen[h.0 as usize] += 1;
            }
            if name == "random" {
                assert!(seen[1..].iter().all(|&n| n > 100), "{seen:?}");
                assert_eq!(seen[0], 0);
            } else {
                let status = bit.trailing_zeros() as usize;
                assert_eq!(seen[status], 2000, "{name}: {seen:?}");
                assert_eq!(HealthStatus(status as u32).name(), name);
            }
        }
    }

    #[test]
    fn health_choice_rounds_to_the_closest_selected_status() {
        let mask = 1 << 1 | 1 << 10;
        assert_eq!(health_for(mask, 1), HealthStatus(1));
        assert_eq!(health_for(mask, 5), HealthStatus(1));
        assert_eq!(health_for(mask, 6), HealthStatus(10));
        assert_eq!(health_for(mask, 9), HealthStatus(10));
        // A tie goes to the higher status.
        let mask = 1 << 2 | 1 << 4;
        assert_eq!(health_for(mask, 3), HealthStatus(4));
        assert_eq!(health_for(HSTATUS_RANDOM, 7), HealthStatus(7));
        // A mask of two statuses yields both over many draws, nothing else.
        let mut rng = Rng::new(9);
        let mut seen = [0u32; 11];
        for _ in 0..1000 {
            seen[choose_health(1 << 3 | 1 << 8, &mut rng).0 as usize] += 1;
        }
        assert_eq!(seen[3] + seen[8], 1000);
        assert!(seen[3] > 300 && seen[8] > 300, "{seen:?}");
    }

    #[test]
    fn newest_rule_first_and_the_first_that_fires_wins() {
        let mut r: Rules<()> = Rules::new(1);
        let mut old = drop_spec(1, 0);
        old.drop_all = true;
        r.add_drop(old, T0).expect("add");
        let mut new = drop_spec(1, 0);
        new.drop_all = true;
        new.m.src = nid(1);
        r.add_drop(new, T0).expect("add");
        assert!(r.drop_on_receive(&put(), nid(2), T0));
        assert!(r.drop_on_receive(&msg(MsgType::PUT, nid(8), nid(2), 0), nid(2), T0));
        assert_eq!(r.drop_rules()[0].spec.m.src, nid(1));
        assert_eq!(r.drop_rules()[0].stats.fired, 1);
        assert_eq!(r.drop_rules()[1].stats.fired, 1);
    }

    #[test]
    fn reset_zeroes_statistics_and_rearms() {
        let mut r: Rules<()> = Rules::new(1);
        r.add_drop(drop_spec(2, 0), T0).expect("add");
        r.add_delay(delay_spec(1, 5), T0).expect("add");
        for _ in 0..5 {
            r.drop_on_receive(&put(), nid(2), T0);
            let _ = r.delay(&put(), T0, ());
        }
        assert_eq!(r.drop_rules()[0].stats.count, 5);
        r.reset_drop(T0);
        assert_eq!(r.drop_rules()[0].stats, Stats::default());
        // Re-armed: with R = 2 the first message after reset fires again.
        assert!(r.drop_on_receive(&put(), nid(2), T0));
        assert_eq!(r.delay_rules()[0].stats.fired, 5);
        r.reset_delay(T0);
        assert_eq!(r.delay_rules()[0].stats, Stats::default());
        assert_eq!(r.delay_rules()[0].held(), 5, "reset keeps what is held");
    }

    #[test]
    fn delays_release_in_order_when_due() {
        let mut r: Rules<u32> = Rules::new(1);
        r.add_delay(delay_spec(1, 3), T0).expect("add");
        for i in 0..10u32 {
            assert_eq!(r.delay(&put(), T0 + ms(u64::from(i) * 100), i), None);
        }
        assert_eq!(r.next_due(), Some(T0 + Duration::from_secs(3)));
        let mut out = Vec::new();
        r.release_due(T0 + ms(2999), |i| out.push(i));
        assert!(out.is_empty());
        r.release_due(T0 + ms(3450), |i| out.push(i));
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        r.release_due(T0 + ms(10_000), |i| out.push(i));
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(r.next_due(), None);
        let st = r.delay_rules()[0].stats;
        assert_eq!((st.fired, st.put, st.count), (10, 10, 10));
    }

    #[test]
    fn delay_rate_selects_one_in_r_and_others_pass() {
        let mut r: Rules<u32> = Rules::new(4);
        r.add_delay(delay_spec(4, 1), T0).expect("add");
        let held = (0..400u32)
            .filter(|&i| r.delay(&put(), T0, i).is_none())
            .count();
        assert_eq!(held, 100);
    }

    #[test]
    fn deleting_a_delay_rule_releases_at_once_and_del_matches_exactly_or_any() {
        let mut r: Rules<u32> = Rules::new(1);
        let mut a = delay_spec(1, 100);
        a.m.src = nid(1);
        a.m.dst = nid(2);
        r.add_delay(a, T0).expect("add");
        let mut b = delay_spec(1, 100);
        b.m.src = nid(7);
        r.add_delay(b, T0).expect("add");
        for i in 0..3 {
            assert_eq!(r.delay(&put(), T0, i), None);
        }
        let mut out = Vec::new();
        // No rule with source 1 and destination 3.
        assert_eq!(r.del_delay(nid(1), nid(3), |i| out.push(i)), 0);
        assert_eq!(r.del_delay(nid(1), nid(2), |i| out.push(i)), 1);
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(r.delay_rules().len(), 1);
        assert_eq!(r.del_delay(Nid::ANY, Nid::ANY, |i| out.push(i)), 1);
        assert!(r.is_empty());

        r.add_drop(drop_spec(1, 0), T0).expect("add");
        let mut s = drop_spec(1, 0);
        s.m.src = nid(4);
        r.add_drop(s, T0).expect("add");
        assert_eq!(r.del_drop(nid(4), nid(4)), 0);
        assert_eq!(r.del_drop(nid(4), Nid::ANY), 1);
        assert_eq!(r.del_drop(Nid::ANY, Nid::ANY), 1);
    }

    #[test]
    fn take_held_removes_only_the_chosen_items() {
        let mut r: Rules<u32> = Rules::new(1);
        r.add_delay(delay_spec(1, 5), T0).expect("add");
        for i in 0..6 {
            let _ = r.delay(&put(), T0, i);
        }
        let mut odd = Vec::new();
        r.take_held(|i| i % 2 == 1, |i| odd.push(i));
        assert_eq!(odd, vec![1, 3, 5]);
        let mut rest = Vec::new();
        r.clear(|i| rest.push(i));
        assert_eq!(rest, vec![0, 2, 4]);
        assert!(r.is_empty());
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = |seed| {
            let mut r: Rules<()> = Rules::new(seed);
            r.add_drop(drop_spec(5, 0), T0).expect("add");
            (0..200)
                .map(|_| r.drop_on_receive(&put(), nid(2), T0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}

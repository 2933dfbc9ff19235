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
    /// The receiving NI (drop rules on receive only); [`Nid::ANY`] = all.
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
    /// What it matches (the local NID is not used).
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
        }
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
    fn matches(&self, msg: &MsgInfo, local: Option<Nid>) -> bool {
        if !nid_matches(self.src, msg.src) || !nid_matches(self.dst, msg.dst) {
            return false;
        }
        if let Some(local) = local {
            if !self.local_nid.is_any() && self.local_nid != local {
                return false;
            }
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
    let choice = 1 + rng.below(10) as u32;
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
        self.drop_match(msg, Some(local), false, now).is_some()
    }

    /// The send path, drop rules with a health mask: the status to fail a
    /// send with, if one fires.
    pub fn fail_on_send(&mut self, msg: &MsgInfo, now: Duration) -> Option<HealthStatus> {
        self.drop_match(msg, None, true, now)
    }

    fn drop_match(
        &mut self,
        msg: &MsgInfo,
        local: Option<Nid>,
        send: bool,
        now: Duration,
    ) -> Option<HealthStatus> {
        for r in &mut self.drop {
            // A health rule acts only on send, the others only on receive;
            // on send the local NID is absent, so only ANY matches it.
            if (r.spec.health_mask != 0) != send {
                continue;
            }
            let local = if send { Some(Nid::ANY) } else { local };
            if send && !r.spec.m.local_nid.is_any() {
                continue;
            }
            if !r.spec.m.matches(msg, local) {
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

    /// Delay rules (send or receive path; the local NID is not used): when
    /// one fires, `item` is held until `now + latency` and this returns
    /// `None`; otherwise `item` comes back.
    pub fn delay(&mut self, msg: &MsgInfo, now: Duration, item: T) -> Option<T> {
        for r in &mut self.delay {
            if !r.spec.m.matches(msg, None) {
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

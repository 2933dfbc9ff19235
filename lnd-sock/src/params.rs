//! Module parameters (`ksocklnd` and the acceptor's, `spec/semantics.md`
//! §13.3/§13.5) and per-NI tunables (`lnetctl net add`, `spec/lnetctl.md`
//! §2.2), with upstream's names, defaults and units.
//!
//! [`lnd_api::NiConfig::params`] is the node's one flat namespace: names this LND
//! does not know belong to somebody else and are ignored; a known name with
//! a bad value refuses the NI with a message naming it.

use std::time::Duration;

use lnd_api::{errno, LndError, NetTunables, ParamDecl, Tunable};

/// `accept=`: which connections the acceptor takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptMode {
    /// `secure`: only from privileged source ports (≤ 1023).
    Secure,
    /// `all`: from any port (unprivileged ones become userspace peers).
    All,
    /// `none`: no acceptor.
    None,
}

/// The parameters in force for one NI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `accept` (secure).
    pub accept: AcceptMode,
    /// `accept_port` (988): where CONTROL connections go and we listen.
    pub accept_port: u16,
    /// `accept_port_bulk` (= `accept_port`): where bulk connections go.
    pub accept_port_bulk: u16,
    /// `accept_backlog` (127).
    pub accept_backlog: i32,
    /// `accept_timeout` (5 s): acceptor handshake I/O.
    pub accept_timeout: Duration,
    /// `accept_max_handshakes` (256, this LND's own): connections a listener
    /// keeps in the handshake (connection request and hello) at once; past
    /// it a new connection is closed at once.
    pub accept_max_handshakes: usize,
    /// `sock_timeout` (50 s; 0 ⇒ the LNet LND timeout).
    pub sock_timeout_param: u32,
    /// The LNet LND timeout (`lnet_lnd_timeout`, derived from
    /// `lnet_transaction_timeout` and `lnet_retry_count`, 49 s by default).
    pub lnd_timeout: u32,
    /// `min_reconnectms` (1000).
    pub min_reconnect: Duration,
    /// `max_reconnectms` (60000).
    pub max_reconnect: Duration,
    /// `typed_conns` (1).
    pub typed_conns: bool,
    /// `min_bulk` (1024): smallest "bulk" message, headers included.
    pub min_bulk: usize,
    /// `tx_buffer_size` (0: system default).
    pub tx_buffer_size: usize,
    /// `rx_buffer_size` (0: system default).
    pub rx_buffer_size: usize,
    /// `nagle` (0 ⇒ TCP_NODELAY).
    pub nagle: bool,
    /// `keepalive` (30 s; 0 off): NOOP after this long without news.
    pub keepalive: u32,
    /// `keepalive_idle` (30 s): TCP keepalive.
    pub keepalive_idle: u32,
    /// `keepalive_count` (5).
    pub keepalive_count: u32,
    /// `keepalive_intvl` (5 s).
    pub keepalive_intvl: u32,
    /// `enable_csum` (0): checksum messages on V2 connections.
    pub enable_csum: bool,
    /// `conns_per_peer` module default (0: auto).
    pub conns_per_peer: u32,
    /// `tos` module default (-1: off).
    pub tos: i32,
    /// `protocol` (3): the version offered over IPv4 (2 or 3).
    pub protocol: u32,
    /// `zc_min_payload` (16384): smallest payload for which we ask the
    /// receiver for a zero-copy ACK, when `zc_request` is on.
    pub zc_min_payload: usize,
    /// `zc_request` (0, this LND's own): ask for zero-copy ACKs and complete
    /// such sends only once acknowledged. The kernel asks only when the NIC
    /// sends pages by reference; a user-space socket copies, so off by default.
    pub zc_request: bool,
    /// `rx_spin_us` (50, this LND's own): how long a reader polls for the
    /// rest of a payload in flight before it sleeps; 0 never polls.
    pub rx_spin_us: u32,
    /// `rx_poll_us` (100, this LND's own): the most a reader polls its
    /// socket for the next message before it sleeps, when the last gap
    /// between messages was shorter (see `conn::IdlePoll`); 0 never polls.
    pub rx_poll_us: u32,
    /// `rx_lowat` (1, this LND's own): a reader that sleeps for the rest of
    /// a large payload sets the socket's receive low-water mark to it, so
    /// it is woken once, when the rest is there, not at every segment.
    pub rx_lowat: bool,
    /// `nscheds` (0): scheduler threads (as the kernel's socklnd has), each
    /// a single-threaded runtime that its connections' readers and writers
    /// stay on; 0 is ksocklnd's count, half the CPUs, at least three, at
    /// most all. Read when the first NI of the process starts.
    pub nscheds: usize,
    /// `credits` (256).
    pub credits: i32,
    /// `peer_credits` (8).
    pub peer_credits: i32,
    /// `peer_buffer_credits` (0).
    pub peer_buffer_credits: i32,
    /// `peer_timeout` (180).
    pub peer_timeout: i32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            accept: AcceptMode::Secure,
            accept_port: 988,
            accept_port_bulk: 988,
            accept_backlog: 127,
            accept_timeout: Duration::from_secs(5),
            accept_max_handshakes: 256,
            sock_timeout_param: 50,
            lnd_timeout: 49,
            min_reconnect: Duration::from_millis(1000),
            max_reconnect: Duration::from_millis(60000),
            typed_conns: true,
            min_bulk: 1024,
            tx_buffer_size: 0,
            rx_buffer_size: 0,
            nagle: false,
            keepalive: 30,
            keepalive_idle: 30,
            keepalive_count: 5,
            keepalive_intvl: 5,
            enable_csum: false,
            conns_per_peer: 0,
            tos: -1,
            protocol: 3,
            zc_min_payload: 16384,
            zc_request: false,
            rx_spin_us: 50,
            rx_poll_us: 100,
            rx_lowat: true,
            nscheds: 0,
            credits: 256,
            peer_credits: 8,
            peer_buffer_credits: 0,
            peer_timeout: 180,
        }
    }
}

/// Most scheduler threads `nscheds` asks for.
pub const NSCHEDS_MAX: usize = 64;

/// The module these parameters belong to (`options ksocklnd ...`).
pub const MODULE: &str = "ksocklnd";

const M: &str = MODULE;
const MAX_I32: i64 = i32::MAX as i64;

/// Every `ksocklnd` parameter, with upstream's names and defaults
/// (`spec/semantics.md` §13.5) and the ranges [`Params::from_list`] takes,
/// declared to the host through the lnd-api parameter extension. The
/// acceptor's (`accept`, `accept_port`, ...) are the lnet module's and the
/// host's: this LND reads them from [`lnd_api::NiConfig::params`].
pub static DECLS: [ParamDecl; 35] = [
    ParamDecl::int(
        M,
        "sock_timeout",
        "50",
        0,
        86400,
        "dead-socket timeout in seconds; 0 follows the LNet LND timeout",
    ),
    ParamDecl::int(
        M,
        "credits",
        "256",
        1,
        1 << 20,
        "default credits (concurrent sends) of an NI",
    ),
    ParamDecl::int(
        M,
        "peer_credits",
        "8",
        1,
        1 << 16,
        "default concurrent sends to one peer NI (capped at credits)",
    ),
    ParamDecl::int(
        M,
        "peer_buffer_credits",
        "0",
        0,
        1 << 16,
        "default router buffer credits of a peer NI",
    ),
    ParamDecl::int(
        M,
        "peer_timeout",
        "180",
        0,
        1 << 20,
        "default seconds without news before a peer NI is dead",
    ),
    ParamDecl::int(
        M,
        "nscheds",
        "0",
        0,
        NSCHEDS_MAX as i64,
        "scheduler threads running the connections (0: half the CPUs, at least 3, at most all), read at the first NI start-up",
    ),
    ParamDecl::int(
        M,
        "nconnds",
        "4",
        1,
        MAX_I32,
        "connection daemons (no effect: tokio tasks)",
    ),
    ParamDecl::int(
        M,
        "nconnds_max",
        "64",
        1,
        MAX_I32,
        "connection daemons at most (no effect: tokio tasks)",
    ),
    ParamDecl::int(
        M,
        "min_reconnectms",
        "1000",
        1,
        3_600_000,
        "first reconnect back-off in milliseconds",
    ),
    ParamDecl::int(
        M,
        "max_reconnectms",
        "60000",
        1,
        3_600_000,
        "largest reconnect back-off in milliseconds",
    ),
    ParamDecl::int(
        M,
        "eager_ack",
        "0",
        0,
        MAX_I32,
        "connection types that ACK eagerly (not implemented)",
    ),
    ParamDecl::bool(
        M,
        "typed_conns",
        "1",
        "use CONTROL, BULK_IN and BULK_OUT connections",
    ),
    ParamDecl::int(
        M,
        "min_bulk",
        "1024",
        0,
        1 << 21,
        "smallest bulk message in bytes, headers included",
    ),
    ParamDecl::int(
        M,
        "tx_buffer_size",
        "0",
        0,
        1 << 30,
        "socket send buffer size (0: system default)",
    ),
    ParamDecl::int(
        M,
        "rx_buffer_size",
        "0",
        0,
        1 << 30,
        "socket receive buffer size (0: system default)",
    ),
    ParamDecl::bool(M, "nagle", "0", "enable Nagle's algorithm (0: TCP_NODELAY)"),
    ParamDecl::bool(
        M,
        "round_robin",
        "1",
        "round robin among equally loaded connections (not implemented)",
    ),
    ParamDecl::int(
        M,
        "keepalive",
        "30",
        -1,
        86400,
        "seconds without news before a NOOP (<= 0: off)",
    ),
    ParamDecl::int(
        M,
        "keepalive_idle",
        "30",
        0,
        86400,
        "TCP keepalive idle time in seconds",
    ),
    ParamDecl::int(M, "keepalive_count", "5", 0, 1000, "TCP keepalive probes"),
    ParamDecl::int(
        M,
        "keepalive_intvl",
        "5",
        0,
        86400,
        "TCP keepalive probe interval in seconds",
    ),
    ParamDecl::bool(M, "enable_csum", "0", "checksum messages on V2 connections"),
    ParamDecl::bool(M, "inject_csum_error", "0", "test hook (not implemented)"),
    ParamDecl::bool(
        M,
        "nonblk_zcack",
        "1",
        "zero-copy ACKs on the BULK_IN connection (not implemented)",
    ),
    ParamDecl::int(
        M,
        "zc_min_payload",
        "16384",
        0,
        1 << 21,
        "smallest payload sent zero-copy, bytes (floor 2048)",
    ),
    ParamDecl::bool(M, "zc_recv", "0", "zero-copy receive (not implemented)"),
    ParamDecl::int(
        M,
        "zc_recv_min_nfrags",
        "16",
        0,
        MAX_I32,
        "fragments for zero-copy receive (not implemented)",
    ),
    ParamDecl::int(
        M,
        "conns_per_peer",
        "0",
        0,
        255,
        "bulk connections per type per peer (0: from link speed)",
    ),
    ParamDecl::bool(
        M,
        "skip_mr_route_setup",
        "0",
        "do not set up Multi-Rail routes (not applicable)",
    ),
    ParamDecl::int(M, "tos", "-1", -1, 255, "IP type of service (-1: off)"),
    ParamDecl::int(
        M,
        "protocol",
        "3",
        2,
        3,
        "hello protocol version offered over IPv4",
    ),
    ParamDecl::bool(
        M,
        "zc_request",
        "0",
        "this LND's own: ask for zero-copy ACKs of large sends",
    ),
    ParamDecl::int(
        M,
        "rx_spin_us",
        "50",
        0,
        10_000,
        "this LND's own: microseconds a reader polls for a payload in flight",
    ),
    ParamDecl::int(
        M,
        "rx_poll_us",
        "100",
        0,
        10_000,
        "this LND's own: microseconds a reader polls for the next message when they come that close",
    ),
    ParamDecl::bool(
        M,
        "rx_lowat",
        "1",
        "this LND's own: wake a reader once the rest of a large payload is there",
    ),
];

fn bad(name: &str, value: &str, what: &str) -> LndError {
    LndError::new(
        errno::EINVAL,
        format!("module parameter {name}={value:?} is invalid: {what}"),
    )
}

fn num<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    name: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, LndError> {
    match value.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(bad(
            name,
            value,
            &format!("expected a number in {min}..={max}"),
        )),
    }
}

impl Params {
    /// Reads the parameters this LND knows from `list`; others are ignored.
    pub fn from_list(list: &[Tunable]) -> Result<Params, LndError> {
        let mut p = Params::default();
        let mut bulk_port: Option<u16> = None;
        let mut tt: Option<u32> = None;
        let mut retry: Option<u32> = None;
        let mut lnd_timeout: Option<u32> = None;
        for t in list {
            let (n, v) = (t.name.as_str(), t.value.as_str());
            match n {
                "accept" => {
                    p.accept = match v.trim() {
                        "secure" => AcceptMode::Secure,
                        "all" => AcceptMode::All,
                        "none" => AcceptMode::None,
                        _ => return Err(bad(n, v, "expected secure, all or none")),
                    }
                }
                "accept_port" => p.accept_port = num(n, v, 1, u16::MAX)?,
                "accept_port_bulk" => bulk_port = Some(num(n, v, 1, u16::MAX)?),
                "accept_backlog" => p.accept_backlog = num(n, v, 1, 65535)?,
                "accept_timeout" => p.accept_timeout = Duration::from_secs(num(n, v, 1, 3600)?),
                "accept_max_handshakes" => p.accept_max_handshakes = num(n, v, 1, 65536)?,
                "sock_timeout" => p.sock_timeout_param = num(n, v, 0, 86400)?,
                "lnet_lnd_timeout" | "lnd_timeout" => lnd_timeout = Some(num(n, v, 1, 86400)?),
                "lnet_transaction_timeout" => tt = Some(num(n, v, 1, 86400)?),
                "lnet_retry_count" => retry = Some(num(n, v, 0, 100)?),
                "min_reconnectms" => {
                    p.min_reconnect = Duration::from_millis(num(n, v, 1, 3_600_000)?)
                }
                "max_reconnectms" => {
                    p.max_reconnect = Duration::from_millis(num(n, v, 1, 3_600_000)?)
                }
                "typed_conns" => p.typed_conns = num::<u32>(n, v, 0, 1)? == 1,
                "min_bulk" => p.min_bulk = num(n, v, 0, 1 << 21)?,
                "tx_buffer_size" => p.tx_buffer_size = num(n, v, 0, 1 << 30)?,
                "rx_buffer_size" => p.rx_buffer_size = num(n, v, 0, 1 << 30)?,
                "nagle" => p.nagle = num::<u32>(n, v, 0, 1)? == 1,
                "keepalive" => p.keepalive = num::<i64>(n, v, -1, 86400)?.max(0) as u32,
                "keepalive_idle" => p.keepalive_idle = num(n, v, 0, 86400)?,
                "keepalive_count" => p.keepalive_count = num(n, v, 0, 1000)?,
                "keepalive_intvl" => p.keepalive_intvl = num(n, v, 0, 86400)?,
                "enable_csum" => p.enable_csum = num::<u32>(n, v, 0, 1)? == 1,
                "conns_per_peer" => p.conns_per_peer = num(n, v, 0, 255)?,
                "tos" => p.tos = num(n, v, -1, 255)?,
                "protocol" => p.protocol = num(n, v, 2, 3)?,
                "zc_min_payload" => p.zc_min_payload = num::<usize>(n, v, 0, 1 << 21)?.max(2048),
                "zc_request" => p.zc_request = num::<u32>(n, v, 0, 1)? == 1,
                "rx_spin_us" => p.rx_spin_us = num(n, v, 0, 10_000)?,
                "rx_poll_us" => p.rx_poll_us = num(n, v, 0, 10_000)?,
                "rx_lowat" => p.rx_lowat = num::<u32>(n, v, 0, 1)? == 1,
                "nscheds" => p.nscheds = num(n, v, 0, NSCHEDS_MAX)?,
                "credits" => p.credits = num(n, v, 1, 1 << 20)?,
                "peer_credits" => p.peer_credits = num(n, v, 1, 1 << 16)?,
                "peer_buffer_credits" => p.peer_buffer_credits = num(n, v, 0, 1 << 16)?,
                "peer_timeout" => p.peer_timeout = num(n, v, 0, 1 << 20)?,
                _ => {}
            }
        }
        p.accept_port_bulk = bulk_port.unwrap_or(p.accept_port);
        p.lnd_timeout = match (lnd_timeout, tt) {
            (Some(t), _) => t,
            (None, Some(tt)) => ((tt.saturating_sub(1)) / (retry.unwrap_or(2) + 1)).max(1),
            (None, None) => 49,
        };
        if p.min_reconnect > p.max_reconnect {
            return Err(LndError::new(
                errno::EINVAL,
                "module parameters: min_reconnectms is larger than max_reconnectms",
            ));
        }
        Ok(p)
    }

    /// The socket timeout in force (`sock_timeout`, or the LND timeout when 0),
    /// in seconds; what `net show -v` prints as `timeout`.
    pub fn timeout_secs(&self) -> u32 {
        if self.sock_timeout_param == 0 {
            self.lnd_timeout
        } else {
            self.sock_timeout_param
        }
    }

    /// [`Params::timeout_secs`] as a duration.
    pub fn sock_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs() as u64)
    }

    /// Fills unset net tunables with this LND's defaults; `peer_credits` is
    /// capped at `credits`.
    pub fn fill(&self, t: NetTunables) -> NetTunables {
        let pick = |v: i32, d: i32, min: i32| if v >= min { v } else { d };
        let credits = pick(t.credits, self.credits, 1);
        NetTunables {
            peer_timeout: pick(t.peer_timeout, self.peer_timeout, 0),
            peer_credits: pick(t.peer_credits, self.peer_credits, 1).min(credits),
            peer_buffer_credits: pick(t.peer_buffer_credits, self.peer_buffer_credits, 0),
            credits,
        }
    }
}

/// The LND tunables of one NI (`lnet_ioctl_config_socklnd_tunables`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NiTunables {
    /// Bulk connections per type per peer, resolved (≥ 1).
    pub conns_per_peer: u32,
    /// IP type of service, -1 off.
    pub tos: i32,
}

impl NiTunables {
    /// From the user's LND tunables, falling back to the module's; a
    /// `conns_per_peer` of 0 resolves from `link_mbps` (`spec/lnetctl.md` §2.2).
    pub fn resolve(
        list: &[Tunable],
        p: &Params,
        link_mbps: Option<u64>,
    ) -> Result<NiTunables, LndError> {
        let mut cpp = p.conns_per_peer;
        let mut tos = p.tos;
        for t in list {
            let (n, v) = (t.name.as_str(), t.value.as_str());
            match n {
                "conns_per_peer" => match v.trim().parse::<i64>() {
                    Ok(x) if x < 0 => {}
                    Ok(x) if x <= 127 => cpp = x as u32,
                    _ => {
                        return Err(LndError::new(
                            errno::EINVAL,
                            format!("invalid conns_per_peer value {v:?} (valid range 0-127)"),
                        ))
                    }
                },
                "tos" => match v.trim().parse::<i32>() {
                    Ok(x) if (-1..=255).contains(&x) => tos = x,
                    _ => {
                        return Err(LndError::new(
                            errno::EINVAL,
                            format!("invalid tos value {v:?} (valid range -1..255)"),
                        ))
                    }
                },
                // Read-only or unknown to socklnd: ignored as upstream does.
                _ => {}
            }
        }
        if cpp == 0 {
            cpp = auto_conns_per_peer(link_mbps);
        }
        Ok(NiTunables {
            conns_per_peer: cpp,
            tos,
        })
    }

    /// What `net show -v` prints under `lnd tunables`, in upstream's order.
    pub fn report(&self, timeout_secs: u32) -> Vec<Tunable> {
        vec![
            Tunable::new("conns_per_peer", self.conns_per_peer),
            Tunable::new("timeout", timeout_secs),
            Tunable::new("tos", self.tos),
        ]
    }
}

/// `conns_per_peer` 0 ("auto"): `floor(log2(speed / 1000)) / 2 + 1` with the
/// speed in Mb/s floored to 1000 (1 GbE → 1, 10 → 2, 25 → 3, 100 → 4).
pub fn auto_conns_per_peer(link_mbps: Option<u64>) -> u32 {
    let gbps = (link_mbps.unwrap_or(1000).max(1000) / 1000).max(1);
    gbps.ilog2() / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kv: &[(&str, &str)]) -> Vec<Tunable> {
        kv.iter().map(|(k, v)| Tunable::new(*k, v)).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let p = Params::from_list(&[]).expect("defaults");
        assert_eq!(p, Params::default());
        assert_eq!(p.timeout_secs(), 50);
        assert_eq!(p.accept_port_bulk, 988);
        let p = Params::from_list(&list(&[
            ("accept_port", "7988"),
            ("accept", "all"),
            ("sock_timeout", "0"),
            ("lnet_transaction_timeout", "50"),
            ("lnet_retry_count", "1"),
            ("networks", "tcp(eth0)"),
        ]))
        .expect("valid");
        assert_eq!(p.accept_port, 7988);
        assert_eq!(p.accept_port_bulk, 7988);
        assert_eq!(p.accept, AcceptMode::All);
        assert_eq!(p.timeout_secs(), 24);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = Params::from_list(&list(&[("accept", "maybe")])).expect_err("bad");
        assert_eq!(e.errno, errno::EINVAL);
        assert!(e.message.contains("accept=\"maybe\""), "{}", e.message);
        let e = Params::from_list(&list(&[("accept_port", "70000")])).expect_err("bad");
        assert!(e.message.contains("accept_port"), "{}", e.message);
        let e = Params::from_list(&list(&[("rx_spin_us", "-1")])).expect_err("bad");
        assert!(e.message.contains("rx_spin_us"), "{}", e.message);
    }

    /// The declarations say what `from_list` does: every default is the
    /// value in force when nothing is given, every declared bound is taken
    /// and one past it refused; names are unique.
    #[test]
    fn declarations_match_what_the_lnd_reads() {
        let d = Params::default();
        for decl in &DECLS {
            let n = decl.name();
            assert_eq!(decl.module(), "ksocklnd");
            assert_eq!(DECLS.iter().filter(|x| x.name() == n).count(), 1, "{n}");
            assert!(decl.check(decl.default()).is_ok(), "{n}");
            let with_default =
                Params::from_list(&list(&[(n, decl.default())])).expect("default is valid");
            assert_eq!(
                with_default, d,
                "{n}: the declared default is not the LND's"
            );
            if decl.ty == lnd_api::ParamType::INT {
                // The reconnect pair is also checked against each other.
                let with = |v: &str| {
                    let mut l = list(&[(n, v)]);
                    if n.ends_with("_reconnectms") {
                        l.push(Tunable::new("min_reconnectms", v));
                        l.push(Tunable::new("max_reconnectms", v));
                    }
                    Params::from_list(&l)
                };
                for v in [decl.min, decl.max] {
                    with(&v.to_string()).expect("bound taken");
                }
                let past = (decl.max + 1).to_string();
                let refused = with(&past).is_err();
                let unused = !(["nconnds", "nconnds_max", "eager_ack"].contains(&n)
                    || n == "zc_recv_min_nfrags");
                assert_eq!(refused, unused, "{n}: {past}");
            }
        }
    }

    #[test]
    fn rx_spin_defaults_to_50_us_and_can_be_off() {
        assert_eq!(Params::default().rx_spin_us, 50);
        let p = Params::from_list(&list(&[("rx_spin_us", "0")])).expect("valid");
        assert_eq!(p.rx_spin_us, 0);
    }

    #[test]
    fn rx_poll_defaults_to_100_us_and_can_be_off() {
        assert_eq!(Params::default().rx_poll_us, 100);
        let p = Params::from_list(&list(&[("rx_poll_us", "0")])).expect("valid");
        assert_eq!(p.rx_poll_us, 0);
        let e = Params::from_list(&list(&[("rx_poll_us", "20000")])).expect_err("too long");
        assert!(e.message.contains("rx_poll_us"), "{}", e.message);
    }

    #[test]
    fn net_tunables_filled_and_capped() {
        let p = Params::default();
        let t = p.fill(NetTunables::UNSET);
        assert_eq!(
            t,
            NetTunables {
                peer_timeout: 180,
                peer_credits: 8,
                peer_buffer_credits: 0,
                credits: 256
            }
        );
        let t = p.fill(NetTunables {
            credits: 4,
            ..NetTunables::UNSET
        });
        assert_eq!((t.credits, t.peer_credits), (4, 4));
    }

    #[test]
    fn lnd_tunables_resolve_and_report_in_order() {
        let p = Params::default();
        let t = NiTunables::resolve(&[], &p, None).expect("ok");
        assert_eq!(
            t,
            NiTunables {
                conns_per_peer: 1,
                tos: -1
            }
        );
        let r = t.report(50);
        let names: Vec<_> = r.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["conns_per_peer", "timeout", "tos"]);
        assert_eq!(r[1].value.as_str(), "50");
        let t = NiTunables::resolve(&list(&[("conns_per_peer", "3"), ("tos", "16")]), &p, None)
            .expect("ok");
        assert_eq!(
            t,
            NiTunables {
                conns_per_peer: 3,
                tos: 16
            }
        );
        assert!(NiTunables::resolve(&list(&[("conns_per_peer", "128")]), &p, None).is_err());
        assert!(NiTunables::resolve(&list(&[("tos", "256")]), &p, None).is_err());
    }

    #[test]
    fn auto_conns_per_peer_from_speed() {
        assert_eq!(auto_conns_per_peer(None), 1);
        assert_eq!(auto_conns_per_peer(Some(100)), 1);
        assert_eq!(auto_conns_per_peer(Some(1000)), 1);
        assert_eq!(auto_conns_per_peer(Some(10_000)), 2);
        assert_eq!(auto_conns_per_peer(Some(25_000)), 3);
        assert_eq!(auto_conns_per_peer(Some(40_000)), 3);
        assert_eq!(auto_conns_per_peer(Some(100_000)), 4);
    }
}

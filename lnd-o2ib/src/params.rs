//! ko2iblnd's module parameters (`spec/semantics.md` §13.6) with upstream's
//! names, defaults and clamping, plus `provider` (this LND's own: `rdma` or
//! `soft`).
//!
//! A value comes from the NI's LND tunables (`lnetctl net add ...`) first,
//! then from the node's module parameters ([`lnd_api::NiConfig::params`],
//! one flat namespace: names this LND does not know are somebody else's),
//! then the default. A known name with a bad value refuses the NI with a
//! message that names it.

use lnd_api::abi_stable::std_types::RStr;
use lnd_api::{errno, tunable, LndError, NetTunables, ParamDecl, Tunable};

/// One integer parameter: name, default, smallest and largest value, text.
pub struct ParamDef {
    /// Upstream's name.
    pub name: &'static str,
    /// Default, as text (what `lnetd --help-params` shows).
    pub default: &'static str,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
    /// What it does.
    pub doc: &'static str,
}

const fn p(
    name: &'static str,
    default: &'static str,
    min: i64,
    max: i64,
    doc: &'static str,
) -> ParamDef {
    ParamDef {
        name,
        default,
        min,
        max,
        doc,
    }
}

/// ko2iblnd's integer parameters, as `modinfo ko2iblnd` lists them.
pub const PARAMS: &[ParamDef] = &[
    p(
        "service",
        "987",
        1,
        65535,
        "service number (within RDMA_PS_TCP)",
    ),
    p(
        "cksum",
        "0",
        0,
        1,
        "set non-zero to enable message (not RDMA) checksums",
    ),
    p("timeout", "50", 1, 3600, "timeout (seconds)"),
    p(
        "nscheds",
        "0",
        0,
        1024,
        "number of threads in each scheduler pool",
    ),
    p(
        "conns_per_peer",
        "1",
        1,
        127,
        "number of connections per peer",
    ),
    p(
        "ntx",
        "512",
        1,
        1 << 20,
        "number of message descriptors allocated for each pool",
    ),
    p("credits", "256", 1, 1 << 20, "number of concurrent sends"),
    p(
        "peer_credits",
        "8",
        1,
        255,
        "number of concurrent sends to 1 peer",
    ),
    p(
        "peer_credits_hiw",
        "0",
        0,
        255,
        "when eagerly to return credits",
    ),
    p(
        "peer_buffer_credits",
        "0",
        0,
        1 << 20,
        "number per-peer router buffer credits",
    ),
    p(
        "peer_timeout",
        "180",
        0,
        1 << 20,
        "seconds without aliveness news to declare peer dead (<=0 to disable)",
    ),
    p(
        "retry_count",
        "5",
        0,
        7,
        "retransmissions when no ACK received",
    ),
    p("rnr_retry_count", "6", 0, 7, "RNR retransmissions"),
    p(
        "keepalive",
        "100",
        0,
        1 << 20,
        "idle time in seconds before sending a keepalive",
    ),
    p("ib_mtu", "0", 0, 4096, "IB MTU 256/512/1024/2048/4096"),
    p(
        "concurrent_sends",
        "0",
        0,
        1 << 16,
        "send work-queue sizing",
    ),
    p("map_on_demand", "1", 0, 257, "map on demand (obsolete)"),
    p(
        "fmr_pool_size",
        "512",
        1,
        1 << 20,
        "size of fmr pool on each CPT (>= ntx / 4)",
    ),
    p(
        "fmr_flush_trigger",
        "384",
        1,
        1 << 20,
        "# dirty FMRs that triggers pool flush",
    ),
    p("fmr_cache", "1", 0, 1, "non-zero to enable FMR caching"),
    p(
        "dev_failover",
        "0",
        0,
        1,
        "HCA failover for bonding (0 off, 1 on, other values reserved)",
    ),
    p(
        "require_privileged_port",
        "0",
        0,
        1,
        "require privileged port when accepting connection",
    ),
    p(
        "use_privileged_port",
        "1",
        0,
        1,
        "use privileged port when initiating connection",
    ),
    p(
        "wrq_sge",
        "2",
        1,
        2,
        "# scatter/gather element per work request",
    ),
    p(
        "use_fastreg_gaps",
        "0",
        0,
        1,
        "enable discontiguous fastreg fragment support",
    ),
    p(
        "tos",
        "-1",
        -1,
        255,
        "set tos for connections (-1 to disable)",
    ),
];

/// The module name under which the parameters are declared.
pub const MODULE: &str = "ko2iblnd";

const PROVIDERS: [RStr<'static>; 2] = [RStr::from_str("rdma"), RStr::from_str("soft")];

/// The parameters declared to the host (lnd-api's parameter extension):
/// [`PARAMS`] and `provider`.
pub static DECLS: [ParamDecl; PARAMS.len() + 1] = decls();

const fn decls() -> [ParamDecl; PARAMS.len() + 1] {
    let provider = ParamDecl::choice(
        MODULE,
        "provider",
        "rdma",
        &PROVIDERS,
        "verbs provider: rdma (rdma-core; the default where a device exists) or soft (software, over TCP)",
    );
    let mut out = [provider; PARAMS.len() + 1];
    let mut i = 0;
    while i < PARAMS.len() {
        let d = &PARAMS[i];
        out[i] = ParamDecl::int(MODULE, d.name, d.default, d.min, d.max, d.doc);
        i += 1;
    }
    out
}

/// Which verbs provider an NI uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProviderKind {
    /// rdma-core (libibverbs / librdmacm) on an RDMA device.
    Rdma,
    /// The software provider over TCP.
    Soft,
}

impl ProviderKind {
    /// Its name, as the `provider` tunable takes it.
    pub const fn name(self) -> &'static str {
        match self {
            ProviderKind::Rdma => "rdma",
            ProviderKind::Soft => "soft",
        }
    }
}

/// The parameters in force for one NI, clamped as ko2iblnd clamps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// Every integer parameter by name, after clamping.
    values: Vec<(&'static str, i64)>,
    /// `provider`: `None` = default (rdma where a device exists, else soft).
    pub provider: Option<ProviderKind>,
}

impl Tunables {
    /// Resolves the parameters of one NI; net tunables (`--peer-credits`,
    /// `--credits`) override the module parameters of the same name.
    pub fn resolve(
        lnd_tunables: &[Tunable],
        params: &[Tunable],
        net: &NetTunables,
    ) -> Result<Tunables, LndError> {
        let mut values = Vec::with_capacity(PARAMS.len());
        for d in PARAMS {
            let raw = tunable(lnd_tunables, d.name).or_else(|| tunable(params, d.name));
            let v = match raw {
                None => d.default.parse().unwrap_or(0),
                Some(s) => {
                    let v: i64 = s.trim().parse().map_err(|_| bad(d, s))?;
                    if v < d.min || v > d.max {
                        return Err(bad(d, s));
                    }
                    v
                }
            };
            values.push((d.name, v));
        }
        let mut t = Tunables {
            values,
            provider: None,
        };
        if net.peer_credits >= 0 {
            t.set("peer_credits", net.peer_credits as i64);
        }
        if net.credits >= 0 {
            t.set("credits", net.credits as i64);
        }
        if net.peer_timeout >= 0 {
            t.set("peer_timeout", net.peer_timeout as i64);
        }
        if let Some(s) = tunable(lnd_tunables, "provider").or_else(|| tunable(params, "provider")) {
            t.provider = Some(match s.trim() {
                "rdma" => ProviderKind::Rdma,
                "soft" => ProviderKind::Soft,
                other => {
                    return Err(LndError::new(
                        errno::EINVAL,
                        format!(
                            "ko2iblnd parameter provider={other:?} is invalid: use \"rdma\" or \"soft\""
                        ),
                    ))
                }
            });
        }
        t.clamp();
        Ok(t)
    }

    fn set(&mut self, name: &str, v: i64) {
        if let Some(e) = self.values.iter_mut().find(|e| e.0 == name) {
            e.1 = v;
        }
    }

    /// A parameter's value (0 for an unknown name).
    pub fn get(&self, name: &str) -> i64 {
        self.values
            .iter()
            .find(|e| e.0 == name)
            .map(|e| e.1)
            .unwrap_or(0)
    }

    /// ko2iblnd's clamping (`kiblnd_tunables_setup()`): peer_credits in
    /// [8, 255] and ≤ credits; peer_credits_hiw in [peer_credits/2,
    /// peer_credits − 1]; concurrent_sends 0 ⇒ peer_credits, clamped to
    /// [peer_credits/2, 2 × peer_credits].
    fn clamp(&mut self) {
        let credits = self.get("credits");
        let pc = self.get("peer_credits").clamp(8, 255).min(credits.max(8));
        self.set("peer_credits", pc);
        let hiw = self.get("peer_credits_hiw");
        let hiw = if hiw < pc / 2 {
            pc / 2
        } else {
            hiw.min(pc - 1)
        };
        self.set("peer_credits_hiw", hiw);
        let cs = self.get("concurrent_sends");
        let cs = if cs == 0 {
            pc
        } else {
            cs.clamp(pc / 2, pc * 2)
        };
        self.set("concurrent_sends", cs);
    }

    /// Queue depth offered (`peer_credits`).
    pub fn queue_depth(&self) -> u16 {
        self.get("peer_credits") as u16
    }

    /// What `net show -v` lists under `lnd tunables`.
    pub fn report(&self, provider: ProviderKind) -> Vec<Tunable> {
        let mut v: Vec<Tunable> = [
            "peer_credits_hiw",
            "map_on_demand",
            "concurrent_sends",
            "fmr_pool_size",
            "fmr_flush_trigger",
            "fmr_cache",
            "ntx",
            "conns_per_peer",
            "timeout",
            "keepalive",
            "service",
            "cksum",
        ]
        .iter()
        .map(|n| Tunable::new(*n, self.get(n)))
        .collect();
        v.push(Tunable::new("provider", provider.name()));
        v
    }

    /// The net tunables with every value set.
    pub fn fill(&self, mut net: NetTunables) -> NetTunables {
        net.peer_credits = self.get("peer_credits") as i32;
        net.credits = self.get("credits") as i32;
        net.peer_timeout = self.get("peer_timeout") as i32;
        if net.peer_buffer_credits < 0 {
            net.peer_buffer_credits = self.get("peer_buffer_credits") as i32;
        }
        net
    }
}

fn bad(d: &ParamDef, s: &str) -> LndError {
    LndError::new(
        errno::EINVAL,
        format!(
            "ko2iblnd parameter {}={s:?} is invalid: expected an integer in {}..={} ({})",
            d.name, d.min, d.max, d.doc
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(l: &[(&str, &str)], m: &[(&str, &str)]) -> Result<Tunables, LndError> {
        let l: Vec<Tunable> = l.iter().map(|(k, v)| Tunable::new(*k, v)).collect();
        let m: Vec<Tunable> = m.iter().map(|(k, v)| Tunable::new(*k, v)).collect();
        Tunables::resolve(&l, &m, &NetTunables::UNSET)
    }

    #[test]
    fn declarations_match_the_table() {
        assert_eq!(DECLS.len(), PARAMS.len() + 1);
        for (d, p) in DECLS.iter().zip(PARAMS) {
            assert_eq!(d.module(), "ko2iblnd");
            assert_eq!(d.name(), p.name);
            assert!(d.check(d.default()).is_ok(), "{}", p.name);
            // The declared default is what an NI gets when nothing is given.
            let given = t(&[], &[(p.name, p.default)]).expect("default valid");
            assert_eq!(given, t(&[], &[]).expect("defaults"), "{}", p.name);
        }
        let prov = &DECLS[PARAMS.len()];
        assert_eq!(prov.name(), "provider");
        assert!(prov.check("soft").is_ok());
        assert!(prov.check("verbs").is_err());
    }

    #[test]
    fn defaults_and_clamping() {
        let d = t(&[], &[]).expect("defaults");
        assert_eq!(d.get("peer_credits"), 8);
        assert_eq!(d.get("peer_credits_hiw"), 4);
        assert_eq!(d.get("concurrent_sends"), 8);
        assert_eq!(d.get("service"), 987);
        assert_eq!(d.get("keepalive"), 100);
        assert_eq!(d.get("fmr_pool_size"), 512);
        let c = t(
            &[("peer_credits", "32"), ("concurrent_sends", "200")],
            &[("peer_credits_hiw", "40")],
        )
        .expect("ok");
        assert_eq!(c.get("peer_credits"), 32);
        assert_eq!(c.get("peer_credits_hiw"), 31);
        assert_eq!(c.get("concurrent_sends"), 64);
        let low = t(&[("peer_credits", "2")], &[]).expect("ok");
        assert_eq!(low.get("peer_credits"), 8);
    }

    #[test]
    fn per_ni_overrides_module_and_bad_values_are_named() {
        let c = t(
            &[("timeout", "7")],
            &[("timeout", "9"), ("accept_port", "x")],
        )
        .expect("ok");
        assert_eq!(c.get("timeout"), 7);
        let e = t(&[], &[("peer_credits", "many")]).expect_err("bad");
        assert!(e.message.contains("peer_credits=\"many\""), "{e}");
        let e = t(&[("provider", "verbs")], &[]).expect_err("bad");
        assert!(e.message.contains("provider"), "{e}");
        assert_eq!(
            t(&[("provider", "soft")], &[]).expect("ok").provider,
            Some(ProviderKind::Soft)
        );
    }
}

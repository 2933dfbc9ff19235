//! The node's side of lnetctl's configuration commands (issue 16): global
//! tunables (`set`, `global show`), `stats reset`, deleting single NIs,
//! `net set`, and the stored UDSP rules.

use liblnetconfig::proto::UdspRule;
use lnd_api::{errno, NetId, Nid};
use lnet_core::nid::NidDescr;
use lnet_core::{UdspAdded, UdspError};

use super::{Node, NodeError};

/// Operation already in progress (the same UDSP rule exists).
const EALREADY: i32 = 114;
use lnet_core::ni::{GlobalTunables, NiId};

/// Applies `set <name> <value>` to a copy of the tunables (lnetctl.md §2.8);
/// the cross-field rules are [`GlobalTunables::validate`]'s.
pub(crate) fn apply_global(
    t: &mut GlobalTunables,
    name: &str,
    value: i64,
) -> Result<(), NodeError> {
    let bad = |why: &str| NodeError::failed(errno::EINVAL, format!("{name} {value}: {why}"));
    let nonneg = |max: i64| -> Result<u32, NodeError> {
        if value < 0 || value > max {
            return Err(bad(&format!("must be in 0..={max}")));
        }
        Ok(value as u32)
    };
    match name {
        "numa_range" => t.numa_range = nonneg(i64::from(i32::MAX))?,
        "max_interfaces" => {
            t.max_interfaces = if value < 16 {
                4096
            } else {
                nonneg(i64::from(i32::MAX))?
            }
        }
        "discovery" => t.peer_discovery_disabled = value == 0,
        "drop_asym_route" => t.drop_asym_route = value != 0,
        "retry_count" => t.retry_count = nonneg(i64::from(i32::MAX))?,
        "transaction_timeout" => {
            if value <= 0 {
                return Err(bad("must be > 0"));
            }
            t.transaction_timeout = nonneg(i64::from(i32::MAX))?;
        }
        "health_sensitivity" => {
            let v = nonneg(1000)?;
            // Turning health off turns resends off with it.
            if v == 0 && t.health_sensitivity != 0 {
                t.retry_count = 0;
            }
            t.health_sensitivity = v;
        }
        // Deprecated upstream: accepted, nothing changes.
        "recovery_interval" => {}
        "router_sensitivity" => t.router_sensitivity = nonneg(100)?,
        "response_tracking" => t.response_tracking = nonneg(3)?,
        "recovery_limit" => t.recovery_limit = nonneg(i64::from(i32::MAX))?,
        "max_recovery_ping_interval" => {
            if value <= 0 {
                return Err(bad("must be > 0"));
            }
            t.max_recovery_ping_interval = nonneg(i64::from(i32::MAX))?;
        }
        other => {
            return Err(NodeError::failed(
                errno::EINVAL,
                format!("unknown global tunable {other:?}"),
            ))
        }
    }
    t.validate()
        .map_err(|e| NodeError::failed(errno::EINVAL, e.to_string()))
}

/// The engine configuration the daemon's parameters give (`global show`
/// before `lnet configure`).
pub(crate) fn startup_config(
    cfg: &mut lnet_core::ni::Config,
    params: &[(String, String)],
) -> Result<(), NodeError> {
    super::apply_params(cfg, params)
}

impl Node {
    /// `net add`: an interface may carry one NI of a net, and be named once
    /// (lnetctl.md §2.2: EEXIST).
    pub(super) fn check_new_interfaces(&self, req: &super::NetAdd) -> Result<(), NodeError> {
        for (i, iface) in req.interfaces.iter().enumerate() {
            if req.interfaces[..i].contains(iface) {
                return Err(NodeError::failed(
                    errno::EEXIST,
                    format!("cannot add LNet NI: interface {iface} is given twice"),
                ));
            }
        }
        let st = self.inner.lock();
        let Ok(netid) = Self::resolve_net(&st, &req.net) else {
            // An unknown type: the plugin is loaded (or refused) later.
            return Ok(());
        };
        for iface in &req.interfaces {
            if st
                .lnet
                .nis()
                .any(|v| v.net() == netid && v.interfaces().iter().any(|i| i == iface))
            {
                return Err(NodeError::failed(
                    errno::EEXIST,
                    format!(
                        "cannot add LNet NI: {} already has an NI on {iface}",
                        req.net
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The global tunables in force.
    pub fn global_tunables(&self) -> GlobalTunables {
        self.inner.lock().lnet.tunables().clone()
    }

    /// `set <name> <value>`: checked, then applied at once.
    pub fn global_set(&self, name: &str, value: i64) -> Result<(), NodeError> {
        self.inner.with(|st, now| {
            let mut t = st.lnet.tunables().clone();
            apply_global(&mut t, name, value)?;
            st.lnet
                .set_tunables(t)
                .map_err(|e| NodeError::failed(errno::EINVAL, e.to_string()))?;
            // A discovery toggle pushes to the Multi-Rail peers now (§9.7).
            st.lnet.handle_timeout(now);
            Ok(())
        })
    }

    /// Replaces every global tunable (those `set` before `lnet configure`).
    pub fn global_set_all(&self, t: GlobalTunables) -> Result<(), NodeError> {
        self.inner
            .lock()
            .lnet
            .set_tunables(t)
            .map_err(|e| NodeError::failed(errno::EINVAL, e.to_string()))
    }

    /// `stats reset`: the global counters and every NI and peer NI statistic.
    pub fn stats_reset(&self) {
        self.inner.lock().lnet.stats_reset();
    }

    /// `net del --nid NID...` / `net del --net NET --if IF...`: stops the NIs
    /// named, after checking that every one exists (nothing is deleted when
    /// one is missing).
    pub fn ni_del(
        &self,
        net: Option<&str>,
        interfaces: &[String],
        nids: &[Nid],
    ) -> Result<(), NodeError> {
        let ids: Vec<NiId> = {
            let st = self.inner.lock();
            let mut ids = Vec::new();
            for nid in nids {
                if nid.net() == NetId::LO {
                    return Err(NodeError::failed(
                        errno::EINVAL,
                        "deleting lo is not allowed",
                    ));
                }
                let id = st
                    .lnet
                    .nis()
                    .find(|v| v.nid() == *nid)
                    .map(|v| v.id())
                    .ok_or_else(|| {
                        NodeError::failed(
                            errno::ENOENT,
                            format!("cannot del LNet NI: {nid} is not a local NI"),
                        )
                    })?;
                ids.push(id);
            }
            if let Some(net) = net {
                let netid = Self::resolve_net(&st, net)?;
                if netid == NetId::LO {
                    return Err(NodeError::failed(
                        errno::EINVAL,
                        "deleting lo is not allowed",
                    ));
                }
                if !st.lnet.nis().any(|v| v.net() == netid) {
                    return Err(NodeError::failed(errno::ENOENT, "LNet net doesn't exist"));
                }
                for iface in interfaces {
                    let id = st
                        .lnet
                        .nis()
                        .find(|v| v.net() == netid && v.interfaces().iter().any(|i| i == iface))
                        .map(|v| v.id())
                        .ok_or_else(|| {
                            NodeError::failed(
                                errno::ENODEV,
                                format!("cannot del LNet NI: {net} has no NI on interface {iface}"),
                            )
                        })?;
                    ids.push(id);
                }
            }
            ids
        };
        if ids.is_empty() {
            return Err(NodeError::failed(
                errno::EINVAL,
                "interface / NID is missing",
            ));
        }
        for id in ids {
            self.ni_stop(id);
        }
        Ok(())
    }

    /// `net set --net NET --lnd-timeout S`: asks the LND of NET through its
    /// control command `lnd_timeout` (an LND without one refuses).
    pub fn lnd_timeout_set(&self, net: &str, seconds: u32) -> Result<(), NodeError> {
        let st = self.inner.lock();
        let netid = Self::resolve_net(&st, net)?;
        let ty = net.trim_end_matches(|c: char| c.is_ascii_digit());
        if netid == NetId::LO {
            return Err(NodeError::failed(
                errno::EINVAL,
                format!("Net {ty} does not accept a LND timeout"),
            ));
        }
        let lnd = st
            .lnds
            .get(ty)
            .map(|(_, l)| std::sync::Arc::clone(l))
            .ok_or_else(|| {
                NodeError::failed(errno::ENOENT, format!("LNet net {net} doesn't exist"))
            })?;
        // The LND is called without the node's lock.
        drop(st);
        lnd.ctl("lnd_timeout", &seconds.to_string())
            .map(|_| ())
            .map_err(|e| {
                NodeError::failed(
                    errno::EOPNOTSUPP,
                    format!("Net {ty} does not accept a LND timeout: {e}"),
                )
            })
    }

    /// `net set --conns-per-peer N --nid NID|--all`: asks each NI's LND
    /// through the NI control command `conns_per_peer`.
    pub fn conns_per_peer_set(&self, nid: Option<Nid>, value: u32) -> Result<(), NodeError> {
        let mut found = false;
        let mut targets = Vec::new();
        {
            let st = self.inner.lock();
            for v in st.lnet.nis() {
                if v.id() == NiId::LO || nid.is_some_and(|n| n != v.nid()) {
                    continue;
                }
                found = true;
                if let Some(rt) = st.nis.get(&v.id()) {
                    targets.push((v.nid(), rt.lnd.clone()));
                }
            }
        }
        // The LNDs are called without the node's lock.
        for (n, lnd) in targets {
            lnd.ctl("conns_per_peer", &value.to_string()).map_err(|e| {
                NodeError::failed(
                    errno::EOPNOTSUPP,
                    format!("cannot set conns_per_peer of {n}: {e}"),
                )
            })?;
        }
        match (found, nid) {
            (false, Some(n)) => Err(NodeError::failed(
                errno::ENOENT,
                format!("{n} is not a local NI"),
            )),
            _ => Ok(()),
        }
    }

    /// Runs LND control command `cmd` (with `arg`) on local NI `nid` and
    /// returns its text (an LND's counters or connection list, a test
    /// knob): `ENOENT` when `nid` is no local NI.
    pub fn ni_ctl(&self, nid: Nid, cmd: &str, arg: &str) -> Result<String, NodeError> {
        let st = self.inner.lock();
        let id = st
            .lnet
            .nis()
            .find(|v| v.id() != NiId::LO && v.nid() == nid)
            .map(|v| v.id())
            .ok_or_else(|| NodeError::failed(errno::ENOENT, format!("{nid} is not a local NI")))?;
        let rt = st
            .nis
            .get(&id)
            .ok_or_else(|| NodeError::failed(errno::ENOENT, format!("{nid} is not running")))?;
        rt.lnd
            .ctl(cmd, arg)
            .map_err(|e| NodeError::failed(e.errno, format!("{nid}: {e}")))
    }

    /// `udsp add`: the engine inserts the rule at `idx` (append when `None`
    /// or past the end) and applies the rule list again (semantics.md §12);
    /// an identical rule with another priority gets the new priority, an
    /// identical rule otherwise is EALREADY. The text of the rules is kept
    /// here, in the same order, for `udsp show` and `export`.
    pub fn udsp_add(&self, rule: UdspRule, idx: Option<u32>) -> Result<(), NodeError> {
        // Plugins' network types (`vnd1`) are names descriptors may use.
        let extra = self.extra_net_types();
        let extra: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let parse = |what: &str, v: &Option<String>| -> Result<Option<NidDescr>, NodeError> {
            v.as_deref()
                .map(|t| {
                    NidDescr::parse_with(t, &extra).map_err(|e| {
                        NodeError::failed(
                            errno::EINVAL,
                            format!("failed to parse {what} parameter: {e}"),
                        )
                    })
                })
                .transpose()
        };
        let engine_rule = lnet_core::UdspRule::new(
            parse("src", &rule.src)?,
            parse("dst", &rule.dst)?,
            parse("rte", &rule.rte)?,
            rule.priority,
        );
        let mut st = self.inner.lock();
        match st.lnet.udsp_add(engine_rule, idx) {
            Ok(UdspAdded::Inserted(i)) => {
                let at = (i as usize).min(st.udsp.len());
                st.udsp.insert(at, rule);
                Ok(())
            }
            Ok(UdspAdded::Updated(i)) => {
                if let Some(r) = st.udsp.get_mut(i as usize) {
                    r.priority = rule.priority;
                }
                Ok(())
            }
            Err(e @ UdspError::Exists(_)) => Err(NodeError::failed(EALREADY, e.to_string())),
            Err(e) => Err(NodeError::failed(e.errno(), e.to_string())),
        }
    }

    /// `udsp del --idx N` / `--all` (`None`); later rules are renumbered and
    /// what the rules set is recomputed.
    pub fn udsp_del(&self, idx: Option<u32>) -> Result<(), NodeError> {
        let mut st = self.inner.lock();
        st.lnet
            .udsp_del(idx)
            .map_err(|e| NodeError::failed(e.errno(), e.to_string()))?;
        match idx {
            None => st.udsp.clear(),
            Some(i) => {
                if (i as usize) < st.udsp.len() {
                    st.udsp.remove(i as usize);
                }
            }
        }
        Ok(())
    }

    /// The UDSP rules with their indices.
    pub fn udsp_rules(&self) -> Vec<(u32, UdspRule)> {
        let st = self.inner.lock();
        st.udsp
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u32, r.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_rules() {
        let mut t = GlobalTunables::default();
        apply_global(&mut t, "retry_count", 3).expect("ok");
        assert_eq!(t.lnd_timeout(), 37);
        assert!(apply_global(&mut t.clone(), "retry_count", 200).is_err());
        assert!(apply_global(&mut t.clone(), "transaction_timeout", 3).is_err());
        assert!(apply_global(&mut t.clone(), "health_sensitivity", 1001).is_err());
        apply_global(&mut t, "health_sensitivity", 0).expect("ok");
        assert_eq!(t.retry_count, 0, "health off forces retries off");
        assert!(apply_global(&mut t.clone(), "retry_count", 1).is_err());
        apply_global(&mut t, "discovery", 0).expect("ok");
        assert!(t.peer_discovery_disabled);
        apply_global(&mut t, "max_interfaces", 3).expect("ok");
        assert_eq!(t.max_interfaces, 4096);
        assert!(apply_global(&mut t.clone(), "router_sensitivity", 101).is_err());
        assert!(apply_global(&mut t.clone(), "numa_range", -1).is_err());
        assert!(apply_global(&mut t.clone(), "max_recovery_ping_interval", 0).is_err());
    }
}

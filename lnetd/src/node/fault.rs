//! Fault injection: the filter plugin (lnd-fault, offering lnd-api's
//! `lnd-api.ni-filter.v1`) stacked on every NI but `0@lo`, and
//! `lnetctl fault …` handed to it.
//!
//! The first `fault … add` (or any `fault` command) loads the filter from
//! the plugin path when no loaded plugin offers one, then stacks it on every
//! running NI; NIs added later are stacked as they come up. Stacking a
//! running NI: the engine's NI object becomes the filter's (`NiRt::lnd`)
//! and the LND's callbacks are routed to the filter (`NiHost::stack`),
//! which calls the engine through a callback object of its own. Without a
//! filter nothing of this runs: `NiHost` checks one empty `OnceLock`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use lnd_api::{FilterHandle, HostHandle, LndNiHandle};
use lnet_core::ni::NiId;

use super::{Inner, NiHost, Node, NodeError};
use crate::host::PluginHost;

/// The file name stem the plugin path is searched for.
const FAULT_PLUGIN: &str = "lnd-fault";

/// Stacks `filter` on NI `id` (running, not yet stacked); logs and leaves
/// the NI unfiltered if the filter refuses. The filter's own calls
/// (`attach`, `bind`: plugin code, which may be slow or call the host) run
/// without the node's lock: the NI is marked `stacking` meanwhile, so that
/// nothing else stacks it twice, and the result is installed only if the NI
/// is still the one that was wrapped (an NI stopped meanwhile has its
/// wrapper shut down instead).
fn stack(inner: &Arc<Inner>, filter: &FilterHandle, id: NiId) {
    if id == NiId::LO {
        return;
    }
    let (nid, lnd, engine) = {
        let mut st = inner.lock();
        if st.stopping {
            return;
        }
        let Some(nid) = st.lnet.ni(id).map(|v| v.nid()) else {
            return;
        };
        let Some(rt) = st.nis.get_mut(&id) else {
            return;
        };
        if rt.inner.is_some() || rt.stack.get().is_some() || rt.stacking {
            return;
        }
        rt.stacking = true;
        let slot = Arc::new(OnceLock::new());
        let _ = slot.set(id);
        let engine = HostHandle::new(NiHost {
            node: Arc::downgrade(inner),
            ni: slot,
            name: format!("{nid}"),
            stack: Arc::new(OnceLock::new()),
        });
        (nid, rt.lnd.clone(), engine)
    };
    let wrapped = filter.wrap_running(nid.net(), nid, engine, lnd);
    let mut st = inner.lock();
    let rt = st.nis.get_mut(&id).filter(|rt| rt.stacking);
    match (rt, wrapped) {
        (Some(rt), Ok((inner_host, wrapped))) => {
            rt.stacking = false;
            let _ = rt.stack.set(inner_host);
            rt.inner = Some(std::mem::replace(&mut rt.lnd, wrapped));
        }
        (Some(rt), Err(e)) => {
            rt.stacking = false;
            tracing::warn!("cannot stack the fault filter on {nid}: {e}");
        }
        (None, Ok((_, wrapped))) => {
            // The NI was stopped while the filter wrapped it: the wrapper
            // (whose inner NI the host owns and has shut down) goes too.
            drop(st);
            wrapped.shutdown();
        }
        (None, Err(_)) => {}
    }
}

/// For `ni_start`, before the engine knows the NI: wraps the NI `started`
/// (just started by its LND, whose callbacks go through `ni_stack`) in the
/// loaded filter, without the node's lock. The filter's engine callbacks
/// find the NI through `slot`, set once the engine has it (until then they
/// are refused, as the LND's are). Returns the NI object the engine must
/// use and the LND's own (to shut down after it), or `started` alone if the
/// filter refuses (logged; the NI runs unfiltered).
pub(super) fn wrap_new_ni(
    inner: &Arc<Inner>,
    filter: &FilterHandle,
    nid: lnd_api::Nid,
    slot: &Arc<OnceLock<NiId>>,
    ni_stack: &OnceLock<HostHandle>,
    started: LndNiHandle,
) -> (LndNiHandle, Option<LndNiHandle>) {
    let engine = HostHandle::new(NiHost {
        node: Arc::downgrade(inner),
        ni: Arc::clone(slot),
        name: format!("{nid}"),
        stack: Arc::new(OnceLock::new()),
    });
    match filter.wrap_running(nid.net(), nid, engine, started.clone()) {
        Ok((inner_host, wrapped)) => {
            let _ = ni_stack.set(inner_host);
            (wrapped, Some(started))
        }
        Err(e) => {
            tracing::warn!("cannot stack the fault filter on {nid}: {e}");
            (started, None)
        }
    }
}

/// Called by `ni_start` (without the lock) for an NI the engine has just
/// learnt that no filter wrapped at start-up: stacks the filter loaded
/// meanwhile, if any.
pub(super) fn stack_new_ni(inner: &Arc<Inner>, id: NiId) {
    let filter = inner.lock().filter.clone();
    if let Some(f) = filter {
        stack(inner, &f, id);
    }
}

impl Node {
    /// The fault filter, loaded from `plugin_path` (`liblnd_fault.so`) when
    /// no loaded plugin offers one, and stacked on every running NI.
    fn fault_filter(
        &self,
        plugin_path: &[std::path::PathBuf],
    ) -> Result<Arc<FilterHandle>, NodeError> {
        // The filter plugin's file is opened without the node's lock.
        let params = {
            let st = self.inner.lock();
            if st.stopping {
                return Err(super::not_running());
            }
            if let Some(f) = &st.filter {
                return Ok(Arc::clone(f));
            }
            st.host.plugin_params().to_vec()
        };
        let have = self.inner.lock().host.offers_filter();
        let mut loaded_from = None;
        if !have {
            let path = find_plugin(plugin_path).ok_or_else(|| {
                NodeError::failed(
                    lnd_api::errno::ENOENT,
                    format!(
                        "no fault plugin loaded and none in the plugin path ({}): build \
                         lnd-fault (liblnd_fault.so) and load it with lnetctl plugin load, \
                         or add its directory with lnetd --plugin-path",
                        plugin_path
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    ),
                )
            })?;
            let prepared = PluginHost::prepare(&path, &params)?;
            let mut st = self.inner.lock();
            if !st.host.offers_filter() {
                st.host.register_prepared(prepared)?;
            }
            loaded_from = Some(path);
        }
        let mut st = self.inner.lock();
        if st.stopping {
            return Err(super::not_running());
        }
        if let Some(f) = &st.filter {
            return Ok(Arc::clone(f));
        }
        let filter = st.host.filter()?.ok_or_else(|| {
            NodeError::failed(
                lnd_api::errno::EPROTO,
                match &loaded_from {
                    Some(path) => format!(
                        "{} does not offer the filter extension {}",
                        path.display(),
                        lnd_api::NI_FILTER
                    ),
                    None => format!("no loaded plugin offers {}", lnd_api::NI_FILTER),
                },
            )
        })?;
        let filter = Arc::new(filter);
        st.filter = Some(Arc::clone(&filter));
        let mut ids: Vec<NiId> = st.nis.keys().copied().collect();
        ids.sort();
        // NIs started from now on are wrapped by `ni_start`; the running
        // ones here, each without the node's lock around the filter's calls.
        drop(st);
        for id in ids {
            stack(&self.inner, &filter, id);
        }
        Ok(filter)
    }

    /// `lnetctl fault …`: the filter plugin's control call `cmd` with `arg`
    /// (see lnd-fault's `ctl`); loads and stacks the filter first.
    pub fn fault_ctl(
        &self,
        plugin_path: &[std::path::PathBuf],
        cmd: &str,
        arg: &str,
    ) -> Result<String, NodeError> {
        let filter = self.fault_filter(plugin_path)?;
        // The plugins' network type names, so that `*@vnd` parses and
        // prints by name (plugins may have come since the last command).
        let names: Vec<String> = self
            .extra_net_types()
            .iter()
            .map(|(n, t)| format!("{n}={t}"))
            .collect();
        if let Err(e) = filter.ctl("net_types", &names.join(" ")) {
            tracing::warn!("fault plugin: net_types: {e}");
        }
        // Outside the node lock: deleting a delay rule releases held
        // messages into the engine and the LNDs.
        filter
            .ctl(cmd, arg)
            .map_err(|e| NodeError::failed(e.errno, e.message.to_string()))
    }

    /// Drops every fault rule, releasing held messages (`lnet unconfigure`).
    pub fn fault_clear(&self) {
        let filter = self.inner.lock().filter.clone();
        if let Some(f) = filter {
            if let Err(e) = f.ctl("clear", "") {
                tracing::warn!("clearing fault rules: {e}");
            }
        }
    }
}

fn find_plugin(plugin_path: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let file = format!("lib{}.so", FAULT_PLUGIN.replace('-', "_"));
    plugin_path
        .iter()
        .map(|d| d.join(&file))
        .find(|p| Path::new(p).is_file())
}

//! # lnd-fault: fault injection as a filter that stacks on any LND
//!
//! Upstream LNet keeps drop and delay rules (`lnetctl fault drop|delay`) in
//! its core; here they live in this plugin, which wraps the NIs of any other
//! LND through the lnd-api extension [`lnd_api::NI_FILTER`] (see
//! `lnd_api::filter`), without that LND knowing.
//!
//! * [`rules`]: the rule engine (semantics §11), sans-IO and deterministic:
//!   matching, firing decisions by rate, interval, random and drop-all,
//!   injected health statuses, delayed items held in order, statistics.
//! * [`ctl`]: the filter's control call (add, del, show, reset rules).
//! * [`filter`]: the filter itself (one per node: the rule table, a delay
//!   thread) and its per-NI wrapper; exported as a plugin `.so`.
//!
//! Rules are upstream's (semantics §11) with one difference: a rule's local
//! NID (`--local_nid`) matches the wrapped NI a message is received **or
//! sent** on, for every rule type. Upstream looks at it for receive drops
//! only, so a health (send-side) rule with a local NID never fires there and
//! a delay rule ignores it; here both act on that one NI, which is what
//! `--local_nid` asks for and how tests fail or delay the traffic of one
//! NI of a Multi-Rail node. Rules without a local NID behave exactly as
//! upstream's; `show` prints `fa_local_nid` only for rules that have one.
//!
//! Depends on lnd-api only.

#![forbid(unsafe_code)]

pub mod ctl;
pub mod filter;
pub mod rules;

pub use filter::FaultFilter;

use lnd_api::abi_stable::std_types::RResult;
use lnd_api::filter::{new_filter_shim, offer_filter, NiFilterExt, NiFilterFfiBox};
use lnd_api::module::Extension;
use lnd_api::{errno, HostHandle, Lnd, LndError, NiConfig, NiStarted};

/// The plugin's name (what `lnetctl plugin show` lists).
pub const PLUGIN_NAME: &str = "lnd-fault";

/// lnd-fault provides no network type of its own; this is never made.
pub struct NoLnd;

impl Lnd for NoLnd {
    fn startup(&self, _cfg: NiConfig, _host: HostHandle) -> Result<NiStarted, LndError> {
        Err(no_net_type(""))
    }
}

fn no_net_type(net_type: &str) -> LndError {
    LndError::new(
        errno::EINVAL,
        format!(
            "lnd-fault provides no network type (asked for {net_type:?}): it is a filter that \
             wraps the NIs of the other LNDs"
        ),
    )
}

fn new_lnd(net_type: &str) -> Result<NoLnd, LndError> {
    Err(no_net_type(net_type))
}

fn new_fault_filter() -> Result<FaultFilter, LndError> {
    Ok(FaultFilter::new())
}

extern "C" fn new_filter() -> RResult<NiFilterFfiBox, LndError> {
    new_filter_shim(new_fault_filter)
}

static FILTER: NiFilterExt = NiFilterExt { new_filter };

fn extensions(name: &str) -> Option<Extension> {
    offer_filter(name, &FILTER)
}

lnd_api::export_lnd_plugin! {
    name: PLUGIN_NAME,
    version: env!("CARGO_PKG_VERSION"),
    net_types: [],
    new_lnd: new_lnd,
    extensions: extensions,
}

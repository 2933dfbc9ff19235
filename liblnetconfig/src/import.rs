//! `lnetctl import`: a YAML document (an `export`, or a hand-written
//! `/etc/lnet.conf`) read into an ordered tree and turned, section by
//! section, into requests (lnetctl.md §4.2).
//!
//! The reader is serde-saphyr (pure Rust, panic-free parsing) into [`Node`],
//! our own ordered tree: key order matters (`net type` must come first, the
//! `global` keys apply in document order) and a quoted `CPT: "[0,1]"` differs
//! from a flow sequence `CPT: [0, 1]`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::args::cpt_expr;
use crate::errno::{EINVAL, ENODATA};
use crate::global::{self, Tunable};
use crate::proto::NetAddRequest;

/// One node of an imported document.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `~`, or a key without a value.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (kept for messages).
    Float(f64),
    /// A string (plain or quoted).
    Str(String),
    /// A sequence (block or flow).
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The scalar as text (`None` for collections and null).
    pub fn text(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The entries of a mapping (empty for anything else).
    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(m) => m,
            _ => &[],
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or_else(|_| Node::Str(v.to_string()), Node::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            v.push(n);
        }
        Ok(Node::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut m = Vec::new();
        while let Some((k, v)) = a.next_entry::<Node, Node>()? {
            let key = k.text().unwrap_or_default();
            m.push((key, v));
        }
        Ok(Node::Map(m))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Reads a document; the error is the line upstream prints
/// (`Parser error: ...`). An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Vec<(String, Node)>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // Repeated keys are kept, in order, as upstream's reader keeps them
    // (two `global:` sections apply one after the other).
    let mut opts = serde_saphyr::Options::default();
    opts.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    match serde_saphyr::from_str_with_options::<Node>(text, opts) {
        Ok(Node::Map(m)) => Ok(m),
        Ok(Node::Null) => Ok(Vec::new()),
        Ok(_) => Err("Parser error: the document must be a mapping (net:, global:, ...)".into()),
        Err(e) => Err(format!(
            "Parser error: {}",
            e.to_string().lines().next().unwrap_or("invalid YAML")
        )),
    }
}

/// An import failure: reported as an NL block (flag = the action, object
/// `import`) unless the caller knows better.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    /// Positive errno.
    pub errno: i32,
    /// The message.
    pub descr: String,
}

fn err(errno: i32, descr: impl Into<String>) -> ImportError {
    ImportError {
        errno,
        descr: descr.into(),
    }
}

/// An integer value of `key` (`no value specified`/`invalid value` errors).
pub fn int_value(key: &str, v: &Node) -> Result<i64, ImportError> {
    match v {
        Node::Int(i) => Ok(*i),
        Node::Null => Err(err(EINVAL, format!("no value specified for key '{key}'"))),
        Node::Str(s) => crate::args::strtol(s)
            .ok_or_else(|| err(EINVAL, format!("invalid value '{s}' for key '{key}'"))),
        other => Err(err(
            EINVAL,
            format!(
                "invalid value '{}' for key '{key}'",
                other.text().unwrap_or_else(|| "<collection>".into())
            ),
        )),
    }
}

/// The `global:` section: each key and its value, in document order
/// (`lnd_timeout` is accepted and skipped, `max_intf` is `max_interfaces`).
pub fn global_entries(node: &Node) -> Result<Vec<(&'static Tunable, i64)>, ImportError> {
    let mut out = Vec::new();
    for (k, v) in node.entries() {
        let name = if k == "max_intf" { "max_interfaces" } else { k };
        if name == "lnd_timeout" {
            int_value(k, v)?;
            continue;
        }
        let Some(t) = global::tunable(name) else {
            return Err(err(EINVAL, format!("invalid key '{k}'")));
        };
        out.push((t, int_value(k, v)?));
    }
    Ok(out)
}

/// The `numa:` section (`range: N`).
pub fn numa_range(node: &Node) -> Result<i64, ImportError> {
    match node.entries().first() {
        Some((k, v)) if k == "range" => int_value(k, v),
        Some((k, _)) => Err(err(EINVAL, format!("invalid key '{k}'"))),
        None => Err(err(EINVAL, "no value specified for key 'range'")),
    }
}

/// The `udsp:` section: (idx, rule) per item that has an `idx`.
pub fn udsp_rules(node: &Node) -> Result<Vec<(u32, crate::proto::UdspRule)>, ImportError> {
    let Node::Seq(items) = node else {
        return Err(err(EINVAL, "'udsp' must be a sequence of rules"));
    };
    let mut out = Vec::new();
    for it in items {
        let mut idx = None;
        let mut rule = crate::proto::UdspRule {
            src: None,
            dst: None,
            rte: None,
            priority: None,
        };
        for (k, v) in it.entries() {
            match k.as_str() {
                "idx" => idx = Some(int_value(k, v)?),
                "src" | "dst" | "rte" => {
                    let t = v
                        .text()
                        .ok_or_else(|| err(EINVAL, format!("no value specified for key '{k}'")))?;
                    let d = crate::udsp::descriptor(&t)
                        .ok_or_else(|| err(EINVAL, format!("failed to parse {k} parameter")))?;
                    match k.as_str() {
                        "src" => rule.src = Some(d),
                        "dst" => rule.dst = Some(d),
                        _ => rule.rte = Some(d),
                    }
                }
                "action" => {
                    for (ak, av) in v.entries() {
                        if ak == "priority" {
                            let p = int_value(ak, av)?;
                            rule.priority = Some(u32::try_from(p).map_err(|_| {
                                err(EINVAL, format!("invalid value '{p}' for key 'priority'"))
                            })?);
                        }
                    }
                }
                _ => return Err(err(EINVAL, format!("invalid key '{k}'"))),
            }
        }
        if let Some(i) = idx {
            let i = u32::try_from(i)
                .map_err(|_| err(EINVAL, format!("invalid value '{i}' for key 'idx'")))?;
            out.push((i, rule));
        }
    }
    Ok(out)
}

/// One item of a `route:` section (lnetctl.md §4.2): the words as given;
/// the NIDs and nets are checked by the caller, which knows the node's net
/// types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// `net`.
    pub net: String,
    /// `gateway` (a single NID).
    pub gateway: String,
    /// `hop` (-1 when absent: undefined).
    pub hop: i64,
    /// `priority` (0 when absent).
    pub priority: i64,
    /// `health_sensitivity` (absent: the global one).
    pub health_sensitivity: Option<i64>,
}

impl RouteEntry {
    /// How an error names this item: `route 'tcp1' via '10.0.0.1@tcp'`.
    pub fn name(&self) -> String {
        format!("route to '{}' via '{}'", self.net, self.gateway)
    }
}

fn text_value(key: &str, v: &Node) -> Result<String, ImportError> {
    v.text()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| err(EINVAL, format!("no value specified for key '{key}'")))
}

/// The `route:` section: a sequence of `{net, gateway, hop?, priority?}`
/// (`state` and `type`, which a full export has, are ignored;
/// `health_sensitivity` is this lnetctl's `route add --health_sensitivity`).
/// A missing net or gateway, or a key no route has, names the item.
pub fn route_entries(node: &Node) -> Result<Vec<RouteEntry>, ImportError> {
    let Node::Seq(items) = node else {
        return Err(err(EINVAL, "'route' must be a sequence of routes"));
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Node::Map(m) = it else {
            return Err(err(
                EINVAL,
                format!("route item {i}: expected a mapping with 'net' and 'gateway'"),
            ));
        };
        let (mut net, mut gateway) = (None, None);
        let mut e = RouteEntry {
            net: String::new(),
            gateway: String::new(),
            hop: -1,
            priority: 0,
            health_sensitivity: None,
        };
        for (k, v) in m {
            match k.as_str() {
                "net" => net = Some(text_value(k, v)?),
                "gateway" => gateway = Some(text_value(k, v)?),
                "hop" | "hop-count" => e.hop = int_value(k, v)?,
                "priority" => e.priority = int_value(k, v)?,
                "health_sensitivity" => e.health_sensitivity = Some(int_value(k, v)?),
                "state" | "type" => {}
                _ => return Err(err(EINVAL, format!("invalid key '{k}' in route item {i}"))),
            }
        }
        match (net, gateway) {
            (Some(n), Some(g)) => {
                e.net = n;
                e.gateway = g;
            }
            (None, _) => {
                return Err(err(
                    EINVAL,
                    format!("route item {i}: missing mandatory parameter: network"),
                ))
            }
            (_, None) => {
                return Err(err(
                    EINVAL,
                    format!("route item {i}: missing mandatory parameter: gateway"),
                ))
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// One item of a `peer:` section: the primary NID, `Multi-Rail` (absent:
/// `None`) and the NIDs of `peer ni`, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    /// `primary nid`.
    pub primary: String,
    /// `Multi-Rail`.
    pub multi_rail: Option<bool>,
    /// The `nid` of each `peer ni` item, in order (may include the primary).
    pub nids: Vec<String>,
}

/// A `Multi-Rail` value: a boolean word or an integer (`--old-api`: exactly
/// `True` or `False`).
fn mr_flag(v: &Node, old_api: bool) -> Result<bool, ImportError> {
    let t = v.text().unwrap_or_default();
    if old_api {
        return match t.as_str() {
            "True" | "true" => Ok(true),
            "False" | "false" => Ok(false),
            _ => Err(err(
                EINVAL,
                format!("Multi-Rail must be set to 'True' or 'False' found '{t}'"),
            )),
        };
    }
    match v {
        Node::Bool(b) => return Ok(*b),
        Node::Int(i) => return Ok(*i != 0),
        _ => {}
    }
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" => Ok(true),
        "false" | "no" | "off" | "n" => Ok(false),
        _ => match crate::args::strtol(&t) {
            Some(i) => Ok(i != 0),
            None => Err(err(EINVAL, "invalid MR flag param")),
        },
    }
}

/// The `peer:` section (lnetctl.md §4.2): a sequence of `{primary nid,
/// Multi-Rail?, peer ni: [{nid}...]}`. The read-only keys of a full export
/// (`peer state`, and everything but `nid` in a `peer ni` item) are ignored.
pub fn peer_entries(node: &Node, old_api: bool) -> Result<Vec<PeerEntry>, ImportError> {
    let Node::Seq(items) = node else {
        return Err(err(EINVAL, "'peer' must be a sequence of peers"));
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Node::Map(m) = it else {
            return Err(err(
                EINVAL,
                format!("peer item {i}: expected a mapping with 'primary nid'"),
            ));
        };
        let mut primary = None;
        let mut e = PeerEntry {
            primary: String::new(),
            multi_rail: None,
            nids: Vec::new(),
        };
        for (k, v) in m {
            match k.as_str() {
                "primary nid" => primary = Some(text_value(k, v)?),
                "Multi-Rail" => e.multi_rail = Some(mr_flag(v, old_api)?),
                "peer state" => {}
                "peer ni" => {
                    let Node::Seq(nis) = v else {
                        return Err(err(
                            EINVAL,
                            format!("peer item {i}: 'peer ni' must be a sequence of {{nid}}"),
                        ));
                    };
                    for ni in nis {
                        match ni.entries().iter().find(|(k, _)| k == "nid") {
                            Some((k, v)) => e.nids.push(text_value(k, v)?),
                            None => {
                                return Err(err(
                                    EINVAL,
                                    format!("peer item {i}: a 'peer ni' item has no 'nid'"),
                                ))
                            }
                        }
                    }
                }
                _ => return Err(err(EINVAL, format!("invalid key '{k}' in peer item {i}"))),
            }
        }
        match primary {
            Some(p) => e.primary = p,
            None => {
                return Err(err(
                    EINVAL,
                    format!("peer item {i}: missing required primary NID"),
                ))
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// The `routing:` section: `{enable: N}` (a full export's `routing show`
/// form, a sequence ending with `- enable: N`, is read too). 0 and 2
/// (stopping) disable, 1 and 3 (starting) enable.
pub fn routing_enable(node: &Node) -> Result<bool, ImportError> {
    let entries: Vec<&(String, Node)> = match node {
        Node::Map(m) => m.iter().collect(),
        Node::Seq(items) => items.iter().flat_map(|it| it.entries().iter()).collect(),
        _ => Vec::new(),
    };
    let mut enable = None;
    for (k, v) in entries {
        match k.as_str() {
            "enable" => enable = Some(int_value(k, v)?),
            k if k.starts_with("cpt[") => {}
            _ => return Err(err(EINVAL, format!("invalid key '{k}' in 'routing'"))),
        }
    }
    match enable {
        Some(0 | 2) => Ok(false),
        Some(1 | 3) => Ok(true),
        Some(v) => Err(err(
            EINVAL,
            format!("invalid value '{v}' for key 'enable' (0 disables routing, 1 enables it)"),
        )),
        None => Err(err(EINVAL, "no value specified for key 'enable'")),
    }
}

/// The `buffers:` section: `tiny`, `small`, `large` totals, in document
/// order (0 = the default; negative counts are refused).
pub fn buffers_entries(node: &Node) -> Result<Vec<(&'static str, i64)>, ImportError> {
    let mut out = Vec::new();
    for (k, v) in node.entries() {
        let pool = match k.as_str() {
            "tiny" => "tiny",
            "small" => "small",
            "large" => "large",
            _ => return Err(err(EINVAL, format!("invalid key '{k}' in 'buffers'"))),
        };
        let n = int_value(k, v)?;
        if n < 0 {
            return Err(err(
                34,
                format!("invalid value '{n}' for key '{k}': tiny, small and large must be >= 0"),
            ));
        }
        out.push((pool, n));
    }
    Ok(out)
}

/// A `ping:` section: the NIDs, the timeout (ms), the source NID.
pub type PingSection = (Vec<String>, Option<u64>, Option<String>);

/// A `ping:` section (`import --exec`): `nids` (a mapping index → NID or a
/// flow sequence), optional `timeout` (ms) and `source`.
pub fn ping_section(node: &Node) -> Result<PingSection, ImportError> {
    let mut nids = Vec::new();
    let (mut timeout, mut source) = (None, None);
    for (k, v) in node.entries() {
        match k.as_str() {
            "nids" => match v {
                Node::Seq(items) => nids.extend(items.iter().filter_map(Node::text)),
                Node::Map(m) => nids.extend(m.iter().filter_map(|(_, n)| n.text())),
                other => nids.extend(other.text()),
            },
            "timeout" => {
                let t = int_value(k, v)?;
                timeout = u64::try_from(t).ok();
            }
            "source" => source = v.text(),
            _ => return Err(err(EINVAL, format!("invalid key '{k}'"))),
        }
    }
    if nids.is_empty() {
        return Err(err(EINVAL, "no value specified for key 'nids'"));
    }
    Ok((nids, timeout, source))
}

/// A `ping:` or `discover:` section of `import --exec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSection {
    /// The NIDs (or ranges), in order.
    pub nids: Vec<String>,
    /// `timeout`, ms.
    pub timeout_ms: Option<u64>,
    /// `source` (`source_nid` with `--old-api`).
    pub source: Option<String>,
    /// `force` (discover).
    pub force: bool,
}

/// A `ping:` or `discover:` section (`import --exec`, lnetctl.md §4.2):
/// `nids` (a mapping index → NID or a flow sequence), optional `timeout`
/// (ms), `source` (ping) and `force` (discover). With `--old-api` the keys
/// are `primary nid`, `timeout`, `source_nid` and `force`, in a mapping or
/// a sequence of them.
pub fn exec_section(node: &Node, old_api: bool) -> Result<ExecSection, ImportError> {
    let mut out = ExecSection::default();
    let maps: Vec<&Node> = match node {
        Node::Seq(items) => items.iter().collect(),
        other => vec![other],
    };
    for m in maps {
        for (k, v) in m.entries() {
            match (k.as_str(), old_api) {
                ("nids", false) => match v {
                    Node::Seq(items) => out.nids.extend(items.iter().filter_map(Node::text)),
                    Node::Map(m) => out.nids.extend(m.iter().filter_map(|(_, n)| n.text())),
                    other => out.nids.extend(other.text()),
                },
                ("primary nid", true) => out.nids.push(text_value(k, v)?),
                ("timeout", _) => out.timeout_ms = u64::try_from(int_value(k, v)?).ok(),
                ("source", false) | ("source_nid", true) => out.source = Some(text_value(k, v)?),
                ("force", _) => {
                    out.force = match v {
                        Node::Bool(b) => *b,
                        other => int_value(k, other)? != 0,
                    }
                }
                _ => return Err(err(EINVAL, format!("invalid key '{k}'"))),
            }
        }
    }
    if out.nids.is_empty() {
        let key = if old_api { "primary nid" } else { "nids" };
        return Err(err(EINVAL, format!("no value specified for key '{key}'")));
    }
    Ok(out)
}

/// One net block of a `net:` section, applied as one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetBlock {
    /// The request that configures it (`--add`); `interfaces` are the NIs
    /// to delete with `--del` (all of the net when empty).
    pub request: NetAddRequest,
    /// `Ignoring unrecognized key ...` lines to print on stderr.
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Collect {
    interfaces: Vec<(String, Option<Vec<u32>>)>,
    cpts: Option<Vec<u32>>,
    peer_timeout: Option<i64>,
    peer_credits: Option<i64>,
    peer_buffer_credits: Option<i64>,
    credits: Option<i64>,
    conns_per_peer: Option<i64>,
    tos: Option<i64>,
    ranges: Vec<String>,
    warnings: Vec<String>,
}

const O2IB_KEYS: &[&str] = &[
    "peercredits_hiw",
    "concurrent_sends",
    "fmr_pool_size",
    "fmr_flush_trigger",
    "fmr_cache",
    "ntx",
    "map_on_demand",
];

fn interface_item(text: &str) -> Result<(String, Option<Vec<u32>>), ImportError> {
    match text.find('[') {
        Some(at) => {
            let cpts = cpt_expr(&text[at..])
                .ok_or_else(|| err(EINVAL, format!("Unable to parse CPT '{}'", &text[at..])))?;
            Ok((text[..at].to_string(), Some(cpts)))
        }
        None => Ok((text.to_string(), None)),
    }
}

fn cpt_node(c: &mut Collect, v: &Node) -> Result<(), ImportError> {
    match v {
        Node::Str(s) => {
            c.cpts =
                Some(cpt_expr(s).ok_or_else(|| err(EINVAL, format!("Unable to parse CPT '{s}'")))?);
        }
        Node::Seq(items) if items.is_empty() => {
            return Err(err(ENODATA, "Missing CPT configuration"));
        }
        Node::Seq(items) => {
            let all = c.cpts.get_or_insert_with(Vec::new);
            for it in items {
                let t = it.text().unwrap_or_default();
                let vals = cpt_expr(&format!("[{t}]"))
                    .ok_or_else(|| err(EINVAL, format!("Unable to parse CPT '{t}'")))?;
                for x in vals {
                    if !all.contains(&x) {
                        all.push(x);
                    }
                }
            }
        }
        _ => return Err(err(EINVAL, "Unable to parse CPT configuration")),
    }
    Ok(())
}

fn walk(c: &mut Collect, node: &Node, ip2nets: bool) -> Result<(), ImportError> {
    match node {
        Node::Seq(items) => {
            for it in items {
                walk(c, it, ip2nets)?;
            }
        }
        Node::Map(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "interfaces" => {
                        for (_, name) in v.entries() {
                            let t = name.text().ok_or_else(|| {
                                err(EINVAL, "no value specified for key 'interfaces'")
                            })?;
                            c.interfaces.push(interface_item(&t)?);
                        }
                    }
                    "tunables" => {
                        for (tk, tv) in v.entries() {
                            let slot = match tk.as_str() {
                                "peer_timeout" => &mut c.peer_timeout,
                                "peer_credits" => &mut c.peer_credits,
                                "peer_buffer_credits" => &mut c.peer_buffer_credits,
                                "credits" => &mut c.credits,
                                _ => {
                                    c.warnings.push(format!(
                                        "Ignoring unrecognized key '{tk}' for 'tunables'"
                                    ));
                                    continue;
                                }
                            };
                            *slot = Some(int_value(tk, tv)?);
                        }
                    }
                    "lnd tunables" => {
                        for (tk, tv) in v.entries() {
                            match tk.as_str() {
                                "conns_per_peer" => c.conns_per_peer = Some(int_value(tk, tv)?),
                                "tos" => c.tos = Some(int_value(tk, tv)?),
                                // o2iblnd and kfilnd keys: recognised, not used by this LNet.
                                k if O2IB_KEYS.contains(&k) => {}
                                "auth_key" | "traffic_class" => {}
                                // Read-only keys of a full export.
                                "timeout" | "traffic_class_num" => {}
                                _ => c.warnings.push(format!(
                                    "Ignoring unrecognized key '{tk}' for 'lnd tunables'"
                                )),
                            }
                        }
                    }
                    "CPT" => cpt_node(c, v)?,
                    "ip-range" if ip2nets => {
                        for (_, r) in v.entries() {
                            let t = r.text().ok_or_else(|| {
                                err(EINVAL, "no value specified for key 'ip-range'")
                            })?;
                            c.ranges.push(t);
                        }
                    }
                    "ip-range" => {
                        return Err(err(EINVAL, "'ip-range' only valid for ip2nets"));
                    }
                    "local NI(s)" if ip2nets => {
                        return Err(err(EINVAL, "local NI(s)' not valid for ip2nets"));
                    }
                    // Read-only keys (nid, status, statistics, dev cpt...) are skipped.
                    "statistics" | "sent_stats" | "received_stats" | "dropped_stats"
                    | "health stats" | "udsp info" => {}
                    _ => walk(c, v, ip2nets)?,
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The `net:` section: one [`NetBlock`] per net block, in order.
pub fn net_blocks(node: &Node) -> Result<Vec<NetBlock>, ImportError> {
    let Node::Seq(blocks) = node else {
        return Err(err(
            EINVAL,
            "Unable to parse net configuration: 'net' must be a sequence of net blocks",
        ));
    };
    let mut out = Vec::new();
    for b in blocks {
        let first = b.entries().first();
        let net = match first {
            Some((k, v)) if k == "net type" => v
                .text()
                .ok_or_else(|| err(EINVAL, "no value specified for key 'net type'"))?,
            Some((k, _)) => {
                return Err(err(
                    EINVAL,
                    format!("Malformed input. Expect 'net type' found '{k}'"),
                ))
            }
            None => return Err(err(EINVAL, "Malformed input. Expect 'net type' found ''")),
        };
        // The loopback net of a full export: always there, nothing to do.
        if net == "lo" {
            continue;
        }
        let mut c = Collect::default();
        walk(&mut c, &Node::Map(b.entries()[1..].to_vec()), false)?;
        let warnings = std::mem::take(&mut c.warnings);
        out.push(NetBlock {
            request: request(net, c),
            warnings,
        });
    }
    Ok(out)
}

/// The `net:` section as `import --old-api` applies it (lnetctl.md §4.2):
/// one [`NetBlock`] per `local NI(s)` item that has `interfaces`, with that
/// item's own `tunables`, `lnd tunables` and `CPT`; an item without its own
/// tunables (or lnd tunables) inherits the net block's. Items without
/// interfaces are skipped; a block without `local NI(s)` is one unit as on
/// the default path.
pub fn net_blocks_old_api(node: &Node) -> Result<Vec<NetBlock>, ImportError> {
    let Node::Seq(blocks) = node else {
        return net_blocks(node);
    };
    let mut out = Vec::new();
    for b in blocks {
        let entries = b.entries();
        let items = entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("local NI(s)", Node::Seq(items)) => Some(items),
            _ => None,
        });
        let Some(items) = items else {
            out.extend(net_blocks(&Node::Seq(vec![b.clone()]))?);
            continue;
        };
        // The net block's own keys (tunables and lnd tunables to inherit).
        let outer: Vec<(String, Node)> = entries
            .iter()
            .filter(|(k, _)| k != "local NI(s)")
            .cloned()
            .collect();
        let net_type = match outer.first() {
            Some((k, _)) if k == "net type" => outer[0].clone(),
            _ => {
                // The default path names what is wrong.
                net_blocks(&Node::Seq(vec![b.clone()]))?;
                continue;
            }
        };
        for it in items {
            let own = it.entries();
            if !own.iter().any(|(k, _)| k == "interfaces") {
                continue;
            }
            let mut unit = vec![net_type.clone()];
            for key in ["tunables", "lnd tunables"] {
                if !own.iter().any(|(k, _)| k == key) {
                    if let Some(kv) = outer.iter().find(|(k, _)| k == key) {
                        unit.push(kv.clone());
                    }
                }
            }
            unit.extend(own.iter().cloned());
            out.extend(net_blocks(&Node::Seq(vec![Node::Map(unit)]))?);
        }
    }
    Ok(out)
}

/// The `ip2nets:` section (lnetctl.md §4.3): one request per rule, each
/// carrying its rule (the daemon resolves it against its interfaces).
pub fn ip2nets_blocks(node: &Node) -> Result<Vec<NetBlock>, ImportError> {
    let Node::Seq(rules) = node else {
        return Err(err(EINVAL, "'ip2nets' must be a sequence of rules"));
    };
    let mut out = Vec::new();
    for r in rules {
        let net = match r.entries().first() {
            Some((k, v)) if k == "net-spec" => v
                .text()
                .ok_or_else(|| err(EINVAL, "no value specified for key 'net-spec'"))?,
            Some((k, _)) => {
                return Err(err(
                    EINVAL,
                    format!("Malformed input. Expect 'net-spec' found '{k}'"),
                ))
            }
            None => return Err(err(EINVAL, "Malformed input. Expect 'net-spec' found ''")),
        };
        if crate::args::net(&net, "add").is_err() {
            return Err(err(EINVAL, format!("Invalid network ID '{net}'")));
        }
        let mut c = Collect::default();
        walk(&mut c, &Node::Map(r.entries()[1..].to_vec()), true)?;
        for range in &c.ranges {
            // IPv4 patterns; IPv6 addresses and prefixes are passed on.
            if !crate::udsp::ipv4_pattern_ok(range) && !range.contains(':') {
                return Err(err(EINVAL, format!("invalid ip-range '{range}'")));
            }
        }
        let warnings = std::mem::take(&mut c.warnings);
        let rule = crate::proto::Ip2NetsRule {
            net: net.clone(),
            interfaces: c.interfaces.iter().map(|(n, _)| n.clone()).collect(),
            ip_ranges: std::mem::take(&mut c.ranges),
        };
        let mut request = request(net, c);
        request.interfaces.clear();
        request.interface_cpts.clear();
        request.ip2nets = vec![rule];
        out.push(NetBlock { request, warnings });
    }
    Ok(out)
}

fn request(net: String, c: Collect) -> NetAddRequest {
    let pos = |v: Option<i64>| v.filter(|x| *x > 0).and_then(|x| i32::try_from(x).ok());
    NetAddRequest {
        net,
        interfaces: c.interfaces.iter().map(|(n, _)| n.clone()).collect(),
        peer_timeout: c
            .peer_timeout
            .filter(|x| *x >= 0)
            .and_then(|x| i32::try_from(x).ok()),
        peer_credits: pos(c.peer_credits),
        peer_buffer_credits: pos(c.peer_buffer_credits),
        credits: pos(c.credits),
        conns_per_peer: pos(c.conns_per_peer),
        tos: c
            .tos
            .filter(|x| (0..=255).contains(x))
            .and_then(|x| i32::try_from(x).ok()),
        nids: Vec::new(),
        cpts: c.cpts,
        interface_cpts: c.interfaces.into_iter().map(|(_, cp)| cp).collect(),
        ip2nets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_tree_and_styles() {
        let doc = parse(
            "net:\n-     net type: tcp\n      local NI(s):\n      -     interfaces:\n                  0: eth0\n            CPT: \"[0,1]\"\nglobal:\n    retry_count: 0\n    numa_range: 1\n",
        )
        .expect("parses");
        assert_eq!(doc[0].0, "net");
        assert_eq!(doc[1].0, "global");
        let g = global_entries(&doc[1].1).expect("global");
        assert_eq!(g[0].0.name, "retry_count");
        assert_eq!(g[1], (global::tunable("numa_range").expect("t"), 1));
        let nets = net_blocks(&doc[0].1).expect("nets");
        assert_eq!(nets[0].request.net, "tcp");
        assert_eq!(nets[0].request.interfaces, ["eth0"]);
        assert_eq!(nets[0].request.cpts, Some(vec![0, 1]));
    }

    #[test]
    fn block_is_one_unit_with_last_tunables() {
        let doc = parse(
            "net:\n  - net type: tcp1\n    local NI(s):\n      - interfaces: {0: eth0}\n        tunables: {peer_credits: 8, bogus: 1}\n        CPT: [0]\n      - interfaces: {0: 'eth1[1]'}\n        tunables: {peer_credits: 16, peer_timeout: -1}\n        lnd tunables: {conns_per_peer: 2, tos: -1, ntx: 3}\n        CPT: [1-2]\n",
        )
        .expect("parses");
        let nets = net_blocks(&doc[0].1).expect("nets");
        let r = &nets[0].request;
        assert_eq!(r.interfaces, ["eth0", "eth1"]);
        assert_eq!(r.interface_cpts, [None, Some(vec![1])]);
        assert_eq!(r.peer_credits, Some(16));
        assert_eq!(r.peer_timeout, None, "negative = default");
        assert_eq!(r.conns_per_peer, Some(2));
        assert_eq!(r.tos, None);
        assert_eq!(r.cpts, Some(vec![0, 1, 2]), "flow CPTs accumulate");
        assert_eq!(
            nets[0].warnings,
            ["Ignoring unrecognized key 'bogus' for 'tunables'"]
        );
    }

    #[test]
    fn udsp_section_reads_what_show_prints() {
        let rules = vec![(
            0,
            crate::proto::UdspRule {
                src: Some("tcp".into()),
                dst: None,
                rte: None,
                priority: Some(1),
            },
        )];
        let doc = parse(&crate::udsp::show(&rules)).expect("yaml");
        assert_eq!(udsp_rules(&doc[0].1).expect("rules"), rules);
    }

    #[test]
    fn ip2nets_rules() {
        let doc = parse(
            "ip2nets:
  - net-spec: tcp1
    interfaces:
        0: eth0
    ip-range:
        0: 192.168.1.*
        1: \"*.*.*.*\"
    tunables:
        peer_credits: 16
  - ip-range: {0: 10.0.0.1}
    net-spec: tcp
",
        )
        .expect("yaml");
        let b = ip2nets_blocks(&doc[0].1).expect_err("net-spec first");
        assert_eq!(
            b.descr,
            "Malformed input. Expect 'net-spec' found 'ip-range'"
        );
        let doc = parse(
            "ip2nets:
  - net-spec: tcp1
    interfaces:
        0: eth0
    ip-range:
        0: 192.168.1.*
        1: \"*.*.*.*\"
    tunables:
        peer_credits: 16
",
        )
        .expect("yaml");
        let b = ip2nets_blocks(&doc[0].1).expect("rules");
        assert_eq!(b[0].request.peer_credits, Some(16));
        assert_eq!(
            b[0].request.ip2nets,
            [crate::proto::Ip2NetsRule {
                net: "tcp1".into(),
                interfaces: vec!["eth0".into()],
                ip_ranges: vec!["192.168.1.*".into(), "*.*.*.*".into()],
            }]
        );
        let doc = parse(
            "ip2nets:
  - net-spec: tcp
    local NI(s): []
",
        )
        .expect("yaml");
        assert_eq!(
            ip2nets_blocks(&doc[0].1).expect_err("refused").descr,
            "local NI(s)' not valid for ip2nets"
        );
    }

    #[test]
    fn errors_name_the_item() {
        let bad = |t: &str| {
            let doc = parse(t).expect("yaml");
            net_blocks(&doc[0].1).expect_err("refused").descr
        };
        assert_eq!(
            bad("net:\n  - interfaces: {0: eth0}\n    net type: tcp\n"),
            "Malformed input. Expect 'net type' found 'interfaces'"
        );
        assert_eq!(
            bad("net:\n  - net type: tcp\n    tunables: {credits: abc}\n"),
            "invalid value 'abc' for key 'credits'"
        );
        assert_eq!(
            bad("net:\n  - net type: tcp\n    tunables: {credits: }\n"),
            "no value specified for key 'credits'"
        );
        assert_eq!(
            bad("net:\n  - net type: tcp\n    CPT: \"[1-0]\"\n"),
            "Unable to parse CPT '[1-0]'"
        );
        assert_eq!(
            bad("net:\n  - net type: tcp\n    CPT: []\n"),
            "Missing CPT configuration"
        );
        assert_eq!(
            bad("net:\n  - net type: tcp\n    ip-range: {0: 1.1.1.1}\n"),
            "'ip-range' only valid for ip2nets"
        );
        let doc = parse("global:\n    bogus: 1\n").expect("yaml");
        assert_eq!(
            global_entries(&doc[0].1).expect_err("key").descr,
            "invalid key 'bogus'"
        );
        let doc = parse("global:\n    retry_count: x\n").expect("yaml");
        assert_eq!(
            global_entries(&doc[0].1).expect_err("value").descr,
            "invalid value 'x' for key 'retry_count'"
        );
        assert!(parse("net: [\n")
            .expect_err("syntax")
            .starts_with("Parser error: "));
        assert_eq!(parse("").expect("empty"), vec![]);
    }

    #[test]
    fn old_api_applies_each_ni_item_with_its_own_tunables() {
        let doc = parse(
            "net:
  - net type: tcp1
    tunables: {peer_credits: 32}
    local NI(s):
      - interfaces: {0: eth0}
        tunables: {peer_credits: 8}
        CPT: [0]
      - interfaces: {0: eth1}
        lnd tunables: {conns_per_peer: 2}
      - nid: 10.0.0.9@tcp1
",
        )
        .expect("yaml");
        let one = net_blocks(&doc[0].1).expect("default path");
        assert_eq!(one.len(), 1, "one unit on the default path");
        assert_eq!(one[0].request.interfaces, ["eth0", "eth1"]);
        let per = net_blocks_old_api(&doc[0].1).expect("old api");
        assert_eq!(per.len(), 2, "the item without interfaces is skipped");
        assert_eq!(per[0].request.interfaces, ["eth0"]);
        assert_eq!(per[0].request.peer_credits, Some(8));
        assert_eq!(per[0].request.cpts, Some(vec![0]));
        assert_eq!(per[1].request.interfaces, ["eth1"]);
        assert_eq!(per[1].request.peer_credits, Some(32), "inherited");
        assert_eq!(per[1].request.conns_per_peer, Some(2));
        assert_eq!(per[1].request.cpts, None);
    }

    #[test]
    fn route_peer_routing_buffers_sections() {
        let doc = parse(
            "route:
-     net: tcp1
      gateway: 10.0.0.1@tcp
      hop: 2
      priority: 1
      state: up
      type: single-hop
peer:
-     primary nid: 10.0.0.5@tcp
      Multi-Rail: False
      peer state: 8
      peer ni:
      -     nid: 10.0.0.5@tcp
            state: NA
routing:
    - cpt[0]:
          tiny: {npages: 0}
    - enable: 3
buffers:
    tiny: 64
    large: 0
",
        )
        .expect("yaml");
        assert_eq!(
            route_entries(&doc[0].1).expect("routes"),
            [RouteEntry {
                net: "tcp1".into(),
                gateway: "10.0.0.1@tcp".into(),
                hop: 2,
                priority: 1,
                health_sensitivity: None,
            }]
        );
        assert_eq!(
            peer_entries(&doc[1].1, false).expect("peers"),
            [PeerEntry {
                primary: "10.0.0.5@tcp".into(),
                multi_rail: Some(false),
                nids: vec!["10.0.0.5@tcp".into()],
            }]
        );
        assert_eq!(routing_enable(&doc[2].1), Ok(true));
        assert_eq!(
            buffers_entries(&doc[3].1).expect("buffers"),
            [("tiny", 64), ("large", 0)]
        );
        let bad = |t: &str| {
            let d = parse(t).expect("yaml");
            match d[0].0.as_str() {
                "route" => route_entries(&d[0].1).expect_err("route").descr,
                "peer" => peer_entries(&d[0].1, false).expect_err("peer").descr,
                "routing" => routing_enable(&d[0].1).expect_err("routing").descr,
                _ => buffers_entries(&d[0].1).expect_err("buffers").descr,
            }
        };
        assert_eq!(
            bad("route:\n- net: tcp1\n"),
            "route item 0: missing mandatory parameter: gateway"
        );
        assert_eq!(
            bad("route:\n- net: tcp1\n  gateway: 1.2.3.4@tcp\n  hops: 3\n"),
            "invalid key 'hops' in route item 0"
        );
        assert_eq!(
            bad("route:\n- net: tcp1\n  gateway: 1.2.3.4@tcp\n  hop: many\n"),
            "invalid value 'many' for key 'hop'"
        );
        assert_eq!(
            bad("peer:\n- Multi-Rail: true\n"),
            "peer item 0: missing required primary NID"
        );
        assert_eq!(
            bad("peer:\n- primary nid: 1.2.3.4@tcp\n  Multi-Rail: sometimes\n"),
            "invalid MR flag param"
        );
        assert_eq!(
            bad("routing:\n    enable: 5\n"),
            "invalid value '5' for key 'enable' (0 disables routing, 1 enables it)"
        );
        assert_eq!(
            bad("buffers:\n    small: -1\n"),
            "invalid value '-1' for key 'small': tiny, small and large must be >= 0"
        );
        let d = parse("peer:\n- primary nid: 1.2.3.4@tcp\n  Multi-Rail: 1\n").expect("yaml");
        assert_eq!(
            peer_entries(&d[0].1, true).expect_err("old api").descr,
            "Multi-Rail must be set to 'True' or 'False' found '1'"
        );
        assert_eq!(
            peer_entries(&d[0].1, false).expect("default")[0].multi_rail,
            Some(true)
        );
    }
}

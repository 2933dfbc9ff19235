//! `lnetctl fault drop|delay add|del|show|reset` (lnetctl.md §2.19): the
//! options as upstream's getopt_long reads them, the request sent to the
//! daemon, and how the daemon hands it to the fault plugin (lnd-fault's
//! control call).

use lnd_api::{NetId, Nid};
use serde::{Deserialize, Serialize};

use crate::args::strtol;
use crate::serde_ids::serde_nid;

/// Drop or delay rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `fault drop …`.
    Drop,
    /// `fault delay …`.
    Delay,
}

impl FaultKind {
    /// `drop` or `delay`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Drop => "drop",
            FaultKind::Delay => "delay",
        }
    }
}

/// A rule to add (`struct lnet_fault_attr`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// `--source`: a NID, `255.255.255.255@net` or ANY.
    #[serde(with = "serde_nid")]
    pub src: Nid,
    /// `--dest`.
    #[serde(with = "serde_nid")]
    pub dst: Nid,
    /// `--local_nid` (ANY when not given).
    #[serde(with = "serde_nid")]
    pub local_nid: Nid,
    /// `--portal`s, OR'd (bit n = portal n).
    pub portal_mask: u64,
    /// `--message`s, OR'd (ACK 1, PUT 2, GET 4, REPLY 8); 0 = all.
    pub msg_mask: u32,
    /// `--rate`.
    pub rate: u32,
    /// `--interval`.
    pub interval: u32,
    /// `--health_error`s, OR'd (bit n = status n; `random` = all ones).
    pub health_mask: u32,
    /// `--random`.
    pub random: bool,
    /// `--drop_all`.
    pub drop_all: bool,
    /// `--latency` (delay rules).
    pub latency: u32,
}

/// What to do with the rules of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// `add`.
    Add(FaultRule),
    /// `del`: rules whose source and destination equal these (`None`, or
    /// ANY, matches every rule; `--all` is both `None`).
    Del {
        /// `--source`.
        #[serde(with = "serde_nid::opt", default)]
        src: Option<Nid>,
        /// `--dest`.
        #[serde(with = "serde_nid::opt", default)]
        dst: Option<Nid>,
    },
    /// `show`.
    Show,
    /// `reset`.
    Reset,
}

/// A `fault` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRequest {
    /// Drop or delay rules.
    pub kind: FaultKind,
    /// What to do.
    pub action: FaultAction,
}

impl Default for FaultRule {
    fn default() -> Self {
        FaultRule {
            src: Nid::ANY,
            dst: Nid::ANY,
            local_nid: Nid::ANY,
            portal_mask: 0,
            msg_mask: 0,
            rate: 0,
            interval: 0,
            health_mask: 0,
            random: false,
            drop_all: false,
            latency: 0,
        }
    }
}

/// A rule NID as upstream's tools print it (`<?>` for any NID);
/// `extra` names plugin network types.
pub fn rule_nid_text(n: Nid, extra: &[(&str, u8)]) -> String {
    n.display_with(extra).to_string()
}

/// How a rule NID is written to the fault plugin: `<?>` for ANY.
fn plugin_nid(n: Nid) -> String {
    if n.is_any() {
        "<?>".to_string()
    } else {
        n.to_string()
    }
}

impl FaultRequest {
    /// The fault plugin's control call for this request: `(cmd, arg)` (see
    /// lnd-fault's `ctl` module).
    pub fn plugin_call(&self) -> (String, String) {
        let k = self.kind.name();
        match &self.action {
            FaultAction::Add(r) => {
                let mut arg = format!(
                    "src={} dst={} local_nid={} portal_mask={:#x} msg_mask={:#x} rate={} interval={}",
                    plugin_nid(r.src),
                    plugin_nid(r.dst),
                    plugin_nid(r.local_nid),
                    r.portal_mask,
                    r.msg_mask,
                    r.rate,
                    r.interval
                );
                match self.kind {
                    FaultKind::Drop => arg.push_str(&format!(
                        " health_mask={:#x} random={} drop_all={}",
                        r.health_mask,
                        u8::from(r.random),
                        u8::from(r.drop_all)
                    )),
                    FaultKind::Delay => arg.push_str(&format!(" latency={}", r.latency)),
                }
                (format!("{k}_add"), arg)
            }
            FaultAction::Del { src, dst } => {
                let arg = if src.is_none() && dst.is_none() {
                    "all".to_string()
                } else {
                    format!(
                        "src={} dst={}",
                        plugin_nid(src.unwrap_or(Nid::ANY)),
                        plugin_nid(dst.unwrap_or(Nid::ANY))
                    )
                };
                (format!("{k}_del"), arg)
            }
            FaultAction::Show => (format!("{k}_show"), String::new()),
            FaultAction::Reset => (format!("{k}_reset"), String::new()),
        }
    }

    /// The `<op>` of upstream's `failed to <op>: <message>` line.
    pub fn failure_op(&self) -> &'static str {
        match (&self.action, self.kind) {
            (FaultAction::Add(_), FaultKind::Drop) => "add drop rule",
            (FaultAction::Add(_), FaultKind::Delay) => "add delay rule",
            (FaultAction::Show, FaultKind::Drop) => "list drop rule",
            (FaultAction::Show, FaultKind::Delay) => "list delay rules",
            (FaultAction::Del { .. }, FaultKind::Drop) => "delete drop rule",
            (FaultAction::Del { .. }, FaultKind::Delay) => "delete delay rule",
            (FaultAction::Reset, FaultKind::Drop) => "drop_reset rule",
            (FaultAction::Reset, FaultKind::Delay) => "delay reset_rule",
        }
    }

    /// The line printed on stdout when the daemon refused the request.
    pub fn failure_line(&self, message: &str) -> String {
        format!("failed to {}: {message}", self.failure_op())
    }
}

/// A `fault` command line that cannot be sent: what goes to stderr (each
/// line) and the return code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultArgError {
    /// Lines for stderr (may be empty: unknown `--health_error` prints nothing).
    pub stderr: Vec<String>,
    /// The command's return code (-1, or -22 for a bad NID).
    pub rc: i32,
}

/// A parsed command line: the request and the warnings already due on
/// stderr (`Unrecognized option ?`, parsing went on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultArgs {
    /// The request.
    pub request: FaultRequest,
    /// Lines for stderr.
    pub warnings: Vec<String>,
}

/// The health error names of `--health_error` and their mask bits.
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
    ("random", u32::MAX),
];

/// Parses a rule NID: a NID, `*@net` (stored as `255.255.255.255@net`),
/// or ANY (`*`, `<?>`); `extra` names plugin network types.
pub fn parse_rule_nid(s: &str, extra: &[(&str, u8)]) -> Option<Nid> {
    if matches!(s, "*" | "<?>") {
        return Some(Nid::ANY);
    }
    if let Some(net) = s.strip_prefix("*@") {
        return NetId::parse_with(net, extra)
            .ok()
            .map(|n| Nid::new4(n, u32::MAX));
    }
    Nid::parse_with(s, extra).ok()
}

/// C `strtoul`/`atoi` as upstream reads numbers: the leading number, 0 when
/// there is none.
fn lenient_u64(s: &str) -> u64 {
    if let Some(v) = strtol(s) {
        return u64::try_from(v).unwrap_or(0);
    }
    let digits: String = s
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

fn lenient_u32(s: &str) -> u32 {
    u32::try_from(lenient_u64(s)).unwrap_or(u32::MAX)
}

/// One option as getopt_long returns it.
enum Opt {
    /// A known option (its short letter) and its value.
    Known(char, Option<String>),
    /// `?`: unknown, ambiguous, or a missing value.
    Unknown(Bad),
}

/// Why getopt_long returned `?`: the word it was reading and glibc's own
/// complaint (without the program name).
struct Bad {
    word: String,
    why: String,
}

fn bad(word: &str, why: String) -> Opt {
    Opt::Unknown(Bad {
        word: word.to_string(),
        why,
    })
}

struct LongOpt {
    name: &'static str,
    short: char,
    arg: bool,
}

const fn lo(name: &'static str, short: char, arg: bool) -> LongOpt {
    LongOpt { name, short, arg }
}

const DROP_ADD: &[LongOpt] = &[
    lo("source", 's', true),
    lo("dest", 'd', true),
    lo("rate", 'r', true),
    lo("interval", 'i', true),
    lo("random", 'n', false),
    lo("portal", 'p', true),
    lo("message", 'm', true),
    lo("health_error", 'e', true),
    lo("local_nid", 'o', true),
    lo("drop_all", 'x', false),
    lo("rule_type", 't', true),
];
const DROP_SHORT: &str = "deimnoprstx";

const DELAY_ADD: &[LongOpt] = &[
    lo("source", 's', true),
    lo("dest", 'd', true),
    lo("rate", 'r', true),
    lo("interval", 'i', true),
    lo("latency", 'l', true),
    lo("portal", 'p', true),
    lo("message", 'm', true),
    lo("local_nid", 'o', true),
    lo("random", 'n', false),
    lo("drop_all", 'x', false),
    lo("health_error", 'e', true),
];
const DELAY_SHORT: &str = "dlmoprs";

const DEL: &[LongOpt] = &[
    lo("all", 'a', false),
    lo("source", 's', true),
    lo("dest", 'd', true),
];
const DEL_SHORT: &str = "ads";

/// getopt_long over `words` (argument permutation: other words are
/// skipped; unique prefixes of long names are accepted).
fn getopt(words: &[String], longs: &[LongOpt], shorts: &str) -> Vec<Opt> {
    let takes_arg = |c: char| longs.iter().any(|l| l.short == c && l.arg);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            break;
        }
        if let Some(body) = w.strip_prefix("--") {
            let (name, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let exact = longs.iter().find(|l| l.name == name);
            let matches: Vec<&LongOpt> =
                longs.iter().filter(|l| l.name.starts_with(name)).collect();
            let opt = match exact {
                Some(l) => Some(l),
                None if matches.len() == 1 && !name.is_empty() => Some(matches[0]),
                None => None,
            };
            match opt {
                None if matches.len() > 1 && !name.is_empty() => {
                    let all: Vec<String> =
                        matches.iter().map(|l| format!("'--{}'", l.name)).collect();
                    out.push(bad(
                        w,
                        format!(
                            "option '--{name}' is ambiguous; possibilities: {}",
                            all.join(" ")
                        ),
                    ));
                }
                None => out.push(bad(w, format!("unrecognized option '--{name}'"))),
                Some(l) if l.arg => match attached {
                    Some(v) => out.push(Opt::Known(l.short, Some(v))),
                    None if i < words.len() => {
                        out.push(Opt::Known(l.short, Some(words[i].clone())));
                        i += 1;
                    }
                    None => out.push(bad(
                        w,
                        format!("option '--{}' requires an argument", l.name),
                    )),
                },
                Some(l) => match attached {
                    Some(_) => out.push(bad(
                        w,
                        format!("option '--{}' doesn't allow an argument", l.name),
                    )),
                    None => out.push(Opt::Known(l.short, None)),
                },
            }
        } else if let Some(cluster) = w.strip_prefix('-').filter(|c| !c.is_empty()) {
            let chars: Vec<char> = cluster.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                if !shorts.contains(c) {
                    out.push(bad(w, format!("invalid option -- '{c}'")));
                    continue;
                }
                if takes_arg(c) {
                    let rest: String = chars[k..].iter().collect();
                    if !rest.is_empty() {
                        out.push(Opt::Known(c, Some(rest)));
                    } else if i < words.len() {
                        out.push(Opt::Known(c, Some(words[i].clone())));
                        i += 1;
                    } else {
                        out.push(bad(w, format!("option requires an argument -- '{c}'")));
                    }
                    break;
                }
                out.push(Opt::Known(c, None));
            }
        }
        // Any other word is a stray argument: skipped.
    }
    out
}

fn fail(line: impl Into<String>, rc: i32) -> FaultArgError {
    FaultArgError {
        stderr: vec![line.into()],
        rc,
    }
}

/// Whose command line is read: lnetctl's `fault …` or lctl's `net_drop_*` /
/// `net_delay_*` (the same options, upstream's lctl wording and stricter
/// getopt handling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `lnetctl fault drop|delay …` (lnetctl.md §2.19).
    Lnetctl,
    /// `lctl net_drop_add …` and friends: an unknown option stops the
    /// command, a bad NID is `Invalid NID : X` (rc -1), `del` without
    /// `--source`/`--dest` deletes every rule.
    Lctl,
}

/// lctl's one option table for both kinds (what each kind ignores is
/// ignored when set).
const LCTL_ADD: &[LongOpt] = &[
    lo("source", 's', true),
    lo("dest", 'd', true),
    lo("rate", 'r', true),
    lo("interval", 'i', true),
    lo("random", 'n', false),
    lo("latency", 'l', true),
    lo("portal", 'p', true),
    lo("message", 'm', true),
    lo("health_error", 'e', true),
    lo("local_nid", 'o', true),
    lo("drop_all", 'x', false),
];
const LCTL_DROP_SHORT: &str = "sdoripmenx";
const LCTL_DELAY_SHORT: &str = "sdorlpm";

/// Parses `fault <kind> <sub> <words…>` (`sub`: `add`, `del`, `show`,
/// `reset`); `extra` names plugin network types for NIDs.
pub fn parse(
    kind: FaultKind,
    sub: &str,
    words: &[String],
    extra: &[(&str, u8)],
) -> Result<FaultArgs, FaultArgError> {
    parse_as(Dialect::Lnetctl, "", kind, sub, words, extra)
}

/// Parses the options of `lctl net_<kind>_<sub>` (the words after the
/// command name) as upstream's lctl does; `cmd` is the command name its
/// messages carry (`net_drop_add`).
pub fn parse_lctl(
    cmd: &str,
    kind: FaultKind,
    sub: &str,
    words: &[String],
    extra: &[(&str, u8)],
) -> Result<FaultArgs, FaultArgError> {
    if words.is_empty() && matches!(sub, "add" | "del") {
        let line = if sub == "add" {
            "Failed, please provide source, destination and rate of rule"
        } else {
            "Failed, please provide source and destination of rule"
        };
        return Err(fail(line, -1));
    }
    parse_as(Dialect::Lctl, cmd, kind, sub, words, extra)
}

/// The parser both tools share; see [`Dialect`] for where they differ.
fn parse_as(
    dialect: Dialect,
    cmd: &str,
    kind: FaultKind,
    sub: &str,
    words: &[String],
    extra: &[(&str, u8)],
) -> Result<FaultArgs, FaultArgError> {
    let lctl = dialect == Dialect::Lctl;
    let mut warnings = Vec::new();
    let nid = |v: &str| {
        parse_rule_nid(v, extra).ok_or_else(|| {
            if lctl {
                fail(format!("Invalid NID : {v}"), -1)
            } else {
                fail(format!("Invalid NID: {v}"), -22)
            }
        })
    };
    // lnetctl warns and goes on; lctl prints getopt's complaint and its own
    // line, rc -1.
    let mut unknown = |b: Bad| -> Result<(), FaultArgError> {
        if lctl {
            Err(FaultArgError {
                stderr: vec![
                    format!("{cmd}: {}", b.why),
                    format!("error: {cmd}: option '{}' unrecognized", b.word),
                ],
                rc: -1,
            })
        } else {
            warnings.push("Unrecognized option ?".to_string());
            Ok(())
        }
    };
    let action = match sub {
        "add" => {
            let (longs, shorts) = match (dialect, kind) {
                (Dialect::Lnetctl, FaultKind::Drop) => (DROP_ADD, DROP_SHORT),
                (Dialect::Lnetctl, FaultKind::Delay) => (DELAY_ADD, DELAY_SHORT),
                (Dialect::Lctl, FaultKind::Drop) => (LCTL_ADD, LCTL_DROP_SHORT),
                (Dialect::Lctl, FaultKind::Delay) => (LCTL_ADD, LCTL_DELAY_SHORT),
            };
            let mut r = FaultRule::default();
            let (mut src, mut dst) = (None, None);
            for o in getopt(words, longs, shorts) {
                let (c, v) = match o {
                    Opt::Unknown(b) => {
                        unknown(b)?;
                        continue;
                    }
                    Opt::Known(c, v) => (c, v.unwrap_or_default()),
                };
                let drop = kind == FaultKind::Drop;
                match c {
                    's' => src = Some(nid(&v)?),
                    'd' => dst = Some(nid(&v)?),
                    'o' => r.local_nid = nid(&v)?,
                    'r' => r.rate = lenient_u32(&v),
                    'i' => r.interval = lenient_u32(&v),
                    'l' if !drop => r.latency = lenient_u32(&v),
                    'n' if drop => r.random = true,
                    'x' if drop => r.drop_all = true,
                    'p' => {
                        let p = strtol(&v).unwrap_or_else(|| lenient_u64(&v) as i64);
                        if !(0..64).contains(&p) {
                            let shown = if lctl { p.to_string() } else { v.clone() };
                            return Err(fail(format!("invalid portal: {shown}"), -1));
                        }
                        r.portal_mask |= 1u64 << p;
                    }
                    'm' => {
                        let bit = match v.to_ascii_uppercase().as_str() {
                            "ACK" => 1,
                            "PUT" => 2,
                            "GET" => 4,
                            "REPLY" => 8,
                            _ => return Err(fail(format!("unknown message type {v}"), -1)),
                        };
                        r.msg_mask |= bit;
                    }
                    'e' if drop => {
                        // lctl compares case-insensitively; `random` sets
                        // every status.
                        let found = HEALTH_ERRORS.iter().find(|(n, _)| {
                            if lctl {
                                n.eq_ignore_ascii_case(&v)
                            } else {
                                *n == v
                            }
                        });
                        let Some(&(_, bit)) = found else {
                            return Err(FaultArgError {
                                stderr: Vec::new(),
                                rc: -1,
                            });
                        };
                        r.health_mask |= bit;
                    }
                    // --rule_type, and what each kind accepts and ignores.
                    _ => {}
                }
            }
            let (rate, interval) = (r.rate, r.interval);
            if (rate == 0) == (interval == 0) {
                return Err(fail(
                    format!(
                        "please provide either {} rate or interval but not both at the same time.",
                        kind.name()
                    ),
                    -1,
                ));
            }
            if kind == FaultKind::Drop && r.random && interval == 0 {
                return Err(fail("please provide an interval to randomize", -1));
            }
            if kind == FaultKind::Delay && r.latency == 0 {
                return Err(fail("latency cannot be zero", -1));
            }
            match (src, dst) {
                (Some(s), Some(d)) => {
                    r.src = s;
                    r.dst = d;
                }
                _ => {
                    return Err(fail(
                        format!(
                            "Please provide both source and destination of {} rule",
                            kind.name()
                        ),
                        -1,
                    ))
                }
            }
            FaultAction::Add(r)
        }
        "del" => {
            let (mut all, mut src, mut dst) = (false, None, None);
            for o in getopt(words, DEL, DEL_SHORT) {
                match o {
                    Opt::Unknown(b) => unknown(b)?,
                    Opt::Known('a', _) => {
                        all = true;
                        // lctl stops reading at --all.
                        if lctl {
                            break;
                        }
                    }
                    Opt::Known('s', v) => src = Some(nid(&v.unwrap_or_default())?),
                    Opt::Known('d', v) => dst = Some(nid(&v.unwrap_or_default())?),
                    Opt::Known(..) => {}
                }
            }
            if lctl {
                // An unset end matches every rule; neither set: all rules.
                if all {
                    FaultAction::Del {
                        src: None,
                        dst: None,
                    }
                } else {
                    FaultAction::Del {
                        src: Some(src.unwrap_or(Nid::ANY)),
                        dst: Some(dst.unwrap_or(Nid::ANY)),
                    }
                }
            } else {
                if src.is_none() && dst.is_none() && !all {
                    return Err(fail(
                        "Failed, please provide source and destination of rule",
                        -1,
                    ));
                }
                if (src.is_some() || dst.is_some()) && all {
                    return Err(fail("'-s' or '-d' cannot be combined with '-a'", -1));
                }
                FaultAction::Del { src, dst }
            }
        }
        "show" => FaultAction::Show,
        "reset" => FaultAction::Reset,
        other => return Err(fail(format!("unknown fault command {other}"), -1)),
    };
    Ok(FaultArgs {
        request: FaultRequest { kind, action },
        warnings,
    })
}

impl crate::Client {
    /// `fault …`: the fault plugin's answer (`show` text; empty otherwise).
    pub fn fault(&mut self, req: FaultRequest) -> Result<String, crate::Error> {
        match self.call(crate::proto::Op::Fault(req))? {
            crate::proto::ReplyBody::Fault(text) => Ok(text),
            crate::proto::ReplyBody::Done => Ok(String::new()),
            _ => Err(crate::Error::UnexpectedReply {
                socket: self.socket().to_path_buf(),
                op: "fault",
            }),
        }
    }
}

/// The help of `fault <kind> <sub>` (lnetctl.md §1.4: the `--option:`
/// tokens are contractual).
pub fn help(kind: FaultKind, sub: &str) -> String {
    let k = kind.name();
    match (kind, sub) {
        (FaultKind::Drop, "add") => "fault drop add: add LNet drop rule\n\
             \t--source nid: source NID of the message (NID, *@net or *)\n\
             \t--dest nid: destination NID of the message (NID, *@net or *)\n\
             \t--rate r: drop 1 of every r matching messages\n\
             \t--interval i: drop one matching message every i seconds\n\
             \t--portal p: only messages to portal p (repeatable)\n\
             \t--message m: only messages of type m: put, ack, get, reply (repeatable)\n\
             \t--health_error: fail the send with this health status instead of dropping: \
             local_interrupt, local_dropped, local_aborted, local_no_route, local_error, \
             local_timeout, remote_error, remote_dropped, remote_timeout, network_timeout, \
             random (repeatable)\n\
             \t--random: with --interval, drop each matching message with probability 1/2\n\
             \t--local_nid: only messages received or sent on this local NI\n\
             \t--drop_all: drop every matching message\n"
            .to_string(),
        (FaultKind::Delay, "add") => "fault delay add: add LNet delay rule\n\
             \t--source nid: source NID of the message (NID, *@net or *)\n\
             \t--dest nid: destination NID of the message (NID, *@net or *)\n\
             \t--rate r: delay 1 of every r matching messages\n\
             \t--interval i: delay one matching message every i seconds\n\
             \t--portal p: only messages to portal p (repeatable)\n\
             \t--message m: only messages of type m: put, ack, get, reply (repeatable)\n\
             \t--latency: seconds to hold a delayed message\n\
             \t--local_nid: only messages received or sent on this local NI\n"
            .to_string(),
        (_, "del") => format!(
            "fault {k} del: remove LNet {k} rules\n\
             \t--all: all {k} rules\n\
             \t--source nid: rules with this source NID\n\
             \t--dest nid: rules with this destination NID\n"
        ),
        (_, "show") => format!("fault {k} show: show LNet {k} rules\n"),
        (_, "reset") => format!("fault {k} reset: reset the counters of LNet {k} rules\n"),
        _ => format!("fault {k}: add, del, show or reset LNet {k} rules\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn add(kind: FaultKind, s: &str) -> Result<FaultArgs, FaultArgError> {
        parse(kind, "add", &w(s), &[])
    }

    fn err(line: &str, rc: i32) -> FaultArgError {
        FaultArgError {
            stderr: vec![line.to_string()],
            rc,
        }
    }

    #[test]
    fn drop_add_with_every_option() {
        let a = add(
            FaultKind::Drop,
            "-s *@tcp --dest=192.168.122.10@tcp -r 4 -p 4 --portal 63 -m get -mPUT \
             -e local_error --health_error remote_dropped --local_nid 10.0.0.1@tcp -t x",
        )
        .expect("parses");
        assert!(a.warnings.is_empty());
        let FaultAction::Add(r) = &a.request.action else {
            panic!("{a:?}")
        };
        assert_eq!(r.src.to_string(), "255.255.255.255@tcp");
        assert_eq!(r.dst.to_string(), "192.168.122.10@tcp");
        assert_eq!(r.local_nid.to_string(), "10.0.0.1@tcp");
        assert_eq!((r.rate, r.interval), (4, 0));
        assert_eq!(r.portal_mask, 1 << 4 | 1 << 63);
        assert_eq!(r.msg_mask, 6);
        assert_eq!(r.health_mask, 1 << 5 | 1 << 8);
        assert_eq!(
            a.request.plugin_call(),
            (
                "drop_add".to_string(),
                "src=255.255.255.255@tcp dst=192.168.122.10@tcp local_nid=10.0.0.1@tcp \
                 portal_mask=0x8000000000000010 msg_mask=0x6 rate=4 interval=0 \
                 health_mask=0x120 random=0 drop_all=0"
                    .to_string()
            )
        );
        // Clustered flags, unique prefixes, random health.
        let a = add(FaultKind::Drop, "-s * -d * -i 10 -nx --health=random --ran").expect("parses");
        let FaultAction::Add(r) = &a.request.action else {
            panic!()
        };
        assert!(r.random && r.drop_all);
        assert_eq!((r.interval, r.health_mask), (10, u32::MAX));
        assert!(r.src.is_any() && r.dst.is_any());
    }

    #[test]
    fn every_health_error_name_is_accepted() {
        for (name, bit) in HEALTH_ERRORS {
            let a = add(FaultKind::Drop, &format!("-s * -d * -r 1 -e {name}")).expect(name);
            let FaultAction::Add(r) = &a.request.action else {
                panic!()
            };
            assert_eq!(r.health_mask, *bit, "{name}");
        }
        let e = add(FaultKind::Drop, "-s * -d * -r 1 -e bogus").expect_err("unknown");
        assert_eq!(
            e,
            FaultArgError {
                stderr: vec![],
                rc: -1
            }
        );
    }

    #[test]
    fn add_errors_as_upstream_prints_them() {
        let d = FaultKind::Drop;
        assert_eq!(
            add(d, "-s * -d * -r 1 -i 2").expect_err("both"),
            err(
                "please provide either drop rate or interval but not both at the same time.",
                -1
            )
        );
        assert_eq!(
            add(FaultKind::Delay, "-s * -d * -l 1").expect_err("neither"),
            err(
                "please provide either delay rate or interval but not both at the same time.",
                -1
            )
        );
        assert_eq!(
            add(d, "-s * -d * -r 1 --random").expect_err("random"),
            err("please provide an interval to randomize", -1)
        );
        assert_eq!(
            add(FaultKind::Delay, "-s * -d * -r 1").expect_err("latency"),
            err("latency cannot be zero", -1)
        );
        assert_eq!(
            add(d, "-s * -r 1").expect_err("dst"),
            err(
                "Please provide both source and destination of drop rule",
                -1
            )
        );
        assert_eq!(
            add(FaultKind::Delay, "-d * -r 1 -l 2").expect_err("src"),
            err(
                "Please provide both source and destination of delay rule",
                -1
            )
        );
        assert_eq!(
            add(d, "-s 1.2.3@bogus -d * -r 1").expect_err("nid"),
            err("Invalid NID: 1.2.3@bogus", -22)
        );
        assert_eq!(
            add(d, "-s * -d * -r 1 -m foo").expect_err("msg"),
            err("unknown message type foo", -1)
        );
        assert_eq!(
            add(d, "-s * -d * -r 1 -p 64").expect_err("portal"),
            err("invalid portal: 64", -1)
        );
    }

    #[test]
    fn unknown_options_warn_and_parsing_goes_on() {
        // -i is not a short option of delay add; --bogus is unknown; --ra
        // is ambiguous (rate, random) for drop.
        let a = add(FaultKind::Delay, "-s * -i 5 -d * --bogus -r 2 -l 3").expect("parses");
        assert_eq!(a.warnings, vec!["Unrecognized option ?"; 2]);
        let FaultAction::Add(r) = &a.request.action else {
            panic!()
        };
        assert_eq!((r.rate, r.interval, r.latency), (2, 0, 3));
        let a = add(FaultKind::Drop, "-s * -d * --ra 1 -r 1").expect("parses");
        assert_eq!(a.warnings, vec!["Unrecognized option ?"]);
        // delay accepts and ignores --random, --drop_all, --health_error.
        let a = add(
            FaultKind::Delay,
            "-s * -d * --interval 4 -l 1 --random --drop_all --health_error local_error",
        )
        .expect("parses");
        assert!(a.warnings.is_empty());
        assert_eq!(
            a.request.plugin_call().1,
            "src=<?> dst=<?> local_nid=<?> portal_mask=0x0 msg_mask=0x0 rate=0 interval=4 latency=1"
        );
    }

    #[test]
    fn del_show_reset() {
        let del = |s: &str| parse(FaultKind::Drop, "del", &w(s), &[]);
        assert_eq!(
            del("").expect_err("nothing"),
            err("Failed, please provide source and destination of rule", -1)
        );
        assert_eq!(
            del("-a -s *").expect_err("both"),
            err("'-s' or '-d' cannot be combined with '-a'", -1)
        );
        let r = del("--all").expect("all").request;
        assert_eq!(r.plugin_call(), ("drop_del".to_string(), "all".to_string()));
        let r = del("-s 10.0.0.1@tcp --dest *@tcp1").expect("pair").request;
        assert_eq!(
            r.plugin_call().1,
            "src=10.0.0.1@tcp dst=255.255.255.255@tcp1"
        );
        assert_eq!(
            r.failure_line("No such file or directory"),
            "failed to delete drop rule: No such file or directory"
        );
        let r = parse(FaultKind::Delay, "del", &w("-s 10.0.0.1@tcp"), &[])
            .expect("source only")
            .request;
        assert_eq!(
            r.plugin_call(),
            (
                "delay_del".to_string(),
                "src=10.0.0.1@tcp dst=<?>".to_string()
            )
        );
        let show = parse(FaultKind::Delay, "show", &[], &[])
            .expect("show")
            .request;
        assert_eq!(
            show.plugin_call(),
            ("delay_show".to_string(), String::new())
        );
        assert_eq!(show.failure_op(), "list delay rules");
        let reset = parse(FaultKind::Drop, "reset", &w("x"), &[])
            .expect("reset")
            .request;
        assert_eq!(
            reset.plugin_call(),
            ("drop_reset".to_string(), String::new())
        );
        assert_eq!(reset.failure_op(), "drop_reset rule");
    }

    #[test]
    fn lctl_reads_the_same_options_with_its_own_errors() {
        let lctl = |cmd: &str, kind, sub, s: &str| parse_lctl(cmd, kind, sub, &w(s), &[]);
        // Same options, same request as lnetctl's.
        let a = lctl(
            "net_drop_add",
            FaultKind::Drop,
            "add",
            "-s *@tcp -d 10.0.0.2@tcp -r 3 -e LOCAL_ERROR -m get",
        )
        .expect("parses");
        let b = add(
            FaultKind::Drop,
            "-s *@tcp -d 10.0.0.2@tcp -r 3 -e local_error -m get",
        )
        .expect("parses");
        assert_eq!(a.request, b.request);
        // No words at all.
        assert_eq!(
            lctl("net_drop_add", FaultKind::Drop, "add", "").expect_err("empty"),
            err(
                "Failed, please provide source, destination and rate of rule",
                -1
            )
        );
        assert_eq!(
            lctl("net_delay_del", FaultKind::Delay, "del", "").expect_err("empty"),
            err("Failed, please provide source and destination of rule", -1)
        );
        // An unknown option stops the command: getopt's line, then lctl's.
        assert_eq!(
            lctl(
                "net_drop_add",
                FaultKind::Drop,
                "add",
                "-s * -d * -r 1 --bogus"
            )
            .expect_err("?"),
            FaultArgError {
                stderr: vec![
                    "net_drop_add: unrecognized option '--bogus'".to_string(),
                    "error: net_drop_add: option '--bogus' unrecognized".to_string(),
                ],
                rc: -1
            }
        );
        assert_eq!(
            lctl(
                "net_delay_add",
                FaultKind::Delay,
                "add",
                "-s * -d * -i 1 -l 1"
            )
            .expect_err("-i is not delay's")
            .stderr[0],
            "net_delay_add: invalid option -- 'i'"
        );
        assert_eq!(
            lctl(
                "net_drop_add",
                FaultKind::Drop,
                "add",
                "-s 1.2.3@bogus -d * -r 1"
            )
            .expect_err("nid"),
            err("Invalid NID : 1.2.3@bogus", -1)
        );
        // del: neither end = every rule; one end = the other is any; -a.
        let del = |s: &str| {
            lctl("net_drop_del", FaultKind::Drop, "del", s)
                .expect("del")
                .request
                .plugin_call()
        };
        assert_eq!(del("*").1, "src=<?> dst=<?>");
        assert_eq!(del("-s 10.0.0.1@tcp").1, "src=10.0.0.1@tcp dst=<?>");
        assert_eq!(del("-a -s 10.0.0.1@tcp").1, "all");
    }

    #[test]
    fn requests_survive_the_wire() {
        let r = add(FaultKind::Drop, "-s *@tcp -d 10.0.0.2@tcp -r 3 -e random")
            .expect("parses")
            .request;
        let json = serde_json::to_string(&r).expect("encode");
        let back: FaultRequest = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, r);
    }
}

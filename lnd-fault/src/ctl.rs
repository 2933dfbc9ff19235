//! The control call of the fault filter: add, delete, show and reset rules.
//!
//! `cmd` is one of `drop_add`, `delay_add`, `drop_del`, `delay_del`,
//! `drop_show`, `delay_show`, `drop_reset`, `delay_reset`, `clear` (every
//! rule, as `lnet unconfigure`). `arg` is whitespace-separated `key=value`
//! words:
//!
//! * add: `src=NID dst=NID` (required), `rate=R` or `interval=I`,
//!   `portal_mask=M`, `msg_mask=M`, `local_nid=NID`; drop: `health_mask=M`,
//!   `random=0|1`, `drop_all=0|1`; delay: `latency=L`. Masks are decimal
//!   or `0x` hex. NIDs: a NID, `*@net` or `255.255.255.255@net` (every NID
//!   of that net), `<?>` or `*` (any NID).
//! * del: `src=NID dst=NID` (ANY matches every rule) or `all`; the answer
//!   is the number of rules deleted; none is `ENOENT`.
//! * show: the rules, newest first, as `lnetctl fault … show` prints them
//!   (nothing when there are none); a rule with a local NID has an
//!   `fa_local_nid` line after `fa_dst` (upstream prints none; its own
//!   parser skips keys it does not know).

use std::fmt::Write as _;
use std::time::Duration;

use lnd_api::{errno, LndError, NetId, Nid};

use crate::rules::{DelaySpec, DropSpec, Match, Rules, Stats};

/// A parsed control request.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Add a drop rule.
    AddDrop(DropSpec),
    /// Add a delay rule.
    AddDelay(DelaySpec),
    /// Delete drop rules by source and destination (ANY matches all).
    DelDrop(Nid, Nid),
    /// Delete delay rules by source and destination.
    DelDelay(Nid, Nid),
    /// List drop rules.
    ShowDrop,
    /// List delay rules.
    ShowDelay,
    /// Reset drop rule statistics.
    ResetDrop,
    /// Reset delay rule statistics.
    ResetDelay,
    /// Delete every rule.
    Clear,
    /// The host's network type names (`net_types`: `vnd=240 …`).
    NetTypes(Vec<(String, u8)>),
}

fn einval(msg: impl Into<String>) -> LndError {
    LndError::new(errno::EINVAL, msg)
}

/// Network type names beyond lnd-api's table (a vendor plugin's `vnd`),
/// as the host tells them (`net_types`).
pub type Names<'a> = &'a [(&'a str, u8)];

/// Parses a rule NID: a NID, `*@net` / `255.255.255.255@net`, or ANY.
pub fn parse_nid(s: &str) -> Result<Nid, LndError> {
    parse_nid_with(s, &[])
}

/// [`parse_nid`] knowing the network types `names` too.
pub fn parse_nid_with(s: &str, names: Names<'_>) -> Result<Nid, LndError> {
    if matches!(s, "*" | "<?>" | "any" | "ANY" | "LNET_NID_ANY") {
        return Ok(Nid::ANY);
    }
    if let Some(net) = s.strip_prefix("*@") {
        let net =
            NetId::parse_with(net, names).map_err(|e| einval(format!("Invalid NID: {s}: {e}")))?;
        return Ok(Nid::new4(net, u32::MAX));
    }
    // A NID of an unnamed type comes as `<address words>@<type:num>`,
    // which only parses without the names.
    Nid::parse_with(s, names)
        .or_else(|e| Nid::parse_with(s, &[]).map_err(|_| e))
        .map_err(|e| einval(format!("Invalid NID: {s}: {e}")))
}

fn parse_num<T: TryFrom<u64>>(key: &str, v: &str) -> Result<T, LndError> {
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse::<u64>(),
    }
    .map_err(|_| einval(format!("{key}={v}: not a number")))?;
    T::try_from(n).map_err(|_| einval(format!("{key}={v}: out of range")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, LndError> {
    match v {
        "0" | "false" | "no" => Ok(false),
        "1" | "true" | "yes" => Ok(true),
        _ => Err(einval(format!("{key}={v}: expected 0 or 1"))),
    }
}

#[derive(Default)]
struct Words {
    src: Option<Nid>,
    dst: Option<Nid>,
    local_nid: Option<Nid>,
    ptl_mask: u64,
    msg_mask: u32,
    rate: u32,
    interval: u32,
    health_mask: u32,
    random: bool,
    drop_all: bool,
    latency: u32,
    all: bool,
}

fn words(arg: &str, allowed: &[&str], names: Names<'_>) -> Result<Words, LndError> {
    let mut w = Words::default();
    for word in arg.split_whitespace() {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        if !allowed.contains(&k) {
            return Err(einval(format!(
                "unknown word {word:?} (expected {})",
                allowed.join(", ")
            )));
        }
        match k {
            "src" => w.src = Some(parse_nid_with(v, names)?),
            "dst" => w.dst = Some(parse_nid_with(v, names)?),
            "local_nid" => w.local_nid = Some(parse_nid_with(v, names)?),
            "portal_mask" => w.ptl_mask = parse_num(k, v)?,
            "msg_mask" => w.msg_mask = parse_num(k, v)?,
            "rate" => w.rate = parse_num(k, v)?,
            "interval" => w.interval = parse_num(k, v)?,
            "health_mask" => w.health_mask = parse_num(k, v)?,
            "random" => w.random = parse_bool(k, v)?,
            "drop_all" => w.drop_all = parse_bool(k, v)?,
            "latency" => w.latency = parse_num(k, v)?,
            "all" => w.all = true,
            _ => unreachable_word(k)?,
        }
    }
    Ok(w)
}

fn unreachable_word(k: &str) -> Result<(), LndError> {
    Err(einval(format!("unknown word {k:?}")))
}

fn src_dst(w: &Words, what: &str) -> Result<(Nid, Nid), LndError> {
    match (w.src, w.dst) {
        (Some(s), Some(d)) => Ok((s, d)),
        _ => Err(einval(format!(
            "Please provide both source and destination of {what} rule"
        ))),
    }
}

const ADD_DROP: &[&str] = &[
    "src",
    "dst",
    "local_nid",
    "portal_mask",
    "msg_mask",
    "rate",
    "interval",
    "health_mask",
    "random",
    "drop_all",
];
const ADD_DELAY: &[&str] = &[
    "src",
    "dst",
    "local_nid",
    "portal_mask",
    "msg_mask",
    "rate",
    "interval",
    "latency",
];
const DEL: &[&str] = &["src", "dst", "all"];

impl Request {
    /// Parses a control call.
    pub fn parse(cmd: &str, arg: &str) -> Result<Request, LndError> {
        Self::parse_with(cmd, arg, &[])
    }

    /// Parses a control call, knowing the network types `names` too.
    pub fn parse_with(cmd: &str, arg: &str, names: Names<'_>) -> Result<Request, LndError> {
        let none = |r: Request| {
            if arg.trim().is_empty() {
                Ok(r)
            } else {
                Err(einval(format!("{cmd} takes no argument, got {arg:?}")))
            }
        };
        match cmd {
            "drop_add" => {
                let w = words(arg, ADD_DROP, names)?;
                let (src, dst) = src_dst(&w, "drop")?;
                Ok(Request::AddDrop(DropSpec {
                    m: Match {
                        src,
                        dst,
                        local_nid: w.local_nid.unwrap_or(Nid::ANY),
                        ptl_mask: w.ptl_mask,
                        msg_mask: w.msg_mask,
                    },
                    rate: w.rate,
                    interval: w.interval,
                    health_mask: w.health_mask,
                    random: w.random,
                    drop_all: w.drop_all,
                }))
            }
            "delay_add" => {
                let w = words(arg, ADD_DELAY, names)?;
                let (src, dst) = src_dst(&w, "delay")?;
                Ok(Request::AddDelay(DelaySpec {
                    m: Match {
                        src,
                        dst,
                        local_nid: w.local_nid.unwrap_or(Nid::ANY),
                        ptl_mask: w.ptl_mask,
                        msg_mask: w.msg_mask,
                    },
                    rate: w.rate,
                    interval: w.interval,
                    latency: w.latency,
                }))
            }
            "drop_del" | "delay_del" => {
                let w = words(arg, DEL, names)?;
                let (src, dst) = if w.all {
                    if w.src.is_some() || w.dst.is_some() {
                        return Err(einval("'-s' or '-d' cannot be combined with '-a'"));
                    }
                    (Nid::ANY, Nid::ANY)
                } else {
                    match (w.src, w.dst) {
                        (Some(s), Some(d)) => (s, d),
                        _ => {
                            return Err(einval(
                                "Failed, please provide source and destination of rule",
                            ))
                        }
                    }
                };
                Ok(if cmd == "drop_del" {
                    Request::DelDrop(src, dst)
                } else {
                    Request::DelDelay(src, dst)
                })
            }
            "drop_show" => none(Request::ShowDrop),
            "delay_show" => none(Request::ShowDelay),
            "drop_reset" => none(Request::ResetDrop),
            "delay_reset" => none(Request::ResetDelay),
            "clear" => none(Request::Clear),
            "net_types" => arg
                .split_whitespace()
                .map(|w| {
                    w.split_once('=')
                        .and_then(|(n, t)| Some((n.to_string(), t.parse::<u8>().ok()?)))
                        .ok_or_else(|| einval(format!("net_types: {w:?} is not NAME=TYPE")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Request::NetTypes),
            _ => Err(LndError::new(
                errno::EOPNOTSUPP,
                format!(
                    "unknown fault control command {cmd:?} (expected drop_add, delay_add, \
                     drop_del, delay_del, drop_show, delay_show, drop_reset, delay_reset, clear)"
                ),
            )),
        }
    }
}

/// The answer to a deletion that found nothing.
pub fn no_rule() -> LndError {
    LndError::new(errno::ENOENT, "No such file or directory")
}

/// Executes `req` on `rules` at `now`; held items of deleted delay rules go
/// to `release`. Returns the text answer.
pub fn execute<T>(
    rules: &mut Rules<T>,
    req: Request,
    now: Duration,
    release: impl FnMut(T),
) -> Result<String, LndError> {
    execute_with(rules, req, now, &[], release)
}

/// [`execute`], printing NIDs of the network types `names` by name.
pub fn execute_with<T>(
    rules: &mut Rules<T>,
    req: Request,
    now: Duration,
    names: Names<'_>,
    release: impl FnMut(T),
) -> Result<String, LndError> {
    match req {
        Request::AddDrop(spec) => rules.add_drop(spec, now).map(|()| String::new()),
        Request::AddDelay(spec) => rules.add_delay(spec, now).map(|()| String::new()),
        Request::DelDrop(s, d) => match rules.del_drop(s, d) {
            0 => Err(no_rule()),
            n => Ok(n.to_string()),
        },
        Request::DelDelay(s, d) => match rules.del_delay(s, d, release) {
            0 => Err(no_rule()),
            n => Ok(n.to_string()),
        },
        Request::ShowDrop => Ok(show_drop_with(rules, names)),
        Request::ShowDelay => Ok(show_delay_with(rules, names)),
        // Kept by the caller (the filter), which knows where names live.
        Request::NetTypes(_) => Ok(String::new()),
        Request::ResetDrop => {
            rules.reset_drop(now);
            Ok(String::new())
        }
        Request::ResetDelay => {
            rules.reset_delay(now);
            Ok(String::new())
        }
        Request::Clear => {
            rules.clear(release);
            Ok(String::new())
        }
    }
}

fn common(out: &mut String, kind: &str, m: &Match, names: Names<'_>) {
    // NL-style YAML: a sequence of mappings indented by 6.
    let _ = writeln!(out, "-     rule_type: {kind}");
    let _ = writeln!(out, "      fa_src: {}", m.src.display_with(names));
    let _ = writeln!(out, "      fa_dst: {}", m.dst.display_with(names));
    // Only for a rule on one NI: rules without one print as upstream's.
    if !m.local_nid.is_any() {
        let _ = writeln!(
            out,
            "      fa_local_nid: {}",
            m.local_nid.display_with(names)
        );
    }
    let _ = writeln!(out, "      fa_ptl_mask: {}", m.ptl_mask);
    let _ = writeln!(out, "      fa_msg_mask: {}", m.msg_mask);
}

fn stats(out: &mut String, s: &Stats) {
    let _ = writeln!(out, "      fs_count: {}", s.count);
    let _ = writeln!(out, "      fs_put: {}", s.put);
    let _ = writeln!(out, "      fs_ack: {}", s.ack);
    let _ = writeln!(out, "      fs_get: {}", s.get);
    let _ = writeln!(out, "      fs_reply: {}", s.reply);
}

/// `lnetctl fault drop show`.
pub fn show_drop<T>(rules: &Rules<T>) -> String {
    show_drop_with(rules, &[])
}

/// [`show_drop`], printing NIDs of the network types `names` by name.
pub fn show_drop_with<T>(rules: &Rules<T>, names: Names<'_>) -> String {
    let mut out = String::new();
    if rules.drop_rules().is_empty() {
        return out;
    }
    out.push_str("fault:\n");
    for r in rules.drop_rules() {
        common(&mut out, "drop", &r.spec.m, names);
        let _ = writeln!(out, "      da_rate: {}", r.spec.rate);
        let _ = writeln!(out, "      da_interval: {}", r.spec.interval);
        let _ = writeln!(out, "      ds_dropped: {}", r.stats.fired);
        stats(&mut out, &r.stats);
    }
    out
}

/// `lnetctl fault delay show`.
pub fn show_delay<T>(rules: &Rules<T>) -> String {
    show_delay_with(rules, &[])
}

/// [`show_delay`], printing NIDs of the network types `names` by name.
pub fn show_delay_with<T>(rules: &Rules<T>, names: Names<'_>) -> String {
    let mut out = String::new();
    if rules.delay_rules().is_empty() {
        return out;
    }
    out.push_str("fault:\n");
    for r in rules.delay_rules() {
        common(&mut out, "delay", &r.spec.m, names);
        let _ = writeln!(out, "      la_rate: {}", r.spec.rate);
        let _ = writeln!(out, "      la_interval: {}", r.spec.interval);
        let _ = writeln!(out, "      la_latency: {}", r.spec.latency);
        let _ = writeln!(out, "      ls_delayed: {}", r.stats.fired);
        stats(&mut out, &r.stats);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: &mut Rules<u32>, cmd: &str, arg: &str) -> Result<String, LndError> {
        let req = Request::parse(cmd, arg)?;
        execute(rules, req, Duration::from_secs(5), |_| {})
    }

    #[test]
    fn add_show_and_statistics_print_as_lnetctl_does() {
        let mut r = Rules::new(1);
        assert_eq!(run(&mut r, "drop_show", "").expect("show"), "");
        run(
            &mut r,
            "drop_add",
            "src=*@tcp dst=192.168.122.10@tcp rate=1 msg_mask=4",
        )
        .expect("add");
        let get = crate::rules::MsgInfo {
            src: "10.0.0.1@tcp".parse().expect("nid"),
            dst: "192.168.122.10@tcp".parse().expect("nid"),
            msg_type: 2,
            portal: 0,
            local: Nid::ANY,
        };
        for _ in 0..3 {
            assert!(r.drop_on_receive(&get, Nid::ANY, Duration::from_secs(6)));
        }
        assert_eq!(
            run(&mut r, "drop_show", "").expect("show"),
            "fault:
-     rule_type: drop
      fa_src: 255.255.255.255@tcp
      fa_dst: 192.168.122.10@tcp
      fa_ptl_mask: 0
      fa_msg_mask: 4
      da_rate: 1
      da_interval: 0
      ds_dropped: 3
      fs_count: 3
      fs_put: 0
      fs_ack: 0
      fs_get: 3
      fs_reply: 0
"
        );
        run(&mut r, "drop_reset", "").expect("reset");
        assert!(run(&mut r, "drop_show", "")
            .expect("show")
            .contains("      ds_dropped: 0\n      fs_count: 0\n"));
    }

    #[test]
    fn delay_rules_show_newest_first_with_their_keys() {
        let mut r = Rules::new(1);
        run(&mut r, "delay_add", "src=<?> dst=<?> rate=2 latency=5").expect("add");
        run(
            &mut r,
            "delay_add",
            "src=10.0.0.1@tcp dst=*@tcp1 interval=3 latency=1 portal_mask=0x10",
        )
        .expect("add");
        assert_eq!(
            run(&mut r, "delay_show", "").expect("show"),
            "fault:
-     rule_type: delay
      fa_src: 10.0.0.1@tcp
      fa_dst: 255.255.255.255@tcp1
      fa_ptl_mask: 16
      fa_msg_mask: 6
      la_rate: 0
      la_interval: 3
      la_latency: 1
      ls_delayed: 0
      fs_count: 0
      fs_put: 0
      fs_ack: 0
      fs_get: 0
      fs_reply: 0
-     rule_type: delay
      fa_src: <?>
      fa_dst: <?>
      fa_ptl_mask: 0
      fa_msg_mask: 15
      la_rate: 2
      la_interval: 0
      la_latency: 5
      ls_delayed: 0
      fs_count: 0
      fs_put: 0
      fs_ack: 0
      fs_get: 0
      fs_reply: 0
"
        );
        assert_eq!(run(&mut r, "drop_show", "").expect("show"), "");
    }

    #[test]
    fn a_rule_on_one_ni_shows_its_local_nid() {
        let mut r = Rules::new(1);
        run(
            &mut r,
            "drop_add",
            "src=<?> dst=<?> rate=1 local_nid=10.0.0.2@tcp health_mask=0x4",
        )
        .expect("add");
        assert_eq!(
            run(&mut r, "drop_show", "").expect("show"),
            "fault:
-     rule_type: drop
      fa_src: <?>
      fa_dst: <?>
      fa_local_nid: 10.0.0.2@tcp
      fa_ptl_mask: 0
      fa_msg_mask: 15
      da_rate: 1
      da_interval: 0
      ds_dropped: 0
      fs_count: 0
      fs_put: 0
      fs_ack: 0
      fs_get: 0
      fs_reply: 0
"
        );
        run(
            &mut r,
            "delay_add",
            "src=<?> dst=<?> rate=1 latency=1 local_nid=10.0.0.2@tcp",
        )
        .expect("add");
        let d = run(&mut r, "delay_show", "").expect("show");
        assert!(
            d.contains(
                "      fa_dst: <?>\n      fa_local_nid: 10.0.0.2@tcp\n      fa_ptl_mask: 0\n"
            ),
            "{d}"
        );
    }

    #[test]
    fn del_and_its_errors() {
        let mut r = Rules::new(1);
        run(
            &mut r,
            "drop_add",
            "src=10.0.0.1@tcp dst=10.0.0.2@tcp rate=5",
        )
        .expect("add");
        run(
            &mut r,
            "drop_add",
            "src=10.0.0.3@tcp dst=10.0.0.2@tcp interval=5",
        )
        .expect("add");
        let e = run(&mut r, "drop_del", "src=10.0.0.9@tcp dst=10.0.0.2@tcp").expect_err("none");
        assert_eq!(
            (e.errno, e.message.as_str()),
            (errno::ENOENT, "No such file or directory")
        );
        assert_eq!(
            run(&mut r, "drop_del", "src=10.0.0.1@tcp dst=10.0.0.2@tcp").expect("del"),
            "1"
        );
        let e = run(&mut r, "drop_del", "all src=10.0.0.1@tcp").expect_err("both");
        assert_eq!(
            e.message.as_str(),
            "'-s' or '-d' cannot be combined with '-a'"
        );
        let e = run(&mut r, "drop_del", "src=10.0.0.1@tcp").expect_err("half");
        assert_eq!(
            e.message.as_str(),
            "Failed, please provide source and destination of rule"
        );
        assert_eq!(run(&mut r, "drop_del", "all").expect("del"), "1");
        assert!(r.is_empty());
        run(&mut r, "delay_add", "src=<?> dst=<?> rate=1 latency=1").expect("add");
        run(&mut r, "drop_add", "src=<?> dst=<?> rate=1").expect("add");
        run(&mut r, "clear", "").expect("clear");
        assert!(r.is_empty());
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let mut r: Rules<u32> = Rules::new(1);
        let e = run(&mut r, "drop_add", "src=1.2.3.4@bogus dst=<?> rate=1").expect_err("nid");
        assert_eq!(e.errno, errno::EINVAL);
        assert!(e.message.starts_with("Invalid NID: 1.2.3.4@bogus"), "{e}");
        let e = run(&mut r, "drop_add", "dst=<?> rate=1").expect_err("src");
        assert_eq!(
            e.message.as_str(),
            "Please provide both source and destination of drop rule"
        );
        let e = run(&mut r, "delay_add", "src=<?> dst=<?> rate=1 health_mask=4")
            .expect_err("health on delay");
        assert!(e.message.contains("unknown word"), "{e}");
        let e = run(&mut r, "drop_add", "src=<?> dst=<?> rate=x").expect_err("rate");
        assert_eq!(e.message.as_str(), "rate=x: not a number");
        let e = run(&mut r, "drop_show", "x").expect_err("arg");
        assert_eq!(e.errno, errno::EINVAL);
        let e = run(&mut r, "frobnicate", "").expect_err("cmd");
        assert_eq!(e.errno, errno::EOPNOTSUPP);
        assert!(r.is_empty());
    }
}

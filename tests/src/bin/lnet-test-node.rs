//! lnet-test-node: an application with LNet in-process, for the multi-node
//! tests. It embeds lnetd's node runtime, serves the same control socket as lnetd (so
//! `lnetctl --socket PATH` configures and inspects it), and performs
//! application commands read from standard input, one per line, printing
//! one line per result or event on standard output.
//!
//! ```text
//! lnet-test-node --socket PATH [--plugin-path DIR]... [--param NAME=VALUE]... [--wait SECS]
//! ```
//!
//! `--param MODULE.NAME=VALUE` (`ksocklnd.tx_buffer_size=262144`) is a
//! plugin's parameter, as `options MODULE NAME=VALUE` in lnetd's `--config`
//! (a parameter no plugin in the plugin path declares, or a value it
//! refuses, stops the node at start with why); without a module it is one
//! of LNet's or selftest's.
//!
//! It prints `ready` once the socket answers. LNet starts unconfigured:
//! `lnetctl --socket PATH lnet configure` starts it, `net add` adds NIs.
//! Commands (numbers are decimal or 0x-hex; sizes in bytes):
//!
//! * `serve PORTAL MATCHBITS SIZE`: attaches an MD (PUT and GET, remote
//!   offsets, infinite threshold) filled with the serve pattern of
//!   MATCHBITS. Every event on it is printed as `event KIND key=value...`; a
//!   PUT event checks the bytes that landed against the put pattern and
//!   says `data=ok` or `data=mismatch@OFFSET`.
//!   Only for PUTs one at a time: checking borrows the memory, and a PUT
//!   landing meanwhile fails with EBUSY (the MD contract).
//! * `sink PORTAL MATCHBITS SIZE`: a PUT-only MD, infinite threshold, never
//!   checked (for streams).
//! * `post PORTAL MATCHBITS SIZE COUNT`: COUNT PUT-only MDs of one use each
//!   on the same match bits, each checked after its PUT (streams, checked).
//! * `put NID PORTAL MATCHBITS SIZE [noack]`: PUTs SIZE bytes of the put
//!   pattern and waits for SEND (and ACK): `ok put ...` or `fail put ...`.
//! * `get NID PORTAL MATCHBITS SIZE`: GETs SIZE bytes and checks them against
//!   the serve pattern: `ok get ... data=ok` or `fail get ...`.
//! * `stream NID PORTAL MATCHBITS SIZE COUNT WINDOW [HOLD]`: COUNT PUTs with
//!   ACK, WINDOW in flight, PUT N carrying N as its `hdr_data`, one line
//!   each (`stream N ok` / `stream N fail status=-E`); stops starting new
//!   ones at the first failure; ends with `ok stream ...` or `fail stream
//!   ...`. With HOLD (seconds), a PUT in flight longer than that gives its
//!   window slot to a new one (it is still waited for): a PUT whose ACK was
//!   lost with a link ends only at the transaction timeout, and a window
//!   full of them would stop the stream until then.
//! * `lnd NID CMD [ARG...]`: runs LND control command CMD on local NI NID
//!   (an LND's counters, e.g. lnd-o2ib's `stats`): `ok lnd LINE; LINE...`.
//! * `quit`: stops (also at the end of input).
//!
//! Every wait for an event is bounded by `--wait` (default 60 s): a
//! `fail ... no event` line means LNet never finished the operation.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lnet_core::lnd_api::{IoBuf, Nid, Payload};
use lnet_core::{AckReq, EventKind, MdEvent, MdHandle, MdOptions, MdSpec, Threshold, Unlink};
use lnet_tests::pattern::{first_mismatch, put_pattern, serve_pattern};
use lnetd::ctl::{CtlServer, NodeSlot};
use lnetd::host::{PluginDecls, PluginParam};
use lnetd::node::{EqHandle, MatchSpec, Node, NodeConfig, Target};

const USAGE: &str = "usage: lnet-test-node --socket PATH [--plugin-path DIR]... \
[--param NAME=VALUE]... [--wait SECS]";

struct Opts {
    socket: PathBuf,
    plugin_path: Vec<PathBuf>,
    params: Vec<(String, String)>,
    plugin_params: Vec<PluginParam>,
    wait: Duration,
}

fn parse_args() -> Result<Opts, String> {
    let mut socket = None;
    let mut plugin_path = Vec::new();
    let mut params = Vec::new();
    let mut plugin_params = Vec::new();
    let mut wait = Duration::from_secs(60);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("option {a} needs a value"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--plugin-path" => plugin_path.push(PathBuf::from(value()?)),
            "--param" => {
                let v = value()?;
                let (k, v) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--param {v}: expected NAME=VALUE"))?;
                match k.split_once('.') {
                    Some((module, name)) => plugin_params.push(PluginParam {
                        module: module.to_string(),
                        name: name.to_string(),
                        value: v.to_string(),
                    }),
                    None => params.push((k.to_string(), v.to_string())),
                }
            }
            "--wait" => {
                let v = value()?;
                let s: u64 = v.parse().map_err(|_| format!("--wait {v}: not a number"))?;
                wait = Duration::from_secs(s);
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()))
    {
        plugin_path.push(dir);
    }
    Ok(Opts {
        socket: socket.ok_or_else(|| format!("--socket is required\n{USAGE}"))?,
        plugin_path,
        params,
        plugin_params,
        wait,
    })
}

/// Every `--param MODULE.NAME=VALUE` must name a parameter that a plugin in
/// the plugin path declares, with a value it accepts, as lnetd's command
/// line requires: a misspelt one would otherwise leave the test running on
/// the default without a word.
fn check_plugin_params(opts: &Opts) -> Result<(), String> {
    if opts.plugin_params.is_empty() {
        return Ok(());
    }
    let mut plugins = PluginDecls::from_path(opts.plugin_path.clone());
    for p in &opts.plugin_params {
        let what = format!("--param {}.{}={}", p.module, p.name, p.value);
        let decl = plugins
            .get()?
            .iter()
            .find(|d| d.module() == p.module && d.name() == p.name)
            .copied();
        let Some(d) = decl else {
            let modules = plugins.modules();
            return Err(format!(
                "{what}: no plugin in the plugin path declares this parameter (plugin modules \
                 found: {}); check the name, or add the plugin's directory with --plugin-path; \
                 {}",
                if modules.is_empty() {
                    "none".to_string()
                } else {
                    modules.join(", ")
                },
                plugins.searched()
            ));
        };
        d.check(&p.value).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

/// One output line, written whole (several threads print).
fn say(line: impl AsRef<str>) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number"))
}

fn ms(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

/// The application: the node slot and the served MDs' memory.
struct App {
    slot: NodeSlot,
    wait: Duration,
    serve_eq: EqHandle,
    served: Arc<Mutex<HashMap<MdHandle, IoBuf>>>,
}

impl App {
    fn node(&self) -> Result<Arc<Node>, String> {
        self.slot
            .get()
            .ok_or_else(|| "LNet is not configured (run lnetctl lnet configure)".to_string())
    }

    fn run(&self, line: &str) -> Result<String, String> {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["serve", portal, mb, size] => self.serve(num(portal)?, num(mb)?, num(size)?),
            ["sink", portal, mb, size] => self.sink(num(portal)?, num(mb)?, num(size)?),
            ["post", portal, mb, size, count] => {
                self.post(num(portal)?, num(mb)?, num(size)?, num(count)?)
            }
            ["put", nid, portal, mb, size, rest @ ..] => {
                let ack = match rest {
                    [] => true,
                    ["noack"] => false,
                    _ => return Err("put NID PORTAL MATCHBITS SIZE [noack]".into()),
                };
                self.put(parse_nid(nid)?, num(portal)?, num(mb)?, num(size)?, ack)
            }
            ["get", nid, portal, mb, size] => {
                self.get(parse_nid(nid)?, num(portal)?, num(mb)?, num(size)?)
            }
            ["stream", nid, portal, mb, size, count, window, rest @ ..] => {
                let hold = match rest {
                    [] => None,
                    [secs] => Some(Duration::from_secs(num(secs)?.max(1))),
                    _ => return Err("stream NID PORTAL MATCHBITS SIZE COUNT WINDOW [HOLD]".into()),
                };
                self.stream(
                    parse_nid(nid)?,
                    num(portal)?,
                    num(mb)?,
                    num(size)?,
                    (num(count)?, num(window)?.max(1)),
                    hold,
                )
            }
            ["lnd", nid, cmd, rest @ ..] => {
                let node = self.node()?;
                let out = node
                    .ni_ctl(parse_nid(nid)?, cmd, &rest.join(" "))
                    .map_err(|e| format!("lnd {e}"))?;
                // One line: the LND's lines joined by "; ".
                Ok(format!("lnd {}", out.trim_end().replace('\n', "; ")))
            }
            _ => Err(format!("unknown command {line:?}")),
        }
    }

    fn serve(&self, portal: u64, mb: u64, size: u64) -> Result<String, String> {
        let node = self.node()?;
        let buf = IoBuf::from_vec(serve_pattern(mb, size as usize));
        let spec = MdSpec::new(
            Payload::single(buf.clone()),
            MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        // The memory is registered before the MD exists so that the
        // printer finds it for the first event.
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let md = node
            .md_attach(
                MatchSpec::new(portal as u32, mb),
                spec,
                Unlink::Retain,
                &self.serve_eq,
            )
            .map_err(|e| e.to_string())?;
        served.insert(md, buf);
        Ok(format!("serve portal={portal} mb={mb:#x} size={size}"))
    }

    /// A PUT-only MD with infinite threshold whose bytes are never looked
    /// at (streams: checking would borrow the memory while the next PUT
    /// lands in it, and that PUT would fail with EBUSY).
    fn sink(&self, portal: u64, mb: u64, size: u64) -> Result<String, String> {
        let node = self.node()?;
        let spec = MdSpec::new(
            Payload::single(IoBuf::zeroed(size as usize)),
            MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        node.md_attach(
            MatchSpec::new(portal as u32, mb),
            spec,
            Unlink::Retain,
            &self.serve_eq,
        )
        .map_err(|e| e.to_string())?;
        Ok(format!("sink portal={portal} mb={mb:#x} size={size}"))
    }

    /// COUNT PUT-only MDs of one use each, in a row on the same match bits:
    /// each PUT lands in its own buffer, checked once LNet is done with it.
    fn post(&self, portal: u64, mb: u64, size: u64, count: u64) -> Result<String, String> {
        let node = self.node()?;
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..count {
            let buf = IoBuf::zeroed(size as usize);
            let spec = MdSpec::new(
                Payload::single(buf.clone()),
                MdOptions::OP_PUT,
                Threshold::Count(1),
            );
            let md = node
                .md_attach(
                    MatchSpec::new(portal as u32, mb),
                    spec,
                    Unlink::Unlink,
                    &self.serve_eq,
                )
                .map_err(|e| e.to_string())?;
            served.insert(md, buf);
        }
        Ok(format!(
            "post portal={portal} mb={mb:#x} size={size} count={count}"
        ))
    }

    fn bind(
        &self,
        node: &Node,
        buf: &IoBuf,
        threshold: u32,
        eq: &EqHandle,
    ) -> Result<MdHandle, String> {
        let spec = MdSpec::new(
            Payload::single(buf.clone()),
            MdOptions::NONE,
            Threshold::Count(threshold),
        );
        node.md_bind(spec, Unlink::Unlink, eq)
            .map_err(|e| e.to_string())
    }

    /// Waits until each of `kinds` came (in any order) or one failed;
    /// returns the last of `kinds`' events (ACK or REPLY: the length moved).
    fn finish(&self, eq: &EqHandle, kinds: &[EventKind]) -> Result<MdEvent, String> {
        let deadline = Instant::now() + self.wait;
        let mut seen: Vec<MdEvent> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = eq.wait(left).ok_or_else(|| {
                format!(
                    "no event within {}s (seen {:?})",
                    self.wait.as_secs(),
                    kinds_of(&seen)
                )
            })?;
            if ev.status != 0 {
                return Err(format!("status={} event={}", ev.status, kind(ev.kind)));
            }
            seen.push(ev);
            if kinds.iter().all(|k| seen.iter().any(|e| e.kind == *k)) {
                let last = kinds[kinds.len() - 1];
                return seen
                    .into_iter()
                    .find(|e| e.kind == last)
                    .ok_or_else(|| "bug: event lost".to_string());
            }
            if ev.unlinked {
                return Err(format!("md gone after events {:?}", kinds_of(&seen)));
            }
        }
    }

    fn put(&self, nid: Nid, portal: u64, mb: u64, size: u64, ack: bool) -> Result<String, String> {
        let node = self.node()?;
        let t0 = Instant::now();
        let eq = node.eq_alloc();
        let buf = IoBuf::from_vec(put_pattern(mb, size as usize));
        let md = self.bind(&node, &buf, if ack { 2 } else { 1 }, &eq)?;
        let ackreq = if ack { AckReq::Ack } else { AckReq::NoAck };
        node.put(md, ackreq, Target::new(nid, portal as u32, mb), size)
            .map_err(|e| e.to_string())?;
        let kinds: &[EventKind] = if ack {
            &[EventKind::Send, EventKind::Ack]
        } else {
            &[EventKind::Send]
        };
        let ev = self.finish(&eq, kinds).map_err(|e| {
            // Its threshold is not used up: unlink it ourselves.
            let _ = node.md_unlink(md);
            format!("{e} ms={}", ms(t0))
        })?;
        Ok(format!(
            "put size={size} mlength={} ms={}",
            ev.mlength,
            ms(t0)
        ))
    }

    fn get(&self, nid: Nid, portal: u64, mb: u64, size: u64) -> Result<String, String> {
        let node = self.node()?;
        let t0 = Instant::now();
        let eq = node.eq_alloc();
        let sink = IoBuf::zeroed(size as usize);
        let md = self.bind(&node, &sink, 2, &eq)?;
        node.get(md, Target::new(nid, portal as u32, mb))
            .map_err(|e| e.to_string())?;
        let ev = self
            .finish(&eq, &[EventKind::Send, EventKind::Reply])
            .map_err(|e| {
                let _ = node.md_unlink(md);
                format!("{e} ms={}", ms(t0))
            })?;
        let got = sink.to_vec().map_err(|e| format!("sink busy: {e}"))?;
        let n = ev.mlength as usize;
        let expect = serve_pattern(mb, n);
        match first_mismatch(&got[..n.min(got.len())], &expect) {
            None => Ok(format!("get size={size} mlength={n} data=ok ms={}", ms(t0))),
            Some(at) => Err(format!("get size={size} mlength={n} data=mismatch@{at}")),
        }
    }

    fn stream(
        &self,
        nid: Nid,
        portal: u64,
        mb: u64,
        size: u64,
        (count, window): (u64, u64),
        hold: Option<Duration>,
    ) -> Result<String, String> {
        let node = self.node()?;
        let t0 = Instant::now();
        let eq = node.eq_alloc();
        let buf = IoBuf::from_vec(put_pattern(mb, size as usize));
        let mut inflight: HashMap<MdHandle, (u64, Instant)> = HashMap::new();
        let (mut next, mut ok, mut failed) = (0u64, 0u64, 0u64);
        let mut first_failure: Option<String> = None;
        // The PUTs holding a window slot: all of them, or those younger
        // than `hold`.
        let holding = |inflight: &HashMap<MdHandle, (u64, Instant)>| {
            inflight
                .values()
                .filter(|(_, t)| hold.is_none_or(|h| t.elapsed() < h))
                .count() as u64
        };
        let mut last_event = Instant::now();
        loop {
            while first_failure.is_none() && next < count && holding(&inflight) < window {
                let md = self.bind(&node, &buf, 2, &eq)?;
                // hdr_data: the PUT's index, so that the target can tell
                // each PUT it got (none twice).
                node.put(md, AckReq::Ack, Target::new(nid, portal as u32, mb), next)
                    .map_err(|e| e.to_string())?;
                inflight.insert(md, (next, Instant::now()));
                next += 1;
            }
            if inflight.is_empty() {
                break;
            }
            let idle = last_event.elapsed();
            if idle >= self.wait {
                return Err(format!(
                    "stream no event within {}s with {} in flight (ok={ok} failed={failed})",
                    self.wait.as_secs(),
                    inflight.len()
                ));
            }
            // Woken also when the oldest PUT holding a slot gives it up.
            let mut timeout = self.wait - idle;
            if let Some(h) = hold.filter(|_| first_failure.is_none() && next < count) {
                if let Some(t) = inflight
                    .values()
                    .map(|(_, t)| *t)
                    .filter(|t| t.elapsed() < h)
                    .min()
                {
                    timeout = timeout.min(h.saturating_sub(t.elapsed()));
                }
            }
            let Some(ev) = eq.wait(timeout) else {
                continue;
            };
            last_event = Instant::now();
            let done = ev.status != 0 || ev.kind == EventKind::Ack || ev.unlinked;
            if !done {
                continue;
            }
            let Some((i, started)) = inflight.remove(&ev.md) else {
                continue;
            };
            if ev.status == 0 && ev.kind == EventKind::Ack {
                ok += 1;
                say(format!("stream {i} ok ms={}", ms(started)));
            } else {
                failed += 1;
                let why = format!(
                    "status={} event={} ms={}",
                    ev.status,
                    kind(ev.kind),
                    ms(started)
                );
                say(format!("stream {i} fail {why}"));
                first_failure.get_or_insert(why);
                // A failed PUT leaves its MD with threshold for the ACK
                // that will not come: unlink it (its UNLINK is ignored).
                let _ = node.md_unlink(ev.md);
            }
        }
        let summary = format!("stream sent={next} ok={ok} failed={failed} ms={}", ms(t0));
        match first_failure {
            None => Ok(summary),
            Some(_) => Err(summary),
        }
    }
}

fn parse_nid(s: &str) -> Result<Nid, String> {
    s.parse::<Nid>().map_err(|e| format!("bad NID {s}: {e}"))
}

fn kinds_of(evs: &[MdEvent]) -> Vec<&'static str> {
    evs.iter().map(|e| kind(e.kind)).collect()
}

fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Get => "get",
        EventKind::Put => "put",
        EventKind::Reply => "reply",
        EventKind::Ack => "ack",
        EventKind::Send => "send",
        EventKind::Unlink => "unlink",
    }
}

/// Prints the events of served MDs, checking what PUTs brought.
fn print_served(eq: EqHandle, served: Arc<Mutex<HashMap<MdHandle, IoBuf>>>) {
    loop {
        let Some(ev) = eq.wait(Duration::from_secs(3600)) else {
            continue;
        };
        let mut line = format!(
            "event {} from={} mb={:#x} rlength={} mlength={} offset={} hdr_data={} status={}",
            kind(ev.kind),
            ev.initiator.nid,
            ev.match_bits,
            ev.rlength,
            ev.mlength,
            ev.offset,
            ev.hdr_data,
            ev.status
        );
        let buf = served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ev.md)
            .cloned();
        if ev.kind == EventKind::Put && ev.status == 0 {
            let check = match buf.map(|b| b.to_vec()) {
                None => "data=unknown-md".to_string(),
                Some(Err(e)) => format!("data=busy({e})"),
                Some(Ok(bytes)) => {
                    let (off, n) = (ev.offset as usize, ev.mlength as usize);
                    let expect = put_pattern(ev.match_bits, ev.rlength as usize);
                    match bytes.get(off..off + n) {
                        None => "data=out-of-range".to_string(),
                        Some(got) => match first_mismatch(got, &expect[..n.min(expect.len())]) {
                            None => "data=ok".to_string(),
                            Some(at) => format!("data=mismatch@{at}"),
                        },
                    }
                }
            };
            line.push(' ');
            line.push_str(&check);
        }
        if ev.unlinked {
            line.push_str(" unlinked");
            served
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ev.md);
        }
        say(line);
    }
}

fn main() -> std::process::ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lnet-test-node: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = check_plugin_params(&opts) {
        eprintln!("lnet-test-node: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LNET_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
    let cfg = NodeConfig {
        plugin_path: opts.plugin_path.clone(),
        params: opts.params.clone(),
        plugin_params: opts.plugin_params.clone(),
        pid: lnet_core::LNET_PID_LUSTRE,
        ..NodeConfig::default()
    };
    let server = match CtlServer::bind(&opts.socket, cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lnet-test-node: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = App {
        slot: server.node_slot(),
        wait: opts.wait,
        serve_eq: EqHandle::default(),
        served: Arc::new(Mutex::new(HashMap::new())),
    };
    let stop = server.stop_handle();
    let serving = std::thread::spawn(move || server.serve());
    {
        let (eq, served) = (app.serve_eq.clone(), app.served.clone());
        std::thread::spawn(move || print_served(eq, served));
    }
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            break;
        }
        let cmd = line.split_whitespace().next().unwrap_or_default();
        match app.run(line) {
            Ok(r) => say(format!("ok {r}")),
            Err(e) if e.starts_with(cmd) => say(format!("fail {e}")),
            Err(e) => say(format!("fail {cmd} {e}")),
        }
    }
    stop.stop();
    let _ = serving.join();
    say("bye");
    std::process::ExitCode::SUCCESS
}

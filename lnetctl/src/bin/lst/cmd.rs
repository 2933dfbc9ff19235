//! The commands: arguments checked as upstream `lst` checks them, one or
//! more console requests, the reply printed with `lst::render`.
//!
//! Return codes follow upstream: -1 for a local failure or bad usage, -2
//! when some RPCs failed, -3 when some nodes refused (framework errors).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use liblnetconfig::lst::render::{self, StatView};
use liblnetconfig::lst::{
    args, ids, stat, LstBatch, LstGroup, LstNode, LstReply, LstRequest, LstTargets, LstTestSpec,
    LstUpdate, LST_DEFAULT_BATCH, LST_MAX_CONCUR, LST_NAME_SIZE,
};
use liblnetconfig::{errno, Client, Error};

use crate::cli::{self, Cmd};
use crate::{stderr, stdout};

/// How long `stop` waits for the batch to wind down before giving up.
const STOP_WAIT: Duration = Duration::from_secs(150);

/// What every command needs.
pub(crate) struct Ctx {
    /// lnetd's socket.
    pub(crate) socket: PathBuf,
    /// `$LST_SESSION`, if set and non-zero.
    pub(crate) key: Option<u32>,
    /// `$LST_FEATURES` (or every known feature).
    pub(crate) features: u32,
}

/// A command's failure, already printed: its rc.
type Rc = i32;

fn usage(cmd: &str) -> Rc {
    if let Some(u) = cli::usage(cmd) {
        stderr(&format!("{u}\n"));
    }
    -1
}

impl Ctx {
    fn key(&self) -> Result<u32, Rc> {
        self.key.ok_or_else(|| {
            stderr("Can't find env LST_SESSION or value is not valid\n");
            -1
        })
    }

    fn connect(&self) -> Result<Conn, Rc> {
        let client = Client::connect(&self.socket).map_err(|e| report(&e))?;
        Ok(Conn { client })
    }
}

/// A connection with the helpers the commands share.
struct Conn {
    client: Client,
}

impl Conn {
    fn call(&mut self, req: LstRequest) -> Result<LstReply, Error> {
        self.client.lst(req)
    }

    /// A request whose reply must be per-node entries.
    fn nodes(&mut self, req: LstRequest) -> Result<Vec<LstNode>, Error> {
        match self.call(req)? {
            LstReply::Nodes(n) => Ok(n),
            _ => Err(unexpected(&self.client)),
        }
    }

    fn groups(&mut self, key: u32, name: Option<&str>) -> Result<Vec<LstGroup>, Error> {
        match self.call(LstRequest::ListGroup {
            key,
            name: name.map(str::to_string),
        })? {
            LstReply::Groups(g) => Ok(g),
            _ => Err(unexpected(&self.client)),
        }
    }

    fn batches(&mut self, key: u32, name: Option<&str>) -> Result<Vec<LstBatch>, Error> {
        match self.call(LstRequest::ListBatch {
            key,
            name: name.map(str::to_string),
        })? {
            LstReply::Batches(b) => Ok(b),
            _ => Err(unexpected(&self.client)),
        }
    }

    fn net_types(&mut self) -> Vec<(String, u8)> {
        self.client.net_types().unwrap_or_default()
    }

    /// A STAT target: a group if one has that name, else an ID list.
    fn target(&mut self, key: u32, word: &str) -> Result<LstTargets, Rc> {
        match self.groups(key, Some(word)) {
            Ok(_) => Ok(LstTargets::Group(word.to_string())),
            Err(Error::Daemon { errno: e, .. }) if e == errno::ENOENT => {
                let extra = self.net_types();
                ids::expand(word, &extra)
                    .map(LstTargets::Nodes)
                    .map_err(|e| {
                        stderr(&format!(
                            "Failed to get count of nodes from {word}: {e} (neither a group nor an ID list)\n"
                        ));
                        -1
                    })
            }
            Err(e) => Err(report(&e)),
        }
    }
}

fn unexpected(c: &Client) -> Error {
    Error::Protocol {
        socket: c.socket().to_path_buf(),
        detail: "unexpected reply to an lst request; lst and lnetd must come from the same build"
            .into(),
    }
}

/// Prints a failed request: the console's own message (upstream's words), or
/// why lnetd could not be asked. Returns -1.
fn report(e: &Error) -> Rc {
    match e {
        Error::Daemon { message, .. } => stderr(&format!("{message}\n")),
        other => stderr(&format!("lst: {other}\n")),
    }
    -1
}

/// The rc of a transaction: 0, -2 (some RPC failed) or -3 (some node refused).
fn trans_rc(nodes: &[LstNode]) -> Rc {
    if nodes.iter().any(|n| n.rpc_errno != 0) {
        -2
    } else if nodes.iter().any(|n| n.fw_errno != 0) {
        -3
    } else {
        0
    }
}

/// A positive number option read like `atoi`, or its default.
fn number(opt: &Option<String>, default: i64) -> i64 {
    opt.as_deref().map_or(default, args::atoi)
}

fn name_ok(name: &str, what: &str) -> Result<(), Rc> {
    if name.len() >= LST_NAME_SIZE {
        stderr(&format!(
            "{what} size is limited to {}\n",
            LST_NAME_SIZE - 1
        ));
        return Err(-1);
    }
    Ok(())
}

fn one_batch(words: &[String], cmd: &str) -> Result<String, Rc> {
    match words {
        [] => Ok(LST_DEFAULT_BATCH.to_string()),
        [b] => Ok(b.clone()),
        _ => Err(usage(cmd)),
    }
}

/// Runs a parsed command.
pub(crate) fn run(ctx: &Ctx, cmd: Cmd) -> Rc {
    let r = match cmd {
        Cmd::NewSession(a) => new_session(ctx, a),
        Cmd::EndSession => end_session(ctx),
        Cmd::ShowSession => show_session(ctx),
        Cmd::AddGroup(a) => add_group(ctx, a),
        Cmd::DelGroup(a) => del_group(ctx, &a.name),
        Cmd::UpdateGroup(a) => update_group(ctx, a),
        Cmd::ListGroup(a) => list_group(ctx, a),
        Cmd::Ping(a) => ping(ctx, a),
        Cmd::AddBatch(a) => add_batch(ctx, &a.name),
        Cmd::AddTest(a) => add_test(ctx, a),
        Cmd::Run(a) => run_batch(ctx, a),
        Cmd::Stop(a) => stop(ctx, a),
        Cmd::Query(a) => query(ctx, a),
        Cmd::Stat(a) => stat_cmd(ctx, a),
        Cmd::ShowError(a) => show_error(ctx, a),
        Cmd::ListBatch(a) => list_batch(ctx, a),
    };
    r.unwrap_or_else(|rc| rc)
}

/// `user@host` for a session without a name.
fn default_session_name() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let user = uid
        .and_then(|uid| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .or_else(|| uid.map(|u| u.to_string()))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown_host".into());
    let mut name = format!("{user}@{host}");
    while name.len() >= LST_NAME_SIZE {
        name.pop();
    }
    name
}

fn new_session(ctx: &Ctx, a: cli::NewSession) -> Result<Rc, Rc> {
    let timeout = number(&a.timeout, 300);
    if timeout <= 0 {
        stderr("Invalid timeout value\n");
        return Err(-1);
    }
    let name = match a.name {
        Some(n) => {
            name_ok(&n, "Name")?;
            n
        }
        None => default_session_name(),
    };
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    let timeout = u32::try_from(timeout).unwrap_or(u32::MAX);
    match c.call(LstRequest::NewSession {
        key,
        name: name.clone(),
        timeout,
        force: a.force,
        features: ctx.features,
    }) {
        Ok(LstReply::Session(s)) => {
            stdout(&render::new_session(&name, s.features, timeout, a.force));
            Ok(0)
        }
        Ok(_) => Err(report(&unexpected(&c.client))),
        Err(e) => Err(report(&e)),
    }
}

fn end_session(ctx: &Ctx) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    let nodes = c
        .nodes(LstRequest::EndSession { key })
        .map_err(|e| report(&e))?;
    if !render::any_failed(&nodes) {
        stdout("session is ended\n");
        return Ok(0);
    }
    stderr(&render::session_rpc_errors(&nodes, "session"));
    Ok(trans_rc(&nodes))
}

fn show_session(ctx: &Ctx) -> Result<Rc, Rc> {
    let mut c = ctx.connect()?;
    match c.call(LstRequest::ShowSession) {
        Ok(LstReply::Session(s)) => {
            stdout(&render::show_session(&s));
            Ok(0)
        }
        Ok(_) => Err(report(&unexpected(&c.client))),
        Err(e) => Err(report(&e)),
    }
}

fn add_group(ctx: &Ctx, a: cli::AddGroup) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    name_ok(&a.name, "Name length")?;
    let mut c = ctx.connect()?;
    match c.groups(key, Some(&a.name)) {
        Ok(_) => {
            stderr(&format!("Group {} already exists\n", a.name));
            return Err(-1);
        }
        Err(Error::Daemon { errno: e, .. }) if e == errno::ENOENT => {}
        Err(e) => return Err(report(&e)),
    }
    let extra = c.net_types();
    let mut rc = 0;
    for list in &a.ids {
        let nodes = match ids::expand(list, &extra) {
            Ok(n) => n,
            Err(e) => {
                stderr(&format!("{e}\nIgnore invalid id list {list}\n"));
                continue;
            }
        };
        match c.nodes(LstRequest::AddGroup {
            key,
            name: a.name.clone(),
            nodes,
        }) {
            Ok(entries) if !render::any_failed(&entries) => {
                stdout(&format!("{list} are added to session\n"));
                rc = 0;
            }
            Ok(entries) => {
                stderr(&render::trans_errors(&entries, "create session"));
                rc = trans_rc(&entries);
            }
            Err(e) => return Err(report(&e)),
        }
    }
    Ok(rc)
}

fn del_group(ctx: &Ctx, name: &str) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    let nodes = c
        .nodes(LstRequest::DelGroup {
            key,
            name: name.to_string(),
        })
        .map_err(|e| report(&e))?;
    if !render::any_failed(&nodes) {
        stdout("Group is deleted\n");
        return Ok(0);
    }
    stderr("Group is deleted with some errors\n");
    stderr(&render::session_rpc_errors(&nodes, "end session"));
    Ok(-1)
}

/// `--clean STATE` (selftest.md §2): a state bit mask.
fn state_mask(s: &str) -> Option<u32> {
    Some(match s.to_ascii_lowercase().as_str() {
        "active" => 0x1,
        "busy" => 0x2,
        "down" => 0x4,
        "unknown" => 0x8,
        "invalid" => 0x2 | 0x4 | 0x8,
        _ => return None,
    })
}

fn update_group(ctx: &Ctx, a: cli::UpdateGroup) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let given =
        usize::from(a.refresh) + usize::from(a.clean.is_some()) + usize::from(a.remove.is_some());
    if given != 1 {
        stderr("give exactly one of --refresh, --clean STATE and --remove IDS\n");
        return Err(usage("update_group"));
    }
    let mut c = ctx.connect()?;
    let action = if a.refresh {
        LstUpdate::Refresh
    } else if let Some(st) = &a.clean {
        match state_mask(st) {
            Some(m) => LstUpdate::Clean(m),
            None => {
                stderr(&format!(
                    "unknown node state {st}: use active, busy, down, unknown or invalid\n"
                ));
                return Err(usage("update_group"));
            }
        }
    } else {
        let list = a.remove.as_deref().unwrap_or_default();
        let extra = c.net_types();
        match ids::expand(list, &extra) {
            Ok(n) => LstUpdate::Remove(n),
            Err(e) => {
                stderr(&format!("Can't get count of nodes from {list}: {e}\n"));
                return Err(-1);
            }
        }
    };
    match c.call(LstRequest::UpdateGroup {
        key,
        name: a.name,
        action,
    }) {
        Ok(LstReply::Nodes(n)) if render::any_failed(&n) => {
            stderr(&render::trans_errors(&n, "Updating group"));
            Ok(trans_rc(&n))
        }
        Ok(_) => Ok(0),
        Err(e) => Err(report(&e)),
    }
}

fn list_group(ctx: &Ctx, a: cli::ListGroup) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    if a.groups.is_empty() {
        let g = c.groups(key, None).map_err(|e| report(&e))?;
        stdout(&render::names(g.iter().map(|g| g.name.as_str()), "groups"));
        return Ok(0);
    }
    let mut mask = 0;
    for (on, bit) in [(a.active, 1), (a.busy, 2), (a.down, 4), (a.unknown, 8)] {
        if on {
            mask |= bit;
        }
    }
    if a.all {
        mask = 0xF;
    }
    if mask == 0 {
        stdout(render::NODES_TITLE);
    }
    for name in &a.groups {
        let g = c.groups(key, Some(name)).map_err(|e| report(&e))?;
        for g in &g {
            stdout(&if mask == 0 {
                render::group_row(g)
            } else {
                render::group_verbose(g, mask)
            });
        }
    }
    Ok(0)
}

fn ping(ctx: &Ctx, a: cli::Ping) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let timeout = number(&a.timeout, 5);
    let chosen = usize::from(a.session)
        + usize::from(a.group.is_some())
        + usize::from(a.batch.is_some())
        + usize::from(a.nodes.is_some());
    if chosen == 0 || timeout <= 0 || !a.extra.is_empty() {
        return Err(usage("ping"));
    }
    let mut c = ctx.connect()?;
    let (targets, what) = if let Some(list) = &a.nodes {
        let extra = c.net_types();
        let n = ids::expand(list, &extra).map_err(|e| {
            stderr(&format!("Failed to get count of nodes from {list}: {e}\n"));
            -1
        })?;
        (LstTargets::Nodes(n), list.clone())
    } else if let Some(b) = &a.batch {
        (
            LstTargets::Batch {
                name: b.clone(),
                server: a.server,
            },
            b.clone(),
        )
    } else if let Some(g) = &a.group {
        (LstTargets::Group(g.clone()), g.clone())
    } else {
        (LstTargets::Session, "session".to_string())
    };
    let nodes = c
        .nodes(LstRequest::Ping {
            key,
            targets,
            timeout: u32::try_from(timeout).unwrap_or(u32::MAX),
        })
        .map_err(|e| report(&e))?;
    if nodes.is_empty() {
        stdout(&format!("Target {what} is empty\n"));
    } else {
        stdout(&render::ping(&nodes));
    }
    Ok(0)
}

fn add_batch(ctx: &Ctx, name: &str) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    name_ok(name, "Name length")?;
    let mut c = ctx.connect()?;
    match c.call(LstRequest::AddBatch {
        key,
        name: name.to_string(),
    }) {
        Ok(_) => Ok(0),
        Err(e) => Err(report(&e)),
    }
}

fn add_test(ctx: &Ctx, a: cli::AddTest) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let (Some(from), Some(to), Some((test, params))) = (&a.from, &a.to, a.test.split_first())
    else {
        if a.from.is_none() || a.to.is_none() {
            stderr("add_test needs --from GROUP and --to GROUP\n");
        } else {
            stderr("add_test needs a test: ping or brw\n");
        }
        return Err(usage("add_test"));
    };
    let concur = number(&a.concurrency, 1);
    if concur <= 0 || concur > i64::from(LST_MAX_CONCUR) {
        stderr(&format!(
            "Invalid concurrency of test: {concur} (1..{LST_MAX_CONCUR})\n"
        ));
        return Err(-1);
    }
    let loop_count = number(&a.loop_count, -1);
    let (dist, span) = match &a.distribute {
        Some(d) => args::distribute(d).map_err(|m| {
            stderr(&format!("{m}\n"));
            -1
        })?,
        None => (1, 1),
    };
    let kind = args::test_kind(test, params).map_err(|m| {
        stderr(&format!("{m}\nFailed to add test ({test})\n"));
        -1
    })?;
    let spec = LstTestSpec {
        batch: a.batch.unwrap_or_else(|| LST_DEFAULT_BATCH.to_string()),
        loop_count: i32::try_from(loop_count).unwrap_or(-1),
        concurrency: concur as u32,
        dist,
        span,
        from: from.clone(),
        to: to.clone(),
        kind,
    };
    let mut c = ctx.connect()?;
    let nodes = c
        .nodes(LstRequest::AddTest { key, test: spec })
        .map_err(|e| report(&e))?;
    if render::any_failed(&nodes) {
        stderr(&render::trans_errors(&nodes, "add test"));
        return Ok(trans_rc(&nodes));
    }
    stdout("Test was added successfully\n");
    Ok(0)
}

fn run_batch(ctx: &Ctx, a: cli::Run) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let batch = one_batch(&a.batch, "run")?;
    let timeout = number(&a.timeout, 0).clamp(0, i64::from(u32::MAX)) as u32;
    let mut c = ctx.connect()?;
    let nodes = c
        .nodes(LstRequest::Run {
            key,
            batch: batch.clone(),
            timeout,
        })
        .map_err(|e| report(&e))?;
    if render::any_failed(&nodes) {
        stderr(&render::trans_errors(&nodes, "Run batch"));
        return Ok(trans_rc(&nodes));
    }
    stdout(&format!("{batch} is running now\n"));
    Ok(0)
}

fn stop(ctx: &Ctx, a: cli::Stop) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let batch = one_batch(&a.batch, "stop")?;
    let mut c = ctx.connect()?;
    let nodes = c
        .nodes(LstRequest::Stop {
            key,
            batch: batch.clone(),
            force: a.force,
        })
        .map_err(|e| report(&e))?;
    if render::any_failed(&nodes) {
        stderr(&render::trans_errors(&nodes, "stop batch"));
        return Ok(trans_rc(&nodes));
    }
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        let nodes = c
            .nodes(LstRequest::Query {
                key,
                batch: batch.clone(),
                test: 0,
                server: false,
                timeout: 30,
            })
            .map_err(|e| report(&e))?;
        let (_, run, _, fail) = render::query_counts(&nodes);
        if run == 0 && fail == 0 {
            break;
        }
        if Instant::now() >= deadline {
            stderr(&format!(
                "batch {batch} still runs on {run} nodes after {}s: try lst stop --force {batch}\n",
                STOP_WAIT.as_secs()
            ));
            return Err(-1);
        }
        stdout(&format!("{run} batch in stopping\n"));
        std::thread::sleep(Duration::from_secs(1));
    }
    stdout("Batch is stopped\n");
    Ok(0)
}

/// Sleeps so that successive samples are at least `delay` apart.
fn pace(last: &mut Option<Instant>, delay: Duration) {
    if let Some(t) = *last {
        let due = t + delay;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
    }
    *last = Some(Instant::now());
}

fn query(ctx: &Ctx, a: cli::Query) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let timeout = number(&a.timeout, 5);
    let delay = number(&a.delay, 5);
    let loops = number(&a.loop_count, 1);
    let test = number(&a.test, 0);
    if test < 0 || timeout <= 0 || delay <= 0 || loops <= 0 {
        return Err(usage("query"));
    }
    let batch = one_batch(&a.batch, "query")?;
    let verbose = a.active || a.idle || a.error || a.all;
    let mut c = ctx.connect()?;
    let mut last = None;
    for _ in 0..loops {
        pace(&mut last, Duration::from_secs(delay as u64));
        let nodes = match c.nodes(LstRequest::Query {
            key,
            batch: batch.clone(),
            test: test as u32,
            server: a.server,
            timeout: timeout.min(i64::from(u32::MAX)) as u32,
        }) {
            Ok(n) => n,
            Err(e) => {
                report(&e);
                return Err(-1);
            }
        };
        if verbose {
            if nodes.is_empty() {
                stdout("Batch or test is empty\n");
                return Ok(0);
            }
            stdout(&render::query_verbose(&nodes, a.active, a.idle, a.error));
        } else {
            stdout(&render::query_summary(&batch, test as u32, &nodes));
        }
    }
    Ok(0)
}

fn stat_cmd(ctx: &Ctx, a: cli::Stat) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let timeout = number(&a.timeout, 5);
    let delay = number(&a.delay, 5);
    let count = number(&a.count, -1);
    if timeout <= 0 || delay <= 0 {
        stderr("Invalid timeout or delay value\n");
        return Err(-1);
    }
    if count < -1 {
        stderr("Invalid count value\n");
        return Err(-1);
    }
    let mut columns = 0u8;
    for (on, bit) in [(a.avg, 1), (a.min, 2), (a.max, 4)] {
        if on {
            columns |= bit;
        }
    }
    let view = StatView {
        bwrt: u8::from(a.bw) | (u8::from(a.rate) << 1),
        rdwr: u8::from(a.read) | (u8::from(a.write) << 1),
        columns: if columns == 0 { 7 } else { columns },
        mbs: a.mbs,
    };
    let mut c = ctx.connect()?;
    let mut targets = Vec::new();
    for word in &a.targets {
        targets.push((word.clone(), c.target(key, word)?, None::<Vec<LstNode>>));
    }
    // The first sample only sets the baseline: N reports need N + 1 samples.
    let mut left = if count == -1 { -1 } else { count + 1 };
    let mut last = None;
    while left != 0 {
        pace(&mut last, Duration::from_secs(delay as u64));
        for (name, t, prev) in &mut targets {
            let cur = c
                .nodes(LstRequest::Stat {
                    key,
                    targets: t.clone(),
                    timeout: timeout.min(i64::from(u32::MAX)) as u32,
                })
                .map_err(|e| {
                    if let Error::Daemon { message, .. } = &e {
                        stderr(&format!("Failed to stat {name}: {message}\n"));
                        -1
                    } else {
                        report(&e)
                    }
                })?;
            if !a.rpc {
                if let (Some(p), true) = (prev.as_ref(), a.line) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    stdout(&stat::line(
                        now,
                        name,
                        &stat::compute(p, &cur, a.mbs),
                        a.mbs,
                    ));
                } else if let Some(p) = prev {
                    let o = render::stat(name, &stat::compute(p, &cur, a.mbs), view);
                    stdout(&o.out);
                    stderr(&o.err);
                }
            }
            *prev = Some(cur);
        }
        if left > 0 {
            left -= 1;
        }
    }
    Ok(0)
}

fn show_error(ctx: &Ctx, a: cli::ShowError) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    let mut targets = Vec::new();
    for word in &a.targets {
        targets.push((word.clone(), c.target(key, word)?));
    }
    for (name, t) in targets {
        let nodes = c
            .nodes(LstRequest::Stat {
                key,
                targets: t,
                timeout: 10,
            })
            .map_err(|e| report(&e))?;
        let o = render::show_error(&name, &nodes, !a.session);
        stdout(&o.out);
        stderr(&o.err);
    }
    Ok(0)
}

fn list_batch(ctx: &Ctx, a: cli::ListBatch) -> Result<Rc, Rc> {
    let key = ctx.key()?;
    let mut c = ctx.connect()?;
    let name = match a.batch.as_slice() {
        [] => {
            let b = c.batches(key, None).map_err(|e| report(&e))?;
            stdout(&render::names(b.iter().map(|b| b.name.as_str()), "batches"));
            return Ok(0);
        }
        [b] => b.clone(),
        _ => return Err(usage("list_batch")),
    };
    let test = match &a.test {
        Some(t) => {
            let t = args::atoi(t);
            if t <= 0 {
                stderr("Invalid test id, test id starts from 1\n");
                return Err(-1);
            }
            t as u32
        }
        None => 0,
    };
    let batches = c.batches(key, Some(&name)).map_err(|e| report(&e))?;
    let Some(b) = batches.into_iter().next() else {
        stderr(&format!("Can't find {name} in current session\n"));
        return Err(-1);
    };
    if test as usize > b.tests.len() {
        stderr(&format!(
            "Can't find test {test} in batch {name}: it has {} tests\n",
            b.tests.len()
        ));
        return Err(-1);
    }
    let groups = c.groups(key, None).map_err(|e| report(&e))?;
    let (active, invalid) = (a.active || a.all, a.invalid || a.all);
    if active || invalid {
        let tests: Vec<&LstTestSpec> = if test == 0 {
            b.tests.iter().collect()
        } else {
            vec![&b.tests[test as usize - 1]]
        };
        let nodes = render::test_nodes(tests, &groups, a.server);
        stdout(&render::batch_nodes(&nodes, active, invalid));
    } else {
        stdout(&render::batch_summary(&b, test, &groups));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_states() {
        assert_eq!(state_mask("Active"), Some(1));
        assert_eq!(state_mask("invalid"), Some(14));
        assert_eq!(state_mask("gone"), None);
    }

    #[test]
    fn batch_words() {
        assert_eq!(one_batch(&[], "run"), Ok("batch".to_string()));
        assert_eq!(one_batch(&["b".into()], "run"), Ok("b".to_string()));
        assert_eq!(one_batch(&["a".into(), "b".into()], "run"), Err(-1));
        assert_eq!(number(&None, 5), 5);
        assert_eq!(number(&Some("x".into()), 5), 0);
    }

    #[test]
    fn default_name_fits() {
        let n = default_session_name();
        assert!(n.contains('@') && n.len() < LST_NAME_SIZE, "{n}");
    }

    #[test]
    fn missing_key_is_refused_before_connecting() {
        let ctx = Ctx {
            socket: PathBuf::from("/nonexistent/lst.sock"),
            key: None,
            features: 1,
        };
        assert_eq!(run(&ctx, Cmd::EndSession), -1);
        // show_session needs no key: it fails on the socket instead.
        assert_eq!(run(&ctx, Cmd::ShowSession), -1);
    }
}

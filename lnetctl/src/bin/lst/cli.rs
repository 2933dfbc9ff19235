//! `lst`'s command line: upstream's commands and options (selftest.md §2),
//! parsed getopt-like (unique prefixes of long options, options anywhere,
//! `--opt=value`). Numbers stay text here and are read like `atoi` when the
//! command runs, so `--timeout abc` gets upstream's "Invalid timeout value".

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "lst",
    version,
    about = "LNet selftest: drive the selftest console of the local lnetd",
    infer_long_args = true,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// lnetd's control socket.
    #[arg(long, global = true, env = liblnetconfig::SOCKET_ENV,
          default_value = liblnetconfig::DEFAULT_SOCKET)]
    pub(crate) socket: PathBuf,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// The commands, named as upstream (`new_session`, ...).
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Create the console session.
    #[command(name = "new_session", infer_long_args = true)]
    NewSession(NewSession),
    /// End the console session.
    #[command(name = "end_session")]
    EndSession,
    /// Show the console session.
    #[command(name = "show_session")]
    ShowSession,
    /// Create a group of test nodes.
    #[command(name = "add_group")]
    AddGroup(AddGroup),
    /// Delete a group.
    #[command(name = "del_group")]
    DelGroup(Named),
    /// Refresh, clean or shrink a group.
    #[command(name = "update_group", infer_long_args = true)]
    UpdateGroup(UpdateGroup),
    /// List groups, or the nodes of groups.
    #[command(name = "list_group", infer_long_args = true)]
    ListGroup(ListGroup),
    /// Ping test nodes (DEBUG RPC).
    #[command(infer_long_args = true)]
    Ping(Ping),
    /// Create a batch.
    #[command(name = "add_batch")]
    AddBatch(Named),
    /// Add a test to a batch.
    #[command(name = "add_test", infer_long_args = true)]
    AddTest(AddTest),
    /// Start a batch.
    #[command(infer_long_args = true)]
    Run(Run),
    /// Stop a batch.
    #[command(infer_long_args = true)]
    Stop(Stop),
    /// Query a batch.
    #[command(infer_long_args = true)]
    Query(Query),
    /// LNet rates and bandwidth of groups or nodes.
    #[command(infer_long_args = true)]
    Stat(Stat),
    /// Error counters of groups or nodes.
    #[command(name = "show_error", infer_long_args = true)]
    ShowError(ShowError),
    /// List batches, or a batch's tests and nodes.
    #[command(name = "list_batch", infer_long_args = true)]
    ListBatch(ListBatch),
}

/// The usage line of each command (upstream's command table).
pub(crate) const USAGES: &[(&str, &str)] = &[
    (
        "new_session",
        "Usage: lst new_session [--timeout TIME] [--force] [NAME]",
    ),
    ("end_session", "Usage: lst end_session"),
    ("show_session", "Usage: lst show_session"),
    (
        "ping",
        "Usage: lst ping  [--group NAME] [--batch NAME] [--session] [--nodes IDS] [--server] [--timeout TIME]",
    ),
    ("add_group", "Usage: lst add_group NAME IDs [IDs]..."),
    ("del_group", "Usage: lst del_group NAME"),
    (
        "update_group",
        "Usage: lst update_group NAME [--clean STATE] [--refresh] [--remove IDs]",
    ),
    (
        "list_group",
        "Usage: lst list_group [--active] [--busy] [--down] [--unknown] [--all] GROUP ...",
    ),
    (
        "stat",
        "Usage: lst stat [--bw] [--rate] [--read] [--write] [--max] [--min] [--avg]  [--mbs] [--line] [--timeout #] [--delay #] [--count #] GROUP [GROUP]",
    ),
    ("show_error", "Usage: lst show_error [--session] NAME | IDS ..."),
    ("add_batch", "Usage: lst add_batch NAME"),
    ("run", "Usage: lst run [--timeout TIME] [NAME]"),
    ("stop", "Usage: lst stop [--force] BATCH_NAME"),
    (
        "list_batch",
        "Usage: lst list_batch NAME [--test ID] [--server] [--active] [--invalid] [--all]",
    ),
    (
        "query",
        "Usage: lst query [--test ID] [--server] [--timeout TIME] [--delay #] [--loop #] [--active] [--idle] [--error] [--all] NAME",
    ),
    (
        "add_test",
        "Usage: lst add_test [--batch BATCH] [--loop #] [--concurrency #]  [--distribute #:#] [--from GROUP] [--to GROUP] TEST...",
    ),
];

/// The usage line of `cmd`.
pub(crate) fn usage(cmd: &str) -> Option<&'static str> {
    USAGES.iter().find(|(c, _)| *c == cmd).map(|(_, u)| *u)
}

/// `new_session [--timeout T] [--force] [NAME]`.
#[derive(Args, Debug)]
pub(crate) struct NewSession {
    /// Console idle timeout, seconds (default 300).
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// End an existing session first; take nodes busy in another session.
    #[arg(short = 'f', long)]
    pub(crate) force: bool,
    /// Session name (default user@host).
    pub(crate) name: Option<String>,
}

/// A command taking one name.
#[derive(Args, Debug)]
pub(crate) struct Named {
    /// The name.
    pub(crate) name: String,
}

/// `add_group NAME IDS...`.
#[derive(Args, Debug)]
pub(crate) struct AddGroup {
    /// Group name.
    pub(crate) name: String,
    /// ID lists (`192.168.1.[10-13]@tcp`).
    #[arg(required = true)]
    pub(crate) ids: Vec<String>,
}

/// `update_group NAME --refresh | --clean STATE | --remove IDS`.
#[derive(Args, Debug)]
pub(crate) struct UpdateGroup {
    /// Group name.
    pub(crate) name: String,
    /// Re-send MKSN to the nodes that are not active.
    #[arg(short = 'f', long)]
    pub(crate) refresh: bool,
    /// Drop the nodes in STATE (active, busy, down, unknown, invalid).
    #[arg(short = 'c', long)]
    pub(crate) clean: Option<String>,
    /// Drop these nodes.
    #[arg(short = 'r', long)]
    pub(crate) remove: Option<String>,
}

/// `list_group [--active] [--busy] [--down] [--unknown] [--all] [GROUP...]`.
#[derive(Args, Debug)]
pub(crate) struct ListGroup {
    /// Active nodes.
    #[arg(short = 'a', long)]
    pub(crate) active: bool,
    /// Busy nodes.
    #[arg(short = 'b', long)]
    pub(crate) busy: bool,
    /// Down nodes.
    #[arg(short = 'd', long)]
    pub(crate) down: bool,
    /// Unknown nodes.
    #[arg(short = 'u', long)]
    pub(crate) unknown: bool,
    /// All nodes.
    #[arg(short = 'l', long)]
    pub(crate) all: bool,
    /// Groups.
    pub(crate) groups: Vec<String>,
}

/// `ping [--session | --group G | --batch B [--server] | --nodes IDS] [--timeout T]`.
#[derive(Args, Debug)]
pub(crate) struct Ping {
    /// Every node of the session.
    #[arg(short = 's', long)]
    pub(crate) session: bool,
    /// The nodes of a group.
    #[arg(short = 'g', long)]
    pub(crate) group: Option<String>,
    /// The client nodes of a batch.
    #[arg(short = 'b', long)]
    pub(crate) batch: Option<String>,
    /// These nodes.
    #[arg(short = 'n', long)]
    pub(crate) nodes: Option<String>,
    /// With --batch: its server nodes.
    #[arg(short = 'v', long)]
    pub(crate) server: bool,
    /// Seconds (default 5).
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// Nothing is expected here.
    #[arg(hide = true)]
    pub(crate) extra: Vec<String>,
}

/// `add_test [--batch B] [--loop N] [--concurrency C] [--distribute D:S] --from G --to G TEST [PARAMS]`.
#[derive(Args, Debug)]
pub(crate) struct AddTest {
    /// Batch (default `batch`).
    #[arg(short = 'b', long)]
    pub(crate) batch: Option<String>,
    /// RPCs per unit (-1 = forever).
    #[arg(short = 'l', long = "loop", allow_hyphen_values = true)]
    pub(crate) loop_count: Option<String>,
    /// Units per destination (1..1024).
    #[arg(short = 'c', long, allow_hyphen_values = true)]
    pub(crate) concurrency: Option<String>,
    /// DIST:SPAN.
    #[arg(short = 'd', long)]
    pub(crate) distribute: Option<String>,
    /// Source (client) group.
    #[arg(short = 'f', long)]
    pub(crate) from: Option<String>,
    /// Destination (server) group.
    #[arg(short = 't', long)]
    pub(crate) to: Option<String>,
    /// `ping` or `brw`, then its parameters.
    pub(crate) test: Vec<String>,
}

/// `run [--timeout T] [BATCH]`.
#[derive(Args, Debug)]
pub(crate) struct Run {
    /// Carried to the nodes, unused by them.
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// Batch (default `batch`).
    pub(crate) batch: Vec<String>,
}

/// `stop [--force] [BATCH]`.
#[derive(Args, Debug)]
pub(crate) struct Stop {
    /// Abort in-flight test RPCs.
    #[arg(short = 'f', long)]
    pub(crate) force: bool,
    /// Batch (default `batch`).
    pub(crate) batch: Vec<String>,
}

/// `query [BATCH] [--test I] [--server] [--timeout T] [--delay D] [--loop N] [--active] [--idle] [--error] [--all]`.
#[derive(Args, Debug)]
pub(crate) struct Query {
    /// Seconds per query (default 5).
    #[arg(short = 'o', long, allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// Seconds between queries (default 5).
    #[arg(short = 'd', long, allow_hyphen_values = true)]
    pub(crate) delay: Option<String>,
    /// Number of queries (default 1).
    #[arg(short = 'c', long = "loop", allow_hyphen_values = true)]
    pub(crate) loop_count: Option<String>,
    /// Test index (0 = the whole batch).
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) test: Option<String>,
    /// Query the server nodes.
    #[arg(short = 's', long)]
    pub(crate) server: bool,
    /// List running nodes.
    #[arg(short = 'a', long)]
    pub(crate) active: bool,
    /// List idle nodes.
    #[arg(short = 'i', long)]
    pub(crate) idle: bool,
    /// List failed nodes.
    #[arg(short = 'e', long)]
    pub(crate) error: bool,
    /// List every node.
    #[arg(short = 'l', long)]
    pub(crate) all: bool,
    /// Batch (default `batch`).
    pub(crate) batch: Vec<String>,
}

/// `stat [--bw] [--rate] [--read] [--write] [--avg] [--min] [--max] [--mbs] [--timeout T] [--delay D] [--count N] GROUP|IDS...`.
#[derive(Args, Debug)]
pub(crate) struct Stat {
    /// STAT timeout, seconds (default 5).
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// Seconds between samples (default 5).
    #[arg(short = 'd', long, allow_hyphen_values = true)]
    pub(crate) delay: Option<String>,
    /// Number of reports (default: forever).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) count: Option<String>,
    /// LNet counters (the default).
    #[arg(short = 'l', long)]
    pub(crate) lnet: bool,
    /// RPC counters (not reported, as upstream).
    #[arg(short = 'c', long)]
    pub(crate) rpc: bool,
    /// Bandwidth table.
    #[arg(short = 'b', long)]
    pub(crate) bw: bool,
    /// Rates table.
    #[arg(short = 'a', long)]
    pub(crate) rate: bool,
    /// Receive direction.
    #[arg(short = 'r', long)]
    pub(crate) read: bool,
    /// Send direction.
    #[arg(short = 'w', long)]
    pub(crate) write: bool,
    /// Average column.
    #[arg(short = 'g', long)]
    pub(crate) avg: bool,
    /// Minimum column.
    #[arg(short = 'n', long)]
    pub(crate) min: bool,
    /// Maximum column.
    #[arg(short = 'x', long)]
    pub(crate) max: bool,
    /// 10^6-byte MB instead of MiB.
    #[arg(short = 'm', long)]
    pub(crate) mbs: bool,
    /// One line per target and interval: totals, errors, drops (ours).
    #[arg(long)]
    pub(crate) line: bool,
    /// Groups or ID lists.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
}

/// `show_error [--session] GROUP|IDS...`.
#[derive(Args, Debug)]
pub(crate) struct ShowError {
    /// Only test (brw/ping) errors.
    #[arg(short = 's', long)]
    pub(crate) session: bool,
    /// Groups or ID lists.
    #[arg(required = true)]
    pub(crate) targets: Vec<String>,
}

/// `list_batch [BATCH] [--test I] [--server] [--active] [--invalid] [--all]`.
#[derive(Args, Debug)]
pub(crate) struct ListBatch {
    /// Test index.
    #[arg(short = 't', long, allow_hyphen_values = true)]
    pub(crate) test: Option<String>,
    /// Server nodes instead of clients.
    #[arg(short = 's', long)]
    pub(crate) server: bool,
    /// List active nodes.
    #[arg(short = 'a', long)]
    pub(crate) active: bool,
    /// List nodes that are not active.
    #[arg(short = 'i', long)]
    pub(crate) invalid: bool,
    /// List every node.
    #[arg(short = 'l', long)]
    pub(crate) all: bool,
    /// Batch.
    pub(crate) batch: Vec<String>,
}

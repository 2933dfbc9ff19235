//! The client side of the control socket: the only code that talks to it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::errno;
use crate::proto::{
    decode_reply, encode_request, DaemonInfo, GlobalInfo, GlobalSetRequest, NetAddRequest, NetInfo,
    NetSetRequest, NiDelRequest, Op, PingOutcome, PingRequest, PluginInfo, ReplyBody, Request,
    StatsInfo, UdspRule,
};

/// The socket lnetd listens on unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/lnet/lnetctl.sock";

/// The environment variable naming the socket (for lnetd and lnetctl).
pub const SOCKET_ENV: &str = "LNET_SOCKET";

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nobody answers on the socket.
    #[error(
        "LNet is not running on {}: start it with \"lnetctl lnet configure\" (or run lnetd \
         --socket {})",
        socket.display(),
        socket.display()
    )]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The socket exists but we may not use it.
    #[error(
        "cannot connect to lnetd on {}: permission denied (run as root or as the user running \
         lnetd)",
        socket.display()
    )]
    PermissionDenied {
        /// The socket tried.
        socket: PathBuf,
    },
    /// Another I/O failure on the socket.
    #[error("control socket {}: {source}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The daemon answered something we cannot read.
    #[error("control socket {}: {detail}", socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong with the reply.
        detail: String,
    },
    /// The daemon refused the request.
    #[error("{message}")]
    Daemon {
        /// Positive errno.
        errno: i32,
        /// The daemon's message.
        message: String,
    },
    /// lnetd could not be started.
    #[error("cannot start lnetd for {}: {detail}", socket.display())]
    Start {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The daemon answered with a reply of the wrong kind.
    #[error("control socket {}: unexpected reply to {op}", socket.display())]
    UnexpectedReply {
        /// The socket.
        socket: PathBuf,
        /// The request sent.
        op: &'static str,
    },
}

impl Error {
    /// The positive errno this error maps to.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotRunning { .. } | Error::Start { .. } => errno::ENETDOWN,
            Error::PermissionDenied { .. } => errno::EACCES,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(errno::EIO),
            Error::Protocol { .. } | Error::UnexpectedReply { .. } => errno::EPROTO,
            Error::Daemon { errno, .. } => *errno,
        }
    }
}

/// A connection to lnetd's control socket.
pub struct Client {
    socket: PathBuf,
    net_types: Option<Vec<(String, u8)>>,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the daemon listening on `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        let socket = path.as_ref().to_path_buf();
        let stream = match UnixStream::connect(&socket) {
            Ok(s) => s,
            Err(e) => {
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        Error::NotRunning { socket }
                    }
                    io::ErrorKind::PermissionDenied => Error::PermissionDenied { socket },
                    _ => Error::Io { socket, source: e },
                })
            }
        };
        let writer = stream.try_clone().map_err(|e| Error::Io {
            socket: socket.clone(),
            source: e,
        })?;
        Ok(Client {
            socket,
            net_types: None,
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, op: Op) -> Result<ReplyBody, Error> {
        let io_err = |socket: &Path, e: io::Error| Error::Io {
            socket: socket.to_path_buf(),
            source: e,
        };
        // lnetd may have answered at once (a refusal: another user, the
        // client cap) and closed before reading the request: the write then
        // fails with a broken pipe or a reset, and that answer, when there
        // is one, says more. Any other failed write is the error.
        let write_err = match self.writer.write_all(&encode_request(&Request::new(op))) {
            Ok(()) => None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Some(e)
            }
            Err(e) => return Err(io_err(&self.socket, e)),
        };
        let mut line = Vec::new();
        match (self.reader.read_until(b'\n', &mut line), write_err) {
            (Ok(n), _) if n > 0 => {}
            // No answer to a request that could not be sent: the send's error.
            (_, Some(e)) | (Err(e), None) => return Err(io_err(&self.socket, e)),
            (Ok(_), None) => {
                return Err(Error::Protocol {
                    socket: self.socket.clone(),
                    detail: "lnetd closed the connection without answering (see its log)".into(),
                })
            }
        }
        let reply = decode_reply(&line).map_err(|e| Error::Protocol {
            socket: self.socket.clone(),
            detail: e.to_string(),
        })?;
        reply.result.map_err(|e| Error::Daemon {
            errno: e.errno,
            message: e.message,
        })
    }

    fn unexpected(&self, op: &'static str) -> Error {
        Error::UnexpectedReply {
            socket: self.socket.clone(),
            op,
        }
    }

    fn done(&mut self, op: Op, name: &'static str) -> Result<(), Error> {
        match self.call(op)? {
            ReplyBody::Done => Ok(()),
            _ => Err(self.unexpected(name)),
        }
    }

    /// Who answers, and whether LNet is configured.
    pub fn hello(&mut self) -> Result<DaemonInfo, Error> {
        match self.call(Op::Hello)? {
            ReplyBody::Hello(i) => Ok(i),
            _ => Err(self.unexpected("hello")),
        }
    }

    /// The network types plugins add to lnd-api's name table, asked once
    /// per connection; for [`crate::render`] and NID parsing.
    pub fn net_types(&mut self) -> Result<Vec<(String, u8)>, Error> {
        if let Some(t) = &self.net_types {
            return Ok(t.clone());
        }
        let t = self.hello()?.net_types;
        self.net_types = Some(t.clone());
        Ok(t)
    }

    /// `lnet configure [--all]`.
    pub fn configure(&mut self, all: bool) -> Result<(), Error> {
        self.done(Op::Configure { all }, "lnet configure")
    }

    /// `lnet unconfigure`: lnetd shuts LNet down and stays, as right after its
    /// start (its start-up parameters kept); `lnet configure` works again.
    pub fn unconfigure(&mut self) -> Result<(), Error> {
        self.done(Op::Unconfigure, "lnet unconfigure")
    }

    /// `net add`; returns the NIDs of the new NIs.
    pub fn net_add(&mut self, req: NetAddRequest) -> Result<Vec<lnd_api::Nid>, Error> {
        self.net_types = None;
        match self.call(Op::NetAdd(req))? {
            ReplyBody::NetAdded(n) => Ok(n),
            _ => Err(self.unexpected("net add")),
        }
    }

    /// `net del --net NET`.
    pub fn net_del(&mut self, net: String) -> Result<(), Error> {
        self.done(Op::NetDel { net }, "net del")
    }

    /// `net show [--net NET]`.
    pub fn net_show(&mut self, net: Option<String>) -> Result<Vec<NetInfo>, Error> {
        match self.call(Op::NetShow { net })? {
            ReplyBody::Nets(n) => Ok(n),
            _ => Err(self.unexpected("net show")),
        }
    }

    /// `plugin load PATH|NAME`.
    pub fn plugin_load(&mut self, path: String) -> Result<PluginInfo, Error> {
        self.net_types = None;
        match self.call(Op::PluginLoad { path })? {
            ReplyBody::Plugin(p) => Ok(p),
            _ => Err(self.unexpected("plugin load")),
        }
    }

    /// `plugin unload NAME [--force]`.
    pub fn plugin_unload(&mut self, name: String, force: bool) -> Result<PluginInfo, Error> {
        self.net_types = None;
        match self.call(Op::PluginUnload { name, force })? {
            ReplyBody::Plugin(p) => Ok(p),
            _ => Err(self.unexpected("plugin unload")),
        }
    }

    /// `plugin show`.
    pub fn plugin_show(&mut self) -> Result<Vec<PluginInfo>, Error> {
        match self.call(Op::PluginShow)? {
            ReplyBody::Plugins(p) => Ok(p),
            _ => Err(self.unexpected("plugin show")),
        }
    }

    /// `ping NID...`: one outcome per target.
    pub fn ping(&mut self, req: PingRequest) -> Result<Vec<PingOutcome>, Error> {
        match self.call(Op::Ping(req))? {
            ReplyBody::Ping(p) => Ok(p),
            _ => Err(self.unexpected("ping")),
        }
    }

    /// A selftest console command (`lst`).
    pub fn lst(&mut self, req: crate::lst::LstRequest) -> Result<crate::lst::LstReply, Error> {
        match self.call(Op::Lst(req))? {
            ReplyBody::Lst(r) => Ok(r),
            _ => Err(self.unexpected("lst")),
        }
    }

    /// A peer, discover or recovery-queue request (`crate::peer`).
    pub fn peer(&mut self, req: crate::peer::PeerRequest) -> Result<crate::peer::PeerReply, Error> {
        match self.call(Op::Peer(req))? {
            ReplyBody::Peer(r) => Ok(r),
            _ => Err(self.unexpected("peer")),
        }
    }

    /// `stats show`.
    pub fn stats(&mut self) -> Result<StatsInfo, Error> {
        match self.call(Op::StatsShow)? {
            ReplyBody::Stats(s) => Ok(s),
            _ => Err(self.unexpected("stats show")),
        }
    }

    /// `stats reset`.
    pub fn stats_reset(&mut self) -> Result<(), Error> {
        self.done(Op::StatsReset, "stats reset")
    }

    /// `global show`.
    pub fn global(&mut self) -> Result<GlobalInfo, Error> {
        match self.call(Op::GlobalShow)? {
            ReplyBody::Global(g) => Ok(g),
            _ => Err(self.unexpected("global show")),
        }
    }

    /// `set <tunable> <value>`.
    pub fn global_set(&mut self, name: &str, value: i64) -> Result<(), Error> {
        let req = GlobalSetRequest {
            name: name.to_string(),
            value,
        };
        self.done(Op::GlobalSet(req), "set")
    }

    /// `net del --nid` / `net del --net --if`.
    pub fn ni_del(&mut self, req: NiDelRequest) -> Result<(), Error> {
        self.net_types = None;
        self.done(Op::NiDel(req), "net del")
    }

    /// `udsp add`.
    pub fn udsp_add(&mut self, rule: UdspRule, idx: Option<u32>) -> Result<(), Error> {
        self.done(Op::UdspAdd { rule, idx }, "udsp add")
    }

    /// `udsp del --idx N` / `--all` (`None`).
    pub fn udsp_del(&mut self, idx: Option<u32>) -> Result<(), Error> {
        self.done(Op::UdspDel { idx }, "udsp del")
    }

    /// `udsp show [--idx N]`.
    pub fn udsp_show(&mut self, idx: Option<u32>) -> Result<Vec<(u32, UdspRule)>, Error> {
        match self.call(Op::UdspShow { idx })? {
            ReplyBody::Udsp(r) => Ok(r),
            _ => Err(self.unexpected("udsp show")),
        }
    }

    /// `lctl get_param`: the module parameters and their values.
    pub fn params(&mut self) -> Result<Vec<crate::proto::ParamValue>, Error> {
        match self.call(Op::ParamShow)? {
            ReplyBody::Params(v) => Ok(v),
            _ => Err(self.unexpected("params")),
        }
    }

    /// `net set`.
    pub fn net_set(&mut self, req: NetSetRequest) -> Result<(), Error> {
        self.done(Op::NetSet(req), "net set")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_listening_says_how_to_start() {
        let dir = std::env::temp_dir().join(format!("lnetcfg-test-{}", std::process::id()));
        let sock = dir.join("none.sock");
        let err = Client::connect(&sock).err().expect("nobody listens");
        assert_eq!(err.errno(), errno::ENETDOWN);
        assert_eq!(
            err.to_string(),
            format!(
                "LNet is not running on {0}: start it with \"lnetctl lnet configure\" (or run \
                 lnetd --socket {0})",
                sock.display()
            )
        );
    }

    #[test]
    fn stale_socket_file_is_not_running() {
        let dir = std::env::temp_dir().join(format!("lnetcfg-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("stale.sock");
        let _ = std::fs::remove_file(&sock);
        drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
        let err = Client::connect(&sock).err().expect("stale");
        assert!(matches!(err, Error::NotRunning { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn talks_json_lines() {
        let dir = std::env::temp_dir().join(format!("lnetcfg-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("d.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut w = s;
            for reply in [
                crate::proto::Reply::ok(ReplyBody::Done),
                crate::proto::Reply::err(errno::EBUSY, "LNET busy"),
            ] {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line).expect("read");
                line.pop();
                crate::proto::decode_request(&line).expect("valid request");
                w.write_all(&crate::proto::encode_reply(&reply))
                    .expect("write");
            }
        });
        let mut c = Client::connect(&sock).expect("connect");
        c.configure(false).expect("done");
        let e = c.unconfigure().expect_err("busy");
        assert_eq!(e.errno(), errno::EBUSY);
        assert_eq!(e.to_string(), "LNET busy");
        server.join().expect("server");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The one place lnetctl writes: rendered replies on stdout, errors in
//! upstream's shapes (lnetctl.md §1.8) on stderr, and the return codes that
//! go with them.

use liblnetconfig::args::ArgError;
use liblnetconfig::render;
use liblnetconfig::Error;

/// `-EINVAL`, the rc of every NL-style failure.
pub(crate) const RC_EINVAL: i32 = -22;

pub(crate) use liblnetconfig::term::{stderr, stdout};

/// Prints an NL error block; returns `rc`.
pub(crate) fn nl_error(flag: &str, object: &str, errno: i32, descr: &str, rc: i32) -> i32 {
    stderr(&render::nl_error(flag, object, errno, descr));
    rc
}

/// Prints a request-building failure the way upstream reports it; returns its rc.
pub(crate) fn arg_error(e: ArgError) -> i32 {
    match e {
        ArgError::Plain(msg) => {
            stdout(&format!("{msg}\n"));
            RC_EINVAL
        }
        ArgError::Classic {
            cmd,
            entity,
            errno,
            descr,
            rc,
        } => {
            stderr(&render::cy_error(cmd, entity, errno, &descr));
            rc
        }
        ArgError::Nl {
            flag,
            object,
            errno,
            descr,
            rc,
        } => nl_error(flag, object, errno, &descr, rc),
        ArgError::Silent(rc) => rc,
        // ArgError is non-exhaustive: a new kind still fails the command.
        _ => RC_EINVAL,
    }
}

/// Prints a failed request: the daemon's refusals as an NL block of
/// `flag`/`object` (rc -22), and a socket that does not answer as one plain
/// line saying how to start LNet (rc -errno).
pub(crate) fn client_error(e: &Error, flag: &str, object: &str) -> i32 {
    match e {
        Error::Daemon { errno, message } => nl_error(flag, object, *errno, message, RC_EINVAL),
        other => {
            stderr(&format!("lnetctl: {other}\n"));
            -other.errno()
        }
    }
}

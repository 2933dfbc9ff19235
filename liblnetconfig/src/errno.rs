//! Errno values (Linux numbering) and their `strerror` texts, as upstream
//! lnetctl prints them (`failed to ping 10.9.9.9@tcp: Connection timed out`).

pub use lnd_api::errno::*;

/// No such process (`net show` filter that matches nothing).
pub const ESRCH: i32 = 3;
/// Argument list too long.
pub const E2BIG: i32 = 7;
/// Permission denied.
pub const EACCES: i32 = 13;
/// Result out of range.
pub const ERANGE: i32 = 34;
/// No data available.
pub const ENODATA: i32 = 61;

/// The C library's message for `errno` (positive), as glibc words it.
pub fn strerror(errno: i32) -> String {
    let s = match errno {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        3 => "No such process",
        4 => "Interrupted system call",
        5 => "Input/output error",
        7 => "Argument list too long",
        11 => "Resource temporarily unavailable",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        14 => "Bad address",
        16 => "Device or resource busy",
        17 => "File exists",
        19 => "No such device",
        22 => "Invalid argument",
        28 => "No space left on device",
        34 => "Numerical result out of range",
        61 => "No data available",
        71 => "Protocol error",
        90 => "Message too long",
        95 => "Operation not supported",
        100 => "Network is down",
        101 => "Network is unreachable",
        103 => "Software caused connection abort",
        104 => "Connection reset by peer",
        110 => "Connection timed out",
        111 => "Connection refused",
        113 => "No route to host",
        116 => "Stale file handle",
        125 => "Operation canceled",
        n => return format!("Unknown error {n}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_unknown() {
        assert_eq!(super::strerror(110), "Connection timed out");
        assert_eq!(super::strerror(9999), "Unknown error 9999");
    }
}

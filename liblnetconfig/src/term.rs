//! What the command-line tools (lnetctl, lctl, lst) share for their
//! output: writes that a closed pipe cannot turn into a panic, and the
//! command list of `--list-commands` / `help`.

use std::io::Write;

/// Writes to stdout and flushes (a closed pipe is not worth a panic).
pub fn stdout(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Writes to stderr and flushes.
pub fn stderr(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.flush();
}

/// Names in rows of 4 columns of 19 characters and a space, as upstream's
/// command-line parser lists its commands; the last row ends with a
/// newline too.
pub fn columns<S: AsRef<str>>(names: &[S]) -> String {
    let mut out = String::new();
    for (i, c) in names.iter().enumerate() {
        out.push_str(&format!("{:<19} ", c.as_ref()));
        if i % 4 == 3 {
            out.push('\n');
        }
    }
    if names.len() % 4 != 0 {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_four_of_nineteen_characters() {
        let five = ["a", "bb", "ccc", "dddd", "e"];
        let pad = |s: &str| format!("{s:<19} ");
        assert_eq!(
            columns(&five),
            format!(
                "{}{}{}{}\n{}\n",
                pad("a"),
                pad("bb"),
                pad("ccc"),
                pad("dddd"),
                pad("e")
            )
        );
        assert_eq!(columns(&five[..4]).matches('\n').count(), 1);
        assert_eq!(columns::<&str>(&[]), "");
    }
}

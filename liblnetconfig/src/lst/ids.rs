//! `lst`'s ID lists (selftest.md §2): `prefix[a,b-c,d-e/step]suffix`,
//! expanded bracket by bracket (leftmost slowest), every result parsed as a
//! NID; the PID is always 12345. This is `lst`'s own grammar (upstream
//! `lst.c`, `expand_strs()`), stricter than lnetctl's NID ranges: a range
//! needs `a < b`.

use lnd_api::Nid;

use crate::render::NetTypes;

/// Most NIDs one list may expand to (a guard against `[0-4294967295]`).
pub const MAX_IDS: usize = 1 << 16;

/// Why an ID list did not expand; the text is what `lst` prints.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdsError {
    /// A bad bracket expression.
    #[error("Syntax error in \"{0}\"")]
    Syntax(String),
    /// An element that is not a NID.
    #[error("Invalid nid: {0}")]
    BadNid(String),
    /// More than [`MAX_IDS`] NIDs.
    #[error("ID list \"{0}\" expands to more than {MAX_IDS} nodes; split it")]
    TooMany(String),
}

/// One bracket element: `a`, `a-b` (a < b) or `a-b/step` (a < b, step > 0).
fn element(e: &str) -> Option<(u32, u32, u32)> {
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if let Some(v) = num(e) {
        return Some((v, v, 1));
    }
    let (range, step) = match e.split_once('/') {
        Some((r, s)) => (r, num(s)?),
        None => (e, 1),
    };
    let (lo, hi) = range.split_once('-')?;
    let (lo, hi) = (num(lo)?, num(hi)?);
    (lo < hi && step > 0).then_some((lo, hi, step))
}

/// Expands the first bracket of `s`; `None` if it has none.
fn expand_first(s: &str) -> Option<Result<Vec<String>, ()>> {
    let open = s.find('[')?;
    let rest = &s[open + 1..];
    let Some(close) = rest.find(']') else {
        return Some(Err(()));
    };
    let (body, suffix) = (&rest[..close], &rest[close + 1..]);
    if body.is_empty() {
        return Some(Err(()));
    }
    let prefix = &s[..open];
    let mut out = Vec::new();
    for e in body.split(',') {
        let Some((lo, hi, step)) = element(e) else {
            return Some(Err(()));
        };
        let mut v = u64::from(lo);
        while v <= u64::from(hi) {
            out.push(format!("{prefix}{v}{suffix}"));
            if out.len() > MAX_IDS {
                return Some(Ok(out));
            }
            v += u64::from(step);
        }
    }
    Some(Ok(out))
}

/// Expands one ID list into its strings, in order.
pub fn expand_strings(list: &str) -> Result<Vec<String>, IdsError> {
    let mut cur = vec![list.to_string()];
    loop {
        let mut next = Vec::with_capacity(cur.len());
        let mut expanded = false;
        for s in cur {
            match expand_first(&s) {
                None => next.push(s),
                Some(Ok(v)) => {
                    expanded = true;
                    next.extend(v);
                }
                Some(Err(())) => return Err(IdsError::Syntax(list.to_string())),
            }
            if next.len() > MAX_IDS {
                return Err(IdsError::TooMany(list.to_string()));
            }
        }
        cur = next;
        if !expanded {
            return Ok(cur);
        }
    }
}

/// Expands one ID list into NIDs (`extra`: network types plugins add).
pub fn expand(list: &str, extra: &NetTypes) -> Result<Vec<Nid>, IdsError> {
    expand_strings(list)?
        .into_iter()
        .map(|s| crate::nidlist::parse_client_nid(&s, extra).ok_or(IdsError::BadNid(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        expand(s, &[])
            .expect("expands")
            .iter()
            .map(Nid::to_string)
            .collect()
    }

    #[test]
    fn brackets_expand_leftmost_slowest() {
        assert_eq!(
            texts("192.168.[1-2].[10-11]@tcp"),
            [
                "192.168.1.10@tcp",
                "192.168.1.11@tcp",
                "192.168.2.10@tcp",
                "192.168.2.11@tcp"
            ]
        );
        assert_eq!(
            texts("10.0.0.[1,3,5-6,10-14/2]@tcp1"),
            [
                "10.0.0.1@tcp1",
                "10.0.0.3@tcp1",
                "10.0.0.5@tcp1",
                "10.0.0.6@tcp1",
                "10.0.0.10@tcp1",
                "10.0.0.12@tcp1",
                "10.0.0.14@tcp1"
            ]
        );
        assert_eq!(texts("0@lo"), ["0@lo"]);
        assert_eq!(texts("[5-6]@gni"), ["5@gni", "6@gni"]);
    }

    #[test]
    fn bad_lists_are_refused() {
        let e = |s: &str| expand(s, &[]).expect_err(s).to_string();
        assert_eq!(
            e("10.0.0.[2-1]@tcp"),
            "Syntax error in \"10.0.0.[2-1]@tcp\""
        );
        assert!(e("10.0.0.[1-1]@tcp").starts_with("Syntax error"), "a < b");
        assert!(e("10.0.0.[]@tcp").starts_with("Syntax error"));
        assert!(e("10.0.0.[1@tcp").starts_with("Syntax error"));
        assert!(e("10.0.0.[a]@tcp").starts_with("Syntax error"));
        assert!(e("10.0.0.[1-4/0]@tcp").starts_with("Syntax error"));
        assert!(e("10.0.0.[1,]@tcp").starts_with("Syntax error"));
        assert_eq!(e("10.0.0.300@tcp"), "Invalid nid: 10.0.0.300@tcp");
        assert_eq!(e("node1@nonet"), "Invalid nid: node1@nonet");
        assert!(e("[0-70000]@gni").contains("more than 65536"));
        assert!(e("[0-300].[0-300]@gni").contains("more than 65536"));
    }
}

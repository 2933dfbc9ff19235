//! `lst` words that become request fields: test parameters (selftest.md
//! §2.1), `--distribute D:S`, numbers the way `atoi`/`strtol` read them, and
//! the `LST_SESSION` / `LST_FEATURES` environment variables.

use super::{LstTestKind, LST_BRW_MAX, LST_FEATS_MASK};

/// `LST_BRW_CHECK_NONE`.
pub const CHECK_NONE: u32 = 1;
/// `LST_BRW_CHECK_SIMPLE`.
pub const CHECK_SIMPLE: u32 = 2;
/// `LST_BRW_CHECK_FULL`.
pub const CHECK_FULL: u32 = 3;
/// `LST_BRW_CHECK_DISCARD`.
pub const CHECK_DISCARD: u32 = 4;

/// `atoi`: optional blanks and sign, then the leading decimal digits; 0 when
/// there are none. Saturates instead of overflowing.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

/// `strtol(s, &end, 0)`: decimal, `0x` hex or leading-`0` octal; the value
/// and the unparsed rest. `None` when no digit was read.
pub fn strtol0(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, body) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.starts_with('0') && t.len() > 1 {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let n = body.chars().take_while(|c| c.is_digit(radix)).count();
    if n == 0 {
        // "0" alone, or "0x" with no hex digit: the 0 was the number.
        return t.starts_with('0').then(|| (0, &t[1..]));
    }
    let mut v: i64 = 0;
    for c in body[..n].chars() {
        v = v
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(c.to_digit(radix).unwrap_or(0)));
    }
    Some((if neg { -v } else { v }, &body[n..]))
}

fn strip_prefix_ci<'a>(word: &'a str, prefix: &str) -> Option<&'a str> {
    let head = word.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &word[prefix.len()..])
}

/// Parses `add_test`'s TEST and its parameters (selftest.md §2.1). The
/// error is the line `lst` prints.
pub fn test_kind(test: &str, params: &[String]) -> Result<LstTestKind, String> {
    if test.eq_ignore_ascii_case("ping") {
        if let Some(p) = params.first() {
            return Err(format!(
                "Unknown parameter: {p} (the ping test takes no parameters)"
            ));
        }
        return Ok(LstTestKind::Ping);
    }
    if !test.eq_ignore_ascii_case("brw") {
        return Err(format!("Unknown test name {test}: use ping or brw"));
    }
    let mut write = false;
    let mut size: u32 = 4096;
    let mut check = CHECK_NONE;
    let mut offset: u32 = 0;
    let mut discard = false;
    for p in params {
        if let Some(tok) = strip_prefix_ci(p, "check=").or_else(|| strip_prefix_ci(p, "c=")) {
            check = match tok.to_ascii_lowercase().as_str() {
                "full" => CHECK_FULL,
                "simple" => CHECK_SIMPLE,
                "none" => CHECK_NONE,
                "discard" => CHECK_DISCARD,
                _ => {
                    return Err(format!(
                        "Unknown flag {tok}: check= takes none, simple, full or discard"
                    ))
                }
            };
        } else if let Some(tok) = strip_prefix_ci(p, "size=").or_else(|| strip_prefix_ci(p, "s=")) {
            let bad = || format!("Invalid size {tok}: give bytes, or a number with k or m");
            let (v, rest) = strtol0(tok).ok_or_else(bad)?;
            let mult: i64 = match rest {
                "" => 1,
                "k" | "K" => 1024,
                "m" | "M" => 1024 * 1024,
                _ => return Err(bad()),
            };
            if v <= 0 {
                return Err(bad());
            }
            let bytes = v.saturating_mul(mult);
            if bytes > i64::from(LST_BRW_MAX) {
                return Err(format!(
                    "Size exceed limitation: {bytes} bytes (at most {LST_BRW_MAX})"
                ));
            }
            size = bytes as u32;
        } else if let Some(tok) = strip_prefix_ci(p, "off=") {
            match strtol0(tok) {
                Some((v, "")) if (0..i64::from(u32::MAX)).contains(&v) && v % 8 == 0 => {
                    offset = v as u32
                }
                _ => {
                    return Err(format!(
                        "Invalid offset {tok}, it should be a positive value and multiple of 8"
                    ))
                }
            }
        } else if p.eq_ignore_ascii_case("read") || p.eq_ignore_ascii_case("r") {
            write = false;
        } else if p.eq_ignore_ascii_case("write") || p.eq_ignore_ascii_case("w") {
            write = true;
        } else if p.eq_ignore_ascii_case("skip_rx_copy") || p.eq_ignore_ascii_case("skip-rx-copy") {
            discard = true;
        } else {
            return Err(format!(
                "Unknown parameter: {p} (brw takes read|write, size=N[k|m], check=none|simple|full, off=N)"
            ));
        }
    }
    if discard {
        if matches!(check, CHECK_SIMPLE | CHECK_FULL) {
            return Err(
                "skip_rx_copy conflicts with check=simple|full: drop one of them".to_string(),
            );
        }
        check = CHECK_DISCARD;
    }
    Ok(LstTestKind::Brw {
        write,
        size,
        check,
        offset,
    })
}

/// `--distribute D:S` (both ≥ 1).
pub fn distribute(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("Invalid distribution: {s} (give DIST:SPAN, both at least 1)");
    let (d, sp) = s.split_once(':').ok_or_else(bad)?;
    let (d, sp) = (atoi(d), atoi(sp));
    if d <= 0 || sp <= 0 || d > i64::from(u32::MAX) || sp > i64::from(u32::MAX) {
        return Err(bad());
    }
    Ok((d as u32, sp as u32))
}

/// The session key from `LST_SESSION` (`atoi`); `None` when unset or 0.
pub fn session_key(var: Option<&str>) -> Option<u32> {
    let k = atoi(var?) as u32;
    (k != 0).then_some(k)
}

/// The feature mask from `LST_FEATURES` (hex); all known features when unset.
pub fn session_features(var: Option<&str>) -> Result<u32, String> {
    let Some(v) = var else {
        return Ok(LST_FEATS_MASK);
    };
    let t = v.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let n = t.chars().take_while(char::is_ascii_hexdigit).count();
    let f = u32::from_str_radix(&t[..n], 16).unwrap_or(if n == 0 { 0 } else { u32::MAX });
    if f & !LST_FEATS_MASK != 0 {
        return Err(format!(
            "Unsupported session features {:x}, only support these features so far: {LST_FEATS_MASK:x}",
            f & !LST_FEATS_MASK
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brw(words: &[&str]) -> Result<LstTestKind, String> {
        let v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        test_kind("brw", &v)
    }

    #[test]
    fn brw_defaults_and_forms() {
        assert_eq!(
            brw(&[]),
            Ok(LstTestKind::Brw {
                write: false,
                size: 4096,
                check: CHECK_NONE,
                offset: 0
            })
        );
        assert_eq!(
            brw(&["write", "size=1M", "check=simple"]),
            Ok(LstTestKind::Brw {
                write: true,
                size: 1 << 20,
                check: CHECK_SIMPLE,
                offset: 0
            })
        );
        assert_eq!(
            brw(&["W", "S=64k", "C=FULL", "off=64", "r"]),
            Ok(LstTestKind::Brw {
                write: false,
                size: 65536,
                check: CHECK_FULL,
                offset: 64
            })
        );
        assert_eq!(
            brw(&["size=0x1000", "skip_rx_copy"]),
            Ok(LstTestKind::Brw {
                write: false,
                size: 4096,
                check: CHECK_DISCARD,
                offset: 0
            })
        );
        assert_eq!(
            test_kind("PING", &[]).expect("ping"),
            LstTestKind::Ping,
            "case-insensitive"
        );
    }

    #[test]
    fn brw_refusals() {
        let e = |w: &[&str]| brw(w).expect_err("refused");
        assert!(e(&["size=2m"]).starts_with("Size exceed limitation: 2097152 bytes"));
        assert!(e(&["size=0"]).starts_with("Invalid size 0"));
        assert!(e(&["size=-4k"]).starts_with("Invalid size"));
        assert!(e(&["size=4q"]).starts_with("Invalid size 4q"));
        assert!(e(&["off=3"]).starts_with("Invalid offset 3"));
        assert!(e(&["off=-8"]).starts_with("Invalid offset"));
        assert!(e(&["check=maybe"]).starts_with("Unknown flag maybe"));
        assert!(e(&["fast"]).starts_with("Unknown parameter: fast"));
        assert!(e(&["check=full", "skip-rx-copy"]).contains("conflicts"));
        assert!(test_kind("bulk", &[])
            .expect_err("unknown")
            .contains("bulk"));
        assert!(test_kind("ping", &["size=1".into()]).is_err());
    }

    #[test]
    fn numbers_distribution_and_environment() {
        assert_eq!(atoi(" 42abc"), 42);
        assert_eq!(atoi("-1"), -1);
        assert_eq!(atoi("x"), 0);
        assert_eq!(strtol0("010"), Some((8, "")));
        assert_eq!(strtol0("0"), Some((0, "")));
        assert_eq!(strtol0("12k"), Some((12, "k")));
        assert_eq!(strtol0("k"), None);
        assert_eq!(distribute("4:2"), Ok((4, 2)));
        assert!(distribute("4").is_err());
        assert!(distribute("0:1").is_err());
        assert!(distribute("1:0").is_err());
        assert_eq!(session_key(Some("1234")), Some(1234));
        assert_eq!(session_key(Some("0")), None);
        assert_eq!(session_key(Some("abc")), None);
        assert_eq!(session_key(None), None);
        assert_eq!(session_features(None), Ok(1));
        assert_eq!(session_features(Some("0")), Ok(0));
        assert_eq!(session_features(Some("1")), Ok(1));
        assert_eq!(
            session_features(Some("3")).expect_err("bit 1"),
            "Unsupported session features 2, only support these features so far: 1"
        );
    }
}

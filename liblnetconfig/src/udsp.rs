//! User Defined Selection Policies on the client side (lnetctl.md §2.16,
//! semantics.md §12): the `udsp add|del` checks, the descriptor syntax and
//! its canonical text, and `udsp show`.

use crate::args::{strtol, ArgError};
use crate::errno::EINVAL;
use crate::proto::UdspRule;
use crate::yaml::{self, Yaml};

fn classic(descr: &str) -> ArgError {
    ArgError::Classic {
        cmd: "add",
        entity: "udsp",
        errno: -EINVAL,
        descr: format!("\"{descr}\""),
        rc: -EINVAL,
    }
}

/// A non-negative `--priority`/`--idx` value; `Invalid <what> "<arg>"` otherwise.
pub fn number(text: &str, what: &str) -> Result<u32, ArgError> {
    strtol(text)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ArgError::Plain(format!("Invalid {what} \"{text}\"")))
}

/// A bracket list of numbers/ranges (`[1-3]`, `[2,4]`, `[2-254/2]`).
fn bracket_ok(t: &str) -> bool {
    crate::args::cpt_expr(t).is_some()
}

/// One address field: `*`, a number, or a bracket expression.
fn field_ok(f: &str) -> bool {
    f == "*" || f.parse::<u32>().is_ok() || (f.starts_with('[') && bracket_ok(f))
}

/// Whether `s` is an IPv4 address pattern (`192.168.0.[2,4]`, `*.*.*.*`).
pub fn ipv4_pattern_ok(s: &str) -> bool {
    let f: Vec<&str> = s.split('.').collect();
    f.len() == 4 && f.iter().all(|x| field_ok(x))
}

/// Canonical text of a net part (`tcp0` → `tcp`, `tcp[1-3]` kept); `None`
/// when malformed.
fn net_part(t: &str) -> Option<String> {
    let split = t.find(|c: char| c.is_ascii_digit() || c == '[' || c == '*');
    let (ty, num) = match split {
        Some(at) => (&t[..at], &t[at..]),
        None => (t, ""),
    };
    if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    if num.is_empty() {
        return Some(ty.to_string());
    }
    if num == "*" || (num.starts_with('[') && bracket_ok(num)) {
        return Some(format!("{ty}{num}"));
    }
    let n: u32 = num.parse().ok()?;
    Some(if n == 0 {
        ty.to_string()
    } else {
        format!("{ty}{n}")
    })
}

/// Parses a descriptor (`tcp`, `tcp1`, `tcp[1-3]`, `10.1.1.*@tcp`,
/// `[1-4]@gni`) into its canonical text; `None` when malformed.
pub fn descriptor(text: &str) -> Option<String> {
    let t = text.trim();
    match t.rsplit_once('@') {
        None => net_part(t),
        Some((addr, net)) => {
            let net = net_part(net)?;
            let fields: Vec<&str> = addr.split('.').collect();
            let ok = match fields.len() {
                1 | 4 => fields.iter().all(|f| field_ok(f)),
                _ => false,
            };
            ok.then(|| format!("{addr}@{net}"))
        }
    }
}

/// Validates `udsp add` (upstream's checks, in its order); `Ok(None)` when
/// none of src/dst/rte is given (the help is printed, rc 0).
pub fn add_rule(
    src: Option<&str>,
    dst: Option<&str>,
    rte: Option<&str>,
    priority: Option<&str>,
) -> Result<Option<UdspRule>, ArgError> {
    if src.is_none() && dst.is_none() && rte.is_none() {
        return Ok(None);
    }
    let priority = priority.map(|p| number(p, "priority")).transpose()?;
    if src.is_some() && dst.is_some() && rte.is_some() {
        return Err(classic(
            "The combination of src, dst and rte is not supported",
        ));
    }
    if src.is_some() && rte.is_some() {
        return Err(classic("src and rte cannot be combined"));
    }
    let parse = |v: Option<&str>, what: &str| -> Result<Option<String>, ArgError> {
        v.map(|t| {
            descriptor(t).ok_or_else(|| classic(&format!("failed to parse {what} parameter")))
        })
        .transpose()
    };
    let src = parse(src, "src")?;
    let dst = parse(dst, "dst")?;
    let rte = parse(rte, "rte")?;
    // Preference rules (src+dst, dst+rte) carry no priority.
    let pair = (src.is_some() && dst.is_some()) || (dst.is_some() && rte.is_some());
    let priority = if pair {
        None
    } else {
        Some(priority.unwrap_or(0))
    };
    Ok(Some(UdspRule {
        src,
        dst,
        rte,
        priority,
    }))
}

/// The `udsp:` sequence of [`show`] and `export`; `None` without rules.
pub fn tree(rules: &[(u32, UdspRule)]) -> Option<Yaml> {
    if rules.is_empty() {
        return None;
    }
    let items = rules
        .iter()
        .map(|(idx, r)| {
            let mut m = Yaml::map();
            m.push("idx", Yaml::s(idx));
            for (k, v) in [("src", &r.src), ("dst", &r.dst), ("rte", &r.rte)] {
                if let Some(v) = v {
                    m.push(k, Yaml::s(v));
                }
            }
            if let Some(p) = r.priority {
                m.push("action", Yaml::pairs([("priority", Yaml::s(p))]));
            }
            m
        })
        .collect();
    Some(Yaml::Seq(items))
}

/// `udsp show` (cY-style); empty when there are no rules.
pub fn show(rules: &[(u32, UdspRule)]) -> String {
    match tree(rules) {
        Some(t) => yaml::cy(&Yaml::pairs([("udsp", t)])),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(src: Option<&str>, dst: Option<&str>, p: Option<u32>) -> UdspRule {
        UdspRule {
            src: src.map(Into::into),
            dst: dst.map(Into::into),
            rte: None,
            priority: p,
        }
    }

    #[test]
    fn show_golden() {
        let rules = vec![
            (0, rule(Some("tcp"), None, Some(1))),
            (1, rule(None, Some("1.1.1.1@tcp"), Some(1))),
        ];
        assert_eq!(
            show(&rules),
            "udsp:
    - idx: 0
      src: tcp
      action:
          priority: 1
    - idx: 1
      dst: 1.1.1.1@tcp
      action:
          priority: 1
"
        );
        assert_eq!(show(&[]), "");
        let pair = vec![(0, rule(Some("tcp1"), Some("10.0.0.*@tcp"), None))];
        assert_eq!(
            show(&pair),
            "udsp:\n    - idx: 0\n      src: tcp1\n      dst: 10.0.0.*@tcp\n"
        );
    }

    #[test]
    fn descriptors() {
        assert_eq!(descriptor("tcp0").as_deref(), Some("tcp"));
        assert_eq!(descriptor("tcp2").as_deref(), Some("tcp2"));
        assert_eq!(descriptor("tcp[1-3]").as_deref(), Some("tcp[1-3]"));
        assert_eq!(
            descriptor("10.1.[1-2].*@tcp1").as_deref(),
            Some("10.1.[1-2].*@tcp1")
        );
        assert_eq!(descriptor("[1-4]@gni").as_deref(), Some("[1-4]@gni"));
        for bad in [
            "",
            "1.2.3@tcp",
            "tcp[3-1]",
            "10.1.1.x@tcp",
            "@tcp",
            "1.1.1.1@",
        ] {
            assert_eq!(descriptor(bad), None, "{bad}");
        }
    }

    #[test]
    fn add_checks() {
        assert_eq!(add_rule(None, None, None, Some("1")), Ok(None));
        assert_eq!(
            add_rule(Some("tcp"), None, None, None),
            Ok(Some(rule(Some("tcp"), None, Some(0))))
        );
        assert_eq!(
            add_rule(Some("tcp"), None, None, Some("-1")),
            Err(ArgError::Plain("Invalid priority \"-1\"".into()))
        );
        assert_eq!(
            add_rule(Some("tcp"), Some("tcp"), Some("tcp"), None),
            Err(classic(
                "The combination of src, dst and rte is not supported"
            ))
        );
        assert_eq!(
            add_rule(Some("tcp"), None, Some("tcp"), None),
            Err(classic("src and rte cannot be combined"))
        );
        assert_eq!(
            add_rule(None, Some("1.1@tcp"), None, None),
            Err(classic("failed to parse dst parameter"))
        );
        let r = add_rule(Some("tcp"), Some("tcp1"), None, Some("3"))
            .expect("ok")
            .expect("rule");
        assert_eq!(r.priority, None, "a NID-pair rule has no priority");
    }
}

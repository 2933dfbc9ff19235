//! The one YAML printer: a small document tree and the two layouts upstream
//! lnetctl produces.
//!
//! * [`nl`]: libyaml's block emitter (upstream's netlink-backed commands,
//!   lnetctl.md §1.6): a sequence under a key is not indented, a mapping item
//!   starts on the dash line at `dash + indent`.
//! * [`cy`]: upstream's private cYAML printer (lnetctl.md §1.7): 4 spaces a
//!   level, sequence items of mappings as `- key:` with 2 extra columns.
//!
//! Mapping key order is the insertion order.

use std::fmt::Write as _;

/// How a scalar is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Plain when libyaml allows it, else single-quoted.
    Auto,
    /// Always double-quoted (`CPT: "[0,1]"`).
    Double,
    /// Double-quoted with a non-specific tag (`descr: ! "..."` of NL error blocks).
    TaggedDouble,
    /// Written as is (cYAML never quotes).
    Raw,
}

/// A YAML node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Yaml {
    /// A scalar and its style.
    Scalar(String, Style),
    /// A block mapping, in key order.
    Map(Vec<(String, Yaml)>),
    /// A block sequence.
    Seq(Vec<Yaml>),
    /// A flow sequence of plain scalars, written `[ a, b ]` (`[]` when empty).
    Flow(Vec<String>),
}

impl Yaml {
    /// A scalar written plain when possible.
    pub fn s(v: impl ToString) -> Yaml {
        Yaml::Scalar(v.to_string(), Style::Auto)
    }

    /// An empty mapping to fill with [`Yaml::push`].
    pub fn map() -> Yaml {
        Yaml::Map(Vec::new())
    }

    /// Appends `key: value` to a mapping (ignored on other nodes).
    pub fn push(&mut self, key: &str, value: Yaml) {
        if let Yaml::Map(m) = self {
            m.push((key.to_string(), value));
        }
    }

    /// A mapping from pairs.
    pub fn pairs<const N: usize>(items: [(&str, Yaml); N]) -> Yaml {
        Yaml::Map(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// Whether libyaml would emit `s` as a plain scalar in block context
/// (`yaml_emitter_analyze_scalar`, simplified to the cases our values hit).
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let b = s.as_bytes();
    if b[0] == b' ' || b[b.len() - 1] == b' ' {
        return false;
    }
    if s.contains('\n') || s.contains('\t') {
        return false;
    }
    let first = b[0];
    if b"#,[]{}&*!|>'\"%@`".contains(&first) {
        return false;
    }
    if (first == b'-' || first == b'?' || first == b':') && (b.len() == 1 || b[1] == b' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.ends_with(':') || s.contains(" #") {
        return false;
    }
    true
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar_text(v: &str, style: Style) -> String {
    match style {
        Style::Auto if plain_allowed(v) => v.to_string(),
        Style::Auto => single_quoted(v),
        Style::Double => double_quoted(v),
        Style::TaggedDouble => format!("! {}", double_quoted(v)),
        Style::Raw => v.to_string(),
    }
}

fn flow_text(items: &[String]) -> String {
    if items.is_empty() {
        "[]".to_string()
    } else {
        format!("[ {} ]", items.join(", "))
    }
}

/// Renders `doc` the way libyaml's block emitter does with `best_indent` =
/// `indent` (6 for shows and errors, 2 for ping/discover), no document markers.
pub fn nl(doc: &Yaml, indent: usize) -> String {
    let mut out = String::new();
    nl_node_top(&mut out, doc, indent);
    out
}

/// [`nl`] between explicit `---` and `...` lines (NL error blocks).
pub fn nl_document(doc: &Yaml, indent: usize) -> String {
    format!("---\n{}...\n", nl(doc, indent))
}

fn nl_node_top(out: &mut String, node: &Yaml, n: usize) {
    match node {
        Yaml::Map(m) => nl_map(out, m, 0, n, false),
        Yaml::Seq(s) => nl_seq(out, s, 0, n),
        Yaml::Scalar(v, st) => {
            out.push_str(&scalar_text(v, *st));
            out.push('\n');
        }
        Yaml::Flow(f) => {
            out.push_str(&flow_text(f));
            out.push('\n');
        }
    }
}

/// A mapping whose keys sit at `col`; with `on_dash_line` the first key
/// continues a line already holding its `-` and padding.
fn nl_map(out: &mut String, m: &[(String, Yaml)], col: usize, n: usize, on_dash_line: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if !(i == 0 && on_dash_line) {
            out.push_str(&" ".repeat(col));
        }
        out.push_str(k);
        out.push(':');
        match v {
            Yaml::Scalar(s, st) => {
                let t = scalar_text(s, *st);
                if !t.is_empty() {
                    out.push(' ');
                    out.push_str(&t);
                }
                out.push('\n');
            }
            Yaml::Flow(f) => {
                out.push(' ');
                out.push_str(&flow_text(f));
                out.push('\n');
            }
            Yaml::Map(sub) if sub.is_empty() => out.push_str(" {}\n"),
            Yaml::Map(sub) => {
                out.push('\n');
                nl_map(out, sub, col + n, n, false);
            }
            Yaml::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            Yaml::Seq(items) => {
                out.push('\n');
                nl_seq(out, items, col, n);
            }
        }
    }
}

/// A sequence whose dashes sit at `col`.
fn nl_seq(out: &mut String, items: &[Yaml], col: usize, n: usize) {
    for item in items {
        out.push_str(&" ".repeat(col));
        out.push('-');
        match item {
            Yaml::Map(m) if !m.is_empty() => {
                out.push_str(&" ".repeat(n.saturating_sub(1).max(1)));
                nl_map(out, m, col + n.max(2), n, true);
            }
            Yaml::Map(_) => out.push_str(" {}\n"),
            Yaml::Scalar(s, st) => {
                let t = scalar_text(s, *st);
                if !t.is_empty() {
                    out.push(' ');
                    out.push_str(&t);
                }
                out.push('\n');
            }
            Yaml::Flow(f) => {
                out.push(' ');
                out.push_str(&flow_text(f));
                out.push('\n');
            }
            Yaml::Seq(inner) => {
                out.push('\n');
                nl_seq(out, inner, col + n, n);
            }
        }
    }
}

/// Renders `doc` the way upstream's cYAML printer does (lnetctl.md §1.7).
/// The root must be a mapping; scalars are written raw.
pub fn cy(doc: &Yaml) -> String {
    let mut out = String::new();
    if let Yaml::Map(m) = doc {
        for (k, v) in m {
            cy_keyed(&mut out, k, v, 0, false, 0);
        }
    }
    out
}

fn cy_keyed(out: &mut String, key: &str, node: &Yaml, level: usize, first: bool, extra: usize) {
    match node {
        Yaml::Scalar(v, st) => {
            let text = match st {
                Style::Raw | Style::Auto => v.clone(),
                _ => scalar_text(v, *st),
            };
            let pad = if first {
                out.push_str(&" ".repeat(4 * level));
                out.push_str("- ");
                4 * level + 2
            } else {
                out.push_str(&" ".repeat(4 * level + extra));
                4 * level + extra
            };
            let mut lines = text.split('\n');
            let _ = writeln!(out, "{key}: {}", lines.next().unwrap_or_default());
            for l in lines {
                let _ = writeln!(out, "{}{l}", " ".repeat(pad + key.len() + 2));
            }
        }
        Yaml::Flow(f) => {
            out.push_str(&" ".repeat(4 * level + if first { 0 } else { extra }));
            if first {
                out.push_str("- ");
            }
            let _ = writeln!(out, "{key}: {}", flow_text(f));
        }
        Yaml::Map(m) => {
            if first {
                out.push_str(&" ".repeat(4 * level));
                out.push_str("- ");
            } else {
                out.push_str(&" ".repeat(4 * level + extra));
            }
            let _ = writeln!(out, "{key}:");
            let e = if first { 2 } else { extra };
            for (k, v) in m {
                cy_keyed(out, k, v, level + 1, false, e);
            }
        }
        Yaml::Seq(items) => {
            out.push_str(&" ".repeat(4 * level + extra));
            let _ = writeln!(out, "{key}:");
            for item in items {
                cy_item(out, item, level + 1, true, 2);
            }
        }
    }
}

/// A sequence item (an object without a key).
fn cy_item(out: &mut String, node: &Yaml, level: usize, first: bool, extra: usize) {
    match node {
        Yaml::Map(m) => {
            let e = if first { 2 } else { extra };
            for (i, (k, v)) in m.iter().enumerate() {
                cy_keyed(out, k, v, level, first && i == 0, e);
            }
        }
        Yaml::Scalar(v, _) => {
            let _ = writeln!(out, "{}- {v}", " ".repeat(4 * level));
        }
        Yaml::Flow(f) => {
            let _ = writeln!(out, "{}- {}", " ".repeat(4 * level), flow_text(f));
        }
        Yaml::Seq(items) => {
            for item in items {
                cy_item(out, item, level, first, extra);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ni(nid: &str, status: &str, ifname: Option<&str>) -> Yaml {
        let mut m = Yaml::pairs([("nid", Yaml::s(nid)), ("status", Yaml::s(status))]);
        if let Some(i) = ifname {
            m.push("interfaces", Yaml::pairs([("0", Yaml::s(i))]));
        }
        m
    }

    #[test]
    fn nl_worked_example_indent_6() {
        let doc = Yaml::pairs([(
            "net",
            Yaml::Seq(vec![
                Yaml::pairs([
                    ("net type", Yaml::s("lo")),
                    ("local NI(s)", Yaml::Seq(vec![ni("0@lo", "up", None)])),
                ]),
                Yaml::pairs([
                    ("net type", Yaml::s("tcp")),
                    (
                        "local NI(s)",
                        Yaml::Seq(vec![
                            ni("192.168.122.10@tcp", "up", Some("eth0")),
                            ni("10.1.2.3@tcp", "down", Some("test1pg")),
                        ]),
                    ),
                ]),
            ]),
        )]);
        let want = "\
net:
-     net type: lo
      local NI(s):
      -     nid: 0@lo
            status: up
-     net type: tcp
      local NI(s):
      -     nid: 192.168.122.10@tcp
            status: up
            interfaces:
                  0: eth0
      -     nid: 10.1.2.3@tcp
            status: down
            interfaces:
                  0: test1pg
";
        assert_eq!(nl(&doc, 6), want);
    }

    #[test]
    fn nl_indent_2() {
        let doc = Yaml::pairs([(
            "ping",
            Yaml::Seq(vec![Yaml::pairs([
                ("primary nid", Yaml::s("192.168.122.11@tcp")),
                ("Multi-Rail", Yaml::s("true")),
                (
                    "peer_ni",
                    Yaml::Seq(vec![Yaml::pairs([("nid", Yaml::s("192.168.122.11@tcp"))])]),
                ),
            ])]),
        )]);
        let want = "\
ping:
- primary nid: 192.168.122.11@tcp
  Multi-Rail: true
  peer_ni:
  - nid: 192.168.122.11@tcp
";
        assert_eq!(nl(&doc, 2), want);
    }

    #[test]
    fn nl_error_block() {
        let doc = Yaml::pairs([(
            "add",
            Yaml::Seq(vec![Yaml::pairs([
                ("net", Yaml::s("")),
                ("errno", Yaml::s(-22)),
                (
                    "descr",
                    Yaml::Scalar("cannot parse net '<255:65535>'".into(), Style::TaggedDouble),
                ),
            ])]),
        )]);
        let want = "---\nadd:\n-     net:\n      errno: -22\n      descr: ! \"cannot parse net '<255:65535>'\"\n...\n";
        assert_eq!(nl_document(&doc, 6), want);
    }

    #[test]
    fn scalar_styles() {
        assert_eq!(
            scalar_text(
                "failed to ping 10.9.9.9@tcp: Connection timed out",
                Style::Auto
            ),
            "'failed to ping 10.9.9.9@tcp: Connection timed out'"
        );
        assert_eq!(scalar_text("it's", Style::Auto), "it's");
        assert_eq!(scalar_text("'x", Style::Auto), "'''x'");
        assert_eq!(scalar_text("[0,1]", Style::Double), "\"[0,1]\"");
        assert_eq!(
            scalar_text("a \"b\" \\", Style::TaggedDouble),
            "! \"a \\\"b\\\" \\\\\""
        );
        assert_eq!(scalar_text("-1", Style::Auto), "-1");
        assert_eq!(scalar_text("- x", Style::Auto), "'- x'");
        assert_eq!(flow_text(&["tcp".into(), "tcp1".into()]), "[ tcp, tcp1 ]");
    }

    #[test]
    fn cy_shapes() {
        let err = Yaml::pairs([(
            "add",
            Yaml::Seq(vec![Yaml::pairs([(
                "retry_count",
                Yaml::pairs([
                    ("errno", Yaml::s(-61)),
                    (
                        "descr",
                        Yaml::s("\"cannot configure retry count: Invalid argument\""),
                    ),
                ]),
            )])]),
        )]);
        assert_eq!(
            cy(&err),
            "add:\n    - retry_count:\n          errno: -61\n          descr: \"cannot configure retry count: Invalid argument\"\n"
        );
        let global = Yaml::pairs([(
            "global",
            Yaml::pairs([
                ("numa_range", Yaml::s(0)),
                ("max_interfaces", Yaml::s(4096)),
            ]),
        )]);
        assert_eq!(
            cy(&global),
            "global:\n    numa_range: 0\n    max_interfaces: 4096\n"
        );
        let udsp = Yaml::pairs([(
            "udsp",
            Yaml::Seq(vec![Yaml::pairs([
                ("idx", Yaml::s(0)),
                ("src", Yaml::s("tcp")),
                ("action", Yaml::pairs([("priority", Yaml::s(1))])),
            ])]),
        )]);
        assert_eq!(
            cy(&udsp),
            "udsp:\n    - idx: 0\n      src: tcp\n      action:\n          priority: 1\n"
        );
        let routing = Yaml::pairs([(
            "routing",
            Yaml::Seq(vec![
                Yaml::pairs([(
                    "cpt[0]",
                    Yaml::pairs([(
                        "tiny",
                        Yaml::pairs([("npages", Yaml::s(0)), ("nbuffers", Yaml::s(1024))]),
                    )]),
                )]),
                Yaml::pairs([("enable", Yaml::s(1))]),
            ]),
        )]);
        assert_eq!(
            cy(&routing),
            "routing:\n    - cpt[0]:\n          tiny:\n              npages: 0\n              nbuffers: 1024\n    - enable: 1\n"
        );
    }

    #[test]
    fn cy_multiline_value() {
        let doc = Yaml::pairs([("e", Yaml::pairs([("descr", Yaml::s("a\nb"))]))]);
        assert_eq!(cy(&doc), "e:\n    descr: a\n           b\n");
    }
}

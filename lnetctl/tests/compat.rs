//! docs/lnetctl-compat.md is true: each `supported` row's help carries the
//! option token, each `refused` row fails with a message naming the option.
//! No daemon is needed: help and refusals come before any request.

use std::process::Command;

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");
const TABLE: &str = include_str!("../../docs/lnetctl-compat.md");

struct Row<'a> {
    words: Vec<&'a str>,
    option: &'a str,
    status: &'a str,
}

/// The lnetctl table: everything before the lctl section.
fn lnetctl_part() -> &'static str {
    TABLE.split("\n## lctl\n").next().unwrap_or(TABLE)
}

fn rows() -> Vec<Row<'static>> {
    lnetctl_part()
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| words"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Row {
                words: cells[0].split_whitespace().collect(),
                option: cells[1],
                status: cells[2],
            }
        })
        .collect()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(LNETCTL)
        .args(args)
        .env("LNET_SOCKET", "/nonexistent/lnetctl-compat.sock")
        .output()
        .expect("run lnetctl")
}

#[test]
fn the_table_is_true() {
    let rows = rows();
    assert!(rows.len() > 60, "table parsed: {}", rows.len());
    for r in &rows {
        match r.status {
            "supported" => {
                let mut args = r.words.clone();
                args.push("-h");
                let out = run(&args);
                let help = String::from_utf8_lossy(&out.stdout);
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "{:?}: exit {:?}",
                    r.words,
                    out.status
                );
                assert!(!help.is_empty(), "{:?}: no help", r.words);
                if !r.option.is_empty() {
                    assert!(
                        help.contains(&format!("\t{}", r.option))
                            || help.contains(&format!("{}:", r.option)),
                        "{:?} {}: not in the help:\n{help}",
                        r.words,
                        r.option
                    );
                }
            }
            "refused" => {
                let mut args = r.words.clone();
                args.extend(["--net", "tcp", "--if", "eth0", r.option, "1"]);
                if r.words == ["net", "set"] {
                    args = vec!["net", "set", "--all", r.option, "1"];
                }
                let out = run(&args);
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{:?} {} accepted", r.words, r.option);
                assert!(
                    err.contains(r.option) && err.contains("not supported"),
                    "{:?} {}: {err}",
                    r.words,
                    r.option
                );
            }
            "elsewhere" | "n/a" => {}
            other => panic!("unknown status {other:?} in docs/lnetctl-compat.md"),
        }
    }
}

const LCTL: &str = env!("CARGO_BIN_EXE_lctl");

/// The lctl section: (command, status).
fn lctl_rows() -> Vec<(&'static str, &'static str)> {
    let part = TABLE.split("\n## lctl\n").nth(1).expect("an lctl section");
    part.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| lctl command"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0], cells[1])
        })
        .collect()
}

#[test]
fn the_lctl_table_is_true() {
    let rows = lctl_rows();
    assert!(rows.len() >= 20, "lctl rows parsed: {}", rows.len());
    let lctl = |args: &[&str]| {
        Command::new(LCTL)
            .args(args)
            .env("LNET_SOCKET", "/nonexistent/lctl-compat.sock")
            .output()
            .expect("run lctl")
    };
    for (cmd, status) in rows {
        match status {
            "supported" => {
                let out = lctl(&["help", cmd]);
                let help = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "help {cmd}");
                assert!(
                    help.starts_with(&format!("{cmd}: ")) && help.contains("usage: "),
                    "help {cmd}: {help}"
                );
            }
            "refused" => {
                let out = lctl(&[cmd]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{cmd}");
                assert!(
                    err.contains(cmd) && err.contains("use lnetctl") || err.contains("use lctl"),
                    "{cmd}: {err}"
                );
            }
            other => panic!("unknown status {other:?} for lctl {cmd}"),
        }
    }
}

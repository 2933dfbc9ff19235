//! CPU partitions (`cpu_pattern`, libcfs): the CPUs lnetd's threads run on.
//!
//! Upstream, libcfs divides the CPUs into partitions (CPTs) and binds
//! LNet's threads to them. lnetd runs one partition. A `cpu_pattern` that
//! names CPUs (`0[2,3]`) or NUMA nodes (`N 0[1]`) binds all of lnetd's
//! threads, the LNDs' included, to the CPUs it names. Several partitions
//! are accepted and merged into one (a warning says so). An empty pattern
//! or `N` alone (one partition per NUMA node, upstream's default) binds
//! nothing.
//!
//! Binding matters where several daemons share a machine: a thread woken by
//! a socket write is queued behind the writer on the writer's CPU while
//! another CPU may sleep, so a router and its end nodes do better each on
//! CPUs of their own, as kernel LNet's threads are on theirs.

use std::collections::BTreeSet;

use lnet_core::nid::{NidError, NumExprList};

/// The CPUs that `pattern` binds to, or `None` to bind nothing. CPU lists
/// follow upstream's syntax: `0[0,2,4-7]`, partition numbers from 0 in
/// order; `N ` before them reads the lists as NUMA nodes, whose CPUs
/// `node_cpus` gives. Every CPU must be in `online`. The second value is a
/// warning when several partitions were merged.
pub fn parse_pattern(
    pattern: &str,
    online: &BTreeSet<usize>,
    node_cpus: impl Fn(usize) -> Option<BTreeSet<usize>>,
) -> Result<(Option<BTreeSet<usize>>, Option<String>), String> {
    let bad = |why: String| {
        format!(
            "{pattern:?}: {why}; write partitions of CPUs, e.g. \"0[0,1] 1[2-3]\", \
             or of NUMA nodes after N, e.g. \"N 0[0] 1[1]\""
        )
    };
    let mut rest = pattern.trim();
    let numa = match rest.strip_prefix('N') {
        Some(r) if r.is_empty() || r.starts_with(char::is_whitespace) => {
            rest = r.trim_start();
            true
        }
        _ => false,
    };
    if rest.is_empty() {
        return Ok((None, None));
    }
    let mut all = BTreeSet::new();
    let mut partitions = 0usize;
    while !rest.is_empty() {
        let open = rest
            .find('[')
            .ok_or_else(|| bad(format!("no [ after {rest:?}")))?;
        let close = rest
            .find(']')
            .ok_or_else(|| bad(format!("no ] in {rest:?}")))?;
        if close < open {
            return Err(bad(format!("] before [ in {rest:?}")));
        }
        let id = rest[..open].trim();
        let cpt: usize = id
            .parse()
            .map_err(|_| bad(format!("{id:?} is not a partition number")))?;
        if cpt != partitions {
            return Err(bad(format!(
                "partition {cpt} where partition {partitions} was expected (number them 0, 1, ...)"
            )));
        }
        let list = parse_list(&rest[open + 1..close]).map_err(&bad)?;
        if list.is_empty() {
            return Err(bad(format!("partition {cpt} is empty")));
        }
        let mut cpus = BTreeSet::new();
        for n in list {
            if numa {
                let on = node_cpus(n)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| bad(format!("NUMA node {n} has no CPUs here")))?;
                cpus.extend(on);
            } else {
                cpus.insert(n);
            }
        }
        for c in &cpus {
            if !online.contains(c) {
                return Err(bad(format!(
                    "CPU {c} is not one lnetd may run on (online and allowed: {})",
                    show_list(online)
                )));
            }
            if !all.insert(*c) {
                return Err(bad(format!("CPU {c} is in two partitions")));
            }
        }
        partitions += 1;
        rest = rest[close + 1..].trim_start();
    }
    let warning = (partitions > 1).then(|| {
        format!(
            "cpu_pattern has {partitions} partitions; lnetd runs one, so its threads run on the \
             CPUs of all of them ({})",
            show_list(&all)
        )
    });
    Ok((Some(all), warning))
}

/// [`parse_pattern`] against this machine: the CPUs this process may run on
/// and its NUMA nodes (sysfs).
pub fn on_this_machine(pattern: &str) -> Result<(Option<BTreeSet<usize>>, Option<String>), String> {
    let online = allowed_cpus().map_err(|e| format!("cannot read the CPUs: {e}"))?;
    parse_pattern(pattern, &online, numa_node_cpus)
}

/// The highest CPU or NUMA node number a list may name (Linux's
/// `NR_CPUS` at most).
const MAX_ID: u32 = 8191;

/// `0,2,4-7` (and `0-7/2`, every second): the numbers of a list, read as
/// libcfs reads an expression list (lnet-core's [`NumExprList`]).
fn parse_list(s: &str) -> Result<BTreeSet<usize>, String> {
    match NumExprList::parse_unbracketed(s, 0, MAX_ID) {
        Ok(list) => Ok(list
            .iter()
            .flat_map(NumExprList::values)
            .map(|v| v as usize)
            .collect()),
        Err(NidError::Expr { reason, .. }) => Err(reason),
        Err(e) => Err(e.to_string()),
    }
}

/// `0-3,6`: a set of CPUs as Linux writes it.
pub fn show_list(cpus: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = cpus.iter().copied().peekable();
    while let Some(lo) = it.next() {
        let mut hi = lo;
        while it.peek() == Some(&(hi + 1)) {
            hi += 1;
            it.next();
        }
        out.push(if hi == lo {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        });
    }
    out.join(",")
}

/// The CPUs this process may run on now.
pub fn allowed_cpus() -> std::io::Result<BTreeSet<usize>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// The CPUs of NUMA node `n` (sysfs), if it exists.
pub fn numa_node_cpus(n: usize) -> Option<BTreeSet<usize>> {
    let text = std::fs::read_to_string(format!("/sys/devices/system/node/node{n}/cpulist")).ok()?;
    parse_list(text.trim()).ok()
}

/// Binds every thread of this process (those running now; those started
/// later inherit it) to `cpus`.
pub fn bind_process(cpus: &BTreeSet<usize>) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)
            .map_err(|e| format!("cannot bind to CPU {c}: {e}"))?;
    }
    let tids = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot list this process's threads: {e}"))?;
    for t in tids.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set) {
            Ok(()) => {}
            // The thread ended meanwhile.
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                return Err(format!(
                    "cannot bind thread {tid} to CPUs {}: {e}",
                    show_list(cpus)
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> BTreeSet<usize> {
        v.iter().copied().collect()
    }

    fn nodes(n: usize) -> Option<BTreeSet<usize>> {
        match n {
            0 => Some(set(&[0, 1])),
            1 => Some(set(&[2, 3])),
            _ => None,
        }
    }

    fn parse(p: &str) -> Result<(Option<BTreeSet<usize>>, Option<String>), String> {
        parse_pattern(p, &set(&[0, 1, 2, 3]), nodes)
    }

    #[test]
    fn patterns_name_cpus_or_numa_nodes() {
        assert_eq!(parse("").expect("empty"), (None, None));
        assert_eq!(parse("N").expect("numa default"), (None, None));
        assert_eq!(parse(" 0[1] ").expect("one cpu"), (Some(set(&[1])), None));
        assert_eq!(
            parse("0[0,2-3]").expect("list"),
            (Some(set(&[0, 2, 3])), None)
        );
        assert_eq!(parse("0[0-3/2]").expect("step"), (Some(set(&[0, 2])), None));
        assert_eq!(parse("N 0[1]").expect("node"), (Some(set(&[2, 3])), None));
        let (cpus, warning) = parse("0[0] 1[2,3]").expect("two partitions");
        assert_eq!(cpus, Some(set(&[0, 2, 3])));
        assert_eq!(
            warning.as_deref(),
            Some(
                "cpu_pattern has 2 partitions; lnetd runs one, so its threads run on the CPUs \
                 of all of them (0,2-3)"
            )
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let cases = [
            (
                "0[4]",
                "CPU 4 is not one lnetd may run on (online and allowed: 0-3)",
            ),
            ("1[0]", "partition 1 where partition 0 was expected"),
            ("0[0] 0[1]", "partition 0 where partition 1 was expected"),
            ("0[]", "partition 0 is empty"),
            ("0[1] 1[1]", "CPU 1 is in two partitions"),
            ("0[x]", "\"x\" is not a number or a range a-b or a-b/step"),
            ("0[3-1]", "range \"3-1\" is in the wrong order (3 > 1)"),
            (
                "0[0-4000000000]",
                "4000000000 in \"0-4000000000\" is out of range 0..8191",
            ),
            ("0[*]", "\"*\" is not allowed here"),
            ("0[0,,1]", "empty element"),
            ("0[1", "no ] in"),
            ("x[1]", "\"x\" is not a partition number"),
            ("N 0[5]", "NUMA node 5 has no CPUs here"),
            ("0[1] 2", "no [ after \"2\""),
        ];
        for (p, want) in cases {
            let e = parse(p).expect_err(p);
            assert!(e.contains(want), "{p}: {e}");
            assert!(e.starts_with(&format!("{p:?}: ")), "{e}");
            assert!(e.contains("e.g. \"0[0,1] 1[2-3]\""), "{e}");
        }
    }

    #[test]
    fn cpu_lists_print_as_linux_writes_them() {
        assert_eq!(show_list(&set(&[0, 1, 2, 3, 6, 8, 9])), "0-3,6,8-9");
        assert_eq!(show_list(&set(&[])), "");
    }

    /// The process is bound, threads started before and after included.
    /// Run in a child process of its own, so the test binary's other
    /// threads keep their CPUs.
    #[test]
    fn binding_reaches_every_thread() {
        if let Some(cpu) = std::env::var_os("LNETD_CPT_CHILD") {
            let cpu: usize = cpu.to_str().and_then(|s| s.parse().ok()).expect("cpu");
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let before = std::thread::spawn(move || {
                let _ = rx.recv();
                allowed_cpus().expect("affinity")
            });
            bind_process(&set(&[cpu])).expect("bind");
            let after = std::thread::spawn(|| allowed_cpus().expect("affinity"));
            tx.send(()).expect("send");
            assert_eq!(before.join().expect("before"), set(&[cpu]));
            assert_eq!(after.join().expect("after"), set(&[cpu]));
            assert_eq!(allowed_cpus().expect("affinity"), set(&[cpu]));
            return;
        }
        let cpu = *allowed_cpus()
            .expect("affinity")
            .iter()
            .last()
            .expect("a CPU");
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "cpt::tests::binding_reaches_every_thread"])
            .env("LNETD_CPT_CHILD", cpu.to_string())
            .output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

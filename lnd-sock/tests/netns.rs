//! Two nodes in two network namespaces joined by a veth pair, each node a
//! child process (this test binary re-run inside `ip netns exec`) with one
//! NI of lnd-sock on its veth interface, with the real defaults: port 988,
//! `accept=secure`, privileged source ports; and the same pair with the link
//! set down and up again (the NIs report their link state and A's
//! connections close with the link). Root only: `#[ignore]`d, run with
//! `cargo test -p lnd-sock --test netns -- --ignored`.
//!
//! [`NetNs`] and [`Veth`] (lnet-tests' shared guards) remove namespaces and
//! links on drop, also when the test fails.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lnet_tests::netns::{NetNs, Veth};
use support::*;

/// Waits up to `t` for a node process (killed after that) and returns its
/// output; `Ok` when it exited 0 and printed `NODE-OK`. `lines`: the
/// child's standard output when [`lines_of`] took it.
fn wait_child(
    mut c: Child,
    t: Duration,
    who: &str,
    lines: Option<std::sync::mpsc::Receiver<String>>,
) -> Result<String, String> {
    let deadline = Instant::now() + t;
    loop {
        match c.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = c.kill();
                break;
            }
        }
    }
    let out = c.wait_with_output().map_err(|e| format!("{who}: {e}"))?;
    // The reader thread ends with the output; collect what it read.
    let stdout = match lines {
        Some(rx) => rx.iter().collect::<Vec<_>>().join("\n"),
        None => String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    let text = format!(
        "{who} stdout:\n{stdout}\n{who} stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("NODE-OK") {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn two_nodes_in_namespaces() {
    if std::env::var_os("LNDSOCK_NODE").is_some() {
        // This binary re-run inside a namespace: one of the two nodes.
        return netns_node();
    }
    // Asked to run (`--ignored`), it runs or fails: never a silent pass.
    assert!(
        is_root(),
        "two_nodes_in_namespaces needs root (it creates network namespaces): run it as \
         root, as scripts/test.sh does"
    );
    let tag = std::process::id() % 100_000;
    let na = NetNs::new(&format!("lsk{tag}a")).expect("namespace a");
    let nb = NetNs::new(&format!("lsk{tag}b")).expect("namespace b");
    let (ia, ib) = (format!("lsa{tag}"), format!("lsb{tag}"));
    let _veth =
        Veth::new((&na, &ia, "10.213.7.1/24"), (&nb, &ib, "10.213.7.2/24")).expect("veth pair");
    let exe = std::env::current_exe().expect("test binary");
    let node = |ns: &NetNs, role: &str, ifname: &str, peer: &str| {
        ns.spawn(
            Command::new(&exe)
                .args([
                    "--exact",
                    "two_nodes_in_namespaces",
                    "--ignored",
                    "--nocapture",
                ])
                .env("LNDSOCK_NODE", role)
                .env("LNDSOCK_IF", ifname)
                .env("LNDSOCK_PEER", peer),
        )
        .expect("spawn node")
    };
    // A sends at once: start it only when B listens.
    let mut b = node(&nb, "B", &ib, "10.213.7.1@tcp");
    let out_b = lines_of(&mut b);
    if let Err(e) = wait_line(&out_b, "READY", Duration::from_secs(60)) {
        let rb = wait_child(b, Duration::from_secs(5), "node B", Some(out_b));
        panic!("node B never started: {e}\n{}", rb.unwrap_or_else(|e| e));
    }
    let a = node(&na, "A", &ia, "10.213.7.2@tcp");
    let ra = wait_child(a, Duration::from_secs(60), "node A", None);
    let rb = wait_child(b, Duration::from_secs(60), "node B", Some(out_b));
    if let Err(e) = &ra {
        panic!("node A failed:\n{e}\n{}", rb.as_ref().unwrap_or_else(|e| e));
    }
    if let Err(e) = &rb {
        panic!("node B failed:\n{e}");
    }
}

/// One node: `two_nodes_in_namespaces` re-run inside a namespace with
/// `LNDSOCK_NODE`, `LNDSOCK_IF` and `LNDSOCK_PEER` set.
fn netns_node() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (role, ifname, peer) = (var("LNDSOCK_NODE"), var("LNDSOCK_IF"), var("LNDSOCK_PEER"));
    let peer: lnd_api::Nid = peer.parse().expect("peer NID");
    let me = start(&role, config(TCP, &ifname, &[], &[]), RecvMode::Sync).expect("NI up");
    println!("{role}: {} on {ifname}", me.nid());
    // The NI is up and its acceptor listening: the parent starts A now.
    println!("READY");
    let t = Duration::from_secs(30);
    let sizes = [0usize, 4096, 1 << 20];
    if role == "A" {
        for (i, n) in sizes.iter().enumerate() {
            let c = send_once_link_is_up(&me, peer, &pattern(*n, i as u8), t);
            assert!(c.is_ok(), "message of {n} bytes: {c:?}");
        }
        let got = me.host.wait_received(1, t);
        assert_eq!(got[0].data, pattern(777, 9));
        assert_eq!(got[0].from, peer);
    } else {
        let got = me.host.wait_received(sizes.len(), t);
        for (i, n) in sizes.iter().enumerate() {
            assert!(
                got.iter()
                    .any(|r| r.data == pattern(*n, i as u8) && r.from == peer),
                "message of {n} bytes"
            );
        }
        let (tok, m) = put(&me, peer, &pattern(777, 9));
        me.ni.send(m).expect("send");
        assert!(me.host.wait_sent(&[tok], t)[0].is_ok());
        // Let A read it before going away.
        std::thread::sleep(Duration::from_millis(500));
    }
    let list = me.ni.ctl("conn_list", "").expect("conn_list");
    println!("{list}");
    me.shutdown();
    println!("NODE-OK");
}

/// Sends a PUT of `data` to `peer` and waits for its completion. A node
/// started right after its veth pair was made may see the carrier a moment
/// later (on a loaded machine): until then its link watcher says "down" and
/// a send is aborted locally (`-ENETDOWN`, nothing written), so such a send
/// is made again, for up to `t`.
fn send_once_link_is_up(
    me: &TestNi,
    peer: lnd_api::Nid,
    data: &[u8],
    t: Duration,
) -> lnd_api::Completion {
    let t0 = Instant::now();
    loop {
        let (tok, m) = put(me, peer, data);
        me.ni.send(m).expect("send");
        let c = me.host.wait_sent(&[tok], t)[0];
        let not_up_yet = c.errno == -lnd_api::errno::ENETDOWN
            && c.health == lnd_api::HealthStatus::LOCAL_ABORTED;
        if !not_up_yet || t0.elapsed() > t {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a child's standard output until a line equal to `word`; `Err`
/// after `t`, or if the output ends first.
fn wait_line(
    out: &std::sync::mpsc::Receiver<String>,
    word: &str,
    t: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(l) if l.trim() == word => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("no {word:?} line ({e})")),
        }
    }
}

/// The lines a child prints, through a channel (read by a thread).
fn lines_of(c: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = c.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The link of an NI goes down and up (`ip link set down` on A's end of the
/// veth; B's end loses its carrier): both NIs report `link_state(false)`
/// then `link_state(true)`, A's connection to B is closed at once with the
/// reason in the log, and once the link is back a new send gets through.
#[test]
#[ignore = "needs root: creates network namespaces"]
fn link_down_and_up_are_reported() {
    if std::env::var_os("LNDSOCK_LINK_NODE").is_some() {
        return link_node();
    }
    assert!(
        is_root(),
        "link_down_and_up_are_reported needs root (it creates network namespaces): run it \
         as root, as scripts/test.sh does"
    );
    let tag = std::process::id() % 100_000;
    let na = NetNs::new(&format!("lsl{tag}a")).expect("namespace a");
    let nb = NetNs::new(&format!("lsl{tag}b")).expect("namespace b");
    let (ia, ib) = (format!("lla{tag}"), format!("llb{tag}"));
    let veth =
        Veth::new((&na, &ia, "10.213.8.1/24"), (&nb, &ib, "10.213.8.2/24")).expect("veth pair");
    let exe = std::env::current_exe().expect("test binary");
    // Made once B saw its carrier back: A sends its next message only then
    // (a connection B takes while it still thinks its link is down is
    // refused, and the message A wrote into it is lost, as over TCP).
    let b_up = std::env::temp_dir().join(format!("lsl{tag}-b-up"));
    let _ = std::fs::remove_file(&b_up);
    let node = |ns: &NetNs, role: &str, ifname: &str, peer: &str| {
        ns.spawn(
            Command::new(&exe)
                .args([
                    "--exact",
                    "link_down_and_up_are_reported",
                    "--ignored",
                    "--nocapture",
                ])
                .env("LNDSOCK_B_UP", &b_up)
                .env("LNDSOCK_LINK_NODE", role)
                .env("LNDSOCK_IF", ifname)
                .env("LNDSOCK_PEER", peer),
        )
        .expect("spawn node")
    };
    let mut b = node(&nb, "B", &ib, "10.213.8.1@tcp");
    let out_b = lines_of(&mut b);
    if let Err(e) = wait_line(&out_b, "READY", Duration::from_secs(60)) {
        let rb = wait_child(b, Duration::from_secs(5), "node B", Some(out_b));
        panic!("node B never started: {e}\n{}", rb.unwrap_or_else(|e| e));
    }
    let mut a = node(&na, "A", &ia, "10.213.8.2@tcp");
    let out = lines_of(&mut a);
    let t = Duration::from_secs(60);
    // Down (once both nodes counted their link states so far) until both
    // nodes saw it, then up.
    let steps = wait_line(&out, "CONNECTED", t)
        .and_then(|()| wait_line(&out_b, "SETTLED", t))
        .and_then(|()| veth.set_up(false))
        .and_then(|()| wait_line(&out, "DOWN-SEEN", t))
        .and_then(|()| wait_line(&out_b, "DOWN-SEEN", t))
        .and_then(|()| veth.set_up(true))
        .and_then(|()| wait_line(&out_b, "UP-SEEN", t))
        .and_then(|()| std::fs::write(&b_up, b"").map_err(|e| format!("{}: {e}", b_up.display())));
    if let Err(e) = steps {
        let ra = wait_child(a, t, "node A", None);
        let rb = wait_child(b, t, "node B", None);
        panic!(
            "{e}\n{}\n{}",
            ra.unwrap_or_else(|e| e),
            rb.unwrap_or_else(|e| e)
        );
    }
    // A's output goes to `out`: its last line is the verdict.
    let (a_ok, b_ok) = (
        wait_line(&out, "NODE-OK", t),
        wait_line(&out_b, "NODE-OK", t),
    );
    let ra = wait_child(a, t, "node A", None);
    let rb = wait_child(b, t, "node B", None);
    let _ = std::fs::remove_file(&b_up);
    if let Err(e) = a_ok {
        panic!(
            "node A: {e}\n{}\n{}",
            ra.unwrap_or_else(|e| e),
            rb.unwrap_or_else(|e| e)
        );
    }
    if let Err(e) = b_ok {
        panic!("node B: {e}\n{}", rb.unwrap_or_else(|e| e));
    }
}

/// One node of `link_down_and_up_are_reported`, re-run inside a namespace.
fn link_node() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (role, ifname, peer) = (
        var("LNDSOCK_LINK_NODE"),
        var("LNDSOCK_IF"),
        var("LNDSOCK_PEER"),
    );
    let peer: lnd_api::Nid = peer.parse().expect("peer NID");
    let me = start(&role, config(TCP, &ifname, &[], &[]), RecvMode::Sync).expect("NI up");
    println!("READY");
    let t = Duration::from_secs(30);
    if role == "A" {
        let c = send_once_link_is_up(&me, peer, &pattern(4096, 1), t);
        assert!(c.is_ok(), "{c:?}");
        let conns = wait_conns(&me.ni, 1, t);
        assert!(conns.contains("remote: 10.213.8.2:"), "{conns}");
        // Reports from before: none when the link was up at start-up; on a
        // loaded machine the carrier may have come a moment after the NI
        // started (down, then up): wait for the up, so the cut below is a
        // new state.
        let n0 = settled_links(&me, t);
        println!("CONNECTED");
        assert_eq!(me.host.wait_links(n0 + 1, t)[n0..], [false]);
        let why = me.host.wait_log("link down", t);
        assert!(
            why.contains(&format!("link down: interface {ifname} is down")),
            "{why}"
        );
        // The connection is closed with the link (right after LNet hears of
        // it), not left to time out (sock_timeout is 50 s).
        let t0 = Instant::now();
        loop {
            let list = me.ni.ctl("conn_list", "").expect("conn_list");
            if list == "conns:\n" {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{list}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // While the link is down a send fails at once as a local abort
        // (LNet resends it through another NI), not as the peer's fault
        // after a connect through the dead link.
        let (tok, m) = put(&me, peer, &pattern(100, 3));
        let t0 = Instant::now();
        me.ni.send(m).expect("send while down");
        let c = me.host.wait_sent(&[tok], t)[0];
        assert_eq!(
            (c.errno, c.health),
            (
                -lnd_api::errno::ENETDOWN,
                lnd_api::HealthStatus::LOCAL_ABORTED
            )
        );
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        println!("DOWN-SEEN");
        assert_eq!(me.host.wait_links(n0 + 2, t)[n0..], [false, true]);
        let b_up = std::path::PathBuf::from(var("LNDSOCK_B_UP"));
        let t0 = Instant::now();
        while !b_up.exists() {
            assert!(t0.elapsed() < t, "B never saw its link back");
            std::thread::sleep(Duration::from_millis(20));
        }
        // B answers once it has both: A stays until then. The first send
        // after the link returns must get through: a handshake that began
        // before the cut and ended after it once gave A a connection whose
        // other end B had closed in its own sweep, and this message went
        // onto it (lost, or failed with ECONNRESET; about 1 run in 8 beside
        // `stress-ng --cpu 4`).
        let (tok, m) = put(&me, peer, &pattern(8192, 2));
        me.ni.send(m).expect("send after link up");
        let c = me.host.wait_sent(&[tok], t)[0];
        assert!(
            c.is_ok(),
            "A: the send after the link came back failed: {c:?}\n{:#?}",
            me.host.logs()
        );
        let got = me.host.wait_received(1, t);
        assert_eq!(got[0].data, pattern(777, 9));
    } else {
        // B's end loses its carrier, then gets it back, after the first
        // message came through.
        let first = me.host.wait_received(1, t);
        assert_eq!(first[0].data, pattern(4096, 1));
        let n0 = settled_links(&me, t);
        // The link is cut only after this line: a cut B had not counted
        // yet would look like a start-up "down" still waiting for its "up".
        println!("SETTLED");
        assert_eq!(me.host.wait_links(n0 + 1, t)[n0..], [false]);
        println!("DOWN-SEEN");
        assert_eq!(me.host.wait_links(n0 + 2, t)[n0..], [false, true]);
        println!("UP-SEEN");
        let why = me.host.wait_log("link down", t);
        assert!(
            why.contains(&format!("link down: interface {ifname} has no carrier")),
            "{why}"
        );
        let got = me.host.wait_received(2, t);
        assert_eq!(got[0].data, pattern(4096, 1));
        assert_eq!(got[1].data, pattern(8192, 2));
        let (tok, m) = put(&me, peer, &pattern(777, 9));
        me.ni.send(m).expect("send");
        assert!(me.host.wait_sent(&[tok], t)[0].is_ok());
        // Let A read it before going away.
        std::thread::sleep(Duration::from_millis(500));
    }
    me.shutdown();
    println!("NODE-OK");
}

/// The number of (deduplicated) link states reported so far, once the last
/// one is "up": a "down" seen while the link came up at start-up is followed
/// by its "up" before the test cuts the link.
fn settled_links(me: &TestNi, t: Duration) -> usize {
    let so_far = me.host.wait_links(0, t);
    match so_far.last() {
        Some(false) => {
            let n = so_far.len() + 1;
            assert_eq!(me.host.wait_links(n, t).last(), Some(&true));
            n
        }
        _ => so_far.len(),
    }
}

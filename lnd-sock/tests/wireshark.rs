//! An independent check of what lnd-sock puts on the wire: Wireshark's LNet
//! dissector (Debian's `tshark`) decodes a capture of an LNet ping (a GET on
//! portal 0 with match bits `0x8000000000000000`, and its REPLY) and of a PUT
//! with its ACK between two NIs on 127.0.0.1 and 127.0.0.2, and the test
//! compares every decoded field with what was sent.
//!
//! The test plays LNet itself with the test-double hosts of `support`: it
//! builds the four headers (as the engine would) and hands them to the NIs.
//!
//! Root only (capturing needs it): `#[ignore]`d, run with
//! `cargo test -p lnd-sock --test wireshark -- --ignored`. Run that way it
//! fails, saying why, when not root or when `tshark` is missing
//! (`scripts/setup.sh` installs it; `scripts/test.sh` runs it as root).
//!
//! What the dissector (Wireshark 4.0) can and cannot do shapes the test:
//! * it decodes LNet on port 988 only, unless told `-d tcp.port==PORT,lnet`;
//! * it does not decode the acceptor request or the socklnd hello, nor
//!   anything else in a TCP segment that begins with them: the connections
//!   are set up (hellos exchanged) before the capture starts, and the test
//!   checks the capture holds no SYN;
//! * it knows only 8-byte NIDs: protocol V3 over IPv4 here;
//! * its two pid fields carry swapped labels (`lnet.src_pid` is the first
//!   one on the wire, the destination's), so pids are compared in wire order;
//! * it files the socklnd checksum under `lnet.ib_csum`;
//! * it reads an ACK's wire handle big-endian (other handles little-endian);
//! * it passes a PUT's payload to a dissector chosen by portal (Lustre's,
//!   disabled here as the payload is no RPC) and flags the payload as
//!   Malformed when none takes it: that one remark is expected.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::hdr::BODY_SIZE;
use lnd_api::{Hdr, MsgToken, MsgType, Nid, Payload, TxMsg};
use support::*;

const T: Duration = Duration::from_secs(20);
/// Match bits of a ping (`LNET_PROTO_PING_MATCHBITS`).
const PING_BITS: u64 = 0x8000_0000_0000_0000;
/// A's pid (B has the usual [`PID`], 12345), so that the pids differ.
const A_PID: u32 = 12346;
/// The PUT's portal: not 0 (ping, push) nor a selftest portal (50-52).
const PUT_PORTAL: u32 = 7;
const PUT_BITS: u64 = 0x0123_4567_89ab_cdef;
const PUT_HDR_DATA: u64 = 0x00c0_ffee;
const PUT_LEN: usize = 300;
/// What a ping asks for (`sink_length`) and what the REPLY carries.
const SINK_LEN: u32 = 272;
const REPLY_LEN: usize = 56;
/// Wire handles of the initiator's MDs: the GET's sink, the PUT's source.
const GET_WMD: (u64, u64) = (0x1111_2222_3333_4444, 0x0000_0000_0000_0a01);
const PUT_WMD: (u64, u64) = (0x1111_2222_3333_4444, 0x0000_0000_0000_0a02);
/// tshark's expert info group "Malformed" (`_ws.expert.group`).
const MALFORMED: u64 = 0x0700_0000;

fn have_tshark() -> bool {
    Command::new("tshark")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Sends `sig` (a `kill` signal name) to process `pid`, or to the process
/// group `pid` when `group`.
fn signal(pid: u32, sig: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A running `tshark -i lo -w FILE`, in its own process group (with the
/// `dumpcap` it starts). Dropping it ends the group and removes the file.
struct Capture {
    child: Option<Child>,
    path: PathBuf,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Capture {
    /// Starts capturing TCP traffic on `port` between 127.0.0.1 and
    /// 127.0.0.2, and waits until tshark says it is capturing.
    fn start(port: u16, path: &Path) -> Result<Capture, String> {
        use std::os::unix::process::CommandExt;
        let filter = format!("tcp port {port} and host 127.0.0.1 and host 127.0.0.2");
        let _ = std::fs::remove_file(path);
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", &filter, "-w"])
            .arg(path)
            // A bound, should the test never stop it.
            .args(["-a", "duration:120"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start tshark: {e}"))?;
        let err = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut cap = Capture {
            child: Some(child),
            path: path.to_path_buf(),
            stderr: rx,
            log: Vec::new(),
        };
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cap.stderr.recv_timeout(left) {
                Ok(l) => {
                    let started = l.contains("Capturing on");
                    cap.log.push(l);
                    if started {
                        break;
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "tshark did not start capturing on lo:\n{}",
                        cap.log.join("\n")
                    ))
                }
            }
        }
        // dumpcap is running; give the filter a moment to be attached.
        std::thread::sleep(Duration::from_millis(300));
        Ok(cap)
    }

    /// Stops the capture (SIGTERM, as Ctrl-C would) and waits for tshark to
    /// write the file and exit; returns its messages.
    fn stop(&mut self) -> Result<String, String> {
        let mut child = self.child.take().expect("capture running");
        signal(child.id(), "TERM", false);
        let deadline = Instant::now() + T;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break None,
            }
        };
        if status.is_none() {
            signal(child.id(), "KILL", true);
            let _ = child.wait();
        }
        self.log.extend(self.stderr.try_iter());
        let log = self.log.join("\n");
        match status {
            Some(_) => Ok(log),
            None => Err(format!("tshark did not stop within {T:?}:\n{log}")),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "KILL", true);
            let _ = c.wait();
        }
        if std::env::var_os("LND_SOCK_KEEP_PCAP").is_some() {
            eprintln!("capture kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs `tshark -r FILE -d tcp.port==PORT,lnet ARGS`; returns stdout.
fn tshark_read(path: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-d", &format!("tcp.port=={port},lnet")])
        // The test's payloads are no Lustre RPCs.
        .args(["--disable-protocol", "lustre"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tshark -r");
    assert!(
        out.status.success(),
        "tshark -r {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fields read per frame, in `-e` order. A NID is three fields
/// (`lnet.nid.addr`, `.type`, `.net_interface`), dest first then src, as in
/// the header; `lnet.src_nid`/`lnet.dest_nid` are labels without a value.
const FIELDS: [&str; 21] = [
    "frame.number",
    "ip.src",
    "ip.dst",
    "lnet.ksm_type",
    "lnet.ib_csum",
    "lnet.nid.addr",
    "lnet.nid.type",
    "lnet.nid.net_interface",
    "lnet.src_pid",
    "lnet.dest_pid",
    "lnet.msg_type",
    "lnet.payload_length",
    "lnet.msg_dst_interface_cookie",
    "lnet.msg_dst_object_cookie",
    "lnet.msg_dst_match_bits",
    "lnet.ptl_index",
    "lnet.msg_hdr_data",
    "lnet.offset",
    "lnet.src_offset",
    "lnet.sink_length",
    "lnet.msg_length",
];

/// One LNet message as the dissector decoded it. `None`: the dissector
/// shows no such field for this message type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    /// IP source and destination of the frame.
    ips: (String, String),
    /// `lnet.ksm_type`: 0xc1 (KSOCK_MSG_LNET).
    ksm_type: u64,
    /// The socklnd checksum (filed by the dissector as `lnet.ib_csum`).
    csum: u64,
    msg_type: u64,
    dest_nid: String,
    src_nid: String,
    /// The two pid fields in wire order (dest, src): the dissector labels
    /// the first `lnet.src_pid` and the second `lnet.dest_pid`.
    pids: (u64, u64),
    payload_length: u64,
    /// (interface, object) cookies of the wire handle.
    wmd: (u64, u64),
    match_bits: Option<u64>,
    ptl_index: Option<u64>,
    hdr_data: Option<u64>,
    offset: Option<u64>,
    src_offset: Option<u64>,
    sink_length: Option<u64>,
    mlength: Option<u64>,
}

fn num(s: &str) -> u64 {
    let s = s.trim();
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|_| panic!("tshark printed {s:?} where a number was expected"))
}

/// Parses tshark's `-T fields -E occurrence=a` output (one line per frame,
/// repeated values joined by `,`): one LNet message per frame, as the test
/// sends each only after the previous one arrived.
fn decode(text: &str) -> Vec<Decoded> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split(',').filter(|v| !v.is_empty()).collect())
            .collect();
        assert_eq!(cols.len(), FIELDS.len(), "tshark line {line:?}");
        let all = |name: &str| -> &[&str] {
            &cols[FIELDS
                .iter()
                .position(|n| *n == name)
                .expect("a field of FIELDS")]
        };
        let opt = |name: &str| -> Option<u64> {
            match all(name) {
                [] => None,
                [v] => Some(num(v)),
                v => panic!("{name}: {} values in one frame: {line:?}", v.len()),
            }
        };
        let one = |name: &str| opt(name).unwrap_or_else(|| panic!("no {name} in {line:?}"));
        let text1 = |name: &str| match all(name) {
            [v] => v.to_string(),
            v => panic!("{name}: {} values in one frame: {line:?}", v.len()),
        };
        let (addr, typ, ifc) = (
            all("lnet.nid.addr"),
            all("lnet.nid.type"),
            all("lnet.nid.net_interface"),
        );
        assert!(
            addr.len() == 2 && typ.len() == 2 && ifc.len() == 2,
            "one LNet message (two NIDs) per frame: {line:?}"
        );
        let nid = |k: usize| {
            format!(
                "{}@{}{}",
                addr[k],
                net_name(num(typ[k])),
                match num(ifc[k]) {
                    0 => String::new(),
                    x => x.to_string(),
                }
            )
        };
        out.push(Decoded {
            ips: (text1("ip.src"), text1("ip.dst")),
            ksm_type: one("lnet.ksm_type"),
            csum: one("lnet.ib_csum"),
            msg_type: one("lnet.msg_type"),
            dest_nid: nid(0),
            src_nid: nid(1),
            pids: (one("lnet.src_pid"), one("lnet.dest_pid")),
            payload_length: one("lnet.payload_length"),
            wmd: (
                one("lnet.msg_dst_interface_cookie"),
                one("lnet.msg_dst_object_cookie"),
            ),
            match_bits: opt("lnet.msg_dst_match_bits"),
            ptl_index: opt("lnet.ptl_index"),
            hdr_data: opt("lnet.msg_hdr_data"),
            offset: opt("lnet.offset"),
            src_offset: opt("lnet.src_offset"),
            sink_length: opt("lnet.sink_length"),
            mlength: opt("lnet.msg_length"),
        });
    }
    out
}

fn net_name(lnd_type: u64) -> String {
    u8::try_from(lnd_type)
        .ok()
        .and_then(lnd_api::nid::lnd_name)
        .map(str::to_string)
        .unwrap_or_else(|| format!("lnd{lnd_type}"))
}

fn wmd_bytes(w: (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&w.0.to_le_bytes());
    b[8..].copy_from_slice(&w.1.to_le_bytes());
    b
}

/// One direction of traffic: who sends, with which pid, to whom.
struct Dir<'a> {
    from: &'a TestNi,
    src_pid: u32,
    to: Nid,
    dest_pid: u32,
}

/// A message in direction `d` with `body`, and `data` as payload.
fn msg(token: u64, d: &Dir<'_>, t: MsgType, body: [u8; BODY_SIZE], data: &[u8]) -> TxMsg {
    let payload: Payload = if data.is_empty() {
        Payload::new()
    } else {
        fragments(data.len()).into_iter().collect()
    };
    payload.write_at(0, data).expect("fresh buffers");
    TxMsg {
        token: MsgToken(token),
        hdr: Hdr {
            dest_nid: d.to,
            src_nid: d.from.nid(),
            dest_pid: d.dest_pid,
            src_pid: d.src_pid,
            msg_type: t,
            payload_length: data.len() as u32,
            body,
        },
        target: d.to,
        target_pid: d.dest_pid,
        payload,
        rx: ROption::RNone,
    }
}

fn send(from: &TestNi, m: TxMsg) {
    let tok = m.token.0;
    from.ni.send(m).expect("send");
    let c = from.host.wait_sent(&[tok], T);
    assert!(
        c[0].is_ok(),
        "{}: send of {tok:#x}: {:?}",
        from.host.0.name,
        c[0]
    );
}

/// Waits for the `n`-th message `to` receives and returns it.
fn nth_received(to: &TestNi, n: usize) -> Received {
    let got = to.host.wait_received(n, T);
    let r = got[n - 1].clone();
    assert!(r.status.is_ok(), "receive: {:?}", r.status);
    r
}

#[test]
#[ignore = "needs root: captures on lo with tshark"]
fn tshark_decodes_ping_and_put() {
    // Asked to run (`--ignored`), it runs or fails: never a silent pass.
    assert!(
        is_root(),
        "tshark_decodes_ping_and_put needs root (capturing on lo): run it as root, as \
         scripts/test.sh does"
    );
    assert!(
        have_tshark(),
        "tshark_decodes_ping_and_put needs tshark: install it (scripts/setup.sh, or \
         apt-get install tshark)"
    );
    let port = test_port();
    let p = params(port);
    // A runs with another pid than B, so that the two pid fields differ.
    let mut ca = config(TCP, "127.0.0.1", &p, &[]);
    ca.pid = A_PID;
    let a = start("A", ca, RecvMode::Sync).expect("start A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("start B");
    let (na, nb) = (a.nid(), b.nid());
    let ab = Dir {
        from: &a,
        src_pid: A_PID,
        to: nb,
        dest_pid: PID,
    };
    let ba = Dir {
        from: &b,
        src_pid: PID,
        to: na,
        dest_pid: A_PID,
    };

    // Set the connections up (acceptor requests and hellos) before the
    // capture: a small and a bulk PUT each way.
    let mut tok = 0xA000_0000u64;
    let mut next = || {
        tok += 1;
        tok
    };
    let (mut n_a, mut n_b) = (0, 0);
    for len in [8usize, 4096] {
        let body = [0; BODY_SIZE];
        send(&a, msg(next(), &ab, MsgType::PUT, body, &pattern(len, 1)));
        n_b += 1;
        nth_received(&b, n_b);
        send(&b, msg(next(), &ba, MsgType::PUT, body, &pattern(len, 2)));
        n_a += 1;
        nth_received(&a, n_a);
    }
    // A opens its typed connections in the background: wait until both
    // ends list all three, so that none is set up during the capture.
    let deadline = Instant::now() + T;
    for ni in [&a, &b] {
        loop {
            let conns = ni.ni.ctl("conn_list", "").expect("conn_list");
            if ["control", "bulk_in", "bulk_out"]
                .iter()
                .all(|t| conns.contains(&format!("type: {t}\n")))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: typed connections not all up:\n{conns}",
                ni.host.0.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    let path = std::env::temp_dir().join(format!("lnd-sock-tshark-{}.pcapng", std::process::id()));
    let mut cap = Capture::start(port, &path).expect("capture");

    // Ping: A GETs B's ping buffer, B REPLYs.
    let mut get = [0u8; BODY_SIZE];
    get[0..16].copy_from_slice(&wmd_bytes(GET_WMD));
    get[16..24].copy_from_slice(&PING_BITS.to_le_bytes());
    get[24..28].copy_from_slice(&0u32.to_le_bytes()); // portal 0
    get[32..36].copy_from_slice(&SINK_LEN.to_le_bytes());
    send(&a, msg(next(), &ab, MsgType::GET, get, &[]));
    n_b += 1;
    let g = nth_received(&b, n_b);
    assert_eq!((g.hdr.msg_type, g.hdr.body), (MsgType::GET, get));
    let mut reply = [0u8; BODY_SIZE];
    reply[0..16].copy_from_slice(&g.hdr.body[0..16]); // the GET's return_wmd
    let mut info = pattern(REPLY_LEN, 3);
    info[0..4].copy_from_slice(&0x7069_6e67u32.to_le_bytes()); // ping magic
    send(&b, msg(next(), &ba, MsgType::REPLY, reply, &info));
    n_a += 1;
    let r = nth_received(&a, n_a);
    assert_eq!((r.hdr.msg_type, &r.data), (MsgType::REPLY, &info));

    // A PUT that wants an ACK, and the ACK.
    let mut put = [0u8; BODY_SIZE];
    put[0..16].copy_from_slice(&wmd_bytes(PUT_WMD));
    put[16..24].copy_from_slice(&PUT_BITS.to_le_bytes());
    put[24..32].copy_from_slice(&PUT_HDR_DATA.to_le_bytes());
    put[32..36].copy_from_slice(&PUT_PORTAL.to_le_bytes());
    let data = pattern(PUT_LEN, 4);
    send(&a, msg(next(), &ab, MsgType::PUT, put, &data));
    n_b += 1;
    let pm = nth_received(&b, n_b);
    assert_eq!((pm.hdr.body, &pm.data), (put, &data));
    let mut ack = [0u8; BODY_SIZE];
    ack[0..16].copy_from_slice(&pm.hdr.body[0..16]); // the PUT's ack_wmd
    ack[16..24].copy_from_slice(&pm.hdr.body[16..24]); // its match bits
    ack[24..28].copy_from_slice(&(PUT_LEN as u32).to_le_bytes()); // mlength
    send(&b, msg(next(), &ba, MsgType::ACK, ack, &[]));
    n_a += 1;
    let k = nth_received(&a, n_a);
    assert_eq!(k.hdr.msg_type, MsgType::ACK);

    // Let the last segments reach the capture, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    let log = cap.stop().expect("stop capture");
    a.shutdown();
    b.shutdown();

    let syn = tshark_read(&path, port, &["-Y", "tcp.flags.syn == 1"]);
    assert!(
        syn.trim().is_empty(),
        "a connection was opened during the capture (the dissector skips a \
         segment that begins with a hello):\n{syn}"
    );

    let mut args = vec!["-Y", "lnet.msg_type", "-T", "fields", "-E", "occurrence=a"];
    for f in FIELDS {
        args.extend(["-e", f]);
    }
    let text = tshark_read(&path, port, &args);
    let summary = tshark_read(&path, port, &[]);
    eprintln!("{log}\n{summary}\n{}\n{text}", FIELDS.join("\t"));
    let got = decode(&text);

    let ip = |n: Nid| n.to_string().trim_end_matches("@tcp").to_string();
    let base = |d: &Dir<'_>, t: MsgType, len: usize, wmd: (u64, u64)| Decoded {
        ips: (ip(d.from.nid()), ip(d.to)),
        ksm_type: 0xc1,
        csum: 0,
        msg_type: u64::from(t.0),
        dest_nid: d.to.to_string(),
        src_nid: d.from.nid().to_string(),
        pids: (u64::from(d.dest_pid), u64::from(d.src_pid)),
        payload_length: len as u64,
        wmd,
        match_bits: None,
        ptl_index: None,
        hdr_data: None,
        offset: None,
        src_offset: None,
        sink_length: None,
        mlength: None,
    };
    let expected = [
        (
            "GET (ping)",
            Decoded {
                match_bits: Some(PING_BITS),
                ptl_index: Some(0),
                src_offset: Some(0),
                sink_length: Some(u64::from(SINK_LEN)),
                ..base(&ab, MsgType::GET, 0, GET_WMD)
            },
        ),
        ("REPLY", base(&ba, MsgType::REPLY, REPLY_LEN, GET_WMD)),
        (
            "PUT",
            Decoded {
                match_bits: Some(PUT_BITS),
                ptl_index: Some(u64::from(PUT_PORTAL)),
                hdr_data: Some(PUT_HDR_DATA),
                offset: Some(0),
                ..base(&ab, MsgType::PUT, PUT_LEN, PUT_WMD)
            },
        ),
        (
            "ACK",
            Decoded {
                match_bits: Some(PUT_BITS),
                mlength: Some(PUT_LEN as u64),
                // The dissector reads an ACK's handle big-endian (the other
                // types' little-endian): the PUT's handle, byte-swapped.
                ..base(
                    &ba,
                    MsgType::ACK,
                    0,
                    (PUT_WMD.0.swap_bytes(), PUT_WMD.1.swap_bytes()),
                )
            },
        ),
    ];
    assert_eq!(
        got.len(),
        expected.len(),
        "LNet messages tshark decoded:\n{text}"
    );
    for (g, (what, e)) in got.iter().zip(&expected) {
        assert_eq!(
            g, e,
            "{what} as tshark decodes it (left) and as sent (right)"
        );
    }

    // Nothing malformed but the PUT's payload: the dissector hands a PUT's
    // payload to a sub-dissector chosen by portal and, when none takes it,
    // reports the bytes it did not consume (here all of the payload, after
    // a PDU of exactly socklnd header + LNet header + payload). TCP's own
    // remarks (the capture starts mid-stream) are not looked at.
    let mut args = vec!["-Y", "_ws.expert", "-T", "fields", "-E", "occurrence=a"];
    args.extend([
        "-E",
        "aggregator=;",
        "-e",
        "frame.number",
        "-e",
        "lnet.msg_type",
    ]);
    args.extend(["-e", "_ws.expert.group", "-e", "_ws.expert.message"]);
    let experts = tshark_read(&path, port, &args);
    let mut malformed = Vec::new();
    for l in experts.lines().filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = l.split('\t').collect();
        assert_eq!(c.len(), 4, "tshark line {l:?}");
        let groups = c[2].split(';').map(num);
        for (g, m) in groups.zip(c[3].split(';')) {
            if g == MALFORMED {
                malformed.push(format!("frame {} (type {}): {m}", c[0], c[1]));
            }
        }
    }
    let msg_type_col = FIELDS
        .iter()
        .position(|f| *f == "lnet.msg_type")
        .expect("in FIELDS");
    let put_frame = text
        .lines()
        .find(|l| l.split('\t').nth(msg_type_col) == Some("1"))
        .and_then(|l| l.split('\t').next())
        .expect("the PUT's frame");
    let known = format!(
        "frame {put_frame} (type 1): Capture:{} offset:96 (length:0) msg_type:1 ib_type:00",
        24 + 72 + PUT_LEN
    );
    assert_eq!(malformed, [known], "malformed frames:\n{experts}");
}

//! The `lst stat` computation (selftest.md §5): two STAT samples of the same
//! nodes, compared node by node in order, give LNet message rates and
//! bandwidths per node; the printed figures are their average, minimum
//! (0 is never the minimum) and maximum. Single precision, like upstream's
//! `lst_cal_lnet_stat()`, so the printed digits match.

use super::LstNode;

/// Average, minimum and maximum of one figure over the nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// Mean over the nodes.
    pub avg: f32,
    /// Smallest non-zero value (0 if every value is 0).
    pub min: f32,
    /// Largest value.
    pub max: f32,
    total: f32,
}

impl Spread {
    fn add(&mut self, v: f32, n: u32) {
        self.total += v;
        // 0 counts as "no minimum yet" and never becomes the minimum
        // (selftest.md §5; upstream's order-dependent test can still end on
        // a 0 when it comes last, which the spec does not keep).
        if v != 0.0 && (self.min > v || self.min == 0.0) {
            self.min = v;
        }
        if self.max < v {
            self.max = v;
        }
        self.avg = self.total / n as f32;
    }
}

/// The figures of one group and sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatResult {
    /// Nodes that contributed.
    pub nodes: u32,
    /// Nodes whose RPC or framework status failed in either sample.
    pub failed: u32,
    /// The node list differs between the samples.
    pub changed: bool,
    /// Messages received per second.
    pub recv_rate: Spread,
    /// Messages sent per second.
    pub send_rate: Spread,
    /// Receive bandwidth, MiB/s (MB/s with `mbs`).
    pub recv_bw: Spread,
    /// Send bandwidth.
    pub send_bw: Spread,
    /// LNet errors counted by the nodes between the samples (summed).
    pub errors: u64,
    /// Messages the nodes dropped between the samples (summed).
    pub drops: u64,
}

/// Compares sample `cur` with the previous sample `prev` of the same target
/// (`mbs`: 10⁶-byte megabytes instead of MiB).
pub fn compute(prev: &[LstNode], cur: &[LstNode], mbs: bool) -> StatResult {
    let unit: f32 = if mbs { 1_000_000.0 } else { 1_048_576.0 };
    let mut r = StatResult {
        changed: prev.len() != cur.len(),
        ..StatResult::default()
    };
    for (new, old) in cur.iter().zip(prev) {
        if new.nid != old.nid {
            r.changed = true;
            break;
        }
        let (Some(n), Some(o)) = (new.counters(), old.counters()) else {
            r.failed += 1;
            continue;
        };
        let delta = n.fw.running_ms.wrapping_sub(o.fw.running_ms) as f32 / 1000.0;
        // No time between the samples (two STATs within a millisecond, or a
        // node that answered the same figures twice): no rate can be told,
        // the node counts 0 rather than inf/NaN.
        let per_sec = |d: f32| if delta > 0.0 { d / delta } else { 0.0 };
        let (ln, lo) = (&n.lnet, &o.lnet);
        r.nodes += 1;
        let k = r.nodes;
        r.send_bw.add(
            per_sec(ln.send_length.wrapping_sub(lo.send_length) as f32 / unit),
            k,
        );
        r.recv_bw.add(
            per_sec(ln.recv_length.wrapping_sub(lo.recv_length) as f32 / unit),
            k,
        );
        r.errors += u64::from(ln.errors.wrapping_sub(lo.errors));
        r.drops += u64::from(ln.drop_count.wrapping_sub(lo.drop_count));
        r.send_rate
            .add(per_sec(ln.send_count.wrapping_sub(lo.send_count) as f32), k);
        r.recv_rate
            .add(per_sec(ln.recv_count.wrapping_sub(lo.recv_count) as f32), k);
    }
    r
}

/// `lst stat --line`: one line per target and interval for a person
/// watching a long run: UTC time, nodes, total message rates and
/// bandwidths (sum over the nodes) each way, errors and drops in the interval.
pub fn line(utc_secs: u64, name: &str, r: &StatResult, mbs: bool) -> String {
    let t = utc_secs % 86_400;
    let units = if mbs { "MB/s" } else { "MiB/s" };
    let n = r.nodes as f32;
    let failed = if r.failed > 0 {
        format!(" ({} failed)", r.failed)
    } else {
        String::new()
    };
    let changed = if r.changed { " [group changed]" } else { "" };
    format!(
        "{:02}:{:02}:{:02} {name}: {} nodes{failed}  recv {:.1} msg/s {:.2} {units}  send {:.1} msg/s {:.2} {units}  errors {} drops {}{changed}\n",
        t / 3600,
        t / 60 % 60,
        t % 60,
        r.nodes,
        r.recv_rate.avg * n,
        r.recv_bw.avg * n,
        r.send_rate.avg * n,
        r.send_bw.avg * n,
        r.errors,
        r.drops,
    )
}

#[cfg(test)]
mod tests {
    use super::super::{
        LstCounters, LstDetail, LstFwCounters, LstLnetCounters, LstNodeState, LstSid,
    };
    use super::*;

    fn node(ip: u8, ms: u32, rc: u32, sc: u32, rl: u64, sl: u64) -> LstNode {
        LstNode {
            nid: format!("10.0.0.{ip}@tcp").parse().expect("nid"),
            state: LstNodeState::Active,
            rpc_errno: 0,
            fw_errno: 0,
            sid: LstSid::NONE,
            detail: LstDetail::Stat(LstCounters {
                fw: LstFwCounters {
                    running_ms: ms,
                    ..Default::default()
                },
                rpc: Default::default(),
                lnet: LstLnetCounters {
                    recv_count: rc,
                    send_count: sc,
                    recv_length: rl,
                    send_length: sl,
                    ..Default::default()
                },
            }),
        }
    }

    #[test]
    fn one_line_per_interval() {
        let prev = vec![node(1, 1000, 0, 0, 0, 0), node(2, 1000, 10, 10, 0, 0)];
        let cur = vec![
            node(1, 3000, 6000, 3000, 3 << 30, 1 << 20),
            node(2, 3000, 10, 2010, 1 << 30, 0),
        ];
        let r = compute(&prev, &cur, false);
        assert_eq!(
            line(3 * 3600 + 7 * 60 + 9, "servers", &r, false),
            "03:07:09 servers: 2 nodes  recv 3000.0 msg/s 2048.00 MiB/s  send 2500.0 msg/s 0.50 MiB/s  errors 0 drops 0\n"
        );
    }

    #[test]
    fn a_zero_interval_gives_no_inf_or_nan() {
        // The same running time in both samples (and traffic counted in
        // between): every figure stays finite, the line prints numbers.
        let prev = vec![node(1, 5000, 0, 0, 0, 0), node(2, 5000, 0, 0, 0, 0)];
        let cur = vec![
            node(1, 5000, 100, 100, 1 << 20, 1 << 20),
            node(2, 7000, 2000, 0, 0, 0),
        ];
        let r = compute(&prev, &cur, false);
        for s in [r.recv_rate, r.send_rate, r.recv_bw, r.send_bw] {
            for v in [s.avg, s.min, s.max] {
                assert!(v.is_finite(), "{r:?}");
            }
        }
        assert_eq!(
            (r.nodes, r.recv_rate.max, r.recv_rate.avg),
            (2, 1000.0, 500.0)
        );
        let l = line(0, "g", &r, false);
        assert!(!l.contains("inf") && !l.contains("NaN"), "{l}");
        assert_eq!(
            l,
            "00:00:00 g: 2 nodes  recv 1000.0 msg/s 0.00 MiB/s  send 0.0 msg/s 0.00 MiB/s  errors 0 drops 0\n"
        );
        // Both at zero interval: all zero.
        let r = compute(&prev, &prev, true);
        assert_eq!((r.recv_rate.avg, r.send_bw.max), (0.0, 0.0));
    }

    #[test]
    fn rates_bandwidth_and_spread() {
        let prev = vec![node(1, 1000, 0, 0, 0, 0), node(2, 1000, 10, 10, 0, 0)];
        let cur = vec![
            node(1, 3000, 6000, 3000, 3 << 30, 1 << 20),
            node(2, 3000, 10, 2010, 1 << 30, 0),
        ];
        let r = compute(&prev, &cur, false);
        assert_eq!((r.nodes, r.failed, r.changed), (2, 0, false));
        assert_eq!(r.recv_rate.avg, 1500.0);
        assert_eq!(r.recv_rate.max, 3000.0);
        assert_eq!(
            r.recv_rate.min, 3000.0,
            "a 0 rate never becomes the minimum"
        );
        assert_eq!(r.send_rate.min, 1000.0);
        assert_eq!(r.send_rate.max, 1500.0);
        assert_eq!(r.recv_bw.avg, 1024.0, "(1536 + 512) / 2 MiB/s");
        assert_eq!(r.send_bw.max, 0.5);
        let mb = compute(&prev, &cur, true);
        assert!(
            (mb.recv_bw.max - 1610.6127).abs() < 0.001,
            "{}",
            mb.recv_bw.max
        );
    }

    #[test]
    fn failures_and_changes() {
        let prev = vec![node(1, 0, 0, 0, 0, 0), node(2, 0, 0, 0, 0, 0)];
        let mut cur = vec![node(1, 1000, 5, 5, 0, 0), node(2, 1000, 5, 5, 0, 0)];
        cur[1].rpc_errno = 110;
        let r = compute(&prev, &cur, false);
        assert_eq!((r.nodes, r.failed), (1, 1));
        let r = compute(&prev[..1], &cur, false);
        assert!(r.changed);
        let swapped = vec![cur[1].clone(), cur[0].clone()];
        assert!(compute(&prev, &swapped, false).changed);
        // Counters wrap like upstream's unsigned arithmetic.
        let p = vec![node(1, u32::MAX - 499, u32::MAX, 0, u64::MAX, 0)];
        let c = vec![node(1, 500, 9, 0, 1023, 0)];
        let r = compute(&p, &c, false);
        assert_eq!(r.recv_rate.avg, 10.0);
    }
}

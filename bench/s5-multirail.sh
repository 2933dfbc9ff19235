#!/usr/bin/env bash
# S5 (issue #12): Multi-Rail across two veth links between two network
# namespaces (root only). Each link's sending side is shaped with `tc tbf` to
# the same RATE (default 400mbit), so the links, not the CPUs, are the limit.
# Per pair, in this order:
#   one NI : lst brw write size=1M, each lnetd with one tcp NI (link 1 only);
#   two NIs: the same with a second tcp NI on link 2 on both nodes (added with
#            `lnetctl net add`; discovery's push tells the peer, and the
#            traffic spreads over both links);
#   ceiling: iperf3 over both links at once (one client per link, same run
#            time), the unshaped-by-LNet two-path ceiling.
# The bytes each link carried come from the namespace's interface counters
# (tx_bytes of the sending side) over each LNet window. Prints per pair and the
# medians of: two/one (target >= 1.8, i.e. 0.9 of twice one NI), two/ceiling
# (target >= 0.9), and the share of link 2 in the two-NI runs.
# Knobs: PAIRS, SECS, PROFILE, SKIP_BUILD (lib.sh), RATE, CONCURRENCY (default 8).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "S5 needs root (network namespaces, tc)" >&2; exit 1; }
command -v tc >/dev/null || { echo "S5 needs tc (apt-get install iproute2)" >&2; exit 1; }
RATE=${RATE:-400mbit}
CONCURRENCY=${CONCURRENCY:-8}
bench_setup

tag=$$
nsa=lnmA$tag nsb=lnmB$tag
NETNS+=("$nsa" "$nsb")
ip netns add "$nsa"
ip netns add "$nsb"
for k in 1 2; do
    ip link add "ma$k$tag" netns "$nsa" type veth peer name "mb$k$tag" netns "$nsb"
    ip -n "$nsa" addr add "10.233.$k.1/24" dev "ma$k$tag"
    ip -n "$nsb" addr add "10.233.$k.2/24" dev "mb$k$tag"
    ip -n "$nsa" link set "ma$k$tag" up
    ip -n "$nsb" link set "mb$k$tag" up
    # The data goes A -> B: shape A's side of both links to the same rate.
    ip netns exec "$nsa" tc qdisc add dev "ma$k$tag" root tbf rate "$RATE" burst 1mb latency 100ms
done
for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done

txb() { ip netns exec "$nsa" cat "/sys/class/net/ma$1$tag/statistics/tx_bytes"; }

# The ceiling: an iperf3 server per link on B.
for k in 1 2; do
    ip netns exec "$nsb" iperf3 -s -p $((5200 + k)) -B "10.233.$k.2" >/dev/null 2>&1 &
    PIDS+=("$!")
    wait_port "10.233.$k.2" $((5200 + k)) "$nsb"
done

node a "ma1$tag" "$nsa"
pa=$NODE_PID
node b "mb1$tag" "$nsb"
pb=$NODE_PID
LNETD_PIDS=("$pa" "$pb")
ctl() { "$BIN/lnetctl" --socket "$WORK/$1.sock" "${@:2}"; }
lst_session 10.233.1.1@tcp 10.233.1.2@tcp
lst add_batch bulk >/dev/null
lst add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write size=1M >/dev/null

# measure LABEL: one LNet window; prints "MiB/s link1_MiB link2_MiB".
measure() {
    local b1 b2 e1 e2 t0 t1 out
    b1=$(txb 1)
    b2=$(txb 2)
    t0=$(date +%s.%N)
    read -r _ out < <(lst_measure bulk s "$SECS")
    t1=$(date +%s.%N)
    e1=$(txb 1)
    e2=$(txb 2)
    python3 -c 'import sys; o,a,b,t0,t1=map(float,sys.argv[1:]); t=t1-t0; print(f"{o} {a/1048576/t:.2f} {b/1048576/t:.2f}")' \
        "$out" $((e1 - b1)) $((e2 - b2)) "$t0" "$t1"
}

two_nis() {
    ctl a net add --net tcp --if "ma2$tag" >/dev/null
    ctl b net add --net tcp --if "mb2$tag" >/dev/null
    # The peers learn each other's new NID by discovery's push (§9.7);
    # a forced discover makes sure before the window opens.
    ctl a discover --force 10.233.1.2@tcp >/dev/null
    ctl b discover --force 10.233.1.1@tcp >/dev/null
}

one_ni() {
    ctl a net del --net tcp --if "ma2$tag" >/dev/null
    ctl b net del --net tcp --if "mb2$tag" >/dev/null
    ctl a discover --force 10.233.1.2@tcp >/dev/null
    ctl b discover --force 10.233.1.1@tcp >/dev/null
}

: >"$WORK/s5"
for i in $(seq "$PAIRS"); do
    read -r one o1 o2 < <(measure)
    two_nis
    read -r two w1 w2 < <(measure)
    one_ni
    # Both iperf3 clients at once, one per link.
    for k in 1 2; do
        timeout $((SECS + 20)) ip netns exec "$nsa" iperf3 -c "10.233.$k.2" -p $((5200 + k)) \
            -t "$SECS" -O 1 -J -l 1M >"$WORK/iperf$k.json" 2>&1 &
        eval "ip$k=\$!"
    done
    wait "$ip1" "$ip2" || true
    ceil=$(python3 -c '
import json, sys
t = 0.0
for f in sys.argv[1:]:
    t += json.load(open(f))["end"]["sum_received"]["bits_per_second"]
print(round(t / 8 / 1048576, 2))' "$WORK/iperf1.json" "$WORK/iperf2.json")
    log "pair $i: one NI $one MiB/s (links $o1 / $o2), two NIs $two MiB/s (links $w1 / $w2), iperf3 both links $ceil MiB/s"
    echo "$one $two $ceil $w1 $w2" >>"$WORK/s5"
done

python3 -c '
import sys, statistics as st
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
rate = sys.argv[2]
print(f"S5 Multi-Rail, two veth links shaped to {rate} each, lst brw write 1M: pairs={len(rows)}")
for i, (one, two, ceil, w1, w2) in enumerate(rows):
    share = w2 / (w1 + w2) if w1 + w2 else float("nan")
    print(f"  pair {i+1}: one NI {one:.2f} two NIs {two:.2f} iperf3x2 {ceil:.2f} MiB/s; two/one {two/one:.3f} two/ceiling {two/ceil:.3f} link-2 share {share:.2f}")
r1 = [t / o for o, t, *_ in rows]
r2 = [t / c for _, t, c, *_ in rows]
print(f"  two/one: median {st.median(r1):.3f} min {min(r1):.3f} max {max(r1):.3f} (target >= 1.8)")
print(f"  two/ceiling: median {st.median(r2):.3f} min {min(r2):.3f} max {max(r2):.3f} (target >= 0.9)")
' "$WORK/s5" "$RATE"
lst end_session >/dev/null

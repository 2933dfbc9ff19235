#!/usr/bin/env bash
# S4 (issue 13): bulk through a router between three network namespaces
# (root only): A — veth (tcp1, 10.233.1.0/24) — R — veth (tcp2, 10.233.2.0/24) — B.
# Ours: lst brw write size=1M (CONCURRENCY RPCs in flight, default 8) from an
# lnetd in A to one in B through an lnetd in R (forwarding=enabled).
# Anchors, in the same run on the same namespaces: iperf3 -l 1M from A to B
# through a user-space relay in R (socat -b 1048576, as BENCHMARKING.md)
# and through kernel IP forwarding in R. socat runs with fork (iperf3 opens a
# control and a data connection). A B C A B C ..., PAIRS rounds of SECS
# s. Prints the median ratios ours/socat and ours/kernel (min, max) and the
# router's CPU s/GiB for ours and socat (kernel forwarding runs in softirq
# context: not attributable to a process, not reported).
# Load-independent figures, per round and as medians, from `perf stat`
# (software counters and the syscall tracepoint) on the router over a window
# inside each run: CPU s/GiB, context switches and system calls per MiB, and
# for ours per forwarded LNet message (route_count); the packets R sends
# towards B and towards A per MiB (veth tx_packets). The CPU model is printed.
# The same perf counters of the end nodes A and B are printed per round and as
# medians (A + R + B is all of ours).
# Knobs: ROUTER_EXTRA (more arguments for the router's lnetd, e.g.
# "--param rx_spin_us=0"), ENDS_EXTRA (the same for A's and B's lnetd),
# LNETD_EXTRA (for all three, before the two above, as in the other scripts),
# OURS_ONLY=1 (no anchors: ours' rounds and their median only, for probes),
# CPT=1 (the router on a CPU of its own, the end nodes on another: ours
# through cpu_pattern, the anchors' processes through taskset, the same
# CPUs for both), ROUTER_SYSCALLS=1 (count writev, recvfrom,
# epoll_wait... of the router), ROUTER_PROFILE / SOCAT_PROFILE (a path: a
# `perf record` of the router / the relay over the first round's window;
# ENDS_PROFILE: of our end nodes, in PATH.a and PATH.b;
# PROFILE_CALLGRAPH, default -g, e.g. "--call-graph dwarf,16384").
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "S4 needs root (network namespaces)" >&2; exit 1; }
CONCURRENCY=${CONCURRENCY:-8}
command -v socat >/dev/null || { log "installing socat"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null; }
bench_setup
# CPT=1: R on the last CPU, A and B on the first (ours and the anchors).
PIN_R="" PIN_E=""
if [ -n "${CPT:-}" ]; then
    cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
    first=${cpus%%[,-]*} last=${cpus##*[,-]}
    [ "$first" != "$last" ] || { echo "CPT=1 needs two CPUs (have $cpus)" >&2; exit 1; }
    ROUTER_EXTRA="${ROUTER_EXTRA:-} --param cpu_pattern=0[$last]"
    ENDS_EXTRA="${ENDS_EXTRA:-} --param cpu_pattern=0[$first]"
    PIN_R="taskset -c $last" PIN_E="taskset -c $first"
    log "CPT=1: router on CPU $last, end nodes on CPU $first (ours: cpu_pattern; anchors: taskset)"
fi

tag=$$
nsa=lnsA$tag nsr=lnsR$tag nsb=lnsB$tag
NETNS+=("$nsa" "$nsr" "$nsb")
for ns in "$nsa" "$nsr" "$nsb"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "sa$tag" netns "$nsa" type veth peer name "sr$tag" netns "$nsr"
ip link add "tr$tag" netns "$nsr" type veth peer name "tb$tag" netns "$nsb"
ip -n "$nsa" addr add 10.233.1.1/24 dev "sa$tag"
ip -n "$nsr" addr add 10.233.1.2/24 dev "sr$tag"
ip -n "$nsr" addr add 10.233.2.2/24 dev "tr$tag"
ip -n "$nsb" addr add 10.233.2.1/24 dev "tb$tag"
ip -n "$nsa" link set "sa$tag" up
ip -n "$nsr" link set "sr$tag" up
ip -n "$nsr" link set "tr$tag" up
ip -n "$nsb" link set "tb$tag" up
# Kernel forwarding path (the anchor), only used by iperf3 to 10.233.2.1.
ip netns exec "$nsr" sysctl -qw net.ipv4.ip_forward=1
ip -n "$nsa" route add 10.233.2.0/24 via 10.233.1.2
ip -n "$nsb" route add 10.233.1.0/24 via 10.233.2.2

ip netns exec "$nsb" $PIN_E iperf3 -s -p 5201 -B 10.233.2.1 >/dev/null 2>&1 &
IPERF_PID=$!
PIDS+=("$IPERF_PID")
wait_port 10.233.2.1 5201 "$nsb"

# The three lnetd: A on tcp1, R on tcp1 and tcp2 forwarding, B on tcp2.
start() { # NAME NETNS PARAMS...
    local name=$1 ns=$2
    shift 2
    # shellcheck disable=SC2086
    ip netns exec "$ns" "$BIN/lnetd" --socket "$WORK/$name.sock" --foreground ${LNETD_EXTRA:-} "$@" 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    SOCK_OF[$NODE_PID]=$WORK/$name.sock
    NAME_OF[$NODE_PID]=$name
    for _ in $(seq 200); do [ -S "$WORK/$name.sock" ] && break; sleep 0.1; done
    "$BIN/lnetctl" --socket "$WORK/$name.sock" lnet configure
}
ctl() { local n=$1; shift; "$BIN/lnetctl" --socket "$WORK/$n.sock" "$@"; }
# shellcheck disable=SC2086
start a "$nsa" ${ENDS_EXTRA:-}
pa=$NODE_PID
# shellcheck disable=SC2086
start r "$nsr" --param forwarding=enabled ${ROUTER_EXTRA:-}
pr=$NODE_PID
# shellcheck disable=SC2086
start b "$nsb" ${ENDS_EXTRA:-}
pb=$NODE_PID
ctl a net add --net tcp1 --if "sa$tag" >/dev/null
ctl r net add --net tcp1 --if "sr$tag" >/dev/null
ctl r net add --net tcp2 --if "tr$tag" >/dev/null
ctl b net add --net tcp2 --if "tb$tag" >/dev/null
# A veth's carrier may come up after its NI: the NI starts DOWN and comes
# up with it. Routes are added once every NI is up, or the gateways' first
# ping replies show R's NI down and the routes stay down until the next
# alive_router_check_interval (60 s).
for n in a r b; do
    for _ in $(seq 100); do
        ctl "$n" net show | grep -q 'status: down' || break
        sleep 0.2
    done
done
ctl a route add --net tcp2 --gateway 10.233.1.2@tcp1
ctl b route add --net tcp1 --gateway 10.233.2.2@tcp2
LNETD_PIDS=("$pr")
# The routes come up once R answers its first router ping: wait until A
# reaches B through R (a loaded machine takes a few seconds).
reached=0
for _ in $(seq 60); do
    ctl a ping 10.233.2.1@tcp2 >/dev/null 2>&1 && { reached=1; break; }
    sleep 0.5
done
[ "$reached" = 1 ] || log "A does not reach B through R after 30 s: $(ctl a route show -v 2>&1 | tr -s ' \n' ' ')"
for try in $(seq 5); do
    # add_group creates the group even when the node does not answer
    # (and says so on stderr).
    lst_session 10.233.1.1@tcp1 10.233.2.1@tcp2 2>"$WORK/session.err" && ! grep -q . "$WORK/session.err" && break
    cat "$WORK/session.err" >&2
    log "lst session through R failed (try $try): $(ctl a route show -v 2>&1 | tr -s ' \n' ' ')"
    lst end_session >/dev/null 2>&1 || true
    [ "$try" = 5 ] && exit 1
    sleep 2
done
lst add_batch bulk >/dev/null
lst add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write size=1M >/dev/null

# utime+stime+cutime+cstime of a live process, in clock ticks.
ticks_all() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'; }

# Load-independent costs (perf's software counters and syscall tracepoint,
# which work where hardware counters do not): CPU ms, context switches and
# system calls of PID, its threads and the children it forks meanwhile,
# over SECS seconds; prints "cpu_ms ctxsw syscalls" ("nan nan nan" without
# perf).
PERF_EVENTS=task-clock,context-switches,raw_syscalls:sys_enter
HAVE_PERF=0
command -v perf >/dev/null && perf stat -e "$PERF_EVENTS" -x, -o /dev/null true 2>/dev/null && HAVE_PERF=1
[ "$HAVE_PERF" = 1 ] || log "perf stat unavailable: no syscall / context switch counts"
perf_window() { # PID[,PID...] SECS
    if [ "$HAVE_PERF" != 1 ]; then
        sleep "$2"
        echo "nan nan nan"
        return
    fi
    local out
    out=$(mktemp "$WORK/perf.XXXXXX")
    perf stat -e "$PERF_EVENTS" -x, -o "$out" -p "$1" -- sleep "$2" >/dev/null 2>&1 || true
    awk -F, '$3 == "task-clock" { c = $1 } $3 == "context-switches" { x = $1 }
        $3 == "raw_syscalls:sys_enter" { s = $1 }
        END { print (c == "" ? "nan" : c), (x == "" ? "nan" : x), (s == "" ? "nan" : s) }' "$out"
}

# Packets R sent so far towards B (tr) and towards A (sr: mostly ACKs), as
# the kernel counts them (a GSO packet counts once).
rpkts() {
    ip netns exec "$nsr" cat "/sys/class/net/tr$tag/statistics/tx_packets" "/sys/class/net/sr$tag/statistics/tx_packets" | tr '\n' ' '
    ip netns exec "$nsa" cat "/sys/class/net/sa$tag/statistics/tx_packets"
}
# pkts_per_mib NAME TO_B TO_A FROM_A MIB: the packets R sends towards B and
# towards A, and those A sends to R (the bulk's sender), per MiB.
pkts_per_mib() {
    python3 -c 'import sys; n, b, a, f, m = sys.argv[1], *map(float, sys.argv[2:]); print(f"{n}: {b / m:.1f} packets/MiB to B, {a / m:.1f} to A; A sends {f / m:.1f}" if m > 0 else f"{n}: no bytes")' "$@"
}

# route_count route_length of the router so far.
routed() {
    ctl r stats show | awk '/^ *route_count:/ { c = $2 } /^ *route_length:/ { l = $2 } END { printf "%.0f %.0f\n", c, l }'
}

# costs NAME CPU_MS CTXSW SYSCALLS BYTES [MSGS]: one line of per-GiB and
# per-message figures (a message: one forwarded LNet message).
costs() {
    python3 -c '
import sys
name, ms, cs, sc, b = sys.argv[1], *map(float, sys.argv[2:6])
msgs = float(sys.argv[6]) if len(sys.argv) > 6 else 0
nan = float("nan")
g, mib = b / 2**30, b / 2**20
out = f"{name}: cpu {ms / 1e3 / g if g else nan:.3f} s/GiB, {cs / mib if mib else nan:.2f} ctxsw/MiB, {sc / mib if mib else nan:.1f} syscalls/MiB"
if msgs:
    out += f", {cs / msgs:.3f} ctxsw/msg, {sc / msgs:.1f} syscalls/msg ({int(msgs)} msgs, {mib:.0f} MiB)"
print(out)
' "$@"
}

ip netns exec "$nsr" $PIN_R socat -b 1048576 TCP-LISTEN:5202,bind=10.233.1.2,fork,reuseaddr TCP:10.233.2.1:5201 2>/dev/null &
SOCAT_PID=$!
PIDS+=("$SOCAT_PID")
for _ in $(seq 100); do
    ip netns exec "$nsr" ss -ltn | grep -q '10.233.1.2:5202' && break
    sleep 0.1
done

iperf_mibps() {
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if \"sum_received\" in d.get(\"end\", {}) else 1)" "$1" || { log "iperf3 failed: $(cat "$1" | head -c 600)"; echo 0; return; }
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bits_per_second"]; print(round(b/8/1048576, 2))' "$1"
}

: >"$WORK/socat" ; : >"$WORK/kernel" ; : >"$WORK/ours"
for i in $(seq "$PAIRS"); do
    # Ours (router CPU only: $WORK/ticks holds the router lnetd's ticks).
    # The router's perf window runs inside lst_measure's (1 s warm-up).
    (
        sleep 1.5
        read -r c0 l0 < <(routed)
        read -r kb0 ka0 kf0 < <(rpkts)
        e0="$(ticks "$pa") $(ticks "$pb")"
        t0=$(date +%s.%N)
        if [ -n "${ROUTER_PROFILE:-}" ] && [ "$i" = 1 ]; then
            # A call-graph profile of the router over the first window
            # (`perf report -i $ROUTER_PROFILE`).
            perf record -q ${PROFILE_CALLGRAPH:--g} -o "$ROUTER_PROFILE" -p "$pr" -- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
        fi
        if [ -n "${ENDS_PROFILE:-}" ] && [ "$i" = 1 ]; then
            # The same of the end nodes: $ENDS_PROFILE.a (the client, which
            # sends the bulk) and .b.
            perf record -q ${PROFILE_CALLGRAPH:--g} -o "$ENDS_PROFILE.a" -p "$pa" -- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
            perf record -q ${PROFILE_CALLGRAPH:--g} -o "$ENDS_PROFILE.b" -p "$pb" -- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
        fi
        if [ -n "${ROUTER_SYSCALLS:-}" ] && [ "$HAVE_PERF" = 1 ]; then
            # Which system calls (ROUTER_SYSCALLS=1): counted in the log.
            perf stat -x, -o "$WORK/rsys" -e syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sched_yield -p "$pr" -- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
        fi
        perf_window "$pa" $((SECS > 2 ? SECS - 1 : 1)) >"$WORK/pa.w" &
        perf_window "$pb" $((SECS > 2 ? SECS - 1 : 1)) >"$WORK/pb.w" &
        read -r pm pc ps < <(perf_window "$pr" $((SECS > 2 ? SECS - 1 : 1)))
        wait
        [ -s "$WORK/rsys" ] && awk -F, '$3 ~ /sys_enter_/ { sub(/.*sys_enter_/, "", $3); printf "%s=%s ", $3, $1 } END { print "" }' "$WORK/rsys" | sed 's/^/# router syscalls in the window: /' >&2
        read -r c1 l1 < <(routed)
        read -r kb1 ka1 kf1 < <(rpkts)
        e1="$(ticks "$pa") $(ticks "$pb")"
        t1=$(date +%s.%N)
        # The end nodes' CPU over the same bytes (the clients of the anchor,
        # iperf3, are not measured): all of ours is A + R + B.
        python3 -c 'import sys; a0, b0, a1, b1 = map(int, sys.argv[1:5]); g = int(sys.argv[5]) / 2**30; t = float(sys.argv[6])
print(f"end nodes: cpu A {(a1 - a0) / t / g:.3f} s/GiB, B {(b1 - b0) / t / g:.3f} s/GiB" if g else "end nodes: no bytes")' $e0 $e1 $((l1 - l0)) "$TICK" >"$WORK/epkts"
        pkts_per_mib router $((kb1 - kb0)) $((ka1 - ka0)) $((kf1 - kf0)) "$(python3 -c "print(($l1 - $l0) / 2**20)")" >"$WORK/rpkts"
        # perf counted over its `sleep`; the counters moved over a little
        # longer (perf's and lnetctl's start-up): scale them to the window.
        read -r wb wm < <(python3 -c 'import sys; l, c, t, w = map(float, sys.argv[1:]); print(int(l * w / t), int(c * w / t))' $((l1 - l0)) $((c1 - c0)) "$(python3 -c "print($t1 - $t0)")" $((SECS > 2 ? SECS - 1 : 1)))
        costs router "$pm" "$pc" "$ps" "$wb" "$wm"
        read -r am ac as <"$WORK/pa.w"
        read -r bm bc bs <"$WORK/pb.w"
        costs "end node A" "$am" "$ac" "$as" "$wb" >"$WORK/aperf"
        costs "end node B" "$bm" "$bc" "$bs" "$wb" >"$WORK/bperf"
    ) >"$WORK/rperf" &
    rp=$!
    if ! read -r _ ob < <(lst_measure bulk s "$SECS"); then
        wait "$rp" || true
        log "round $i: lst stat gave no figure ($(head -c 300 "$WORK/stat.txt" 2>/dev/null | tr '\n' ' ')); round skipped"
        lst stop bulk >/dev/null 2>&1 || true
        continue
    fi
    wait "$rp" || true
    oc=$(cpu_per_gib "$(cat "$WORK/ticks")" "$ob" "$SECS")
    cat "$WORK/aperf" >>"$WORK/aperf.log"
    cat "$WORK/bperf" >>"$WORK/bperf.log"
    if [ -n "${OURS_ONLY:-}" ]; then
        log "round $i: ours $ob MiB/s (router $oc cpu s/GiB)"
        for f in rperf aperf bperf; do log "$(cat "$WORK/$f")"; done
        cat "$WORK/rperf" >>"$WORK/rperf.log"
        echo "$ob" >>"$WORK/ours"
        continue
    fi
    # socat relay in R (forks one child per connection; the parent's
    # cutime+cstime count the children once reaped).
    t0=$(ticks_all "$SOCAT_PID")
    # socat's perf window: SECS - 1 s from 1.5 s in (iperf3 omits the first
    # second), its bytes from iperf3's per-second intervals in that window.
    (
        sleep 1.5
        # The relay's children (one per connection) exist by now; perf
        # follows only what is forked after it attaches.
        kids=$(cat /proc/"$SOCAT_PID"/task/*/children 2>/dev/null | tr -s ' \n' ',' | sed 's/,$//')
        if [ -n "${SOCAT_PROFILE:-}" ] && [ "$i" = 1 ]; then
            perf record -q -g -o "$SOCAT_PROFILE" -p "$SOCAT_PID${kids:+,$kids}" -- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
        fi
        read -r kb0 ka0 kf0 < <(rpkts)
        t0=$(date +%s.%N)
        perf_window "$SOCAT_PID${kids:+,$kids}" $((SECS > 2 ? SECS - 1 : 1))
        wait
        read -r kb1 ka1 kf1 < <(rpkts)
        t1=$(date +%s.%N)
        echo "$((kb1 - kb0)) $((ka1 - ka0)) $((kf1 - kf0)) $(python3 -c "print($t1 - $t0)")" >"$WORK/spkts"
    ) >"$WORK/sperf" &
    sp=$!
    run_client "$WORK/iperf-s.json" timeout $((SECS + 20)) ip netns exec "$nsa" \
        $PIN_E iperf3 -c 10.233.1.2 -p 5202 -t "$SECS" -O 1 -J -l 1M >/dev/null
    wait "$sp" || true
    sleep 0.5
    t1=$(ticks_all "$SOCAT_PID")
    sb=$(iperf_mibps "$WORK/iperf-s.json")
    sc=$(cpu_per_gib $((t1 - t0)) "$sb" $((SECS + 1)))
    read -r pm pc ps <"$WORK/sperf"
    costs socat "$pm" "$pc" "$ps" "$(python3 -c 'import sys; print(int(float(sys.argv[1]) * 2**20 * float(sys.argv[2])))' "$sb" $((SECS > 2 ? SECS - 1 : 1)))" >>"$WORK/sperf.log"
    for f in rperf aperf bperf; do log "$(cat "$WORK/$f")"; done
    [ -s "$WORK/rpkts" ] && log "$(cat "$WORK/rpkts")"
    [ -s "$WORK/epkts" ] && log "$(cat "$WORK/epkts")"
    if read -r b a f d <"$WORK/spkts"; then
        log "$(pkts_per_mib socat "$b" "$a" "$f" "$(python3 -c "print($sb * $d)")")"
    fi
    # The anchor's end nodes, from iperf3's own accounting (utime + stime of
    # each side over the test), next to ours above.
    log "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = d["end"].get("cpu_utilization_percent", {})
mibps = d["end"]["sum_received"]["bits_per_second"] / 8 / 2**20
g = mibps / 1024
cl, sv = c.get("host_total", 0) / 100, c.get("remote_total", 0) / 100
print(f"socat end nodes (iperf3): cpu client {cl / g:.3f} s/GiB, server {sv / g:.3f} s/GiB" if g else "socat end nodes: no bytes")
' "$WORK/iperf-s.json" 2>/dev/null || echo "socat end nodes: iperf3 gave no CPU figures")"
    log "$(tail -n 1 "$WORK/sperf.log")"
    cat "$WORK/rperf" >>"$WORK/rperf.log"
    # Kernel forwarding.
    run_client "$WORK/iperf-k.json" timeout $((SECS + 20)) ip netns exec "$nsa" \
        $PIN_E iperf3 -c 10.233.2.1 -p 5201 -t "$SECS" -O 1 -J -l 1M >/dev/null
    kb=$(iperf_mibps "$WORK/iperf-k.json")
    log "round $i: ours $ob MiB/s (router $oc cpu s/GiB), socat $sb MiB/s (relay $sc), kernel $kb MiB/s"
    echo "$ob $sb $oc $sc" >>"$WORK/socat"
    echo "$ob $kb" >>"$WORK/kernel"
done
if [ -n "${ROUTER_STRACE:-}" ]; then
    # Which socket calls, of what sizes, to which side (ROUTER_STRACE=SECS):
    # the batch runs once more and `perf trace` (or strace, which stops the
    # router at every call and so changes what it does) follows the router
    # for SECS s, after every measured window. Calls per MiB, not a cost.
    lst run bulk >/dev/null
    sleep 1
    ip netns exec "$nsr" ss -tnp | awk -v pid="$pr" '
        index($0, "pid=" pid ",") {
            peer = $5; sub(/:[0-9]+$/, "", peer)
            side = peer == "10.233.1.1" ? "A" : peer == "10.233.2.1" ? "B" : peer
            n = split($0, f, "fd=")
            for (i = 2; i <= n; i++) { fd = f[i]; sub(/[^0-9].*/, "", fd); print fd, side "/fd" fd }
        }' >"$WORK/fdmap"
    calls=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,epoll_wait,epoll_pwait,setsockopt,futex
    read -r c0 l0 < <(routed)
    if [ "$HAVE_PERF" = 1 ] && [ -z "${ROUTER_STRACE_PTRACE:-}" ]; then
        perf trace -o "$WORK/strace" -e "$calls" -p "$pr" -- sleep "$ROUTER_STRACE" >/dev/null 2>&1 || true
    else
        timeout $((ROUTER_STRACE + 5)) strace -f -qq -T -s 0 -o "$WORK/strace" -e trace="$calls" -p "$pr" &
        stp=$!
        sleep "$ROUTER_STRACE"
        kill -INT "$stp" 2>/dev/null || true
        wait "$stp" 2>/dev/null || true
    fi
    read -r c1 l1 < <(routed)
    lst stop bulk >/dev/null
    python3 "$(dirname "$0")/s4-strace.py" "$WORK/strace" "$WORK/fdmap" \
        "$(python3 -c "print(($l1 - $l0) / 2**20)")" $((c1 - c0)) | sed 's/^/# /' >&2
    [ -n "${ROUTER_STRACE_KEEP:-}" ] && cp "$WORK/strace" "$ROUTER_STRACE_KEEP"
fi
lst end_session >/dev/null
# Medians of the load-independent figures (perf windows above).
for f in rperf aperf bperf sperf; do
    [ -s "$WORK/$f.log" ] || continue
    python3 -c '
import re, sys, statistics as st
rows = [l for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit(0)
name = rows[0].split(":")[0]
keys = ["s/GiB", "ctxsw/MiB", "syscalls/MiB", "ctxsw/msg", "syscalls/msg"]
out = []
for k in keys:
    v = [float(m.group(1)) for l in rows for m in [re.search(r"([0-9.na]+) " + re.escape(k), l)] if m]
    v = [x for x in v if x == x]
    if v:
        out.append(f"{st.median(v):.3f} {k}")
print(f"# {name} median over {len(rows)} windows: " + ", ".join(out))
' "$WORK/$f.log" >&2 || true
done
lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print "# CPU: " $2 }' >&2
if [ -n "${OURS_ONLY:-}" ]; then
    python3 -c 'import sys, statistics as st; v = [float(l) for l in sys.stdin if l.strip()]; print(f"S4 ours only, lst brw write 1M (conc {sys.argv[1]}) through the router: median {st.median(v):.2f} MiB/s (min {min(v):.2f}, max {max(v):.2f}) over {len(v)} rounds" if v else "S4 ours only: no round gave a figure")' "$CONCURRENCY" <"$WORK/ours"
    exit 0
fi
CPU_LABEL="router cpu s/GiB" summary "S4 router, lst brw write 1M (conc $CONCURRENCY) vs iperf3 -l 1M through a socat relay, MiB/s" <"$WORK/socat"
summary "S4 router, lst brw write 1M (conc $CONCURRENCY) vs iperf3 -l 1M through kernel IP forwarding, MiB/s" <"$WORK/kernel"

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
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "S4 needs root (network namespaces)" >&2; exit 1; }
CONCURRENCY=${CONCURRENCY:-8}
command -v socat >/dev/null || { log "installing socat"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null; }
bench_setup

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

ip netns exec "$nsb" iperf3 -s -p 5201 -B 10.233.2.1 >/dev/null 2>&1 &
IPERF_PID=$!
PIDS+=("$IPERF_PID")
wait_port 10.233.2.1 5201 "$nsb"

# The three lnetd: A on tcp1, R on tcp1 and tcp2 forwarding, B on tcp2.
start() { # NAME NETNS PARAMS...
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$BIN/lnetd" --socket "$WORK/$name.sock" --foreground "$@" 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    SOCK_OF[$NODE_PID]=$WORK/$name.sock
    NAME_OF[$NODE_PID]=$name
    for _ in $(seq 200); do [ -S "$WORK/$name.sock" ] && break; sleep 0.1; done
    "$BIN/lnetctl" --socket "$WORK/$name.sock" lnet configure
}
ctl() { local n=$1; shift; "$BIN/lnetctl" --socket "$WORK/$n.sock" "$@"; }
start a "$nsa"
pa=$NODE_PID
start r "$nsr" --param forwarding=enabled
pr=$NODE_PID
start b "$nsb"
pb=$NODE_PID
ctl a net add --net tcp1 --if "sa$tag" >/dev/null
ctl r net add --net tcp1 --if "sr$tag" >/dev/null
ctl r net add --net tcp2 --if "tr$tag" >/dev/null
ctl b net add --net tcp2 --if "tb$tag" >/dev/null
ctl a route add --net tcp2 --gateway 10.233.1.2@tcp1
ctl b route add --net tcp1 --gateway 10.233.2.2@tcp2
LNETD_PIDS=("$pr")
lst_session 10.233.1.1@tcp1 10.233.2.1@tcp2
lst add_batch bulk >/dev/null
lst add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write size=1M >/dev/null

# utime+stime+cutime+cstime of a live process, in clock ticks.
ticks_all() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'; }

ip netns exec "$nsr" socat -b 1048576 TCP-LISTEN:5202,bind=10.233.1.2,fork,reuseaddr TCP:10.233.2.1:5201 2>/dev/null &
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

: >"$WORK/socat" ; : >"$WORK/kernel"
for i in $(seq "$PAIRS"); do
    # Ours (router CPU only: $WORK/ticks holds the router lnetd's ticks).
    read -r _ ob < <(lst_measure bulk s "$SECS")
    oc=$(cpu_per_gib "$(cat "$WORK/ticks")" "$ob" "$SECS")
    # socat relay in R (forks one child per connection; the parent's
    # cutime+cstime count the children once reaped).
    t0=$(ticks_all "$SOCAT_PID")
    run_client "$WORK/iperf-s.json" timeout $((SECS + 20)) ip netns exec "$nsa" \
        iperf3 -c 10.233.1.2 -p 5202 -t "$SECS" -O 1 -J -l 1M >/dev/null
    sleep 0.5
    t1=$(ticks_all "$SOCAT_PID")
    sb=$(iperf_mibps "$WORK/iperf-s.json")
    sc=$(cpu_per_gib $((t1 - t0)) "$sb" $((SECS + 1)))
    # Kernel forwarding.
    run_client "$WORK/iperf-k.json" timeout $((SECS + 20)) ip netns exec "$nsa" \
        iperf3 -c 10.233.2.1 -p 5201 -t "$SECS" -O 1 -J -l 1M >/dev/null
    kb=$(iperf_mibps "$WORK/iperf-k.json")
    log "round $i: ours $ob MiB/s (router $oc cpu s/GiB), socat $sb MiB/s (relay $sc), kernel $kb MiB/s"
    echo "$ob $sb $oc $sc" >>"$WORK/socat"
    echo "$ob $kb" >>"$WORK/kernel"
done
lst end_session >/dev/null
lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print "# CPU: " $2 }' >&2
CPU_LABEL="router cpu s/GiB" summary "S4 router, lst brw write 1M (conc $CONCURRENCY) vs iperf3 -l 1M through a socat relay, MiB/s" <"$WORK/socat"
summary "S4 router, lst brw write 1M (conc $CONCURRENCY) vs iperf3 -l 1M through kernel IP forwarding, MiB/s" <"$WORK/kernel"

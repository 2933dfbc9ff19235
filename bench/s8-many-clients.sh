#!/usr/bin/env bash
# S8 (issue 17 item 4): many peers. One server and CLIENTS (default 16)
# client network namespaces on one bridge (root only), an lnetd in each.
# Ours, from all clients at once: lst brw write size=1M (CONCURRENCY RPCs in
# flight per client, default 8) and lst ping (CONCURRENCY per client), and
# the same from one client alone on the same path. Anchors on the same bridge:
# iperf3 -P CLIENTS -l 1M (one client namespace, CLIENTS streams) and
# CLIENTS sockperf ping-pong pairs (one client per namespace, one server
# each in the server's namespace). A B A B, PAIRS pairs of SECS s.
# Prints: aggregate ratio ours/anchor (bulk MiB/s, ping round trips/s), the
# server's CPU s/GiB (ours: the server lnetd; iperf3: its server process),
# the server lnetd's context switches and CPU per LNet message, and the
# CLIENTS-vs-1 client ratio of ours (target: at least 0.9, no collapse),
# and the same ratio of the anchors with one process per client as ours
# has: CLIENTS iperf3 -P 1 clients (one per client namespace, each to a
# server of its own) against one, and CLIENTS sockperf pairs against one.
# That says what CLIENTS processes sharing the host's CPUs cost on this
# host whatever they run. And the same for bench/tcp-rpc.c, lst brw write's
# four messages per RPC and its buffers without LNet (one client process per
# namespace, CONCURRENCY RPCs in flight each, one server process): CLIENTS
# against one, and ours against it with CLIENTS clients.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "S8 needs root (network namespaces)" >&2; exit 1; }
CLIENTS=${CLIENTS:-16}
CONCURRENCY=${CONCURRENCY:-8}
bench_setup
cc -O2 -o "$WORK/tcp-rpc" "$BENCH_DIR/tcp-rpc.c"

tag=$$
nsbr=lnmBr$tag nss=lnmS$tag
NETNS+=("$nsbr" "$nss")
ip netns add "$nsbr"
ip -n "$nsbr" link add "br$tag" type bridge
ip -n "$nsbr" link set "br$tag" up
# attach NS IFNAME ADDR: a veth from NS to the bridge.
attach() {
    local ns=$1 ifn=$2 addr=$3
    ip netns add "$ns"
    NETNS+=("$ns")
    ip -n "$ns" link set lo up
    ip link add "$ifn" netns "$ns" type veth peer name "p$ifn" netns "$nsbr"
    ip -n "$nsbr" link set "p$ifn" master "br$tag" up
    ip -n "$ns" addr add "$addr/24" dev "$ifn"
    ip -n "$ns" link set "$ifn" up
}
attach "$nss" "ms$tag" 10.234.0.1
for i in $(seq "$CLIENTS"); do attach "lnmC$i.$tag" "mc${i}x$tag" "10.234.0.$((10 + i))"; done

# The server is node "a" (it holds the lst session); clients c1..cN.
port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a "ms$tag" "$nss"
ps=$NODE_PID
for i in $(seq "$CLIENTS"); do node "c$i" "mc${i}x$tag" "lnmC$i.$tag"; done
LNETD_PIDS=("$ps")
lst new_session --timeout 600 bench >/dev/null
lst add_group s 10.234.0.1@tcp >/dev/null
lst add_group one 10.234.0.11@tcp >/dev/null
lst add_group all "10.234.0.[11-$((10 + CLIENTS))]@tcp" >/dev/null
for g in one all; do
    lst add_batch "bulk_$g" >/dev/null
    lst add_test --batch "bulk_$g" --concurrency "$CONCURRENCY" --from "$g" --to s brw write size=1M >/dev/null
    lst add_batch "ping_$g" >/dev/null
    lst add_test --batch "ping_$g" --concurrency "$CONCURRENCY" --from "$g" --to s ping >/dev/null
done

ip netns exec "$nss" iperf3 -s -p 5201 -B 10.234.0.1 >/dev/null 2>&1 &
IPERF_PID=$!
PIDS+=("$IPERF_PID")
wait_port 10.234.0.1 5201 "$nss"
# One iperf3 server per client for the anchor's own scaling (an iperf3
# server serves one test at a time).
for i in $(seq "$CLIENTS"); do
    ip netns exec "$nss" iperf3 -s -p $((5201 + i)) -B 10.234.0.1 >/dev/null 2>&1 &
    PIDS+=($!)
done
for i in $(seq "$CLIENTS"); do wait_port 10.234.0.1 $((5201 + i)) "$nss"; done
SP_PIDS=()
for i in $(seq "$CLIENTS"); do
    ip netns exec "$nss" sockperf sr --tcp -i 10.234.0.1 -p $((11110 + i)) >/dev/null 2>&1 &
    SP_PIDS+=($!)
    PIDS+=($!)
done
for i in $(seq "$CLIENTS"); do wait_port 10.234.0.1 $((11110 + i)) "$nss"; done
ip netns exec "$nss" "$WORK/tcp-rpc" server 10.234.0.1 5301 1048576 $((CLIENTS * CONCURRENCY)) &
RPC_PID=$!
PIDS+=("$RPC_PID")
wait_port 10.234.0.1 5301 "$nss"

# ours_bulk GROUP: "MiB/s cpu_s_per_gib" of the server.
ours_bulk() {
    local bw
    read -r _ bw < <(lst_measure "bulk_$1" s "$SECS")
    echo "$bw $(cpu_per_gib "$(cat "$WORK/ticks")" "$bw" "$SECS")"
}

# ours_ping GROUP: "RPC/s server_cpu_us_per_rpc" (the server's request rate).
ours_ping() {
    local rate
    read -r rate _ < <(lst_measure "ping_$1" s "$SECS")
    python3 -c 'import sys; r,t,s,k=map(float,sys.argv[1:]); print(f"{r:.1f} {t/k/(r*s)*1e6:.2f}")' "$rate" "$(cat "$WORK/ticks")" "$SECS" "$TICK"
}

# iperf3 -P CLIENTS from the first client: "MiB/s server_cpu_s_per_gib".
anchor_bulk() {
    local t0 t1 bw
    t0=$(ticks "$IPERF_PID")
    run_client "$WORK/iperf.json" timeout $((SECS + 20)) ip netns exec "lnmC1.$tag" \
        iperf3 -c 10.234.0.1 -p 5201 -t "$SECS" -O 1 -J -l 1M -P "$CLIENTS" >/dev/null
    t1=$(ticks "$IPERF_PID")
    bw=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bits_per_second"]; print(round(b/8/1048576, 2))' "$WORK/iperf.json")
    echo "$bw $(cpu_per_gib $((t1 - t0)) "$bw" $((SECS + 1)))"
}

# iperf3 -P 1 from each of the first N client namespaces at once, each to
# a server of its own: the aggregate MiB/s.
anchor_bulk_procs() {
    local n=$1 i cts=()
    for i in $(seq "$n"); do
        run_client "$WORK/iperf$i.json" timeout $((SECS + 20)) ip netns exec "lnmC$i.$tag" \
            iperf3 -c 10.234.0.1 -p $((5201 + i)) -t "$SECS" -O 1 -J -l 1M >/dev/null &
        cts+=($!)
    done
    wait "${cts[@]}"
    python3 -c '
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
b = sum(json.load(open(f"{work}/iperf{i}.json"))["end"]["sum_received"]["bits_per_second"] for i in range(1, n + 1))
print(round(b / 8 / 1048576, 2))' "$n" "$WORK"
}

# tcp-rpc clients in the first N client namespaces at once, one server
# process: "MiB/s server_cpu_s_per_gib".
anchor_rpc_procs() {
    local n=$1 i t0 t1 cts=()
    t0=$(ticks "$RPC_PID")
    for i in $(seq "$n"); do
        timeout $((SECS + 20)) ip netns exec "lnmC$i.$tag" \
            "$WORK/tcp-rpc" client 10.234.0.1 5301 1048576 "$CONCURRENCY" "$SECS" >"$WORK/rpc$i.out" 2>&1 &
        cts+=($!)
    done
    wait "${cts[@]}"
    t1=$(ticks "$RPC_PID")
    local bw
    bw=$(for i in $(seq "$n"); do cat "$WORK/rpc$i.out"; done | awk '/^[0-9.]+$/ {s += $1} END {printf "%.2f", s}')
    echo "$bw $(cpu_per_gib $((t1 - t0)) "$bw" $((SECS + 1)))"
}

# The first N sockperf pairs at once: "round_trips/s server_cpu_us_per_rt".
anchor_ping() {
    local n=${1:-$CLIENTS} i t0 t1 cts=()
    t0=$(ticks_of "${SP_PIDS[@]}")
    for i in $(seq "$n"); do
        run_client "$WORK/sp$i.txt" timeout $((SECS + 20)) ip netns exec "lnmC$i.$tag" \
            sockperf pp --tcp -i 10.234.0.1 -p $((11110 + i)) -m 14 -t "$SECS" >/dev/null &
        cts+=($!)
    done
    wait "${cts[@]}"
    t1=$(ticks_of "${SP_PIDS[@]}")
    python3 - "$n" "$SECS" $((t1 - t0)) "$TICK" "$WORK" <<'PY'
import re, sys
n, secs, ticks, tick, work = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rate = 0.0
for i in range(1, n + 1):
    t = re.sub(r"\x1b\[[0-9;]*m", "", open(f"{work}/sp{i}.txt").read())
    m = re.search(r"Total (\d+) observations", t)
    rate += int(m.group(1)) / secs if m else 0.0
print(f"{rate:.1f} {ticks/tick/(rate*secs)*1e6 if rate else float('nan'):.2f}")
PY
}

: >"$WORK/bulk"
: >"$WORK/ping"
: >"$WORK/scale_bulk"
: >"$WORK/scale_ping"
: >"$WORK/anchor_scale_bulk"
: >"$WORK/anchor_scale_ping"
: >"$WORK/rpc_bulk"
: >"$WORK/rpc_scale_bulk"
for i in $(seq "$PAIRS"); do
    read -r ob oc < <(COSTS=costs_bulk ours_bulk all)
    read -r ab ac < <(anchor_bulk)
    read -r o1 _ < <(COSTS=costs_one_bulk ours_bulk one)
    log "bulk pair $i: ours $CLIENTS clients $ob MiB/s ($oc server cpu s/GiB), 1 client $o1 MiB/s; iperf3 -P $CLIENTS $ab MiB/s ($ac server cpu s/GiB)"
    echo "$ob $ab $oc $ac" >>"$WORK/bulk"
    echo "$ob $o1" >>"$WORK/scale_bulk"
    read -r an < <(anchor_bulk_procs "$CLIENTS")
    read -r a1 < <(anchor_bulk_procs 1)
    log "bulk pair $i: $CLIENTS iperf3 clients $an MiB/s, 1 iperf3 client $a1 MiB/s"
    echo "$an $a1" >>"$WORK/anchor_scale_bulk"
    read -r rn rc < <(anchor_rpc_procs "$CLIENTS")
    read -r r1 _ < <(anchor_rpc_procs 1)
    log "bulk pair $i: $CLIENTS tcp-rpc clients $rn MiB/s ($rc server cpu s/GiB), 1 tcp-rpc client $r1 MiB/s"
    echo "$ob $rn $oc $rc" >>"$WORK/rpc_bulk"
    echo "$rn $r1" >>"$WORK/rpc_scale_bulk"
    read -r opr opc < <(COSTS=costs_ping ours_ping all)
    read -r apr apc < <(anchor_ping)
    read -r op1 _ < <(COSTS=costs_one_ping ours_ping one)
    log "ping pair $i: ours $CLIENTS clients $opr RPC/s ($opc server cpu us/RPC), 1 client $op1 RPC/s; $CLIENTS sockperf pairs $apr RT/s ($apc server cpu us/RT)"
    echo "$opr $apr $opc $apc" >>"$WORK/ping"
    echo "$opr $op1" >>"$WORK/scale_ping"
    read -r ap1 _ < <(anchor_ping 1)
    log "ping pair $i: 1 sockperf pair $ap1 RT/s"
    echo "$apr $ap1" >>"$WORK/anchor_scale_ping"
done
COSTS=costs_bulk CPU_LABEL="server cpu s/GiB" summary "S8 bridge, $CLIENTS clients at once: lst brw write 1M (conc $CONCURRENCY each) vs iperf3 -P $CLIENTS -l 1M, MiB/s" <"$WORK/bulk"
COSTS=costs_ping CPU_LABEL="server cpu us/round trip" summary "S8 bridge, $CLIENTS clients at once: lst ping (conc $CONCURRENCY each) RPC/s vs $CLIENTS sockperf pp pairs round trips/s" <"$WORK/ping"
COSTS=costs_one_bulk summary "S8 bridge, lst brw write 1M: $CLIENTS clients vs 1 client, MiB/s (target >= 0.9)" <"$WORK/scale_bulk"
COSTS=costs_one_ping summary "S8 bridge, lst ping: $CLIENTS clients vs 1 client, RPC/s (target >= 0.9)" <"$WORK/scale_ping"
summary "S8 bridge, the anchor's own scaling: $CLIENTS iperf3 -P 1 clients (one per namespace) vs 1, MiB/s (here \"ours\" is the $CLIENTS, \"anchor\" the one)" <"$WORK/anchor_scale_bulk"
summary "S8 bridge, the anchor's own scaling: $CLIENTS sockperf pairs vs 1 pair, round trips/s (here \"ours\" is the $CLIENTS, \"anchor\" the one)" <"$WORK/anchor_scale_ping"
CPU_LABEL="server cpu s/GiB" summary "S8 bridge, $CLIENTS clients at once: lst brw write 1M vs $CLIENTS tcp-rpc clients (lst's wire shape without LNet, conc $CONCURRENCY each), MiB/s" <"$WORK/rpc_bulk"
summary "S8 bridge, tcp-rpc's own scaling: $CLIENTS clients vs 1, MiB/s (here \"ours\" is the $CLIENTS, \"anchor\" the one)" <"$WORK/rpc_scale_bulk"
lst end_session >/dev/null

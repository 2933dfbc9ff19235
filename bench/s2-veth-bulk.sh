#!/usr/bin/env bash
# S2 (issue #5): bulk across a veth pair between two network namespaces
# (root only). Ours: lst brw write between an lnetd in each namespace over the
# TCP LND, sizes SIZES (default 4k 64k 1m) x conns_per_peer CONNS (default
# 1 2 4), CONCURRENCY RPCs in flight per connection (default 8). Anchors
# (ANCHORS, default both): iperf3 -l SIZE -P CONNS, and rpc: bench/tcp-rpc.c,
# lst brw write's four messages per RPC without LNet (CONNS clients, each one
# connection with CONCURRENCY RPCs in flight, against one server process).
# Ours and each anchor in turn, PAIRS rounds of SECS s per combination. Prints
# the median ratio ours/anchor (min, max) and CPU s/GiB per combination.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "S2 needs root (network namespaces)" >&2; exit 1; }
SIZES=${SIZES:-4k 64k 1m}
CONNS=${CONNS:-1 2 4}
CONCURRENCY=${CONCURRENCY:-8}
ANCHORS=${ANCHORS:-iperf3 rpc}
bench_setup
cc -O2 -o "$WORK/tcp-rpc" "$BENCH_DIR/tcp-rpc.c"

tag=$$
nsa=lnbA$tag nsb=lnbB$tag
NETNS+=("$nsa" "$nsb")
ip netns add "$nsa"
ip netns add "$nsb"
ip link add "va$tag" netns "$nsa" type veth peer name "vb$tag" netns "$nsb"
ip -n "$nsa" addr add 10.232.0.1/24 dev "va$tag"
ip -n "$nsb" addr add 10.232.0.2/24 dev "vb$tag"
for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
ip -n "$nsa" link set "va$tag" up
ip -n "$nsb" link set "vb$tag" up

ip netns exec "$nsb" iperf3 -s -p 5201 -B 10.232.0.2 >/dev/null 2>&1 &
IPERF_PID=$!
PIDS+=("$IPERF_PID")
wait_port 10.232.0.2 5201 "$nsb"

# anchor_NAME SIZE CONNS: prints "MiB/s cpu_s_per_GiB" of one window.
anchor_iperf3() {
    local t0 t1 ct ab
    t0=$(ticks "$IPERF_PID")
    ct=$(run_client "$WORK/iperf.json" timeout $((SECS + 20)) ip netns exec "$nsa" iperf3 -c 10.232.0.2 -p 5201 -t "$SECS" -O 1 -J -l "$1" -P "$2")
    t1=$(ticks "$IPERF_PID")
    ab=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bits_per_second"]; print(round(b/8/1048576, 2))' "$WORK/iperf.json")
    echo "$ab $(cpu_per_gib $((ct + t1 - t0)) "$ab" $((SECS + 1)))"
}

anchor_rpc() {
    local t0 t1 ct ab
    t0=$(ticks "$RPC_PID")
    # CONNS clients at once, each printing its MiB/s; the sum is the figure.
    ct=$(run_client "$WORK/rpc.out" timeout $((SECS + 20)) ip netns exec "$nsa" bash -c \
        'for _ in $(seq "$1"); do "$2" client 10.232.0.2 5301 "$3" "$4" "$5" & done; wait' \
        _ "$2" "$WORK/tcp-rpc" "$(bytes "$1")" "$CONCURRENCY" "$SECS")
    t1=$(ticks "$RPC_PID")
    ab=$(awk '/^[0-9.]+$/ {s += $1; n++} END {if (n) printf "%.2f", s; else print 0}' "$WORK/rpc.out")
    [ "$ab" != 0 ] || log "tcp-rpc failed: $(tail -3 "$WORK/rpc.out")"
    echo "$ab $(cpu_per_gib $((ct + t1 - t0)) "$ab" $((SECS + 1)))"
}

# bytes 64k: 65536.
bytes() { numfmt --from=iec "${1^^}"; }

for conns in $CONNS; do
    # A fresh pair of nodes per conns_per_peer (a net tunable): the last
    # round's daemons stop first, since the new ones take their sockets (an
    # lnetd refuses a socket another lnetd answers on).
    for p in ${pa:-} ${pb:-}; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    node a "va$tag" "$nsa" --conns-per-peer "$conns"
    pa=$NODE_PID
    node b "vb$tag" "$nsb" --conns-per-peer "$conns"
    pb=$NODE_PID
    LNETD_PIDS=("$pa" "$pb")
    lst_session 10.232.0.1@tcp 10.232.0.2@tcp
    for size in $SIZES; do
        lst add_batch "b$size" >/dev/null
        lst add_test --batch "b$size" --concurrency $((CONCURRENCY * conns)) --from c --to s brw write "size=$size" >/dev/null
        for a in $ANCHORS; do : >"$WORK/pairs.$a"; done
        if [[ " $ANCHORS " == *" rpc "* ]]; then
            ip netns exec "$nsb" "$WORK/tcp-rpc" server 10.232.0.2 5301 "$(bytes "$size")" $((CONCURRENCY * conns)) &
            RPC_PID=$!
            PIDS+=("$RPC_PID")
            wait_port 10.232.0.2 5301 "$nsb"
        fi
        for i in $(seq "$PAIRS"); do
            read -r _ ob < <(lst_measure "b$size" s "$SECS")
            oc=$(cpu_per_gib "$(cat "$WORK/ticks")" "$ob" "$SECS")
            for a in $ANCHORS; do
                read -r ab ac < <("anchor_$a" "$size" "$conns")
                log "size $size conns $conns round $i: ours $ob MiB/s ($oc cpu s/GiB), $a $ab MiB/s ($ac)"
                echo "$ob $ab $oc $ac" >>"$WORK/pairs.$a"
            done
        done
        for a in $ANCHORS; do
            case $a in
                iperf3) what="iperf3 -l $size -P $conns" ;;
                rpc) what="tcp-rpc, $conns connection(s) of $CONCURRENCY RPCs" ;;
            esac
            summary "S2 veth, brw write size=$size conns_per_peer=$conns (conc $((CONCURRENCY * conns))) vs $what, MiB/s" <"$WORK/pairs.$a"
        done
        if [ -n "${RPC_PID:-}" ]; then
            kill "$RPC_PID"
            wait "$RPC_PID" 2>/dev/null || true
            RPC_PID=
        fi
    done
    lst end_session >/dev/null
done

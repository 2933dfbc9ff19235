#!/usr/bin/env bash
# S1 (issue #5): bulk on loopback. Ours: lst brw write size=1M between two
# lnetd on 127.0.0.1 and 127.0.0.2 over the TCP LND, one connection
# (conns_per_peer=1), CONCURRENCY RPCs in flight (default 8). Anchors:
# iperf3 -l 1M one stream; ucx_perftest -t tag_bw -s 1048576 over UCX_TLS=tcp;
# fi_pingpong -p tcp -e msg -S 1048576; tcpcopy1 and tcpcopy (bench/tcp-copy.c:
# iperf3's shape, one stream of 1 MiB writes, with one buffer per side like
# iperf3 or with CONCURRENCY buffers per side like lst's test units and
# server pool); rpc, rpcspin and rpcspin1 (bench/tcp-rpc.c: lst brw write's
# four messages per RPC without LNet, CONCURRENCY in flight, with lst's
# buffers; rpcspin busy-polls as UCX does; rpcspin1 also sends from one
# buffer and receives into one, UCX tag_bw's working set).
# A B A B, PAIRS pairs of SECS s each.
# Prints MiB/s per pair, the median ratio ours/anchor (min, max) and CPU
# seconds per GiB of both sides (lnetd: both daemons; anchors: client and server).
source "$(dirname "$0")/lib.sh"
CONCURRENCY=${CONCURRENCY:-8}
ANCHORS=${ANCHORS:-iperf3 tcpcopy1 tcpcopy rpc rpcspin rpcspin1 ucx fi}
# About SECS seconds of UCX at 3 GiB/s (it runs a count, not a time; 2000
# was a burst of a third of a second on a fast host).
UCX_N=${UCX_N:-$((3072 * SECS))}
bench_setup
cc -O2 -o "$WORK/tcp-copy" "$BENCH_DIR/tcp-copy.c"
cc -O2 -o "$WORK/tcp-rpc" "$BENCH_DIR/tcp-rpc.c"

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a 127.0.0.1 "" --conns-per-peer 1
pa=$NODE_PID
node b 127.0.0.2 "" --conns-per-peer 1
pb=$NODE_PID
LNETD_PIDS=("$pa" "$pb")
lst_session 127.0.0.1@tcp 127.0.0.2@tcp
lst add_batch bulk >/dev/null
lst add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write size=1M >/dev/null

ours() {
    local rate bw
    read -r rate bw < <(lst_measure bulk s "$SECS")
    echo "$bw $(cpu_per_gib "$(cat "$WORK/ticks")" "$bw" "$SECS") $(per_gib "$(cat "$WORK/ctx")" "$bw" "$SECS")"
}

anchor_iperf3() {
    local t0 t1 ct bw c0 c1
    t0=$(ticks "$IPERF_PID")
    c0=$(ctxsw "$IPERF_PID")
    ct=$(run_client "$WORK/iperf.json" timeout $((SECS + 20)) iperf3 -c 127.0.0.1 -p 5201 -t "$SECS" -O 1 -J -l 1M)
    t1=$(ticks "$IPERF_PID")
    c1=$(ctxsw "$IPERF_PID")
    bw=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bits_per_second"]; print(round(b/8/1048576, 2))' "$WORK/iperf.json")
    echo "$bw $(cpu_per_gib $((ct + t1 - t0)) "$bw" $((SECS + 1))) $(per_gib $(($(cat "$WORK/iperf.json.ctx") + c1 - c0)) "$bw" $((SECS + 1)))"
}

anchor_ucx() {
    local st ct bw
    run_client "$WORK/ucxs.txt" timeout 120 env UCX_TLS=tcp UCX_NET_DEVICES=lo ucx_perftest -p 13337 >"$WORK/ucxs.ticks" &
    local spid=$!
    # No probe connection: the UCX server takes the first connection as its client.
    sleep 1.5
    ct=$(run_client "$WORK/ucx.txt" timeout 120 env UCX_TLS=tcp UCX_NET_DEVICES=lo ucx_perftest 127.0.0.1 -p 13337 -t tag_bw -s 1048576 -n "$UCX_N")
    wait "$spid" || true
    st=$(cat "$WORK/ucxs.ticks")
    bw=$(awk '/^Final:/ {print $7}' "$WORK/ucx.txt")
    [ -n "$bw" ] || { log "ucx_perftest failed: $(tail -3 "$WORK/ucx.txt")"; echo "0 nan"; return; }
    local mib=$UCX_N
    local cs=$(($(cat "$WORK/ucx.txt.ctx") + $(cat "$WORK/ucxs.txt.ctx")))
    echo "$bw $(python3 -c 'import sys; t,m=map(float,sys.argv[1:3]); print(f"{t/float(sys.argv[3])/(m/1024):.3f}")' $((ct + st)) "$mib" "$TICK") $(python3 -c 'import sys; c,m=map(float,sys.argv[1:]); print(f"{c/(m/1024):.1f}")' "$cs" "$mib")"
}

anchor_fi() {
    local st ct mbs
    run_client "$WORK/fis.txt" timeout 120 fi_pingpong -p tcp -e msg -B 47592 -I "${FI_N:-1000}" -S 1048576 >"$WORK/fis.ticks" &
    local spid=$!
    sleep 1
    ct=$(run_client "$WORK/fi.txt" timeout 120 fi_pingpong -p tcp -e msg -P 47592 -I "${FI_N:-1000}" -S 1048576 127.0.0.1)
    wait "$spid" || true
    st=$(cat "$WORK/fis.ticks")
    # MB/sec counts both directions in 10^6 bytes; the moved total is 2 x I MiB.
    mbs=$(awk '$1 == "1m" {print $6}' "$WORK/fi.txt")
    [ -n "$mbs" ] || { log "fi_pingpong failed: $(tail -3 "$WORK/fi.txt")"; echo "0 nan"; return; }
    local cs=$(($(cat "$WORK/fi.txt.ctx") + $(cat "$WORK/fis.txt.ctx")))
    python3 -c 'import sys; mbs,t,n,tick,cs=map(float,sys.argv[1:]); print(f"{mbs*1e6/1048576:.2f} {t/tick/(2*n/1024):.3f} {cs/(2*n/1024):.1f}")' "$mbs" $((ct + st)) "${FI_N:-1000}" "$TICK" "$cs"
}

# One stream of 1 MiB writes cycling through NBUF buffers on each side
# (tcp-copy prints MiB/s, CPU s/GiB and context switches/GiB itself).
anchor_copy() {
    timeout $((SECS + 20)) "$WORK/tcp-copy" "$1" 1048576 "$SECS" || echo "0 nan nan"
}
anchor_tcpcopy1() { anchor_copy 1; }
anchor_tcpcopy() { anchor_copy "$CONCURRENCY"; }

# tcp-rpc over loopback with TCP_RPC_SPIN=$1 and TCP_RPC_ONEBUF=$2: "MiB/s
# cpu_s_per_GiB ctxsw_per_GiB" of client and server over the client's run.
anchor_rpc_with() {
    local sp t0 c0 ct bw port=$((40000 + $$ % 20000))
    TCP_RPC_SPIN=$1 TCP_RPC_ONEBUF=$2 "$WORK/tcp-rpc" server 127.0.0.1 "$port" 1048576 "$CONCURRENCY" &
    sp=$!
    PIDS+=("$sp")
    wait_port 127.0.0.1 "$port" >&2
    t0=$(ticks "$sp")
    c0=$(ctxsw "$sp")
    ct=$(run_client "$WORK/rpc.out" timeout $((SECS + 20)) env TCP_RPC_SPIN="$1" TCP_RPC_ONEBUF="$2" "$WORK/tcp-rpc" client 127.0.0.1 "$port" 1048576 "$CONCURRENCY" "$SECS")
    local st=$(($(ticks "$sp") - t0)) sc=$(($(ctxsw "$sp") - c0))
    kill "$sp"
    wait "$sp" 2>/dev/null || true
    bw=$(awk '/^[0-9.]+$/ {print; exit}' "$WORK/rpc.out")
    [ -n "$bw" ] || { log "tcp-rpc failed: $(tail -3 "$WORK/rpc.out")"; echo "0 nan nan"; return; }
    echo "$bw $(cpu_per_gib $((ct + st)) "$bw" $((SECS + 1))) $(per_gib $(($(cat "$WORK/rpc.out.ctx") + sc)) "$bw" $((SECS + 1)))"
}
anchor_rpc() { anchor_rpc_with 0 0; }
anchor_rpcspin() { anchor_rpc_with 1 0; }
anchor_rpcspin1() { anchor_rpc_with 1 1; }

for a in $ANCHORS; do
    if [ "$a" = iperf3 ]; then
        iperf3 -s -p 5201 -B 127.0.0.1 >/dev/null 2>&1 &
        IPERF_PID=$!
        PIDS+=("$IPERF_PID")
        wait_port 127.0.0.1 5201
    fi
    : >"$WORK/pairs"
    for i in $(seq "$PAIRS"); do
        read -r ob oc ox < <(ours)
        read -r ab ac ax < <("anchor_$a")
        log "$a pair $i: ours $ob MiB/s ($oc cpu s/GiB, $ox ctxsw/GiB), anchor $ab MiB/s ($ac cpu s/GiB, $ax ctxsw/GiB)"
        echo "$ob $ab $oc $ac $ox $ax" >>"$WORK/pairs"
    done
    case $a in
        tcpcopy1) what="tcp-copy, 1 buffer per side" ;;
        tcpcopy) what="tcp-copy, $CONCURRENCY buffers per side" ;;
        rpc) what="tcp-rpc, lst's messages and buffers" ;;
        rpcspin) what="tcp-rpc busy-polling, lst's messages and buffers" ;;
        rpcspin1) what="tcp-rpc busy-polling, lst's messages, 1 buffer per side" ;;
        *) what=$a ;;
    esac
    ANCHOR_CTX_UNIT=GiB summary "S1 loopback 1 MiB: lst brw write (conc $CONCURRENCY, 1 conn) vs $what, MiB/s" <"$WORK/pairs"
    if [ "$a" = iperf3 ]; then kill "$IPERF_PID"; wait "$IPERF_PID" 2>/dev/null || true; fi
done
lst end_session >/dev/null

#!/usr/bin/env bash
# S7 (issue 15): lst brw write size=1M over o2ib on the soft verbs provider
# (lnd-o2ib) against the same over the TCP LND (lnd-sock) on the same path
# (127.0.0.1 -> 127.0.0.2, loopback), and against a one-thread memcpy of
# 1 MiB (bench/memcpy.c). Two pairs of lnetd (one per LND), A B A B, PAIRS
# pairs of SECS s each; prints MiB/s per pair, the median ratio
# o2ib/anchor (min, max) and CPU seconds per GiB (both lnetd of a pair).
# BRW=read runs `brw read` instead (the servers PUT the bulk to the clients;
# with BRW=write they GET it, which o2ib does by GET_REQ / RDMA WRITE /
# GET_DONE).
source "$(dirname "$0")/lib.sh"
CONCURRENCY=${CONCURRENCY:-8}
BRW=${BRW:-write}
case "$BRW" in
    write) COL=R ;;
    read) COL=W ;;
    *) echo "BRW must be write or read, not $BRW" >&2; exit 2 ;;
esac
# No third-party anchor: lnd-sock and memcpy are the anchors.
cpu_info
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    log "building lnetd, lnd-sock, lnd-o2ib, lnetctl/lst ($PROFILE)"
    (cd "$ROOT" && cargo build --quiet "${flag[@]}" -p lnetd --bin lnetd &&
        cargo build --quiet "${flag[@]}" -p lnd-sock -p lnd-o2ib -p lnetctl)
fi
cc -O2 -o "$WORK/memcpy" "$BENCH_DIR/memcpy.c"

port=$((20000 + $$ % 20000))
service=$((port + 1))
LNETD_PARAMS=(--param "accept_port=$port" --param "service=$service")

# net_node NAME NET ADDR: an lnetd with one NI; sets NODE_PID.
net_node() {
    local name=$1 net=$2 addr=$3 sock=$WORK/$1.sock
    "$BIN/lnetd" --socket "$sock" --foreground "${LNETD_PARAMS[@]}" 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.1; done
    "$BIN/lnetctl" --socket "$sock" lnet configure
    "$BIN/lnetctl" --socket "$sock" net add --net "$net" --if "$addr" >/dev/null
}

net_node ta tcp 127.0.0.1; pta=$NODE_PID
net_node tb tcp 127.0.0.2; ptb=$NODE_PID
net_node oa o2ib 127.0.0.1; poa=$NODE_PID
net_node ob o2ib 127.0.0.2; pob=$NODE_PID

# session SOCK CLIENT SERVER: an lst session on that node, batch bulk.
session() {
    local s=$1
    "$BIN/lst" --socket "$s" new_session --timeout 600 bench >/dev/null
    "$BIN/lst" --socket "$s" add_group s "$3" >/dev/null
    "$BIN/lst" --socket "$s" add_group c "$2" >/dev/null
    "$BIN/lst" --socket "$s" add_batch bulk >/dev/null
    "$BIN/lst" --socket "$s" add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw "$BRW" size=1M >/dev/null
}
LST_SESSION=$$ session "$WORK/ta.sock" 127.0.0.1@tcp 127.0.0.2@tcp
LST_SESSION=$(($$ + 1)) session "$WORK/oa.sock" 127.0.0.1@o2ib 127.0.0.2@o2ib

# measure SOCK SESSION PIDS...: "MiB/s cpu_s_per_GiB" of the servers.
measure() {
    local s=$1 sess=$2
    shift 2
    export LST_SESSION=$sess
    "$BIN/lst" --socket "$s" run bulk >/dev/null
    sleep 1
    local t0 t1 bw
    t0=$(ticks_of "$@")
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$s" stat --count 1 --delay "$SECS" s >"$WORK/stat.txt"
    t1=$(ticks_of "$@")
    "$BIN/lst" --socket "$s" stop bulk >/dev/null
    bw=$(awk -v col="[$COL]" '
        /^\[LNet Bandwidth/ { s = "b" }
        $1 == col && $2 == "Avg:" { if (s == "b") b = $3 }
        END { print (b == "" ? 0 : b) }' "$WORK/stat.txt")
    echo "$bw $(cpu_per_gib $((t1 - t0)) "$bw" "$SECS")"
}

: >"$WORK/pairs_tcp"
: >"$WORK/pairs_memcpy"
for i in $(seq "$PAIRS"); do
    read -r ob oc < <(measure "$WORK/oa.sock" $(($$ + 1)) "$poa" "$pob")
    read -r tb tc < <(measure "$WORK/ta.sock" $$ "$pta" "$ptb")
    read -r mb mc < <(timeout $((SECS + 10)) "$WORK/memcpy" 1048576 "$SECS")
    log "pair $i: o2ib-soft $ob MiB/s ($oc cpu s/GiB), tcp $tb MiB/s ($tc), memcpy $mb MiB/s ($mc)"
    echo "$ob $tb $oc $tc" >>"$WORK/pairs_tcp"
    echo "$ob $mb $oc $mc" >>"$WORK/pairs_memcpy"
done
summary "S7 lst brw $BRW 1 MiB (conc $CONCURRENCY): o2ib over the soft provider vs lnd-sock, MiB/s" <"$WORK/pairs_tcp"
summary "S7 lst brw $BRW 1 MiB (conc $CONCURRENCY): o2ib over the soft provider vs memcpy of 1 MiB, MiB/s" <"$WORK/pairs_memcpy"
for s in ta oa; do
    LST_SESSION=$([ $s = ta ] && echo $$ || echo $(($$ + 1))) "$BIN/lst" --socket "$WORK/$s.sock" end_session >/dev/null || true
done

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
# Figures that do not depend on the machine's load, per measured window:
# context switches per MiB (all and voluntary) of both daemons of each
# pair, and per thread name its CPU share and context switches per MiB;
# STRACE=1 adds system calls per MiB by name (`strace -f -c`, STRACE_SECS)
# and the bytes each read/write-like call moved; PERF=1 the symbols with
# most `perf record -e cpu-clock` samples (PERF_SECS, PERF_TOP; PERF_ARGS
# more record arguments, e.g. -g; PERF_KEEP=PREFIX keeps the profiles). Knobs:
# LNETD_EXTRA (every lnetd), O2IB_EXTRA (the o2ib pair only, e.g.
# "--plugin-path DIR" to A/B another build of liblnd_o2ib.so).
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
    local extra=${LNETD_EXTRA:-}
    [ "$net" = o2ib ] && extra="$extra ${O2IB_EXTRA:-}"
    # shellcheck disable=SC2086
    "$BIN/lnetd" --socket "$sock" --foreground "${LNETD_PARAMS[@]}" $extra 2>"$WORK/$name.log" &
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

# Per thread name of PID: "comm ticks voluntary all" (summed over the
# threads of that name): who burns the CPU and who sleeps.
thread_stats() {
    local t
    for t in /proc/"$1"/task/*; do
        { cat "$t/comm"; sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}'; cat "$t/status"; } 2>/dev/null |
            awk 'NR == 1 {c = $0; gsub(" ", "_", c)} NR == 2 {k = $1}
                 /^voluntary_ctxt_switches:/ {v = $2}
                 /^nonvoluntary_ctxt_switches:/ {n = $2}
                 END {if (c != "") print c, k + 0, v + 0, v + n}'
    done | awk '{k[$1] += $2; v[$1] += $3; a[$1] += $4} END {for (c in k) print c, k[c], v[c], a[c]}' | sort
}

# thread_delta NAME BEFORE AFTER MIB: per thread name, CPU share of the
# window and context switches per MiB.
thread_delta() {
    join "$2" "$3" | awk -v d="$1" -v mib="$4" -v secs="$SECS" -v tick="$TICK" '
        {k = $5 - $2; v = $6 - $3; a = $7 - $4
         if (k > 0 || a > 0) printf "#   %s %-16s %5.1f%% CPU, %7.2f ctxsw/MiB (%7.2f voluntary)\n", d, $1, 100 * k / tick / secs, mib ? a / mib : 0, mib ? v / mib : 0}' >&2
}

# strace_s7 SOCK SESSION NAME PIDS...: with STRACE=1, after the measured
# window (batch still running): `strace -f -c` on both daemons for
# STRACE_SECS (default 2) while `lst stat` measures the MiB moved, then
# system calls per MiB of each daemon and the commonest calls; and a
# second, shorter window (1 s) tracing the data calls in full for the
# bytes each read/write-like call moved on average. strace slows the
# daemons; the counts per MiB, not the rate, are the figure.
strace_s7() {
    local s=$1 sess=$2 name=$3
    shift 3
    command -v strace >/dev/null || { log "STRACE=1: strace is not installed"; return 0; }
    local secs=${STRACE_SECS:-2} p sp=()
    for p in "$@"; do
        strace -c -f -q -o "$WORK/strace.$p" -p "$p" 2>/dev/null &
        sp+=($!)
    done
    LST_SESSION=$sess timeout $((secs * 3 + 30)) "$BIN/lst" --socket "$s" stat --count 1 --delay "$secs" s >"$WORK/stat2.txt" || true
    kill -INT "${sp[@]}" 2>/dev/null || true
    wait "${sp[@]}" 2>/dev/null || true
    local bw
    bw=$(awk -v col="[$COL]" '/^\[LNet Bandwidth/ { s = "b" } $1 == col && $2 == "Avg:" { if (s == "b") b = $3 } END { print (b == "" ? 0 : b) }' "$WORK/stat2.txt")
    local i=0
    for p in "$@"; do
        i=$((i + 1))
        python3 -c '
import sys
name, mib = sys.argv[1], float(sys.argv[2])
calls, total = {}, 0
for l in open(sys.argv[3]):
    w = l.split()
    if len(w) >= 5 and w[0][0].isdigit():
        if w[-1] == "total":
            total = int(w[3])
        else:
            calls[w[-1]] = int(w[3])
per = lambda n: f"{n / mib:.1f}" if mib else "nan"
top = sorted(calls.items(), key=lambda kv: -kv[1])[:7]
print(f"#   strace {name}: {per(total)} syscalls/MiB ({total} calls, {mib:.0f} MiB); per MiB: " + ", ".join(f"{k} {per(v)}" for k, v in top))
' "$name$i" "$(python3 -c "print($bw * $secs)")" "$WORK/strace.$p" >&2
    done
    # Bytes per data call (return values of the read/write-like calls).
    i=0
    sp=()
    for p in "$@"; do
        strace -f -q -e trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg -o "$WORK/trace.$p" -p "$p" 2>/dev/null &
        sp+=($!)
    done
    sleep 1
    kill -INT "${sp[@]}" 2>/dev/null || true
    wait "${sp[@]}" 2>/dev/null || true
    for p in "$@"; do
        i=$((i + 1))
        python3 -c '
import re, sys
name = sys.argv[1]
st = {}
for l in open(sys.argv[2]):
    m = re.match(r"^\d+\s+(\w+)\(.*\)\s+=\s+(-?\d+)", l)
    if not m:
        continue
    c, r = m.group(1), int(m.group(2))
    n, b, e = st.get(c, (0, 0, 0))
    st[c] = (n + 1, b + max(r, 0), e + (r < 0))
print(f"#   bytes per call {name}: " + ", ".join(f"{c} {b / n:.0f} B ({n} calls, {e} failed)" for c, (n, b, e) in sorted(st.items(), key=lambda kv: -kv[1][0])))
' "$name$i" "$WORK/trace.$p" >&2
    done
    return 0
}

# perf_s7 NAME PIDS...: with PERF=1, after the measured window (batch
# still running), `perf record -e cpu-clock` on both daemons for
# PERF_SECS (default 2); logs the symbols with most samples (user and
# kernel; where the CPU goes, as shares: not a rate).
perf_s7() {
    local name=$1
    shift
    command -v perf >/dev/null || { log "PERF=1: perf is not installed"; return 0; }
    local pids
    pids=$(IFS=,; echo "$*")
    # shellcheck disable=SC2086
    perf record -q -e cpu-clock -F 1999 ${PERF_ARGS:-} -p "$pids" -o "$WORK/perf.$name" -- sleep "${PERF_SECS:-2}" >/dev/null 2>&1 || true
    if [ -n "${PERF_KEEP:-}" ]; then cp "$WORK/perf.$name" "$PERF_KEEP.$name"; fi
    perf report -q -i "$WORK/perf.$name" --stdio --no-children --sort comm,dso,sym 2>/dev/null |
        awk 'NF && $1 ~ /%$/' | head -"${PERF_TOP:-30}" | sed "s/^/#   perf $name: /" >&2 || true
    return 0
}

# measure SOCK SESSION NAME PIDS...: "MiB/s cpu_s_per_GiB ctxsw_per_MiB
# voluntary_per_MiB" of both daemons (NAME labels the log lines); the
# CPU and context switches of each thread name are logged.
measure() {
    local s=$1 sess=$2 name=$3
    shift 3
    export LST_SESSION=$sess
    "$BIN/lst" --socket "$s" run bulk >/dev/null
    sleep 1
    local t0 t1 bw c0 c1 v0 v1 p i
    i=0
    for p in "$@"; do i=$((i + 1)); thread_stats "$p" >"$WORK/th0.$i"; done
    c0=$(ctxsw_of "$@")
    v0=0
    for p in "$@"; do v0=$((v0 + $(ctxsw_vol "$p"))); done
    t0=$(ticks_of "$@")
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$s" stat --count 1 --delay "$SECS" s >"$WORK/stat.txt"
    t1=$(ticks_of "$@")
    c1=$(ctxsw_of "$@")
    v1=0
    for p in "$@"; do v1=$((v1 + $(ctxsw_vol "$p"))); done
    i=0
    for p in "$@"; do i=$((i + 1)); thread_stats "$p" >"$WORK/th1.$i"; done
    bw=$(awk -v col="[$COL]" '
        /^\[LNet Bandwidth/ { s = "b" }
        $1 == col && $2 == "Avg:" { if (s == "b") b = $3 }
        END { print (b == "" ? 0 : b) }' "$WORK/stat.txt")
    local mib
    mib=$(python3 -c "print($bw * $SECS)")
    log "  $name: per thread (client 1, server 2) over the window:"
    i=0
    for p in "$@"; do i=$((i + 1)); thread_delta "$name$i" "$WORK/th0.$i" "$WORK/th1.$i" "$mib"; done
    if [ "${STRACE:-0}" = 1 ]; then strace_s7 "$s" "$sess" "$name" "$@"; fi
    if [ "${PERF:-0}" = 1 ]; then perf_s7 "$name" "$@"; fi
    "$BIN/lst" --socket "$s" stop bulk >/dev/null
    echo "$bw $(cpu_per_gib $((t1 - t0)) "$bw" "$SECS") $(per_mib $((c1 - c0)) "$mib") $(per_mib $((v1 - v0)) "$mib")"
}

# per_mib N MIB: N per MiB.
per_mib() { python3 -c 'import sys; n,m=map(float,sys.argv[1:]); print(f"{n/m:.2f}" if m>0 else "nan")' "$@"; }

: >"$WORK/pairs_tcp"
: >"$WORK/pairs_memcpy"
for i in $(seq "$PAIRS"); do
    read -r ob oc ox ov < <(measure "$WORK/oa.sock" $(($$ + 1)) o2ib "$poa" "$pob")
    read -r tb tc tx tv < <(measure "$WORK/ta.sock" $$ tcp "$pta" "$ptb")
    read -r mb mc < <(timeout $((SECS + 10)) "$WORK/memcpy" 1048576 "$SECS")
    log "pair $i: o2ib-soft $ob MiB/s ($oc cpu s/GiB, $ox ctxsw/MiB, $ov voluntary), tcp $tb MiB/s ($tc, $tx ctxsw/MiB, $tv voluntary), memcpy $mb MiB/s ($mc)"
    echo "$ob $tb $oc $tc $ox $tx" >>"$WORK/pairs_tcp"
    echo "$ob $mb $oc $mc" >>"$WORK/pairs_memcpy"
done
ANCHOR_CTX_UNIT=MiB summary "S7 lst brw $BRW 1 MiB (conc $CONCURRENCY): o2ib over the soft provider vs lnd-sock, MiB/s" <"$WORK/pairs_tcp"
summary "S7 lst brw $BRW 1 MiB (conc $CONCURRENCY): o2ib over the soft provider vs memcpy of 1 MiB, MiB/s" <"$WORK/pairs_memcpy"
for s in ta oa; do
    LST_SESSION=$([ $s = ta ] && echo $$ || echo $(($$ + 1))) "$BIN/lst" --socket "$WORK/$s.sock" end_session >/dev/null || true
done

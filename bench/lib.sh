# Shared by the bench/ scripts (sourced, not run). Conventions of
# /work/shared/BENCHMARKING.md: ours and the anchor alternate A B A B, every
# client under `timeout`, servers killed by PID, CPU seconds from
# /proc/PID/stat (utime+stime), everything cleaned up on exit.
#
# Knobs (environment): PAIRS (default 5), SECS (seconds per run, default 5),
# PROFILE (cargo profile dir, default release), SKIP_BUILD=1 (use what is built).

set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PAIRS=${PAIRS:-5}
SECS=${SECS:-5}
PROFILE=${PROFILE:-release}
BIN=$ROOT/target/$PROFILE
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/lnet-bench.XXXXXX)
PIDS=()
NETNS=()
LST_SESSION=${LST_SESSION:-$$}
export LST_SESSION

cleanup() {
    set +e
    for s in "$WORK"/*.sock; do
        [ -S "$s" ] && timeout 10 "$BIN/lnetctl" --socket "$s" lnet unconfigure >/dev/null 2>&1
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*" >&2; }

# Installs the anchors from Debian when missing, and builds ours.
bench_setup() {
    local need=()
    command -v iperf3 >/dev/null || need+=(iperf3)
    command -v sockperf >/dev/null || need+=(sockperf)
    command -v qperf >/dev/null || need+=(qperf)
    command -v ucx_perftest >/dev/null || need+=(ucx-utils)
    command -v fi_pingpong >/dev/null || need+=(libfabric-bin)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    [ "${SKIP_BUILD:-0}" = 1 ] && return 0
    local flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    log "building lnetd, lnd-sock, lnetctl/lst ($PROFILE)"
    # Two builds: `--bin lnetd` would filter the other packages' binaries out.
    (cd "$ROOT" && cargo build --quiet "${flag[@]}" -p lnetd --bin lnetd &&
        cargo build --quiet "${flag[@]}" -p lnd-sock -p lnetctl)
}

# utime+stime of a live process, in clock ticks.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Sum of ticks of several PIDs.
ticks_of() { local t=0 p; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }

# run_client OUT CMD...: runs CMD (already under `timeout`) with stdout in
# OUT; prints the CPU ticks it used (a wrapper shell's cutime+cstime).
run_client() {
    local out=$1
    shift
    bash -c '"$@" >"$0" 2>&1 || true; sed "s/.*) //" /proc/$$/stat | awk "{print \$14 + \$15}"' "$out" "$@"
}

# Waits until a TCP port listens (for anchor servers).
wait_port() {
    local addr=$1 port=$2 ns=${3:-}
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    for _ in $(seq 100); do
        "${pre[@]}" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on $addr:$port"
    return 1
}

# node NAME IFACE_OR_ADDR [NETNS] [NET_ADD_OPTS...]: starts lnetd (in NETNS),
# configured with lnetctl only; sets NODE_PID.
node() {
    local name=$1 iface=$2 ns=${3:-}
    shift 3 || shift $#
    local sock=$WORK/$name.sock pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    "${pre[@]}" "$BIN/lnetd" --socket "$sock" --foreground "${LNETD_PARAMS[@]}" 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.1; done
    "$BIN/lnetctl" --socket "$sock" lnet configure
    "$BIN/lnetctl" --socket "$sock" net add --net tcp --if "$iface" "$@" >/dev/null
}
LNETD_PARAMS=()

lst() { "$BIN/lst" --socket "$WORK/a.sock" "$@"; }

# lst_session CLIENT_NID SERVER_NID: a session on node a with groups c and s.
lst_session() {
    lst new_session --timeout 600 bench >/dev/null
    lst add_group s "$2" >/dev/null
    lst add_group c "$1" >/dev/null
}

# lst_measure BATCH GROUP SECS: runs BATCH, lets it warm up 1 s, reports
# GROUP's figures over SECS seconds; prints "recv_rate recv_MiBps" of the
# group, then stops the batch. CPU ticks of all lnetd over the window go
# to $WORK/ticks.
lst_measure() {
    local batch=$1 group=$2 secs=$3
    lst run "$batch" >/dev/null
    sleep 1
    local t0 t1
    t0=$(ticks_of "${LNETD_PIDS[@]}")
    timeout $((secs * 3 + 30)) "$BIN/lst" --socket "$WORK/a.sock" stat --count 1 --delay "$secs" "$group" >"$WORK/stat.txt"
    t1=$(ticks_of "${LNETD_PIDS[@]}")
    echo $((t1 - t0)) >"$WORK/ticks"
    lst stop "$batch" >/dev/null
    awk '
        /^\[LNet Rates/ { s = "r" }
        /^\[LNet Bandwidth/ { s = "b" }
        /^\[R\] Avg:/ { if (s == "r") r = $3; else b = $3 }
        END { if (b == "") exit 1; print r, b }' "$WORK/stat.txt"
}

# summary NAME: reads lines "ours anchor ours_cpu_s_per_gib
# anchor_cpu_s_per_gib" from stdin ($CPU_LABEL names the CPU figure); prints each pair, the median ratio
# ours/anchor with min and max, and the median CPU s/GiB of both.
summary() {
    python3 -c '
import sys, statistics as st
name, label = sys.argv[1], sys.argv[2]
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
if not rows:
    print(f"{name}: no pairs"); sys.exit(1)
nan = float("nan")
r = [o / a if a else nan for o, a, *_ in rows]
print(f"{name}: pairs={len(rows)}")
for i, (o, a, *c) in enumerate(rows):
    extra = f"  {label} ours {c[0]:.2f} anchor {c[1]:.2f}" if len(c) == 2 else ""
    print(f"  pair {i+1}: ours {o:.2f} anchor {a:.2f} ratio {(o / a if a else nan):.3f}{extra}")
print(f"  ratio ours/anchor: median {st.median(r):.3f} min {min(r):.3f} max {max(r):.3f}")
if all(len(x) == 4 for x in rows):
    print(f"  {label}: ours median {st.median(x[2] for x in rows):.2f}, anchor median {st.median(x[3] for x in rows):.2f}")
' "$1" "${CPU_LABEL:-cpu s/GiB}"
}

# cpu_per_gib TICKS MIBPS SECS: CPU seconds per GiB moved.
cpu_per_gib() {
    python3 -c 'import sys; t,b,s=map(float,sys.argv[1:]); g=b*s/1024; print(f"{t/'"$TICK"'/g:.3f}" if g>0 else "nan")' "$@"
}

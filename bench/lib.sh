# Shared by the bench/ scripts (sourced, not run). Conventions of
# /work/shared/BENCHMARKING.md: ours and the anchor alternate A B A B, every
# client under `timeout`, servers killed by PID, CPU seconds from
# /proc/PID/stat (utime+stime), everything cleaned up on exit.
#
# Knobs (environment): PAIRS (default 5), SECS (seconds per run, default 5),
# PROFILE (cargo profile dir, default release), SKIP_BUILD=1 (use what is built),
# LNETD_EXTRA (more lnetd arguments, e.g. "--param rx_spin_us=200"),
# LNETD_EXTRA_<NODE> (more for one node: a, b, c1 ...), PERF_WINDOW (a
# directory: each lst batch's first window recorded with perf, see
# lst_measure),
# STRACE=1 (after each measured window, count system calls per message and
# per MiB with strace for STRACE_SECS, default 2; see strace_window).

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
    cpu_info
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

# The host, printed once before any figure (ratios do not travel between
# CPU models; context switches per message mostly do). With perf, also what
# one trivial system call costs here (`perf bench syscall basic`): the
# kernel's mitigations can make it several times dearer on one host than
# on another, and a message-rate ratio against a transport that makes fewer
# calls per byte moves with it.
cpu_info() {
    local sc=
    if command -v perf >/dev/null; then
        sc=$(perf bench syscall basic --loop 200000 2>/dev/null | awk '/usecs\/op/ {printf ", %.3f us per system call", $1}')
    fi
    echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)$sc"
}

# Context switches (voluntary + involuntary) of every live thread of a
# process so far. /proc/PID/status alone counts the main thread only. A
# thread that ends between the glob and the read (lnetd serves each
# lnetctl request on a thread of its own) is left out, not an error.
ctxsw() {
    { cat /proc/"$1"/task/*/status 2>/dev/null || true; } |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {t += $2} END {print t + 0}'
}

# Voluntary context switches only (a thread that blocked: the design's
# hand-offs; involuntary ones grow with the machine's load).
ctxsw_vol() {
    { cat /proc/"$1"/task/*/status 2>/dev/null || true; } |
        awk '/^voluntary_ctxt_switches:/ {t += $2} END {print t + 0}'
}

# Sum of ctxsw of several PIDs.
ctxsw_of() { local t=0 p; for p in "$@"; do t=$((t + $(ctxsw "$p"))); done; echo "$t"; }

# LNet messages a daemon handled so far: send_count + recv_count of
# `lnetctl stats show` on its control socket.
lnet_msgs() {
    [ -S "${1:-}" ] || { echo 0; return; }
    "$BIN/lnetctl" --socket "$1" stats show | awk '/^ *(send|recv)_count:/ {t += $2} END {printf "%.0f\n", t}'
}

# Bytes a daemon sent and received so far (send_length + recv_length).
lnet_bytes() {
    [ -S "${1:-}" ] || { echo 0; return; }
    "$BIN/lnetctl" --socket "$1" stats show | awk '/^ *(send|recv)_length:/ {t += $2} END {printf "%.0f\n", t}'
}

# strace_window SECS: with STRACE=1, lst_measure calls it after each
# measured window, batch still running: strace -c -f on every lnetd for
# SECS seconds, then logs per daemon the system calls per LNet message and
# per MiB it moved, and the commonest calls per message. strace stops the
# daemons at every call (they run slower, so more sends queue and share a
# write), which is why it never overlaps the measured window; the counts,
# not the rates, are the figure.
strace_window() {
    local secs=$1 p
    command -v strace >/dev/null || { log "STRACE=1: strace is not installed"; return 0; }
    declare -A m0=() b0=() sp=()
    for p in "${LNETD_PIDS[@]}"; do
        m0[$p]=$(lnet_msgs "${SOCK_OF[$p]:-}")
        b0[$p]=$(lnet_bytes "${SOCK_OF[$p]:-}")
        strace -c -f -q -o "$WORK/strace.$p" -p "$p" 2>/dev/null &
        sp[$p]=$!
    done
    sleep "$secs"
    for p in "${LNETD_PIDS[@]}"; do kill -INT "${sp[$p]}" 2>/dev/null; done
    for p in "${LNETD_PIDS[@]}"; do wait "${sp[$p]}" 2>/dev/null || true; done
    for p in "${LNETD_PIDS[@]}"; do
        local m=$(($(lnet_msgs "${SOCK_OF[$p]:-}") - m0[$p]))
        local b=$(($(lnet_bytes "${SOCK_OF[$p]:-}") - b0[$p]))
        python3 -c '
import sys
name, m, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
calls, total = {}, 0
for l in open(sys.argv[4]):
    w = l.split()
    if len(w) >= 5 and w[0][0].isdigit():
        if w[-1] == "total":
            total = int(w[3])
        else:
            calls[w[-1]] = int(w[3])
mib = b / 1048576
per = lambda n, d: f"{n / d:.2f}" if d else "nan"
top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
print(f"strace {name}: {per(total, m)} syscalls/msg, {per(total, mib)} syscalls/MiB ({total} calls, {m} msgs, {mib:.0f} MiB); per msg: "
      + ", ".join(f"{k} {per(v, m)}" for k, v in top))
' "${NAME_OF[$p]:-$p}" "$m" "$b" "$WORK/strace.$p" | sed 's/^/# ours: /' >&2
    done
}

# run_client OUT CMD...: runs CMD (already under `timeout`) with stdout in
# OUT; prints the CPU ticks it used (its children's rusage); the context
# switches of CMD and its descendants go to OUT.ctx.
run_client() {
    local out=$1
    shift
    python3 -c '
import os, resource, subprocess, sys
out, tick = sys.argv[1], float(sys.argv[2])
with open(out, "wb") as f:
    subprocess.run(sys.argv[3:], stdout=f, stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(out + ".ctx", "w").write(f"{r.ru_nvcsw + r.ru_nivcsw}\n")
print(round((r.ru_utime + r.ru_stime) * tick))
' "$out" "$TICK" "$@"
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
    # LNETD_WRAP: a command lnetd runs under (s3-profile.sh: valgrind).
    # shellcheck disable=SC2086
    # LNETD_EXTRA_<NAME>: more arguments for that node alone (after
    # LNETD_EXTRA: a parameter given in both takes this one).
    local own=LNETD_EXTRA_$name
    # shellcheck disable=SC2086
    "${pre[@]}" ${LNETD_WRAP:-} "$BIN/lnetd" --socket "$sock" --foreground "${LNETD_PARAMS[@]}" ${LNETD_EXTRA:-} ${!own:-} 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    SOCK_OF[$NODE_PID]=$sock
    NAME_OF[$NODE_PID]=$name
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.1; done
    "$BIN/lnetctl" --socket "$sock" lnet configure
    "$BIN/lnetctl" --socket "$sock" net add --net tcp --if "$iface" "$@" >/dev/null
}
LNETD_PARAMS=()
declare -A SOCK_OF=() NAME_OF=()

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
# to $WORK/ticks, their context switches to $WORK/ctx; per daemon, context
# switches and CPU microseconds per LNet message it handled (see
# msg_costs) are logged and kept for `summary`.
lst_measure() {
    local batch=$1 group=$2 secs=$3 p
    lst run "$batch" >/dev/null
    sleep 1
    local t0 t1
    declare -A c0=() v0=() m0=() k0=()
    for p in "${LNETD_PIDS[@]}"; do
        m0[$p]=$(lnet_msgs "${SOCK_OF[$p]:-}")
        c0[$p]=$(ctxsw "$p")
        v0[$p]=$(ctxsw_vol "$p")
        k0[$p]=$(ticks "$p")
    done
    t0=$(ticks_of "${LNETD_PIDS[@]}")
    # PERF_WINDOW=DIR: the first window of each batch is also recorded by
    # `perf record -e cpu-clock -a` into DIR/BATCH.data (a profile of the
    # whole machine while the batch runs; read it with `perf report -i`).
    local perf_pid=
    if [ -n "${PERF_WINDOW:-}" ] && [ ! -e "$PERF_WINDOW/$batch.data" ]; then
        mkdir -p "$PERF_WINDOW"
        perf record -q -e cpu-clock -F 2999 -a -g -o "$PERF_WINDOW/$batch.data" -- sleep "$secs" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    timeout $((secs * 3 + 30)) "$BIN/lst" --socket "$WORK/a.sock" stat --count 1 --delay "$secs" "$group" >"$WORK/stat.txt"
    t1=$(ticks_of "${LNETD_PIDS[@]}")
    [ -z "$perf_pid" ] || wait "$perf_pid" || true
    echo $((t1 - t0)) >"$WORK/ticks"
    : >"$WORK/window"
    for p in "${LNETD_PIDS[@]}"; do
        echo "${NAME_OF[$p]:-$p} $(($(ctxsw "$p") - c0[$p])) $(($(lnet_msgs "${SOCK_OF[$p]:-}") - m0[$p])) $(($(ticks "$p") - k0[$p])) $(($(ctxsw_vol "$p") - v0[$p]))" >>"$WORK/window"
    done
    awk '{t += $2} END {print t + 0}' "$WORK/window" >"$WORK/ctx"
    msg_costs <"$WORK/window" | tee -a "$WORK/${COSTS:-costs}" | sed 's/^/# ours: /' >&2
    [ "${STRACE:-0}" = 1 ] && strace_window "${STRACE_SECS:-2}"
    lst stop "$batch" >/dev/null
    awk '
        /^\[LNet Rates/ { s = "r" }
        /^\[LNet Bandwidth/ { s = "b" }
        /^\[R\] Avg:/ { if (s == "r") r = $3; else b = $3 }
        END { if (b == "") exit 1; print r, b }' "$WORK/stat.txt"
}

# summary NAME: reads lines "ours anchor ours_cpu_s_per_gib
# anchor_cpu_s_per_gib [ours_ctxsw anchor_ctxsw]" from stdin ($CPU_LABEL
# names the CPU figure, $ANCHOR_CTX_UNIT what the context switches are
# counted per); prints each pair, the median ratio ours/anchor with min and
# max, the median CPU of both, and the medians of the per-message costs the
# lst_measure calls since the last summary logged.
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
    extra = f"  {label} ours {c[0]:.2f} anchor {c[1]:.2f}" if len(c) >= 2 else ""
    print(f"  pair {i+1}: ours {o:.2f} anchor {a:.2f} ratio {(o / a if a else nan):.3f}{extra}")
print(f"  ratio ours/anchor: median {st.median(r):.3f} min {min(r):.3f} max {max(r):.3f}")
if all(len(x) >= 4 for x in rows):
    print(f"  {label}: ours median {st.median(x[2] for x in rows):.2f}, anchor median {st.median(x[3] for x in rows):.2f}")
if all(len(x) >= 6 for x in rows):
    print(f"  context switches per {sys.argv[4]}: ours median {st.median(x[4] for x in rows):.1f}, anchor median {st.median(x[5] for x in rows):.1f}")
try:
    costs = [l for l in open(sys.argv[3]) if l.strip()]
except OSError:
    costs = []
if costs:
    # Lines "d1 C ctxsw/msg U cpu_us/msg (N msgs); d2 ...; all ..." per window.
    per = {}
    for l in costs:
        for part in l.split(";"):
            w = part.split()
            per.setdefault(w[0], []).append((float(w[1]), float(w[3]), float(w[5])))
    for d, v in per.items():
        print(f"  ours {d}: median {st.median(x[0] for x in v):.3f} context switches ({st.median(x[2] for x in v):.3f} voluntary) and {st.median(x[1] for x in v):.1f} cpu us per LNet message")
' "$1" "${CPU_LABEL:-cpu s/GiB}" "$WORK/${COSTS:-costs}" "${ANCHOR_CTX_UNIT:-unit}"
    : >"$WORK/${COSTS:-costs}"
}

# msg_costs: reads lines "daemon ctx_switches lnet_messages ticks
# voluntary_ctx_switches" of one window; prints "ctxsw/msg cpu_us/msg
# vol/msg" per daemon and for all of them, on one line. A message is one the daemon sent or received (send_count +
# recv_count), so a message between two daemons counts once in each.
msg_costs() {
    python3 -c '
import sys
tick = float(sys.argv[1])
nan = float("nan")
rows = [l.split() for l in sys.stdin if l.strip()]
tc = tm = tt = tv = 0
out = []
def line(name, c, m, t, v):
    return f"{name} {c / m if m else nan:.3f} ctxsw/msg {t / tick / m * 1e6 if m else nan:.1f} cpu_us/msg {v / m if m else nan:.3f} voluntary ({m} msgs)"
for name, c, m, t, v in rows:
    c, m, t, v = int(c), int(m), int(t), int(v)
    tc, tm, tt, tv = tc + c, tm + m, tt + t, tv + v
    out.append(line(name, c, m, t, v))
out.append(line("all", tc, tm, tt, tv))
print("; ".join(out))
' "$TICK"
}

# per_gib N MIBPS SECS: N per GiB moved.
per_gib() {
    python3 -c 'import sys; n,b,s=map(float,sys.argv[1:]); g=b*s/1024; print(f"{n/g:.1f}" if g>0 else "nan")' "$@"
}

# cpu_per_gib TICKS MIBPS SECS: CPU seconds per GiB moved.
cpu_per_gib() {
    python3 -c 'import sys; t,b,s=map(float,sys.argv[1:]); g=b*s/1024; print(f"{t/'"$TICK"'/g:.3f}" if g>0 else "nan")' "$@"
}

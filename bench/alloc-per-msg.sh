#!/usr/bin/env bash
# Heap allocations per message in the real daemons (issue #5: no per-message
# heap allocation in the data path). Two lnetd on loopback over the TCP LND
# (as S1) run an lst batch; perf counts every call into libc's allocator
# (uprobes on malloc, calloc, realloc, posix_memalign, aligned_alloc) in both
# daemons, lnetd and the lnd-sock plugin alike (the plugin has its own copy of
# std, but both allocate through libc), over SECS seconds. The LNet messages
# of the same window (send_count + recv_count of both daemons, from `lnetctl
# stats show`) divide it. Batches: brw write 1M, brw read 4k check=simple,
# ping; CONCURRENCY (default 8) each. The window also holds the control
# traffic of the measurement itself (two `lnetctl stats show` per daemon).
# Root only (uprobes). Knobs: SECS (default 5), CONCURRENCY, SKIP_BUILD=1.
source "$(dirname "$0")/lib.sh"
CONCURRENCY=${CONCURRENCY:-8}
[ "$(id -u)" = 0 ] || { log "uprobes need root"; exit 1; }
command -v perf >/dev/null || {
    log "installing linux-perf"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
}
bench_setup

libc=$(ldd "$BIN/lnetd" | awk '/libc\.so/ {print $3}')
FUNCS=(malloc calloc realloc posix_memalign aligned_alloc)
cleanup_probes() { perf probe -q -d 'probe_libc:*' 2>/dev/null || true; }
trap 'cleanup_probes; cleanup' EXIT
cleanup_probes
for f in "${FUNCS[@]}"; do perf probe -q -x "$libc" --add "$f" >/dev/null; done
events=$(printf 'probe_libc:%s,' "${FUNCS[@]}")
events=${events%,}

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a 127.0.0.1 "" --conns-per-peer 1
pa=$NODE_PID
node b 127.0.0.2 "" --conns-per-peer 1
pb=$NODE_PID
LNETD_PIDS=("$pa" "$pb")
lst_session 127.0.0.1@tcp 127.0.0.2@tcp
declare -A TESTS=(
    [write]="brw write size=1M"
    [read]="brw read size=4k check=simple"
    [ping]="ping"
)
for b in write read ping; do
    lst add_batch "$b" >/dev/null
    # shellcheck disable=SC2086
    lst add_test --batch "$b" --concurrency "$CONCURRENCY" --from c --to s ${TESTS[$b]} >/dev/null
done

# Messages sent and received so far by both daemons.
msgs() {
    local n=0 s
    for s in a b; do
        n=$((n + $("$BIN/lnetctl" --socket "$WORK/$s.sock" stats show |
            awk '/^ *(send|recv)_count:/ {t += $2} END {print t}')))
    done
    echo "$n"
}

# The probes see the daemons: control requests allocate (YAML, strings).
perf stat -x, -e "$events" -p "$pa,$pb" -o "$WORK/perf.txt" -- \
    bash -c 'for i in 1 2 3; do "$0" --socket "$1" net show -v >/dev/null; done' "$BIN/lnetctl" "$WORK/a.sock"
allocs=$(awk -F, '$3 ~ /probe_libc/ {t += $1} END {print t + 0}' "$WORK/perf.txt")
echo "check : 3 x lnetctl net show -v: $allocs allocator calls in the daemons (must not be 0)"
[ "$allocs" -gt 0 ] || { log "the probes saw nothing: cannot measure"; exit 1; }

for b in write read ping; do
    lst run "$b" >/dev/null
    sleep 2
    m0=$(msgs)
    perf stat -x, -e "$events" -p "$pa,$pb" -o "$WORK/perf.txt" -- sleep "$SECS"
    m1=$(msgs)
    lst stop "$b" >/dev/null
    sleep 1
    allocs=$(awk -F, '$3 ~ /probe_libc/ {t += $1} END {print t + 0}' "$WORK/perf.txt")
    python3 -c '
import sys
b, a, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = a / m if m else float("nan")
print(f"{b:6s}: {m} LNet messages, {a} allocator calls, {per:.5f} per message")
' "$b" "$allocs" $((m1 - m0))
done

#!/usr/bin/env bash
# S3 profile (issue 17): what one `lst ping` RPC at concurrency 1 costs, in
# figures that do not depend on the machine's load or speed. Two lnetd on
# loopback (127.0.0.1 -> 127.0.0.2, TCP LND) as in s3-ping-rtt.sh; a ping
# batch of concurrency CONCURRENCY (default 1) runs for SECS seconds and each
# window is divided by the RPCs it carried (an RPC is a request and a reply:
# two LNet messages for each daemon).
#  - counts: context switches per RPC of each daemon (all and voluntary),
#    per thread name (who sleeps: the reader, the executor, the timer...).
#  - strace (needs strace): system calls per RPC of each daemon, by name
#    (`strace -f -c` attached to both for the window).
#  - callgrind (needs valgrind; slow, ~50x): instructions per RPC of each
#    daemon run under `valgrind --tool=callgrind` (instrumented from after the
#    warm-up, counts zeroed at the start of the window and dumped at its end), and the functions with most inclusive
#    instructions (CALLGRIND_TOP, default 25).
#  - perf (needs perf): `perf record -e cpu-clock -a` over the window (no
#    hardware counters needed, so it works in a VM), then each thread name
#    and object's share of all samples (the kernel, lnetd, the plugin, libc;
#    idle vCPUs show as swapper) and the symbols with most samples
#    (PERF_TOP, default 30), with the RPC rate of the window.
# MODES selects (default "counts strace callgrind"). LST_TEST (default
# "ping") is the test, e.g. "brw write size=1M"; FAULT=1 loads lnd-fault
# (no rule) into both daemons first, to compare with FAULT=0 (issue 14).
# Knobs of lib.sh apply.
source "$(dirname "$0")/lib.sh"
bench_setup
MODES=${MODES:-counts strace callgrind}
CONC=${CONCURRENCY:-1}
LST_TEST=${LST_TEST:-ping}
TOP=${CALLGRIND_TOP:-25}

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")

# RPCs so far: the server's received requests (each daemon's send_count +
# recv_count is two messages per RPC).
rpcs() { echo $(($(lnet_msgs "$WORK/b.sock") / 2)); }

# Context switches of every thread of PID, one "comm voluntary all" line
# per thread name (summed over the threads of that name).
thread_ctx() {
    local t
    for t in /proc/"$1"/task/*; do
        awk -v c="$(cat "$t/comm" 2>/dev/null)" '
            /^voluntary_ctxt_switches:/ {v = $2}
            /^nonvoluntary_ctxt_switches:/ {n = $2}
            END {print c, v + 0, v + n}' "$t/status" 2>/dev/null
    done | awk '{v[$1] += $2; a[$1] += $3} END {for (c in v) print c, v[c], a[c]}' | sort
}

setup() {
    node a 127.0.0.1 ""
    pa=$NODE_PID
    node b 127.0.0.2 ""
    pb=$NODE_PID
    LNETD_PIDS=("$pa" "$pb")
    if [ "${FAULT:-0}" = 1 ]; then
        local n
        for n in a b; do
            "$BIN/lnetctl" --socket "$WORK/$n.sock" fault drop show >/dev/null
        done
    fi
    lst_session 127.0.0.1@tcp 127.0.0.2@tcp
    lst add_batch p >/dev/null
    # shellcheck disable=SC2086 # the test and its options are words
    lst add_test --batch p --concurrency "$CONC" --from c --to s $LST_TEST >/dev/null
}

teardown() {
    lst end_session >/dev/null 2>&1 || true
    local p
    for p in "$pa" "$pb"; do
        timeout 60 "$BIN/lnetctl" --socket "${SOCK_OF[$p]}" lnet unconfigure >/dev/null 2>&1 || true
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -f "$WORK"/a.sock "$WORK"/b.sock
}

mode_counts() {
    setup
    lst run p >/dev/null
    sleep 1
    local r0 r1 p
    r0=$(rpcs)
    thread_ctx "$pa" >"$WORK/ta0"
    thread_ctx "$pb" >"$WORK/tb0"
    sleep "$SECS"
    thread_ctx "$pa" >"$WORK/ta1"
    thread_ctx "$pb" >"$WORK/tb1"
    r1=$(rpcs)
    lst stop p >/dev/null
    local n=$((r1 - r0))
    echo "counts: $n RPCs in $SECS s (conc $CONC)"
    for p in a b; do
        join "$WORK/t${p}0" "$WORK/t${p}1" | awk -v n="$n" -v d="$p" '
            {vol = $4 - $2; all = $5 - $3; tv += vol; ta += all
             if (all > 0) printf "  %s thread %-16s %.3f context switches per RPC (%.3f voluntary)\n", d, $1, all / n, vol / n}
            END {printf "  %s all threads: %.3f context switches per RPC (%.3f voluntary)\n", d, ta / n, tv / n}'
    done
    teardown
}

mode_strace() {
    command -v strace >/dev/null || { log "strace missing: skipped"; return 0; }
    setup
    lst run p >/dev/null
    sleep 1
    local r0 r1 sa sb
    # The RPCs counted span the whole attachment (strace slows the daemons
    # while attached; the calls per RPC stay what they are).
    r0=$(rpcs)
    strace -f -c -o "$WORK/strace.a" -p "$pa" 2>/dev/null &
    sa=$!
    strace -f -c -o "$WORK/strace.b" -p "$pb" 2>/dev/null &
    sb=$!
    sleep "$SECS"
    kill -INT "$sa" "$sb"
    wait "$sa" "$sb" 2>/dev/null || true
    r1=$(rpcs)
    lst stop p >/dev/null
    local n=$((r1 - r0))
    echo "strace: $n RPCs counted around the attachment (conc $CONC; strace attaches a moment after the first count, so the figures read a few % under the calls of one RPC)"
    for p in a b; do
        awk -v n="$n" -v d="$p" '
            $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {name = $NF; calls = $4; if (calls ~ /^[0-9]+$/) {tot += calls; if (calls / n >= 0.005) printf "  %s %-16s %.3f per RPC\n", d, name, calls / n}}
            END {printf "  %s all system calls: %.3f per RPC\n", d, tot / n}' "$WORK/strace.$p"
    done
    teardown
}

mode_callgrind() {
    command -v valgrind >/dev/null || { log "valgrind missing: skipped"; return 0; }
    LNETD_WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$WORK/cg.%p" setup
    lst run p >/dev/null
    sleep 3
    local r0 r1 p
    callgrind_control -i on "$pa" >/dev/null
    callgrind_control -i on "$pb" >/dev/null
    sleep 1
    callgrind_control -z "$pa" >/dev/null
    callgrind_control -z "$pb" >/dev/null
    r0=$(rpcs)
    sleep "$SECS"
    r1=$(rpcs)
    callgrind_control -d "$pa" >/dev/null
    callgrind_control -d "$pb" >/dev/null
    lst stop p >/dev/null
    local d
    echo "callgrind: conc $CONC, ~$((r1 - r0)) RPCs in the window; per RPC = per message received by each daemon (the calls of NiHost::parse in the profile: one request or one reply per RPC)"
    for d in a b; do
        p=$([ "$d" = a ] && echo "$pa" || echo "$pb")
        local f n
        f=$(ls -t "$WORK"/cg."$p"* | head -1)
        n=$(callgrind_annotate --tree=calling "$f" 2>/dev/null |
            sed -n 's/.*>  .*NiHost as lnd_api::lnd::Host>::parse (\([0-9,]*\)x).*/\1/p' | tr -d , | sort -n | tail -1)
        [ -n "$n" ] && [ "$n" -gt 0 ] || { log "$d: no received message in the profile"; continue; }
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null >"$WORK/cg.$d.txt" || true
        awk -v n="$n" -v d="$d" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "  %s instructions per RPC: %.0f (%d RPCs)\n", d, $1 / n, n}' "$WORK/cg.$d.txt"
        awk -v n="$n" -v d="$d" -v top="$TOP" '
            /^-+$/ {sep++; next}
            sep >= 4 && NF >= 2 && k < top {x = $1; gsub(",", "", x); if (x ~ /^[0-9]+$/) {k++; $1 = ""; printf "    %s %8.0f/RPC %s\n", d, x / n, substr($0, 1, 140)}}' "$WORK/cg.$d.txt"
        if [ -n "${KEEP_PROFILE:-}" ]; then
            cp "$f" "$KEEP_PROFILE.$d"
            cp "$WORK/cg.$d.txt" "$KEEP_PROFILE.$d.txt"
        fi
    done
    teardown
}

mode_perf() {
    command -v perf >/dev/null || { log "perf missing: skipped"; return 0; }
    setup
    lst run p >/dev/null
    sleep 1
    local r0 r1
    r0=$(rpcs)
    perf record -q -e cpu-clock -F 4999 -a -o "$WORK/perf.data" -- sleep "$SECS" >/dev/null 2>&1
    r1=$(rpcs)
    lst stop p >/dev/null
    local n=$((r1 - r0))
    echo "perf: $n RPCs in $SECS s (conc $CONC, $LST_TEST), $((n / SECS)) RPC/s; samples of both CPUs"
    perf report -i "$WORK/perf.data" --no-children --sort comm,dso -q --stdio 2>/dev/null |
        awk 'NF >= 3 && $1 ~ /%$/ && $1 + 0 >= 0.5 {printf "    %-8s %-18s %s\n", $1, $2, $3}' | head -20
    perf report -i "$WORK/perf.data" --no-children --sort dso,sym -q --stdio 2>/dev/null |
        awk -v top="${PERF_TOP:-30}" 'NF >= 3 && $1 ~ /%$/ && k < top {k++; print "    " $0}'
    teardown
}

for m in $MODES; do
    "mode_$m"
done

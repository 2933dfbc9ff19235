#!/usr/bin/env bash
# Issue #14 item 2 ("off means free"): S1 (lst brw write size=1M over the
# TCP LND on loopback, one connection, CONCURRENCY in flight) on two pairs of
# lnetd at once: A plain (127.0.0.1 -> 127.0.0.2), B with the fault plugin
# loaded and stacked on every NI but no rule (127.0.0.3 -> 127.0.0.4; the
# first `lnetctl fault drop show` loads lnd-fault from lnetd's directory).
# By default (TOGETHER=1) both arms run at once in each window of SECS s:
# they share the CPUs, so a per-message cost of the plugin shows as a
# smaller share, and a change of the machine's load hits both in the same
# second. TOGETHER=0 measures them in turn, in interleaved pairs whose order
# flips every pair (A B, B A, A B ...). PLACEBO=1 loads the plugin in
# neither pair (an A/A run). Prints MiB/s per pair and the median ratio B/A
# (target >= 0.98),
# with, for both arms, CPU s/GiB and context switches per 1 MiB write
# (voluntary + involuntary, all threads of the two daemons of the arm).
#
# First, the deterministic check that does not depend on load (lnd-fault's
# tests alloc.rs and off_free.rs, same profile): with the filter stacked and
# no rule the data path allocates nothing, takes no lock, never blocks and
# makes no system call per message (strace -f -c when installed). Its findings are printed
# ("off-free: ...") before the A/B; CHECK=0 skips it.
source "$(dirname "$0")/lib.sh"
CONCURRENCY=${CONCURRENCY:-8}

if [ "${CHECK:-1}" != 0 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    log "deterministic check: cargo test -p lnd-fault --test alloc --test off_free ($PROFILE)"
    if (cd "$ROOT" && cargo test --quiet "${flag[@]}" -p lnd-fault --test alloc --test off_free \
        -- --nocapture --test-threads 1) >"$WORK/check.txt" 2>&1; then
        echo "off-free check (load-independent): PASSED"
        grep -o 'off-free:.*' "$WORK/check.txt" | sed 's/^/  /'
    else
        echo "off-free check (load-independent): FAILED"
        sed 's/^/  /' "$WORK/check.txt"
        exit 1
    fi
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    log "building lnetd, lnd-sock, lnd-fault, lnetctl/lst ($PROFILE)"
    (cd "$ROOT" && cargo build --quiet "${flag[@]}" -p lnetd --bin lnetd &&
        cargo build --quiet "${flag[@]}" -p lnd-sock -p lnd-fault -p lnetctl)
fi
[ -f "$BIN/liblnd_fault.so" ] || { log "no $BIN/liblnd_fault.so"; exit 1; }

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a 127.0.0.1 "" --conns-per-peer 1
pa=$NODE_PID
node b 127.0.0.2 "" --conns-per-peer 1
pb=$NODE_PID
LNETD_PARAMS=(--param "accept_port=$((port + 1))")
node c 127.0.0.3 "" --conns-per-peer 1
pc=$NODE_PID
node d 127.0.0.4 "" --conns-per-peer 1
pd=$NODE_PID
# PLACEBO=1 loads the plugin in neither pair: an A/A run, to see the
# difference the two pairs make without it.
for n in c d; do
    [ "${PLACEBO:-0}" = 1 ] && break
    out=$("$BIN/lnetctl" --socket "$WORK/$n.sock" fault drop show)
    [ -z "$out" ] || { log "node $n has drop rules: $out"; exit 1; }
    "$BIN/lnetctl" --socket "$WORK/$n.sock" plugin show | grep -q 'name: lnd-fault' ||
        { log "lnd-fault not loaded in node $n"; exit 1; }
done

# set_up CONSOLE CLIENT SERVER: a session, groups and the bulk batch.
set_up() {
    local s=$WORK/$1.sock
    "$BIN/lst" --socket "$s" new_session --timeout 600 bench >/dev/null
    "$BIN/lst" --socket "$s" add_group s "$3" >/dev/null
    "$BIN/lst" --socket "$s" add_group c "$2" >/dev/null
    "$BIN/lst" --socket "$s" add_batch bulk >/dev/null
    "$BIN/lst" --socket "$s" add_test --batch bulk --concurrency "$CONCURRENCY" \
        --from c --to s brw write size=1M >/dev/null
}
set_up a 127.0.0.1@tcp 127.0.0.2@tcp
set_up c 127.0.0.3@tcp 127.0.0.4@tcp

# Context switches (voluntary + involuntary) of every thread of PIDs.
ctxsw_of() {
    local p f n=0
    for p in "$@"; do
        for f in /proc/"$p"/task/*/status; do
            n=$((n + $(awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)))
        done
    done
    echo "$n"
}

# figures STAT TICKS CTXSW: "MiB/s cpu_s/GiB ctxsw/MiB" of one arm over
# SECS, from its `lst stat` output and its daemons' CPU ticks and context
# switches in that window.
figures() {
    local bw
    bw=$(awk '
        /^\[LNet Bandwidth/ { s = "b" }
        /^\[R\] Avg:/ { if (s == "b") b = $3 }
        END { if (b == "") exit 1; print b }' "$1")
    echo "$bw $(cpu_per_gib "$2" "$bw" "$SECS") $(python3 -c 'import sys; c,b,s=map(float,sys.argv[1:]); n=b*s; print(f"{c/n:.2f}" if n>0 else "nan")' "$3" "$bw" "$SECS")"
}

# measure_both: both arms at once for SECS (the two pairs share the CPUs,
# so a per-message cost of the plugin shows as a share of the throughput,
# and a change of the machine's load hits both arms in the same second).
# Prints "A_MiB/s A_cpu A_ctxsw B_MiB/s B_cpu B_ctxsw" as measure does.
measure_both() {
    "$BIN/lst" --socket "$WORK/a.sock" run bulk >/dev/null
    "$BIN/lst" --socket "$WORK/c.sock" run bulk >/dev/null
    sleep 1
    local ta0 tb0 ca0 cb0 ta1 tb1 ca1 cb1 sa sc
    ta0=$(ticks_of "$pa" "$pb")
    tb0=$(ticks_of "$pc" "$pd")
    ca0=$(ctxsw_of "$pa" "$pb")
    cb0=$(ctxsw_of "$pc" "$pd")
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$WORK/a.sock" stat --count 1 --delay "$SECS" s >"$WORK/stat.a.txt" &
    sa=$!
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$WORK/c.sock" stat --count 1 --delay "$SECS" s >"$WORK/stat.c.txt" &
    sc=$!
    wait "$sa" "$sc"
    ta1=$(ticks_of "$pa" "$pb")
    tb1=$(ticks_of "$pc" "$pd")
    ca1=$(ctxsw_of "$pa" "$pb")
    cb1=$(ctxsw_of "$pc" "$pd")
    "$BIN/lst" --socket "$WORK/a.sock" stop bulk >/dev/null
    "$BIN/lst" --socket "$WORK/c.sock" stop bulk >/dev/null
    echo "$(figures "$WORK/stat.a.txt" $((ta1 - ta0)) $((ca1 - ca0))) $(figures "$WORK/stat.c.txt" $((tb1 - tb0)) $((cb1 - cb0)))"
}

# measure CONSOLE PID...: MiB/s received by the servers over SECS, the CPU
# s/GiB of the two daemons and their context switches per 1 MiB write.
measure() {
    local s=$WORK/$1.sock
    shift
    "$BIN/lst" --socket "$s" run bulk >/dev/null
    sleep 1
    local t0 t1 c0 c1
    t0=$(ticks_of "$@")
    c0=$(ctxsw_of "$@")
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$s" stat --count 1 --delay "$SECS" s >"$WORK/stat.txt"
    t1=$(ticks_of "$@")
    c1=$(ctxsw_of "$@")
    "$BIN/lst" --socket "$s" stop bulk >/dev/null
    figures "$WORK/stat.txt" $((t1 - t0)) $((c1 - c0))
}

: >"$WORK/pairs"
: >"$WORK/ctxsw"
for i in $(seq "$PAIRS"); do
    if [ "${TOGETHER:-1}" = 1 ]; then
        read -r ab ac ax bb bc bx < <(measure_both)
        order="A+B"
    elif [ $((i % 2)) = 1 ]; then
        read -r ab ac ax < <(measure a "$pa" "$pb")
        read -r bb bc bx < <(measure c "$pc" "$pd")
        order="A B"
    else
        read -r bb bc bx < <(measure c "$pc" "$pd")
        read -r ab ac ax < <(measure a "$pa" "$pb")
        order="B A"
    fi
    log "pair $i ($order): plain $ab MiB/s ($ac cpu s/GiB, $ax ctxsw/MiB), fault loaded $bb MiB/s ($bc cpu s/GiB, $bx ctxsw/MiB)"
    echo "$bb $ab $bc $ac" >>"$WORK/pairs"
    echo "$bx $ax" >>"$WORK/ctxsw"
done
summary "S1 loopback 1 MiB, lst brw write (conc $CONCURRENCY, 1 conn): ours = fault plugin loaded, no rule; anchor = not loaded; MiB/s" <"$WORK/pairs"
python3 -c '
import sys, statistics as st
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
if rows:
    print(f"  context switches per 1 MiB write (both daemons): ours median {st.median(r[0] for r in rows):.2f}, anchor median {st.median(r[1] for r in rows):.2f}")
' "$WORK/ctxsw"
for n in a c; do "$BIN/lst" --socket "$WORK/$n.sock" end_session >/dev/null; done

#!/usr/bin/env bash
# Issue #14 item 2 ("off means free"): S1 (lst brw write size=1M over the
# TCP LND on loopback, one connection, CONCURRENCY in flight) on two pairs of
# lnetd at once: A plain (127.0.0.1 -> 127.0.0.2), B with the fault plugin
# loaded and stacked on every NI but no rule (127.0.0.3 -> 127.0.0.4; the
# first `lnetctl fault drop show` loads lnd-fault from lnetd's directory).
# Measured alternately A B A B, PAIRS pairs of SECS s; prints MiB/s per
# pair and the median ratio B/A (target >= 0.98), with CPU s/GiB of both.
source "$(dirname "$0")/lib.sh"
CONCURRENCY=${CONCURRENCY:-8}
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
for n in c d; do
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

# measure CONSOLE PID...: MiB/s received by the servers over SECS, and the
# CPU s/GiB of the two daemons.
measure() {
    local s=$WORK/$1.sock
    shift
    "$BIN/lst" --socket "$s" run bulk >/dev/null
    sleep 1
    local t0 t1 bw
    t0=$(ticks_of "$@")
    timeout $((SECS * 3 + 30)) "$BIN/lst" --socket "$s" stat --count 1 --delay "$SECS" s >"$WORK/stat.txt"
    t1=$(ticks_of "$@")
    "$BIN/lst" --socket "$s" stop bulk >/dev/null
    bw=$(awk '
        /^\[LNet Bandwidth/ { s = "b" }
        /^\[R\] Avg:/ { if (s == "b") b = $3 }
        END { if (b == "") exit 1; print b }' "$WORK/stat.txt")
    echo "$bw $(cpu_per_gib $((t1 - t0)) "$bw" "$SECS")"
}

: >"$WORK/pairs"
for i in $(seq "$PAIRS"); do
    read -r ab ac < <(measure a "$pa" "$pb")
    read -r bb bc < <(measure c "$pc" "$pd")
    log "pair $i: plain $ab MiB/s ($ac cpu s/GiB), fault loaded $bb MiB/s ($bc cpu s/GiB)"
    echo "$bb $ab $bc $ac" >>"$WORK/pairs"
done
summary "S1 loopback 1 MiB, lst brw write (conc $CONCURRENCY, 1 conn): ours = fault plugin loaded, no rule; anchor = not loaded; MiB/s" <"$WORK/pairs"
for n in a c; do "$BIN/lst" --socket "$WORK/$n.sock" end_session >/dev/null; done

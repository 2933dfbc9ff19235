#!/usr/bin/env bash
# Soak (issue 11 item 10; not CI, root only): two lnetd in two network
# namespaces joined by a veth pair, over the TCP LND. For SOAK_MINUTES
# (default 30): an lst batch (brw write size=BRW_SIZE check=simple,
# concurrency CONCURRENCY, plus an lst ping test) from A to B, and an
# `lnetctl ping` of B from A every PING_EVERY seconds; A's link is set down
# for FLAP_DOWN seconds every FLAP_EVERY seconds (default 60 and 5); at
# half time B is killed (SIGKILL) and started again, and the lst session is
# made again.
#
# Checks, each printed as "check NAME: ok|FAILED (figures)", exit status 1 if
# one failed:
#   - no ping waited longer than the transaction timeout (TXN_TIMEOUT, the
#     lnet_transaction_timeout given to both nodes, default 10) plus 5 s;
#   - after `lst stop`, the batch is idle within the transaction timeout plus
#     30 s, and after `lst end_session` every LNet message of both nodes is
#     accounted (`lnetctl stats show`: msgs_alloc back to 0);
#   - memory and descriptors flat: each node's VmRSS, open descriptors and
#     threads at the end against a sample taken once warm (A: a quarter into
#     the run; B: a quarter into its second life), within RSS_SLACK_KB
#     (default 16384), 4 descriptors and 2 threads.
# A CSV of samples (every 10 s) is left in SOAK_CSV (default
# /tmp/lnet-soak-PID.csv). Knobs: SOAK_MINUTES, FLAP_EVERY, FLAP_DOWN,
# PING_EVERY, TXN_TIMEOUT, BRW_SIZE, CONCURRENCY, PROFILE, SKIP_BUILD=1.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "soak needs root (network namespaces)" >&2; exit 1; }
SOAK_MINUTES=${SOAK_MINUTES:-30}
FLAP_EVERY=${FLAP_EVERY:-60}
FLAP_DOWN=${FLAP_DOWN:-5}
PING_EVERY=${PING_EVERY:-2}
TXN_TIMEOUT=${TXN_TIMEOUT:-10}
BRW_SIZE=${BRW_SIZE:-64k}
CONCURRENCY=${CONCURRENCY:-4}
RSS_SLACK_KB=${RSS_SLACK_KB:-16384}
SOAK_CSV=${SOAK_CSV:-/tmp/lnet-soak-$$.csv}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    log "building lnetd, lnd-sock, lnetctl/lst ($PROFILE)"
    (cd "$ROOT" && cargo build --quiet "${flag[@]}" -p lnetd --bin lnetd &&
        cargo build --quiet "${flag[@]}" -p lnd-sock -p lnetctl)
fi

tag=$$
nsa=lnsA$tag nsb=lnsB$tag va=sa$tag vb=sb$tag
NETNS+=("$nsa" "$nsb")
ip netns add "$nsa"
ip netns add "$nsb"
ip link add "$va" netns "$nsa" type veth peer name "$vb" netns "$nsb"
ip -n "$nsa" addr add 10.233.0.1/24 dev "$va"
ip -n "$nsb" addr add 10.233.0.2/24 dev "$vb"
for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
ip -n "$nsa" link set "$va" up
ip -n "$nsb" link set "$vb" up
A=10.233.0.1@tcp B=10.233.0.2@tcp

LNETD_PARAMS=(--param "lnet_transaction_timeout=$TXN_TIMEOUT")
node a "$va" "$nsa"
pa=$NODE_PID
node b "$vb" "$nsb"
pb=$NODE_PID

ctl() { local who=$1; shift; timeout 60 "$BIN/lnetctl" --socket "$WORK/$who.sock" "$@"; }

start_batch() {
    lst new_session --timeout 300 soak >/dev/null
    lst add_group s "$B" >/dev/null
    lst add_group c "$A" >/dev/null
    lst add_batch bulk >/dev/null
    lst add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write "size=$BRW_SIZE" check=simple >/dev/null
    lst add_test --batch bulk --from c --to s ping >/dev/null
    lst run bulk >/dev/null
}

# "rss_kb fds threads" of a live process.
usage() {
    local rss fds thr
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$1/status")
    fds=$(ls "/proc/$1/fd" | wc -l)
    echo "$rss $fds $thr"
}

start_batch
total=$((SOAK_MINUTES * 60))
t_start=$(date +%s)
next_flap=$((t_start + FLAP_EVERY))
next_sample=$t_start
kill_at=$((t_start + total / 2))
warm_a=$((t_start + total / 4))
warm_b=$((kill_at + total / 4))
killed=0
base_a="" base_b=""
pings=0 ping_fail=0 ping_max=0 hangs=0 flaps=0
echo "t,node,rss_kb,fds,threads" >"$SOAK_CSV"
log "soak: $SOAK_MINUTES min, flap every ${FLAP_EVERY}s for ${FLAP_DOWN}s, B killed at +$((total / 2))s, txn timeout ${TXN_TIMEOUT}s"

while :; do
    now=$(date +%s)
    el=$((now - t_start))
    [ "$el" -ge "$total" ] && break
    if [ "$now" -ge "$next_sample" ]; then
        for n in a b; do
            p=$pa
            [ $n = b ] && p=$pb
            echo "$el,$n,$(usage "$p" | tr ' ' ',')" >>"$SOAK_CSV"
        done
        next_sample=$((now + 10))
    fi
    if [ -z "$base_a" ] && [ "$now" -ge "$warm_a" ]; then base_a=$(usage "$pa"); fi
    if [ "$killed" = 1 ] && [ -z "$base_b" ] && [ "$now" -ge "$warm_b" ]; then base_b=$(usage "$pb"); fi
    if [ "$killed" = 0 ] && [ "$now" -ge "$kill_at" ]; then
        log "+${el}s: killing B (pid $pb) and starting it again"
        kill -KILL "$pb"
        wait "$pb" 2>/dev/null || true
        # node() waits for the socket file: the dead daemon's must go first.
        rm -f "$WORK/b.sock"
        node b "$vb" "$nsb"
        pb=$NODE_PID
        killed=1
        log "+$(($(date +%s) - t_start))s: B answers again (pid $pb)"
        # B lost its session and its part of the test: made again. --force:
        # the RPCs whose requests the old B took never get a reply; without
        # it each would end at selftest's rpc_timeout (64 s), as upstream.
        lst stop --force bulk >/dev/null 2>&1 || true
        log "+$(($(date +%s) - t_start))s: lst stop done"
        lst end_session >/dev/null 2>&1 || true
        log "+$(($(date +%s) - t_start))s: lst end_session done"
        start_batch
        log "+$(($(date +%s) - t_start))s: batch running again"
    fi
    if [ "$now" -ge "$next_flap" ]; then
        log "+${el}s: link down for ${FLAP_DOWN}s"
        # In the background: the pings go on while the link is down.
        (ip -n "$nsa" link set "$va" down && sleep "$FLAP_DOWN" &&
            ip -n "$nsa" link set "$va" up) &
        flaps=$((flaps + 1))
        next_flap=$((next_flap + FLAP_EVERY))
    fi
    t0=$(date +%s%N)
    if ctl a ping "$B" --timeout "$TXN_TIMEOUT" >/dev/null 2>&1; then :; else ping_fail=$((ping_fail + 1)); fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    pings=$((pings + 1))
    [ "$ms" -gt "$ping_max" ] && ping_max=$ms
    [ "$ms" -gt $(((TXN_TIMEOUT + 5) * 1000)) ] && hangs=$((hangs + 1))
    sleep "$PING_EVERY"
done

# The end: stop, the batch idle within the transaction timeout, every
# message accounted.
failed=0
check() { # NAME OK(0/1) FIGURES
    if [ "$2" = 0 ]; then echo "check $1: ok ($3)"; else echo "check $1: FAILED ($3)"; failed=1; fi
}
final=$(lst stat --count 1 --delay 2 s 2>&1 || true)
errors=$(lst show_error s 2>&1 || true)
t0=$(date +%s)
lst stop bulk >/dev/null 2>&1 || true
idle=1
for _ in $(seq $(((TXN_TIMEOUT + 30) * 2))); do
    if lst query bulk 2>/dev/null | grep -q "is stopped"; then idle=0; break; fi
    sleep 0.5
done
stop_s=$(($(date +%s) - t0))
lst end_session >/dev/null 2>&1 || true
alloc_ok=1
for _ in $(seq $(((TXN_TIMEOUT + 30) * 2))); do
    ma=$(ctl a stats show | awk '/msgs_alloc:/ {print $2}')
    mb=$(ctl b stats show | awk '/msgs_alloc:/ {print $2}')
    if [ "$ma" = 0 ] && [ "$mb" = 0 ]; then alloc_ok=0; break; fi
    sleep 0.5
done
end_a=$(usage "$pa")
end_b=$(usage "$pb")

echo "soak: ${SOAK_MINUTES} min, $flaps link flaps, B killed and restarted: $killed"
echo "pings: $pings, failed $ping_fail (during flaps and B's restart), longest ${ping_max} ms"
echo "final lst stat of the servers:"
echo "$final" | sed 's/^/  /'
echo "lst show_error s:"
echo "$errors" | sed 's/^/  /'
check "no hang past the transaction timeout" $([ "$hangs" = 0 ] && echo 0 || echo 1) \
    "$hangs pings over $((TXN_TIMEOUT + 5)) s, longest ${ping_max} ms"
check "batch idle after stop" "$idle" "${stop_s} s"
check "every message accounted" "$alloc_ok" "msgs_alloc A=$ma B=$mb"
flat() { # NAME BASE END
    read -r r0 f0 t0 <<<"$2"
    read -r r1 f1 t1 <<<"$3"
    local ok=0
    [ $((r1 - r0)) -le "$RSS_SLACK_KB" ] || ok=1
    [ $((f1 - f0)) -le 4 ] || ok=1
    [ $((t1 - t0)) -le 2 ] || ok=1
    check "$1 flat" "$ok" "rss ${r0}->${r1} KiB, fds ${f0}->${f1}, threads ${t0}->${t1}"
}
flat "A" "${base_a:-$end_a}" "$end_a"
flat "B (after its restart)" "${base_b:-$end_b}" "$end_b"
echo "samples: $SOAK_CSV"
exit "$failed"

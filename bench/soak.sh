#!/usr/bin/env bash
# Soak (issue 11 item 10; not CI, root only): two lnetd in two network
# namespaces joined by a veth pair, over the TCP LND. For SOAK_MINUTES
# (default 30): an lst batch (brw write size=BRW_SIZE check=simple,
# concurrency CONCURRENCY, plus an lst ping test) from A to B, and an
# `lnetctl ping` of B from A every PING_EVERY seconds; A's link is set down
# for FLAP_DOWN seconds every FLAP_EVERY seconds (default 60 and 5); at
# half time B is killed (SIGKILL) and started again, and the lst session is
# made again (`stop --force`, `end_session`, `new_session`...).
#
# As lnet-selftest.sh does, `lst stat` runs all along (one line every
# STAT_EVERY s, default 25, into the log): besides the figures it keeps the
# console session alive, since the console ends a session after its
# --timeout (300 s here, upstream's default) without any lst command, batch
# running or not (selftest.md §3.3). Every QUERY_EVERY s (default 20) `lst
# query` says whether the batch still runs: a test unit ends at its first
# failed RPC (stop_onerr, as upstream), so link flaps can end them all; the
# batch is then run again, and counted. An RPC caught by a flap may wait for
# selftest's rpc_timeout (upstream's 64 s: a BRW server whose bulk transfer
# failed sends no reply), so both nodes get rpc_timeout=RPC_TIMEOUT (default
# 20, `options lnet_selftest rpc_timeout=` upstream).
#
# Checks, each printed as "check NAME: ok|FAILED (figures)", exit status 1 if
# one failed:
#   - every lst command the script gives succeeds (new_session, add_group,
#     add_test, run, stop, query, end_session);
#   - no ping waited longer than the transaction timeout (TXN_TIMEOUT, the
#     lnet_transaction_timeout given to both nodes, default 10) plus 5 s;
#   - after `lst stop`, the batch is idle within the transaction timeout plus
#     30 s, and every test RPC A started is accounted as done, errored or
#     aborted, none in flight (the tally lnetd logs when a batch goes idle);
#   - after `lst end_session` every LNet message of both nodes is accounted
#     (`lnetctl stats show`: msgs_alloc back to 0);
#   - memory and descriptors flat: each node's VmRSS, open descriptors and
#     threads at the end against a sample taken once warm (A: a quarter into
#     the run; B: a quarter into its second life), within RSS_SLACK_KB
#     (default 16384), 4 descriptors and 2 threads.
# A CSV of samples (every 10 s) is left in SOAK_CSV (default
# /tmp/lnet-soak-PID.csv), the lnetd logs and the lst stat lines in SOAK_LOGS
# (default /tmp/lnet-soak-PID.logs). Knobs: SOAK_MINUTES, FLAP_EVERY,
# FLAP_DOWN, PING_EVERY, TXN_TIMEOUT, RPC_TIMEOUT, BRW_SIZE, CONCURRENCY,
# STAT_EVERY, QUERY_EVERY, PROFILE, SKIP_BUILD=1.
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
# Not a divisor of FLAP_EVERY: samples at every flap start would all fail.
STAT_EVERY=${STAT_EVERY:-25}
QUERY_EVERY=${QUERY_EVERY:-20}
RPC_TIMEOUT=${RPC_TIMEOUT:-20}
SOAK_CSV=${SOAK_CSV:-/tmp/lnet-soak-$$.csv}
SOAK_LOGS=${SOAK_LOGS:-/tmp/lnet-soak-$$.logs}
mkdir -p "$SOAK_LOGS"

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

LNETD_PARAMS=(--param "lnet_transaction_timeout=$TXN_TIMEOUT" --param "rpc_timeout=$RPC_TIMEOUT")
node a "$va" "$nsa"
pa=$NODE_PID
node b "$vb" "$nsb"
pb=$NODE_PID

ctl() { local who=$1; shift; timeout 60 "$BIN/lnetctl" --socket "$WORK/$who.sock" "$@"; }
# lst on A's console, bounded (lib.sh's has no timeout): a console command
# takes at most two 30 s transactions.
lst() { timeout 90 "$BIN/lst" --socket "$WORK/a.sock" "$@"; }

# lstc ARGS...: an lst command that must succeed; a failure is counted and
# its output kept for the report.
lst_ok=0 lst_failed=0
: >"$SOAK_LOGS/lst-failures"
lstc() {
    local out
    if out=$(lst "$@" 2>&1); then
        lst_ok=$((lst_ok + 1))
    else
        lst_failed=$((lst_failed + 1))
        echo "+$(($(date +%s) - ${t_start:-$(date +%s)}))s lst $*: $out" >>"$SOAK_LOGS/lst-failures"
        log "lst $* failed: $out"
    fi
}

STAT_PID=""
start_stat() {
    "$BIN/lst" --socket "$WORK/a.sock" stat --line --delay "$STAT_EVERY" s c >>"$SOAK_LOGS/lst-stat" 2>&1 &
    STAT_PID=$!
    PIDS+=("$STAT_PID")
}
stop_stat() {
    if [ -n "$STAT_PID" ]; then
        kill "$STAT_PID" 2>/dev/null || true
        wait "$STAT_PID" 2>/dev/null || true
        STAT_PID=""
    fi
}

start_batch() {
    lstc new_session --timeout 300 soak
    lstc add_group s "$B"
    lstc add_group c "$A"
    lstc add_batch bulk
    lstc add_test --batch bulk --concurrency "$CONCURRENCY" --from c --to s brw write "size=$BRW_SIZE" check=simple
    lstc add_test --batch bulk --from c --to s ping
    lstc run bulk
    start_stat
}

# The last tally of test RPCs A logged ("started, done, errored, aborted,
# in flight") as "started done errored aborted inflight".
tally_a() {
    sed -n 's/.*test RPCs since start: \([0-9]*\) started, \([0-9]*\) done, \([0-9]*\) errored, \([0-9]*\) aborted, \([0-9]*\) in flight.*/\1 \2 \3 \4 \5/p' "$WORK/a.log" | tail -1
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
next_query=$((t_start + QUERY_EVERY))
queries=0 idle_found=0
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
        stop_stat
        lstc stop --force bulk
        log "+$(($(date +%s) - t_start))s: lst stop done"
        # The new B has no session: its RMSN answer is an error (ESRCH), so
        # end_session reports one failed node; the session ends all the
        # same (new_session below would fail otherwise).
        lst end_session >/dev/null 2>&1 || true
        log "+$(($(date +%s) - t_start))s: lst end_session done"
        start_batch
        log "+$(($(date +%s) - t_start))s: batch running again"
    fi
    if [ "$now" -ge "$next_query" ]; then
        next_query=$((now + QUERY_EVERY))
        queries=$((queries + 1))
        q=$(lst query bulk 2>&1) || { lst_failed=$((lst_failed + 1)); echo "+${el}s lst query bulk: $q" >>"$SOAK_LOGS/lst-failures"; }
        if ! grep -q "is running" <<<"$q"; then
            # Every unit ended (each at its first failed RPC, stop_onerr):
            # run it again so the link stays loaded.
            idle_found=$((idle_found + 1))
            log "+${el}s: batch not running ($q), run again"
            lstc run bulk
        fi
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
errors=$(lst show_error c s 2>&1 || true)
stop_stat
t0=$(date +%s)
# `lst stop` itself polls until the batch is stopped; bounded by timeout.
timeout $((TXN_TIMEOUT + 30)) "$BIN/lst" --socket "$WORK/a.sock" stop bulk >/dev/null 2>&1 || true
idle=1
for _ in $(seq $(((TXN_TIMEOUT + 30) * 2))); do
    if lst query bulk 2>/dev/null | grep -q "is stopped"; then idle=0; break; fi
    sleep 0.5
done
stop_s=$(($(date +%s) - t0))
tally=""
for _ in $(seq 20); do
    tally=$(tally_a)
    [ -n "$tally" ] && break
    sleep 0.5
done
read -r t_started t_done t_err t_abort t_inflight <<<"${tally:-0 0 0 0 -1}"
lstc end_session
alloc_ok=1
for _ in $(seq $(((TXN_TIMEOUT + 30) * 2))); do
    ma=$(ctl a stats show | awk '/msgs_alloc:/ {print $2}')
    mb=$(ctl b stats show | awk '/msgs_alloc:/ {print $2}')
    if [ "$ma" = 0 ] && [ "$mb" = 0 ]; then alloc_ok=0; break; fi
    sleep 0.5
done
end_a=$(usage "$pa")
end_b=$(usage "$pb")

cp "$WORK/a.log" "$SOAK_LOGS/a.log" 2>/dev/null || true
cp "$WORK/b.log" "$SOAK_LOGS/b.log" 2>/dev/null || true

echo "soak: ${SOAK_MINUTES} min, $flaps link flaps, B killed and restarted: $killed"
echo "pings: $pings, failed $ping_fail (during flaps and B's restart), longest ${ping_max} ms"
echo "lst query every ${QUERY_EVERY} s: $queries, batch found not running $idle_found times (run again)"
# The servers' receive bandwidth (the brw write's data) over the run, from
# the `lst stat --line` intervals.
awk '$2 == "s:" {n++; for (i = 1; i < NF; i++) if ($(i + 1) == "MiB/s") { if (!seen) { bw = $i; seen = 1 } }
    if (/failed\)/) failed++; t += bw; if (bw > 1) moving++; seen = 0 }
    END { if (n) printf "lst stat of s: %d intervals of %d s, %d with a failed STAT (a flap), data moving (> 1 MiB/s) in %d, mean %.1f MiB/s received\n", n, '"$STAT_EVERY"', failed, moving, t / n }' \
    "$SOAK_LOGS/lst-stat" 2>/dev/null || true
echo "final lst stat of the servers:"
echo "$final" | sed 's/^/  /'
echo "lst show_error c s:"
echo "$errors" | sed 's/^/  /'
echo "A's test RPCs: ${t_started} started, ${t_done} done, ${t_err} errored, ${t_abort} aborted, ${t_inflight} in flight"
check "every lst command answered" $([ "$lst_failed" = 0 ] && echo 0 || echo 1) \
    "$lst_ok ok, $lst_failed failed$([ "$lst_failed" = 0 ] || echo ": see $SOAK_LOGS/lst-failures")"
check "no hang past the transaction timeout" $([ "$hangs" = 0 ] && echo 0 || echo 1) \
    "$hangs pings over $((TXN_TIMEOUT + 5)) s, longest ${ping_max} ms"
check "batch idle after stop" "$idle" "${stop_s} s"
acc=1
[ "$t_inflight" = 0 ] && [ "$t_started" -gt 0 ] &&
    [ $((t_done + t_err + t_abort)) = "$t_started" ] && acc=0
check "every test RPC accounted" "$acc" \
    "A: $t_started started = $t_done done + $t_err errored + $t_abort aborted, $t_inflight in flight"
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

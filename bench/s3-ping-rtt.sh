#!/usr/bin/env bash
# S3 (issue #5): small round trips on loopback, CPUs idle (no spin loops:
# both sides in the same wake-up mode; SPIN=1 below for the other mode). Ours: lst ping between two lnetd
# (127.0.0.1 -> 127.0.0.2, TCP LND). Anchor: sockperf ping-pong -m 14 over TCP.
#  - concurrency 1: our mean RTT (1 / ping RPCs per second) vs sockperf's mean
#    round trip (--full-rtt); ratio > 1 means we are slower.
#  - concurrency 8: our ping RPCs per second vs four parallel sockperf
#    clients (one server each) summed; ratio < 1 means we are slower.
# A B A B, PAIRS pairs of SECS s each; CPU microseconds per round trip of both.
# SPIN=1 measures both with the vCPUs kept awake instead: two `nice -n 19`
# spin loops (bounded by `timeout`) run throughout, so a wake-up never has to
# rouse a halted vCPU (../shared/BENCHMARKING.md, "Latency depends on whether
# the vCPUs are awake"); the CPU figures count only ours and sockperf.
source "$(dirname "$0")/lib.sh"
bench_setup
MODE_LABEL="idle CPUs"
if [ "${SPIN:-0}" = 1 ]; then
    MODE_LABEL="vCPUs kept awake by two nice -n 19 spin loops"
    for _ in 1 2; do
        nice -n 19 timeout $((PAIRS * SECS * 6 + 120)) sh -c 'while :; do :; done' &
        PIDS+=($!)
    done
fi

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a 127.0.0.1 ""
pa=$NODE_PID
node b 127.0.0.2 ""
pb=$NODE_PID
LNETD_PIDS=("$pa" "$pb")
lst_session 127.0.0.1@tcp 127.0.0.2@tcp
for c in 1 8; do
    lst add_batch "p$c" >/dev/null
    lst add_test --batch "p$c" --concurrency "$c" --from c --to s ping >/dev/null
done

SP_PIDS=()
for i in 1 2 3 4; do
    sockperf sr --tcp -i 127.0.0.1 -p $((11110 + i)) >/dev/null 2>&1 &
    SP_PIDS+=($!)
    PIDS+=($!)
done
for i in 1 2 3 4; do wait_port 127.0.0.1 $((11110 + i)); done

# ours C: prints "RPCs/s cpu_us_per_rpc" (a ping RPC is one request and one
# reply message; the servers' receive rate counts the requests).
ours() {
    local rate bw
    read -r rate bw < <(lst_measure "p$1" s "$SECS")
    python3 -c 'import sys; r,t,s,k,c=map(float,sys.argv[1:]); print(f"{r:.1f} {t/k/(r*s)*1e6:.2f} {c/(r*s):.2f}")' "$rate" "$(cat "$WORK/ticks")" "$SECS" "$TICK" "$(cat "$WORK/ctx")"
}

# anchor N: N parallel sockperf clients; prints "total_rate mean_rtt_us
# cpu_us_per_rt ctxsw_per_rt".
anchor() {
    local n=$1 i t0 t1 c0 c1 cts=()
    t0=$(ticks_of "${SP_PIDS[@]:0:$n}")
    c0=$(ctxsw_of "${SP_PIDS[@]:0:$n}")
    for i in $(seq "$n"); do
        run_client "$WORK/sp$i.txt" timeout $((SECS + 20)) sockperf pp --tcp -i 127.0.0.1 -p $((11110 + i)) -m 14 -t "$SECS" --full-rtt >"$WORK/sp$i.ticks" &
        cts+=($!)
    done
    wait "${cts[@]}"
    t1=$(ticks_of "${SP_PIDS[@]:0:$n}")
    c1=$(ctxsw_of "${SP_PIDS[@]:0:$n}")
    local ct=0 cc=$((c1 - c0))
    for i in $(seq "$n"); do
        ct=$((ct + $(cat "$WORK/sp$i.ticks")))
        cc=$((cc + $(cat "$WORK/sp$i.txt.ctx")))
    done
    python3 - "$n" "$SECS" $((ct + t1 - t0)) "$TICK" "$WORK" "$cc" <<'EOF'
import re, sys
n, secs, ticks, tick, work = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ctx = float(sys.argv[6])
rate, rtts = 0.0, []
for i in range(1, n + 1):
    t = re.sub(r"\x1b\[[0-9;]*m", "", open(f"{work}/sp{i}.txt").read())
    obs = int(re.search(r"Total (\d+) observations", t).group(1))
    rtts.append(float(re.search(r"Round trip is ([\d.]+) usec", t).group(1)))
    rate += obs / secs
print(f"{rate:.1f} {sum(rtts)/len(rtts):.2f} {ticks/tick/(rate*secs)*1e6:.2f} {ctx/(rate*secs):.2f}")
EOF
}

: >"$WORK/c1"
: >"$WORK/c8"
for i in $(seq "$PAIRS"); do
    read -r orate ocpu octx < <(COSTS=costs1 ours 1)
    read -r arate artt acpu actx < <(anchor 1)
    ortt=$(python3 -c "print(f'{1e6/$orate:.2f}')")
    log "conc 1 pair $i: ours RTT $ortt us ($orate RPC/s, $ocpu cpu us/RT, $octx ctxsw/RT), sockperf RTT $artt us ($acpu cpu us/RT, $actx ctxsw/RT)"
    echo "$ortt $artt $ocpu $acpu $octx $actx" >>"$WORK/c1"
    read -r orate ocpu octx < <(COSTS=costs8 ours 8)
    read -r arate artt acpu actx < <(anchor 4)
    log "conc 8 pair $i: ours $orate RPC/s ($ocpu cpu us/RT, $octx ctxsw/RT), 4 x sockperf $arate RT/s ($acpu cpu us/RT, $actx ctxsw/RT)"
    echo "$orate $arate $ocpu $acpu $octx $actx" >>"$WORK/c8"
done
export ANCHOR_CTX_UNIT="round trip"
COSTS=costs1 CPU_LABEL="cpu us/round trip" summary "S3 loopback, $MODE_LABEL: lst ping conc 1 mean RTT vs sockperf pp -m 14 mean RTT, us (lower is better)" <"$WORK/c1"
COSTS=costs8 CPU_LABEL="cpu us/round trip" summary "S3 loopback, $MODE_LABEL: lst ping conc 8 RPC/s vs 4 parallel sockperf pp round trips/s (higher is better)" <"$WORK/c8"
lst end_session >/dev/null

#!/usr/bin/env bash
# S6 (issue #5): brw over the lo LND vs memcpy. One lnetd tests itself:
# group "self" is 0@lo, so every request, reply and bulk transfer goes
# through the built-in lo LND (a tcp NI on 127.0.0.1 only names the session).
# Ours: lst brw write size=SIZE (default 1M), CONCURRENCY 8. Anchor: a
# one-thread memcpy of SIZE bytes in a loop (bench/memcpy.c, built with cc
# -O2). A B A B, PAIRS pairs of SECS s. MiB/s, median ratio, CPU s/GiB.
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-1M}
CONCURRENCY=${CONCURRENCY:-8}
bench_setup
cc -O2 -o "$WORK/memcpy" "$BENCH_DIR/memcpy.c"
bytes=$(python3 -c 's="'"$SIZE"'".lower(); m={"k":1024,"m":1<<20}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))')

port=$((20000 + $$ % 20000))
LNETD_PARAMS=(--param "accept_port=$port")
node a 127.0.0.1 ""
LNETD_PIDS=("$NODE_PID")
lst new_session --timeout 600 bench >/dev/null
lst add_group self 0@lo >/dev/null
lst add_batch lo >/dev/null
lst add_test --batch lo --concurrency "$CONCURRENCY" --from self --to self brw write "size=$SIZE" >/dev/null

: >"$WORK/pairs"
for i in $(seq "$PAIRS"); do
    # The node is client and server: its receive bandwidth is what moved.
    read -r _ ob < <(lst_measure lo self "$SECS")
    oc=$(cpu_per_gib "$(cat "$WORK/ticks")" "$ob" "$SECS")
    read -r ab ac < <(timeout $((SECS + 10)) "$WORK/memcpy" "$bytes" "$SECS")
    log "pair $i: ours $ob MiB/s ($oc cpu s/GiB), memcpy $ab MiB/s ($ac cpu s/GiB)"
    echo "$ob $ab $oc $ac" >>"$WORK/pairs"
done
summary "S6 brw write size=$SIZE over the lo LND (conc $CONCURRENCY) vs memcpy of $SIZE, MiB/s" <"$WORK/pairs"
lst end_session >/dev/null

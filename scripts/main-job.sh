#!/usr/bin/env bash
# The main job: install what is missing, build, then
#  1. one LNet node: load the plugins, net show, ping 0@lo through the real GET path;
#  2. a two-node cluster on this machine -- two network namespaces joined by a veth
#     pair when run as root (unless MAIN_JOB_NETNS=0), two loopback addresses otherwise -- an lnetd in each,
#     configured only with lnetctl (lnet configure, net add --net tcp --if ...);
#     lnetctl ping across, then an lst brw write of 1 MiB for a few seconds,
#     printing the bandwidth and the rate. Everything is cleaned up, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== cargo build"
cargo build --workspace --quiet
bin=$PWD/target/debug

work=$(mktemp -d /tmp/lnet-main-job.XXXXXX)
tag=$$
nsa=lnmjA$tag nsb=lnmjB$tag
pids=()
cleanup() {
    set +e
    # Whatever answers on our sockets stops (also a daemon we did not start).
    for s in "$work"/*.sock; do
        [ -S "$s" ] && timeout 10 "$bin/lnetctl" --socket "$s" lnet unconfigure >/dev/null 2>&1
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$nsa" 2>/dev/null
    ip netns del "$nsb" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { echo "\$ $*"; "$@"; }
# Waits for lnetd's socket (never `lnetctl lnet configure` before: it would
# start another lnetd, outside the namespace).
wait_socket() {
    for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.1; done
    echo "lnetd did not create $1; its log:" >&2
    cat "$work"/*.log >&2
    return 1
}

echo "== 1. an LNet node"
export LNET_SOCKET=$work/single.sock
"$bin/lnetd" --socket "$LNET_SOCKET" --foreground 2>"$work/single.log" &
pids+=($!)
wait_socket "$LNET_SOCKET"
"$bin/lnetctl" lnet configure
run "$bin/lnetctl" plugin load "$bin/liblnd_sock.so"
run "$bin/lnetctl" plugin load "$bin/liblnd_vnd.so"
run "$bin/lnetctl" net add --net vnd --if fabric0
run "$bin/lnetctl" net show
run "$bin/lnetctl" ping 0@lo
run "$bin/lnetctl" lnet unconfigure
unset LNET_SOCKET

echo "== 2. a two-node cluster"
# start_node NAME ADDR_OR_IF [NETNS]: an lnetd (in NETNS if given), configured
# with lnetctl only.
start_node() {
    local name=$1 iface=$2 ns=${3:-} sock=$work/$1.sock
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    "${pre[@]}" "$bin/lnetd" --socket "$sock" --foreground "${params[@]}" 2>"$work/$name.log" &
    pids+=($!)
    wait_socket "$sock"
    run "$bin/lnetctl" --socket "$sock" lnet configure
    run "$bin/lnetctl" --socket "$sock" net add --net tcp --if "$iface"
}
if [ "$(id -u)" -eq 0 ] && [ "${MAIN_JOB_NETNS:-1}" = 1 ]; then
    echo "(root: network namespaces $nsa and $nsb joined by a veth pair)"
    ip netns add "$nsa"
    ip netns add "$nsb"
    ip link add "va$tag" netns "$nsa" type veth peer name "vb$tag" netns "$nsb"
    ip -n "$nsa" addr add 10.231.0.1/24 dev "va$tag"
    ip -n "$nsb" addr add 10.231.0.2/24 dev "vb$tag"
    for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
    ip -n "$nsa" link set "va$tag" up
    ip -n "$nsb" link set "vb$tag" up
    params=()
    start_node a "va$tag" "$nsa"
    start_node b "vb$tag" "$nsb"
    nida=10.231.0.1@tcp nidb=10.231.0.2@tcp
else
    echo "(loopback addresses 127.0.0.1 and 127.0.0.2: not root, or MAIN_JOB_NETNS=0)"
    port=$((20000 + tag % 20000))
    params=(--param "accept_port=$port")
    start_node a 127.0.0.1
    start_node b 127.0.0.2
    nida=127.0.0.1@tcp nidb=127.0.0.2@tcp
fi
export LNET_SOCKET=$work/a.sock
run "$bin/lnetctl" ping "$nidb"

export LST_SESSION=$$
lst=("$bin/lst")
run "${lst[@]}" new_session --timeout 120 main_job
run "${lst[@]}" add_group servers "$nidb"
run "${lst[@]}" add_group clients "$nida"
run "${lst[@]}" add_batch bulk
run "${lst[@]}" add_test --batch bulk --concurrency 4 --from clients --to servers brw write size=1M
run "${lst[@]}" run bulk
echo "\$ ${lst[*]} stat --count 2 --delay 2 servers"
timeout 60 "${lst[@]}" stat --count 2 --delay 2 servers | tee "$work/stat.txt"
run "${lst[@]}" stop bulk
run "${lst[@]}" show_error servers clients
run "${lst[@]}" end_session

# The last report: servers' receive rate and bandwidth (a brw write moves its
# data into the servers; each RPC is a request PUT plus the bulk REPLY there).
awk '
    /^\[LNet Rates/ { sect = "rate" }
    /^\[LNet Bandwidth/ { sect = "bw" }
    /^\[R\] Avg:/ { if (sect == "rate") rate = $3; else bw = $3 }
    END {
        if (bw == "") { print "no stat report"; exit 1 }
        printf "== brw write 1 MiB, clients -> servers: %s MiB/s, %s LNet messages/s received by the servers (%.0f selftest RPCs/s)\n", bw, rate, rate / 2
    }' "$work/stat.txt"
echo "== done"

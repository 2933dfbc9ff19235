#!/usr/bin/env bash
# The main job: install what is missing, build, start an LNet node, load the
# plugins, show the nets and ping 0@lo through the real GET path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== cargo build"
cargo build --workspace --quiet
bin=target/debug

work=$(mktemp -d /tmp/lnet-main-job.XXXXXX)
export LNET_SOCKET=$work/lnetctl.sock
cleanup() {
    "$bin/lnetctl" lnet unconfigure >/dev/null 2>&1 || true
    if [ -f "$work/lnetd.pid" ]; then kill "$(cat "$work/lnetd.pid")" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

run() { echo "\$ $*"; "$@"; }

echo "== an LNet node on $LNET_SOCKET"
run "$bin/lnetctl" lnet configure
run "$bin/lnetctl" plugin load "$PWD/$bin/liblnd_sock.so"
run "$bin/lnetctl" plugin load "$PWD/$bin/libvendor_lnd.so"
run "$bin/lnetctl" plugin show
run "$bin/lnetctl" net add --net vnd --if fabric0
run "$bin/lnetctl" net show
run "$bin/lnetctl" ping 0@lo
run "$bin/lnetctl" net show -v
run "$bin/lnetctl" lnet unconfigure
echo "== done"

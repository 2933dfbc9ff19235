#!/usr/bin/env bash
# Enforces the dependency table of STYLE.md §2 with `cargo tree`: each crate's
# direct dependencies must be in its allowed list.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed() {
    case "$1" in
        lnd-api) echo "abi_stable" ;;
        # The sans-IO engine and selftest on it: no threads, clocks, sockets,
        # serde, control-protocol types, clap, nix or tracing subscriber.
        lnet-core) echo "lnd-api thiserror tracing slab bytes" ;;
        lnet-selftest) echo "lnet-core lnd-api thiserror tracing slab bytes" ;;
        # The node runtime and the daemon: everything but the LND crates.
        lnetd) echo "lnet-core lnet-selftest lnd-api liblnetconfig thiserror tracing tracing-subscriber inventory serde serde_json clap libc nix rustix" ;;
        lnd-sock) echo "lnd-api tokio socket2 if-addrs nix libc" ;;
        lnd-o2ib) echo "lnd-api tokio libloading" ;;
        lnd-fault) echo "lnd-api" ;;
        liblnetconfig) echo "lnd-api serde serde_json thiserror" ;;
        lnetctl) echo "liblnetconfig lnd-api clap anyhow serde serde_json serde_yaml" ;;
        vendor-lnd) echo "lnd-api" ;;
        *) echo "*" ;;
    esac
}

fail=0
for crate in lnd-api lnet-core lnet-selftest lnetd lnd-sock lnd-o2ib lnd-fault liblnetconfig lnetctl vendor-lnd; do
    ok=$(allowed "$crate")
    deps=$(cargo tree -p "$crate" --depth 1 -e normal --prefix none --format '{p}' 2>/dev/null \
        | tail -n +2 | awk '{print $1}' | sort -u)
    for d in $deps; do
        if ! grep -qw -- "$d" <<<"$ok"; then
            echo "check-deps: $crate must not depend on $d (STYLE.md §2)" >&2
            fail=1
        fi
    done
done
exit $fail

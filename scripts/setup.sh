#!/usr/bin/env bash
# Installs what the build, the tests and the main job need on a Debian 12
# machine (run as root). Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
# lnetctl's e2e runs lnetctl as another user (root-only test).
have setpriv || need+=(util-linux)
have tshark || need+=(tshark)
have pkg-config || need+=(pkg-config)
have cc || need+=(gcc)
have tc || need+=(iproute2)
# rdma-core's headers: lnd-o2ib's layout test checks its verbs bindings against them.
[ -e /usr/include/infiniband/verbs.h ] || need+=(libibverbs-dev)
[ -e /usr/include/rdma/rdma_cma.h ] || need+=(librdmacm-dev)
have strace || need+=(strace)
# The OpenMetrics parser lnetctl/tests/metrics.rs checks lnetd's endpoint with.
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1 \
    || need+=(python3-prometheus-client)
# The bench anchors (bench/lib.sh also installs them when missing).
have iperf3 || need+=(iperf3)
have sockperf || need+=(sockperf)

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${need[*]}; run this as root (apt-get install)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have cargo; then
    echo "setup: cargo is not installed; install a Rust toolchain (rustup or Debian's cargo)" >&2
    exit 1
fi

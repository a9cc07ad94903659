#!/usr/bin/env bash
# Runs one of Rivetr's fuzz targets (fuzz/, see the README's "Fuzzing" section) with AFL++
# through the `afl` crate, on the stable toolchain.
#
#   scripts/fuzz.sh --list              the targets (one folder of seeds each, fuzz/seeds/)
#   scripts/fuzz.sh --build             only install what is missing and build the targets
#   scripts/fuzz.sh TARGET SECONDS      fuzz TARGET for SECONDS, starting from its seeds
#
# Installs what it needs (cargo-afl, then AFL++ built by `cargo afl config --build`) when it
# is missing, so running it again costs only the fuzzing. Run as root on the test machine.
# Prints the run's executions, crashes and hangs at the end, and exits non-zero if AFL++
# found any crash (a panic: a failed property is one) or hang (an input that took over
# FUZZ_TIMEOUT_MS), naming the inputs and how to replay them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The cargo-afl the `afl` crate in fuzz/Cargo.lock goes with.
CARGO_AFL_VERSION=0.18.2
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
OUT_ROOT="${FUZZ_OUT:-$PWD/target/fuzz-out}"
TIMEOUT_MS="${FUZZ_TIMEOUT_MS:-1000}"

targets() { ls fuzz/seeds; }

usage() {
    echo "usage: $0 --list | --build | TARGET SECONDS" >&2
    exit 2
}

[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then
    targets
    exit 0
fi
if [ "$1" = --build ]; then
    [ $# -eq 1 ] || usage
else
    [ $# -eq 2 ] || usage
    target=$1
    seconds=$2
    targets | grep -qx -- "$target" || { echo "unknown target '$target'; one of: $(targets | xargs)" >&2; exit 2; }
    [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || usage
fi

if ! cargo afl --version >/dev/null 2>&1; then
    echo "==> installing cargo-afl $CARGO_AFL_VERSION"
    # In a build folder of its own: with CARGO_TARGET_DIR's, it waited for the lock of whatever
    # build held that folder (the test command's release build, for minutes). A debug build:
    # cargo-afl only sets flags and runs cargo, and that compiles its dependencies faster.
    TIMEFORMAT="==> installed in %0R s (CPU: %0U s user, %0S s system)"
    time cargo install --locked --debug cargo-afl --version "$CARGO_AFL_VERSION" \
        --target-dir "$TARGET_DIR/cargo-afl"
fi
# AFL++ itself, built once per toolchain under ~/.local/share/afl.rs; cargo-afl refuses to
# build it twice, which is the idempotent case.
if ! log=$(cargo afl config --build 2>&1); then
    grep -q "already built" <<<"$log" || { echo "$log" >&2; exit 1; }
fi

# An explicit --target, though it is the host's: cargo then applies RUSTFLAGS, which carry
# cargo-afl's instrumentation and opt-level 3, only to what goes into the fuzz binary, and builds
# the proc macros and build scripts (syn, serde_derive and the like, which run inside the
# compiler) as any release build does, uninstrumented and unoptimised. A cold build on the
# 2-CPU test machine (2026-12-06, both beside the test command's other builds): 1,935 s of CPU
# without it, 1,440 s with it.
host=$(rustc -vV | sed -n 's/^host: //p')
binary="$TARGET_DIR/$host/release/rivetr-fuzz"
# FUZZ_BUILD=0 fuzzes the binary already built: a long run then needs no rebuild when
# someone edits Rivetr meanwhile (the build of Rivetr with AFL++'s instrumentation is long).
if [ "${FUZZ_BUILD:-1}" != 0 ] || [ ! -x "$binary" ]; then
    echo "==> building the fuzz targets (cargo afl build --release, in $TARGET_DIR)"
    # cargo-afl builds every crate with `-C codegen-units=1` (a workaround for link errors of
    # older toolchains, afl.rs PR 193; this one links with 16), which left Rivetr's crate to
    # one LLVM thread. cargo-afl puts RUSTFLAGS after its own flags, so this one wins. On the
    # 2-CPU test machine, nothing else running, Rivetr changed (2026-12-06): 565 s -> 279 s
    # (CPU time 552 s -> 492 s); executions per second 0.97x (request_head) and 0.94x
    # (deploy_toml) of the one-unit build's, 20 s each.
    TIMEFORMAT="==> built in %0R s (CPU: %0U s user, %0S s system)"
    time CARGO_TARGET_DIR="$TARGET_DIR" RUSTFLAGS="${RUSTFLAGS:-} -C codegen-units=16" \
        cargo afl build --release --locked --quiet --manifest-path fuzz/Cargo.toml --target "$host"
fi

[ "$1" != --build ] || exit 0

out="$OUT_ROOT/$target"
rm -rf "$out"
mkdir -p "$out"
echo "==> fuzzing $target for $seconds s (findings in $out)"
# AFL_NO_AFFINITY: the test machine's CPUs are shared, and AFL++ refuses to start when it finds
# none idle to bind to. AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES: the machine pipes core dumps to
# a helper, which AFL++ would otherwise stop at (our crashes are panics, which it sees anyway).
# AFL_SKIP_CPUFREQ: the CPU governor is not ours to change.
AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
AFL_FAST_CAL=1 \
    cargo afl fuzz -i "fuzz/seeds/$target" -o "$out" -V "$seconds" -t "$TIMEOUT_MS" -m none \
    -- "$binary" "$target" >"$out/afl.log" 2>&1 || {
    tail -30 "$out/afl.log" >&2
    echo "afl-fuzz failed (whole log: $out/afl.log)" >&2
    exit 1
}

stats="$out/default/fuzzer_stats"
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
count() { find "$out/default/$1" -type f ! -name README.txt 2>/dev/null | wc -l; }
crashes=$(count crashes)
hangs=$(count hangs)
echo "==> $target: $(stat run_time) s, $(stat execs_done) executions ($(stat execs_per_sec)/s)," \
    "$(stat corpus_count) inputs in the corpus, $crashes crashes, $hangs hangs"
if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then
    find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt
    echo "replay one: $binary $target < FILE" >&2
    exit 1
fi

#!/usr/bin/env bash
# Faults under load (issue 17): runs tests/faults.rs against the test engines and prints its
# table: each fault, the requests a client sent through the proxy meanwhile, how many failed
# and how many were refused, and the recovery time (see each test for what it measures from).
#
#   scripts/faults.sh            as root, on the machine the test command runs on
#
# The test command runs the same tests (without the table); `kill -9` of the packaged service
# under systemd is a step of scripts/test-env/package-e2e.sh, which prints its own figures.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-env/packages.sh
ensure_packages libfaketime curl
out=$(mktemp)
trap 'rm -f "$out"' EXIT
scripts/test-env/engines.sh cargo test --locked --test integration faults:: -- --nocapture --test-threads=1 | tee "$out"
echo
printf '| %-66s | %6s | %6s | %7s | %9s |\n' fault sent failed refused recovery
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..68})" -------- -------- --------- -----------
grep -P '^fault-row\t' "$out" | while IFS=$'\t' read -r _ fault sent failed refused recovery; do
    printf '| %-66s | %6s | %6s | %7s | %9s |\n' "$fault" "$sent" "$failed" "$refused" "$recovery"
done

#!/usr/bin/env bash
# Idle memory of `rivetr serve`: builds a release binary, starts it on a fresh state dir,
# waits for /api/health, lets it idle 10 s, and prints VmRSS and VmHWM in kB.
# Target: idle RSS under 12 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/rivetr"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); http=$(free_port)
(cd "$work" && RIVETR_SERVER_API_LISTEN=127.0.0.1:$api RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http \
    exec "$bin" serve 2>"$work/log") &
pid=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$api/api/health" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fsS "http://127.0.0.1:$api/api/health" >/dev/null
sleep 10
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
anon=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status)
file=$(awk '/^RssFile/ {print $2}' /proc/$pid/status)
echo "idle VmRSS: ${rss} kB"
echo "idle VmHWM: ${hwm} kB"
# The split: memory Rivetr allocated, and pages of the binary and libraries the kernel mapped
# (clean, shared with the page cache; the kernel maps 64 KB around each code page touched).
echo "  of which RssAnon: ${anon} kB, RssFile: ${file} kB"
echo "target: VmRSS < 12288 kB -> $([ "$rss" -lt 12288 ] && echo met || echo MISSED)"

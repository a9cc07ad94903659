#!/usr/bin/env bash
# The dashboard's figures:
#  - JavaScript and CSS the first page loads (the shell's own script, its module preloads and
#    stylesheet), as gzip bytes over the wire (target: JS <= 150 KB);
#  - time from navigation to the apps list rendered with 50 apps, in Chromium (median of 10);
#  - the release binary's size without the dashboard and with it;
#  - idle RSS of `rivetr serve` with the dashboard built in (bench/idle-rss.sh; target < 12 MB).
# Needs Node.js, npm and /usr/bin/chromium. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release/rivetr"

cargo build --release --quiet --no-default-features
without=$(stat -c %s "$bin")
cargo build --release --quiet
with=$(stat -c %s "$bin")

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); http=$(free_port); https=$(free_port)
# No container engine is needed to list apps; none is looked for.
(cd "$work" && RIVETR_SERVER_API_LISTEN=127.0.0.1:$api RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http \
    RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:$https RIVETR_ACME_ENABLED=false \
    RIVETR_RUNTIME_SOCKET=unix:///nonexistent exec "$bin" serve 2>"$work/log") &
pid=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$api/api/health" >/dev/null 2>&1 && break
    sleep 0.05
done
base="http://127.0.0.1:$api"
token=$(cat "$work/data/initial-admin-token")

js=0; css=0
shell=$(curl -fsS "$base/")
for path in $(grep -oE '(src|href)="/assets/[^"]+\.(js|css)"' <<<"$shell" | sed -E 's/^(src|href)="//; s/"$//' | sort -u); do
    n=$(curl -fsS -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$base$path")
    case "$path" in
        *.js) js=$((js + n)) ;;
        *.css) css=$((css + n)) ;;
    esac
done
echo "first page: JS ${js} B gzip, CSS ${css} B gzip (target: JS <= 153600 B -> $([ "$js" -le 153600 ] && echo met || echo MISSED))"

for i in $(seq -w 1 50); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"name\": \"bench-$i\", \"git_url\": \"https://example.invalid/bench-$i.git\", \"domains\": [\"bench-$i.example.test\"]}" \
        "$base/api/apps"
done
(cd frontend && RIVETR_URL="$base" RIVETR_TOKEN="$token" APPS=50 RUNS=10 node e2e/bench.mjs)

echo "binary size: $without B without the dashboard, $with B with it (+$((with - without)) B)"
kill "$pid"; wait "$pid" 2>/dev/null || true
bench/idle-rss.sh

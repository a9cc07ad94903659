#!/usr/bin/env bash
# Reverse-proxy throughput: wrk, 64 keep-alive connections, a small static file served by an
# nginx backend. Measured in one run: (a) the backend directly, (b) nginx as a reverse proxy
# with an upstream keepalive pool, sending the app the same forwarding headers Rivetr sends
# (X-Forwarded-For/-Proto/-Host, X-Real-IP), (c) Rivetr's proxy (release build, default
# worker count). Prints req/s and p99 latency of each, the ratios Rivetr/nginx and
# Rivetr/direct, and Rivetr's RSS under load.
# nginx and Rivetr are measured in alternating rounds (ROUNDS, default 3) and compared by
# their medians, so a noisy moment on a shared machine does not decide the comparison.
# Target: Rivetr req/s >= nginx's, p99 no worse.
# BASELINE=<git revision> also builds that revision of Rivetr (in a worktree under
# target/bench-baseline) and measures it in the same alternating rounds, on the same route,
# printing this build's req/s against it: how much a change costs, measured in one run (the
# proxy's /metrics counters were measured so against the revision before them).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-env/packages.sh
ensure_packages wrk nginx-light curl
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}

cargo build --release --quiet
baseline_bin=
if [ -n "${BASELINE:-}" ]; then
    tree=target/bench-baseline/src
    rm -rf "$tree"; git worktree prune
    git worktree add --detach --force "$tree" "$BASELINE" >/dev/null
    (cd "$tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet)
    baseline_bin=target/bench-baseline/target/release/rivetr
    baseline_rev=$(git rev-parse --short "$BASELINE")
fi
work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as nobody
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port); nginx_proxy=$(free_port); rivetr_http=$(free_port); baseline_http=$(free_port)
mkdir -p "$work/www" "$work/nginx"
printf 'hello from the backend\n' > "$work/www/index.html"

start_nginx() { # name, server block
    cat > "$work/nginx/$1.conf" <<CONF
worker_processes ${3:-auto};
pid $work/nginx/$1.pid;
error_log $work/nginx/$1.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    $2
}
CONF
    nginx -p "$work/nginx" -c "$work/nginx/$1.conf" -g 'daemon off;' &
    pids+=($!)
}
start_nginx backend "server { listen 127.0.0.1:$backend; root $work/www; keepalive_requests 100000; }" 1
start_nginx proxy "upstream app { server 127.0.0.1:$backend; keepalive 64; }
    server { listen 127.0.0.1:$nginx_proxy; keepalive_requests 100000;
      location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Real-IP \$remote_addr; } }"

cat > "$work/rivetr.toml" <<CONF
[server]
api_listen = "127.0.0.1:$(free_port)"
state_dir = "$work/state"
[proxy]
http_listen = "127.0.0.1:$rivetr_http"
https_listen = "127.0.0.1:$(free_port)"
[acme]
enabled = false
[log]
level = "warn"
[[proxy.routes]]
host = "bench.test"
upstreams = ["127.0.0.1:$backend"]
tls = "none"
CONF
target/release/rivetr serve --config "$work/rivetr.toml" 2>"$work/rivetr.log" &
rivetr_pid=$!
pids+=($rivetr_pid)
ports="$backend $nginx_proxy $rivetr_http"
if [ -n "$baseline_bin" ]; then
    sed -e "s|^http_listen = .*|http_listen = \"127.0.0.1:$baseline_http\"|" \
        -e "s|^api_listen = .*|api_listen = \"127.0.0.1:$(free_port)\"|" \
        -e "s|^https_listen = .*|https_listen = \"127.0.0.1:$(free_port)\"|" \
        -e "s|^state_dir = .*|state_dir = \"$work/baseline-state\"|" "$work/rivetr.toml" > "$work/baseline.toml"
    "$baseline_bin" serve --config "$work/baseline.toml" 2>"$work/baseline.log" &
    pids+=($!)
    ports="$ports $baseline_http"
fi

for port in $ports; do
    for _ in $(seq 1 100); do curl -fs -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/" && break; sleep 0.1; done
    curl -fsS -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/"
done

# Prints "req/s p99_ms" for one target.
measure() {
    local out rps p99
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H 'Host: bench.test' "http://127.0.0.1:$1/")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    local errors; errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    [ -n "$errors" ] && echo "  ($errors)" >&2
    echo "$rps $p99"
}

echo "wrk: $CONNECTIONS connections, ${DURATION}s each, 2 threads; $(nproc) cores; $ROUNDS alternating rounds"
read -r d_rps d_p99 < <(measure "$backend")
rss_file=$work/rss; ( peak=0; while kill -0 $rivetr_pid 2>/dev/null; do r=$(awk '/^VmRSS/ {print $2}' /proc/$rivetr_pid/status 2>/dev/null || echo 0); [ "$r" -gt "$peak" ] && peak=$r && echo $peak > "$rss_file"; sleep 0.2; done ) &
sampler=$!
rounds=()
baseline_rounds=()
for round in $(seq 1 "$ROUNDS"); do
    read -r n_rps n_p99 < <(measure "$nginx_proxy")
    read -r r_rps r_p99 < <(measure "$rivetr_http")
    printf 'round %d: nginx %s req/s p99 %s ms; rivetr %s req/s p99 %s ms\n' "$round" "$n_rps" "$n_p99" "$r_rps" "$r_p99"
    rounds+=("$n_rps $n_p99 $r_rps $r_p99")
    if [ -n "$baseline_bin" ]; then
        read -r b_rps b_p99 < <(measure "$baseline_http")
        printf 'round %d: rivetr %s (baseline) %s req/s p99 %s ms\n' "$round" "$baseline_rev" "$b_rps" "$b_p99"
        baseline_rounds+=("$r_rps $b_rps")
    fi
done
kill $sampler 2>/dev/null || true
python3 - "$d_rps" "$d_p99" "${rounds[@]}" <<'PY'
import statistics, sys
d, dp99 = float(sys.argv[1]), float(sys.argv[2])
rounds = [list(map(float, r.split())) for r in sys.argv[3:]]
n, np99, r, rp99 = (statistics.median(col) for col in zip(*rounds))
print(f"{'target (median)':<22} {'req/s':>12} {'p99_ms':>10}")
print(f"{'direct (nginx static)':<22} {d:>12.0f} {dp99:>10.2f}")
print(f"{'nginx reverse proxy':<22} {n:>12.0f} {np99:>10.2f}")
print(f"{'rivetr proxy':<22} {r:>12.0f} {rp99:>10.2f}")
print(f"rivetr/nginx req/s: {r/n:.2f}   rivetr/direct req/s: {r/d:.2f}   p99 rivetr/nginx: {rp99/np99:.2f}")
print("target (req/s >= nginx, p99 <= nginx):", "met" if r >= n and rp99 <= np99 else "MISSED")
PY
echo "rivetr peak VmRSS under load: $(cat "$rss_file" 2>/dev/null || echo '?') kB"
if [ -n "$baseline_bin" ]; then
    python3 - "$baseline_rev" "${baseline_rounds[@]}" <<'PY'
import statistics, sys
rev, rounds = sys.argv[1], [list(map(float, r.split())) for r in sys.argv[2:]]
r, b = (statistics.median(col) for col in zip(*rounds))
print(f"this build vs {rev} (medians): {r:.0f} vs {b:.0f} req/s = {r/b:.3f}x ({(r/b-1)*100:+.1f} %)")
PY
fi

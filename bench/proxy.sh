#!/usr/bin/env bash
# Rivetr's reverse proxy against nginx (Debian's 1.22) on the same machine in the same run,
# row by row, the direct backend as the limit where there is one. Both proxies get the same
# self-signed ECDSA P-256 certificate, TLS 1.3 only, session resumption on, the same upstream
# keep-alive pool (64) and the same forwarding headers (X-Forwarded-For/-Proto/-Host,
# X-Real-IP). The app is an nginx serving static files (one worker), plus a WebSocket echo
# (examples/ws_echo.rs) for the WebSocket row.
#
# Rows (ROWS="1 2 ..." picks some; default all):
#  1. HTTP/1.1 keep-alive, small answer: wrk, CONNECTIONS connections.
#  2. HTTPS keep-alive, small answer: wrk over TLS 1.3.
#  3. New TLS connections per second, one request each: with session resumption (wrk with
#     `Connection: close`, which resumes every session after the first), and without it
#     (h2load runs of 128 new clients each, back to back: h2load never resumes); no p99 for
#     the latter (h2load's runs are too short for a percentile).
#  4. HTTP/2 over TLS, 100 concurrent streams on 4 connections (h2load -c 4 -m 25); p99 from
#     h2load's per-request log.
#  5. A 1 MiB answer streamed (wrk, 8 connections): throughput, p99, and each proxy's peak RSS.
#  6. IDLE (10,000) idle keep-alive connections, then WS_IDLE (9,500) idle WebSockets, held
#     open by examples/proxy_load.rs through both proxies at once: memory per connection (RSS
#     growth / count; nginx's is the sum over its master and workers), then the small-answer
#     req/s of each measured while they are held, in alternating rounds of 5 s. A WebSocket
#     through a proxy takes two sockets in it (client and app), the WebSocket app holds one
#     per WebSocket of both proxies, and a process may not raise its open-file limit above the
#     hard limit (20,000 on the machines this ran on): so 9,500 WebSockets, not 10,000.
#  7. Latency under a fixed load: examples/proxy_load.rs `rate` (a wrk2-style constant-rate
#     client written for this bench, since Debian packages no wrk2) at half of nginx's row-1
#     maximum: p50, p99, p99.9, corrected for coordinated omission.
#
# nginx and Rivetr run in alternating rounds (ROUNDS, default 3) per row and are compared by
# their medians, so a noisy moment on a shared machine does not decide a comparison; row 6
# holds its connections once (see below) and alternates its rounds within the hold.
# Targets: on every row Rivetr's req/s or throughput >= nginx's, p99 <= nginx's, memory per
# idle connection <= nginx's. The last column says which rows meet them.
# BASELINE=<git revision> also builds that revision of Rivetr and measures it in row 1's
# rounds, printing this build's req/s against it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-env/packages.sh
ensure_packages wrk nginx-light curl nghttp2-client openssl python3
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
IDLE=${IDLE:-10000}
WS_IDLE=${WS_IDLE:-9500}
ROWS=${ROWS:-1 2 3 4 5 6 7}
# Row 6 holds IDLE connections through each proxy: a socket on each side of it.
ulimit -n "$(ulimit -Hn)"

# BIN_DIR=<folder> measures the rivetr, proxy_load and ws_echo binaries in that folder
# instead of building this tree.
if [ -n "${BIN_DIR:-}" ]; then
    rivetr_bin=$BIN_DIR/rivetr load=$BIN_DIR/proxy_load ws_echo=$BIN_DIR/ws_echo
else
    cargo build --release --quiet
    cargo build --release --quiet --example proxy_load --example ws_echo
    target=${CARGO_TARGET_DIR:-$PWD/target}
    rivetr_bin=$target/release/rivetr
    load=$target/release/examples/proxy_load ws_echo=$target/release/examples/ws_echo
fi
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
backend=$(free_port); ws_backend=$(free_port)
nginx_http=$(free_port); nginx_https=$(free_port)
rivetr_http=$(free_port); rivetr_https=$(free_port); baseline_http=$(free_port)
mkdir -p "$work/www" "$work/nginx"
printf 'hello from the backend\n' > "$work/www/index.html"
head -c 1048576 /dev/urandom > "$work/www/big.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/key.pem"
results=$work/results
: > "$results"

start_nginx() { # name, http block contents, worker count
    cat > "$work/nginx/$1.conf" <<CONF
worker_processes ${3:-auto};
worker_rlimit_nofile $(ulimit -Hn);
pid $work/nginx/$1.pid;
error_log $work/nginx/$1.err warn;
events { worker_connections $(ulimit -Hn); }
http {
    access_log off;
    $2
}
CONF
    nginx -p "$work/nginx" -c "$work/nginx/$1.conf" -g 'daemon off;' &
    pids+=($!)
}
start_nginx backend "server { listen 127.0.0.1:$backend; root $work/www; keepalive_requests 100000; }" 1
"$ws_echo" "127.0.0.1:$ws_backend" &
pids+=($!)
forwarding="proxy_http_version 1.1; proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Real-IP \$remote_addr;"
start_nginx proxy "upstream app { server 127.0.0.1:$backend; keepalive 64; }
    upstream ws { server 127.0.0.1:$ws_backend; }
    keepalive_requests 100000;
    server { listen 127.0.0.1:$nginx_http;
      location / { proxy_pass http://app; $forwarding proxy_set_header Connection \"\"; }
      location /ws { proxy_pass http://ws; $forwarding proxy_set_header Upgrade \$http_upgrade;
        proxy_set_header Connection upgrade; proxy_read_timeout 3600s; } }
    server { listen 127.0.0.1:$nginx_https ssl http2;
      ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; ssl_protocols TLSv1.3;
      ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
      location / { proxy_pass http://app; $forwarding proxy_set_header Connection \"\"; } }"
nginx_master=${pids[-1]}

cat > "$work/rivetr.toml" <<CONF
[server]
api_listen = "127.0.0.1:$(free_port)"
state_dir = "$work/state"
[proxy]
http_listen = "127.0.0.1:$rivetr_http"
https_listen = "127.0.0.1:$rivetr_https"
[acme]
enabled = false
[log]
level = "warn"
[[proxy.routes]]
host = "bench.test"
upstreams = ["127.0.0.1:$backend"]
tls = "none"
[[proxy.routes]]
host = "ws.test"
upstreams = ["127.0.0.1:$ws_backend"]
tls = "none"
[[proxy.routes]]
host = "localhost"
upstreams = ["127.0.0.1:$backend"]
tls = "manual"
cert = "$work/cert.pem"
key = "$work/key.pem"
CONF
"$rivetr_bin" serve --config "$work/rivetr.toml" 2>"$work/rivetr.log" &
rivetr_pid=$!
pids+=($rivetr_pid)
ports="$backend $nginx_http $rivetr_http"
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
for port in $nginx_https $rivetr_https; do
    curl -fsS -k -o /dev/null "https://localhost:$port/"
done

# Records one figure: row, metric, who, value.
record() { echo "$1 $2 $3 $4" >> "$results"; }

# Milliseconds from a wrk latency figure ("812.00us", "1.20ms", "1.01s").
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$1"; }

# wrk against URL with CONNS connections and extra arguments; prints "req/s p99_ms MB/s".
wrk_run() {
    local url=$1 conns=$2; shift 2
    local out rps p99 mbs errors
    out=$(wrk -t2 -c"$conns" -d"${DURATION}s" --latency "$@" "$url")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
    mbs=$(awk '/^Transfer\/sec/ {v=$2; if (v ~ /GB$/) {sub(/GB/,"",v); v=v*1024} else if (v ~ /MB$/) {sub(/MB/,"",v)} else if (v ~ /KB$/) {sub(/KB/,"",v); v=v/1024} else {sub(/B$/,"",v); v=v/1048576}; print v}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    [ -n "$errors" ] && echo "  ($url: $errors)" >&2
    echo "$rps $p99 $mbs"
}

# Resident memory in kB of a process, or of nginx's master and workers together.
rss_of() {
    local pid=$1 total=0 p
    for p in $pid $(pgrep -P "$pid" || true); do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# rss_of PID once the process is 7 s old and its RSS has stopped changing (two readings 0.5 s
# apart, for at most 10 s): Rivetr lets go of the code pages only its start needed 5 s after
# it is ready (src/server/startup_pages.rs), and measured before that, its RSS fell by more
# than 10,000 idle connections take (2026-12-05, `ROWS=6`).
settled_rss() {
    local pid=$1 last=-1 now age
    age=$(ps -o etimes= -p "$pid" | tr -d ' ')
    if [ "${age:-0}" -lt 7 ]; then sleep $((7 - ${age:-0})); fi
    for _ in $(seq 1 20); do
        now=$(rss_of "$pid")
        [ "$now" = "$last" ] && break
        last=$now
        sleep 0.5
    done
    echo "$now"
}

# Samples rss_of PID into FILE (its peak) until stopped.
peak_sampler() {
    local pid=$1 file=$2 peak=0 r
    echo 0 > "$file"
    while true; do
        r=$(rss_of "$pid")
        if [ "$r" -gt "$peak" ]; then peak=$r; echo "$peak" > "$file"; fi
        sleep 0.1
    done
}

# Runs FN nginx|rivetr in alternating rounds.
rounds() {
    local fn=$1 round
    for round in $(seq 1 "$ROUNDS"); do
        "$fn" nginx "$round"
        "$fn" rivetr "$round"
        if [ -n "$baseline_bin" ] && [ "$fn" = row1 ]; then "$fn" baseline "$round"; fi
    done
}
http_port() { case $1 in nginx) echo "$nginx_http" ;; rivetr) echo "$rivetr_http" ;; baseline) echo "$baseline_http" ;; esac; }
https_port() { case $1 in nginx) echo "$nginx_https" ;; rivetr) echo "$rivetr_https" ;; esac; }
pid_of() { case $1 in nginx) echo "$nginx_master" ;; rivetr) echo "$rivetr_pid" ;; esac; }

row1() {
    local rps p99 mbs
    read -r rps p99 mbs < <(wrk_run "http://127.0.0.1:$(http_port "$1")/" "$CONNECTIONS" -H 'Host: bench.test')
    record h1 rps "$1" "$rps"; record h1 p99 "$1" "$p99"
    echo "row 1, round $2: $1 $rps req/s, p99 $p99 ms"
}
row2() {
    local rps p99 mbs
    read -r rps p99 mbs < <(wrk_run "https://localhost:$(https_port "$1")/" "$CONNECTIONS")
    record tls rps "$1" "$rps"; record tls p99 "$1" "$p99"
    echo "row 2, round $2: $1 $rps req/s, p99 $p99 ms"
}
row3() {
    local rps p99 mbs done=0 start end out
    read -r rps p99 mbs < <(wrk_run "https://localhost:$(https_port "$1")/" 16 -H 'Connection: close')
    record tls_resumed rps "$1" "$rps"; record tls_resumed p99 "$1" "$p99"
    # h2load runs back to back for DURATION seconds; each run is 128 new clients, one request
    # each, never resumed.
    start=${EPOCHREALTIME/./}; end=$((start + DURATION * 1000000))
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        out=$(h2load --h1 -t2 -c128 -n128 "https://localhost:$(https_port "$1")/" 2>&1)
        done=$((done + $(awk '/^requests:/ {print $8}' <<<"$out")))
    done
    local full; full=$((done * 1000000 / (${EPOCHREALTIME/./} - start)))
    record tls_full rps "$1" "$full"
    echo "row 3, round $2: $1 $rps connections/s resumed (p99 $p99 ms), $full full handshakes/s"
}
row4() {
    local log=$work/h2-$1-$2.log out rps p99
    out=$(h2load -t2 -c4 -m25 -D "$DURATION" --log-file="$log" "https://localhost:$(https_port "$1")/" 2>&1)
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    grep -q ' 0 failed, 0 errored' <<<"$out" || echo "  (h2 $1: $(grep '^requests:' <<<"$out"))" >&2
    p99=$(awk '{print $3}' "$log" | sort -n | awk '{v[NR]=$1} END {print v[int(NR*0.99)]/1000}')
    record h2 rps "$1" "$rps"; record h2 p99 "$1" "$p99"
    echo "row 4, round $2: $1 $rps req/s, p99 $p99 ms"
}
row5() {
    local rps p99 mbs sampler peak_file=$work/peak
    peak_sampler "$(pid_of "$1")" "$peak_file" &
    sampler=$!
    read -r rps p99 mbs < <(wrk_run "http://127.0.0.1:$(http_port "$1")/big.bin" 8 -H 'Host: bench.test')
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    record big mbs "$1" "$mbs"; record big p99 "$1" "$p99"; record big rss "$1" "$(cat "$peak_file")"
    echo "row 5, round $2: $1 $mbs MB/s, p99 $p99 ms, peak RSS $(cat "$peak_file") kB"
}
# Starts holding IDLE connections (KIND keepalive or websocket) through proxy WHO and records
# the kB each took; the holder's pid goes to holder_WHO.
hold_start() {
    local who=$1 kind=$2 before after holder out=$work/hold-$1-$2
    local host=bench.test args=() count=$IDLE
    if [ "$kind" = websocket ]; then host=ws.test; args=(--websocket /ws); count=$WS_IDLE; fi
    before=$(settled_rss "$(pid_of "$who")")
    : > "$out"   # made before the holder starts, for the wait below
    "$load" hold --url "http://127.0.0.1:$(http_port "$who")/" --host "$host" --count "$count" "${args[@]}" > "$out" &
    holder=$!
    pids+=("$holder")
    printf -v "holder_$who" '%s' "$holder"
    until grep -q '^held=' "$out"; do
        kill -0 "$holder" 2>/dev/null || { echo "the holder stopped: $(cat "$out")" >&2; return 1; }
        sleep 0.2
    done
    local line; line=$(grep '^held=' "$out")
    after=$(settled_rss "$(pid_of "$who")")
    local per; per=$(python3 -c "print(round(($after - $before) / $count, 2))")
    record "idle_$kind" kb "$who" "$per"; record "idle_$kind" rss "$who" "$after"
    echo "row 6: $who, $count $kind: $line; RSS $before -> $after kB ($per kB each)"
}
# Holds KIND connections through both proxies at once, then measures the small-answer req/s
# of each while they are held, in alternating rounds of 5 s.
hold_row() {
    local kind=$1 round who rps p99 mbs
    hold_start nginx "$kind"
    hold_start rivetr "$kind"
    for round in $(seq 1 "$ROUNDS"); do
        for who in nginx rivetr; do
            read -r rps p99 mbs < <(DURATION=5 wrk_run "http://127.0.0.1:$(http_port "$who")/" "$CONNECTIONS" -H 'Host: bench.test')
            record "idle_$kind" rps "$who" "$rps"
            echo "row 6, round $round: $who, $rps req/s while $kind connections are held"
        done
    done
    # shellcheck disable=SC2154 # set by hold_start
    kill "$holder_nginx" "$holder_rivetr"; wait "$holder_nginx" "$holder_rivetr" 2>/dev/null || true
}
row6() {
    hold_row keepalive
    hold_row websocket
}
rate=
row7() {
    local out
    out=$("$load" rate --url "http://127.0.0.1:$(http_port "$1")/" --host bench.test --rate "$rate" --connections 32 --duration "$DURATION")
    for k in p50 p99 p999; do
        record fixed "$k" "$1" "$(tr ' ' '\n' <<<"$out" | awk -F= -v k="${k}_ms" '$1==k {print $2}')"
    done
    echo "row 7, round $2: $1 at $rate req/s: $out"
}

echo "$(nproc) CPUs, $(date -u +%F); $ROUNDS alternating rounds of ${DURATION}s per row; rows $ROWS"
# The direct backend, the limit for the plain rows.
if [[ " $ROWS " == *" 1 "* || " $ROWS " == *" 7 "* ]]; then
    read -r rps p99 mbs < <(wrk_run "http://127.0.0.1:$backend/" "$CONNECTIONS")
    record h1 rps direct "$rps"; record h1 p99 direct "$p99"
fi
# Row 6 runs first, on proxies that have served only the checks above: after row 5 both keep
# the memory its 1 MiB answers took, and in a full run with row 6 last nginx then held 10,000
# connections in it without growing at all (0.00 kB each, 2026-12-05), so the growth measured
# nothing.
order=$ROWS
# (`|| true`: with ROWS=6 alone grep finds nothing, which `set -e` would take for a failure.)
if [[ " $ROWS " == *" 6 "* ]]; then order="6 $(tr ' ' '\n' <<<"$ROWS" | { grep -vx 6 || true; } | tr '\n' ' ')"; fi
for row in $order; do
    case $row in
    5)
        read -r rps p99 mbs < <(wrk_run "http://127.0.0.1:$backend/big.bin" 8)
        record big mbs direct "$mbs"; record big p99 direct "$p99"
        ;;
    7)
        # Half of nginx's row-1 maximum (measured now if row 1 did not run).
        if ! grep -q '^h1 rps nginx' "$results"; then rounds row1; fi
        rate=$(python3 -c "
import statistics
v=[float(l.split()[3]) for l in open('$results') if l.startswith('h1 rps nginx')]
print(round(statistics.median(v) / 2))")
        out=$("$load" rate --url "http://127.0.0.1:$backend/" --host bench.test --rate "$rate" --connections 32 --duration "$DURATION")
        for k in p50 p99 p999; do
            record fixed "$k" direct "$(tr ' ' '\n' <<<"$out" | awk -F= -v k="${k}_ms" '$1==k {print $2}')"
        done
        ;;
    esac
    if [ "$row" = 6 ]; then
        # One hold of each kind, not one per round: neither proxy gives the memory of closed
        # connections back to the system, so a second hold would find it already grown. The
        # req/s while held are measured in rounds within the hold.
        row6
    else
        rounds "row$row"
    fi
done

python3 - "$results" "${baseline_rev:-}" <<'PY'
import statistics, sys
from collections import defaultdict
values = defaultdict(list)
for line in open(sys.argv[1]):
    row, metric, who, value = line.split()
    if value not in ("", "nan"):
        values[(row, metric, who)].append(float(value))
med = {k: statistics.median(v) for k, v in values.items()}
# (row key, metric, label, unit, higher is better)
rows = [
    ("h1", "rps", "1. HTTP/1.1 keep-alive, small", "req/s", True),
    ("h1", "p99", "   p99", "ms", False),
    ("tls", "rps", "2. HTTPS keep-alive, small", "req/s", True),
    ("tls", "p99", "   p99", "ms", False),
    ("tls_resumed", "rps", "3. new TLS conns, resumed", "conn/s", True),
    ("tls_resumed", "p99", "   p99", "ms", False),
    ("tls_full", "rps", "   new TLS conns, full", "conn/s", True),
    ("h2", "rps", "4. HTTP/2, 100 streams", "req/s", True),
    ("h2", "p99", "   p99", "ms", False),
    ("big", "mbs", "5. 1 MiB answers", "MB/s", True),
    ("big", "p99", "   p99", "ms", False),
    ("big", "rss", "   peak RSS", "kB", None),
    ("idle_keepalive", "kb", "6. idle keep-alive conns", "kB/conn", False),
    ("idle_keepalive", "rss", "   RSS holding them", "kB", False),
    ("idle_keepalive", "rps", "   req/s while held", "req/s", True),
    ("idle_websocket", "kb", "   idle WebSockets", "kB/conn", False),
    ("idle_websocket", "rss", "   RSS holding them", "kB", False),
    ("idle_websocket", "rps", "   req/s while held", "req/s", True),
    ("fixed", "p50", "7. fixed load, p50", "ms", False),
    ("fixed", "p99", "   p99", "ms", False),
    ("fixed", "p999", "   p99.9", "ms", False),
]
fmt = lambda v: "-" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}")
print(f"{'row (medians)':<30} {'unit':<8} {'direct':>10} {'nginx':>10} {'rivetr':>10} {'r/n':>6}  target")
missed = []
first_label = {}
for row, metric, label, unit, higher in rows:
    # In the list of misses a sub-row is named after the first line of its row key
    # ("2. HTTPS keep-alive: p99", "idle WebSockets: req/s while held").
    first = first_label.setdefault(row, label.strip())
    named = first if label.strip() == first else f"{first.split(',')[0]}: {label.strip()}"
    n, r = med.get((row, metric, "nginx")), med.get((row, metric, "rivetr"))
    if n is None and r is None:
        continue
    ratio = f"{r / n:.2f}" if n and r is not None else "-"
    verdict = ""
    if higher is not None and n is not None and r is not None:
        ok = r >= n if higher else r <= n
        verdict = "met" if ok else "MISSED"
        if not ok:
            missed.append(named)
    print(f"{label:<30} {unit:<8} {fmt(med.get((row, metric, 'direct'))):>10} {fmt(n):>10} {fmt(r):>10} {ratio:>6}  {verdict}")
print("rows missed:", ", ".join(missed) if missed else "none")
if sys.argv[2]:
    r, b = med.get(("h1", "rps", "rivetr")), med.get(("h1", "rps", "baseline"))
    if r and b:
        print(f"this build vs {sys.argv[2]} (row 1 medians): {r:.0f} vs {b:.0f} req/s = {r/b:.3f}x ({(r/b-1)*100:+.1f} %)")
PY

#!/usr/bin/env bash
# Rivetr at scale: 1,000 apps (3 domains each) and a route table of 10,000 routes.
#
# Two Rivetr instances run side by side from the same release build, each on a temp state dir:
#   big    ROUTES `[[proxy.routes]]` (WILDCARDS of them `*.` wildcards) and APPS apps created
#          through the API, each with 3 domains;
#   small  one `[[proxy.routes]]` entry, no apps.
# Both route the host they are measured on to the same upstream: an nginx serving a small
# static file (one worker). In the big table that host sits in the middle of the list.
#
# An app's domains enter the route table only when a deployment of it is running on a
# container engine, and 1,000 running containers do not fit on the machines this runs on;
# so the routes are `[[proxy.routes]]` entries, which take the same path through the table
# (build, swap, lookup) as an app's domains. The apps are real (created through the API, in
# the database, their domains held against other apps and the configuration): they weigh on
# `GET /api/apps` and on startup.
#
# Figures:
#  1. GET /api/apps with APPS apps: p50 and p99 of API_REQUESTS sequential requests on one
#     keep-alive connection, with the API token (no target in the issue; printed).
#  2. Rebuilding and swapping the table of ROUTES routes: SWAPS reloads (SIGHUP, which
#     re-applies `[[proxy.routes]]` and rebuilds the whole table); Rivetr's own debug event
#     `routes swapped` gives the time from the writer's lock to the new table stored
#     (`swap_us`), and to the old table freed (`total_us`). Median and max. Target < 10 ms
#     (on the max of swap_us).
#  3. The proxy's req/s, big against small: wrk (-t2, CONNECTIONS connections, DURATION s)
#     on the middle host, ROUNDS alternating rounds, medians compared. Target: big >= 95 %
#     of small.
#  4. The big instance's VmRSS with ROUTES routes and APPS apps, after the swaps (idle), and
#     after the load rounds. Target < 40 MB (both).
#  5. Startup to READY with APPS apps (and the ROUTES routes): the time from spawning
#     `rivetr serve` to READY=1 on a NOTIFY_SOCKET this script listens on, as systemd
#     would; STARTS starts, median and max. Target < 2 s (on the max).
# The last column says met or MISSED.
#
# The container engine: with RIVETR_TEST_PODMAN_SOCKET set (scripts/test-env/engines.sh),
# the big instance uses that Podman, so startup reconciles the 1,000 apps with a real engine;
# without it, `[runtime] engine = "podman"` on a socket that does not exist (no engine).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-env/packages.sh
ensure_packages wrk nginx-light curl python3
APPS=${APPS:-1000}
ROUTES=${ROUTES:-10000}
WILDCARDS=${WILDCARDS:-100}
API_REQUESTS=${API_REQUESTS:-500}
SWAPS=${SWAPS:-20}
STARTS=${STARTS:-3}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}

# BIN=path measures that binary instead of building this tree (e.g. an older build).
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
fi
bin=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/rivetr}
work=$(mktemp -d)
chmod 755 "$work"   # the nginx worker runs as nobody
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port)
results=$work/results
: > "$results"
record() { echo "$1 $2" >> "$results"; }

mkdir -p "$work/www" "$work/nginx"
printf 'hello from the backend\n' > "$work/www/index.html"
cat > "$work/nginx/backend.conf" <<CONF
worker_processes 1;
pid $work/nginx/backend.pid;
error_log $work/nginx/backend.err warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$backend; root $work/www; keepalive_requests 100000; } }
CONF
nginx -p "$work/nginx" -c "$work/nginx/backend.conf" -g 'daemon off;' &
pids+=($!)

# The measured host: in the middle of the big table, and the only route of the small one.
middle=$((ROUTES / 2))
host=$(printf 'r%05d.scale.test' "$middle")
if [ -n "${RIVETR_TEST_PODMAN_SOCKET:-}" ]; then
    engine_socket=$RIVETR_TEST_PODMAN_SOCKET
else
    engine_socket=unix://$work/no-engine.sock
fi

# Writes a config: NAME, number of routes.
write_config() {
    local name=$1 routes=$2
    {
        cat <<CONF
[server]
api_listen = "127.0.0.1:$(free_port)"
state_dir = "$work/$name-state"
[proxy]
http_listen = "127.0.0.1:$(free_port)"
https_listen = "127.0.0.1:$(free_port)"
[acme]
enabled = false
[log]
level = "warn,rivetr::proxy::routes=debug"
[runtime]
engine = "podman"
socket = "$engine_socket"
CONF
        if [ "$routes" = 1 ]; then
            printf '[[proxy.routes]]\nhost = "%s"\nupstreams = ["127.0.0.1:%s"]\ntls = "none"\n' "$host" "$backend"
        else
            # Every route has an upstream of its own (closed ports but the middle one's), as
            # real routes would; WILDCARDS of them, spread through the list, are wildcards.
            python3 - "$routes" "$WILDCARDS" "$middle" "$backend" <<'PY'
import sys
routes, wildcards, middle, backend = map(int, sys.argv[1:])
step = max(routes // wildcards, 1) if wildcards else 0
for i in range(routes):
    name = f"r{i:05d}.scale.test"
    if step and i % step == step // 2 and i != middle:
        name = f"*.w{i:05d}.scale.test"
    port = backend if i == middle else 20000 + i % 40000
    print(f'[[proxy.routes]]\nhost = "{name}"\nupstreams = ["127.0.0.1:{port}"]\ntls = "none"')
PY
        fi
    } > "$work/$name.toml"
}
config_value() { sed -n "s/^$2 = \"\\(.*\\)\"$/\\1/p" "$work/$1.toml" | head -1; }

# Starts instance NAME in the background; sets its pid in NAME_pid.
start() {
    local name=$1
    "$bin" serve --config "$work/$name.toml" 2>>"$work/$name.log" &
    pids+=($!)
    printf -v "${name}_pid" '%s' "$!"
    local api; api=$(config_value "$name" api_listen)
    for _ in $(seq 1 300); do curl -fs -o /dev/null "http://$api/api/health" && return 0; sleep 0.05; done
    echo "$name did not answer on $api; its log:" >&2; tail -20 "$work/$name.log" >&2; return 1
}
stop() { # NAME: SIGTERM, and wait for the exit
    local pid; pid=$(eval echo "\$${1}_pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
rss_kb() { awk "/^$2/ {print \$2}" "/proc/$1/status"; }

write_config big "$ROUTES"
write_config small 1
echo "$(nproc) CPUs, $(date -u '+%F %H:%M UTC'); $APPS apps, $ROUTES routes ($WILDCARDS wildcards), measured host $host"
echo "engine: $engine_socket"

# --- 1. apps through the API, and GET /api/apps -------------------------------------------------
start big
big_api=$(config_value big api_listen)
token=$(cat "$work/big-state/initial-admin-token")
python3 - "$big_api" "$token" "$APPS" "$API_REQUESTS" "$results" <<'PY'
import http.client, json, statistics, sys, time
api, token, apps, requests, results = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
host, port = api.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data
t0 = time.monotonic()
for i in range(apps):
    name = f"app{i:04d}"
    call("POST", "/api/apps", {
        "name": name, "git_url": f"https://git.example.test/{name}.git", "branch": "main",
        "port": 8080,
        "domains": [f"{name}.apps.test", f"www.{name}.apps.test", f"{name}.example.org"],
    })
created = time.monotonic() - t0
listed = json.loads(call("GET", "/api/apps"))
assert len(listed) == apps, f"GET /api/apps lists {len(listed)} apps, not {apps}"
times = []
for _ in range(requests):
    t = time.perf_counter()
    call("GET", "/api/apps")
    times.append((time.perf_counter() - t) * 1000)
times.sort()
p = lambda q: times[min(len(times) - 1, int(len(times) * q))]
print(f"created {apps} apps in {created:.1f} s; GET /api/apps ({len(listed)} apps): "
      f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {times[-1]:.1f} ms")
with open(results, "a") as f:
    f.write(f"api_p50 {p(0.5):.2f}\napi_p99 {p(0.99):.2f}\n")
PY
stop big

# --- 5. startup to READY with the apps ----------------------------------------------------------
python3 - "$bin" "$work/big.toml" "$work/notify.sock" "$STARTS" "$work/big.log" "$results" <<'PY'
import os, socket, statistics, subprocess, sys, time
binary, config, path, starts, log, results = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
times = []
for _ in range(starts):
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    with open(log, "a") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([binary, "serve", "--config", config], env=env, stderr=err)
        try:
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.splitlines():
                    times.append(time.monotonic() - t0)
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    sock.close()
print("starts to READY=1: " + ", ".join(f"{t * 1000:.0f} ms" for t in times))
with open(results, "a") as f:
    f.write(f"ready_median {statistics.median(times) * 1000:.1f}\nready_max {max(times) * 1000:.1f}\n")
PY

# --- 2. swaps, and 4. RSS ------------------------------------------------------------------------
start big
start small
big_http=$(config_value big http_listen)
small_http=$(config_value small http_listen)
for url in "http://$big_http/" "http://$small_http/"; do
    curl -fsS -o /dev/null -H "Host: $host" "$url"
done
swaps() { grep -c 'routes swapped' "$work/big.log" || true; }
for _ in $(seq 1 "$SWAPS"); do
    before=$(swaps)
    kill -HUP "$big_pid"
    for _ in $(seq 1 40); do [ "$(swaps)" -gt "$before" ] && break; sleep 0.05; done
done
python3 - "$work/big.log" "$SWAPS" "$ROUTES" "$results" <<'PY'
import re, statistics, sys
log, swaps, routes, results = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
found = []
for line in open(log):
    if "routes swapped" not in line:
        continue
    fields = dict(re.findall(r"(\w+)=(\d+)", line))
    if int(fields.get("routes", 0)) >= routes:
        found.append((int(fields["swap_us"]), int(fields["total_us"])))
found = found[-swaps:]
if not found:
    print("no `routes swapped` event of the full table in the log (a build without it?)")
    sys.exit(0)
swap = [s for s, _ in found]
total = [t for _, t in found]
print(f"{len(found)} swaps of {routes} routes: build+store median {statistics.median(swap) / 1000:.2f} ms, "
      f"max {max(swap) / 1000:.2f} ms; with the old table freed median {statistics.median(total) / 1000:.2f} ms, "
      f"max {max(total) / 1000:.2f} ms")
with open(results, "a") as f:
    f.write(f"swap_median {statistics.median(swap) / 1000:.3f}\nswap_max {max(swap) / 1000:.3f}\n"
            f"total_median {statistics.median(total) / 1000:.3f}\ntotal_max {max(total) / 1000:.3f}\n")
PY
# Rivetr gives freed memory back to the system once its table has been left alone for 1 s.
sleep 2
record rss_idle "$(rss_kb "$big_pid" VmRSS)"
echo "big instance idle: VmRSS $(rss_kb "$big_pid" VmRSS) kB, VmHWM $(rss_kb "$big_pid" VmHWM) kB," \
    "RssAnon $(rss_kb "$big_pid" RssAnon) kB; small instance VmRSS $(rss_kb "$small_pid" VmRSS) kB"

# --- 3. req/s, big against small ---------------------------------------------------------------
wrk_rps() { # URL
    local out
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "Host: $host" "$1")
    if grep -Eq 'Non-2xx|Socket errors' <<<"$out"; then grep -E 'Non-2xx|Socket errors' <<<"$out" >&2; fi
    awk '/^Requests\/sec/ {print $2}' <<<"$out"
}
for round in $(seq 1 "$ROUNDS"); do
    s=$(wrk_rps "http://$small_http/"); record rps_small "$s"
    b=$(wrk_rps "http://$big_http/"); record rps_big "$b"
    echo "round $round: 1 route $s req/s, $ROUTES routes $b req/s"
done
record rss_loaded "$(rss_kb "$big_pid" VmRSS)"
echo "big instance after the load: VmRSS $(rss_kb "$big_pid" VmRSS) kB, VmHWM $(rss_kb "$big_pid" VmHWM) kB"

python3 - "$results" "$APPS" "$ROUTES" <<'PY'
import statistics, sys
from collections import defaultdict
values = defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split()
    values[k].append(float(v))
apps, routes = sys.argv[2], sys.argv[3]
v = lambda k: statistics.median(values[k]) if values[k] else float("nan")
small, big = v("rps_small"), v("rps_big")
rows = [
    (f"GET /api/apps p50 ({apps} apps)", f"{v('api_p50'):.1f} ms", "-", None),
    (f"GET /api/apps p99 ({apps} apps)", f"{v('api_p99'):.1f} ms", "-", None),
    (f"route table swap, median ({routes})", f"{v('swap_median'):.2f} ms", "< 10 ms", v("swap_median") < 10),
    (f"route table swap, max ({routes})", f"{v('swap_max'):.2f} ms", "< 10 ms", v("swap_max") < 10),
    ("  with the old table freed, max", f"{v('total_max'):.2f} ms", "-", None),
    ("proxy req/s, 1 route (median)", f"{small:.0f}", "-", None),
    (f"proxy req/s, {routes} routes (median)", f"{big:.0f} ({(big / small - 1) * 100:+.1f} %)", ">= 95 % of 1 route", big >= 0.95 * small),
    (f"VmRSS, {routes} routes, idle", f"{v('rss_idle') / 1024:.1f} MB", "< 40 MB", v("rss_idle") < 40 * 1024),
    (f"VmRSS, {routes} routes, after load", f"{v('rss_loaded') / 1024:.1f} MB", "< 40 MB", v("rss_loaded") < 40 * 1024),
    (f"start to READY, median ({apps} apps)", f"{v('ready_median'):.0f} ms", "< 2000 ms", v("ready_median") < 2000),
    (f"start to READY, max ({apps} apps)", f"{v('ready_max'):.0f} ms", "< 2000 ms", v("ready_max") < 2000),
]
rows = [(l, val, t, None if "nan" in val else ok) for l, val, t, ok in rows]
print(f"\n{'figure':<40} {'value':>18}  {'target':<20} verdict")
for label, value, target, ok in rows:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    print(f"{label:<40} {value:>18}  {target:<20} {verdict}")
missed = [r[0].strip() for r in rows if r[3] is False]
print("missed:", ", ".join(missed) if missed else "none")
PY

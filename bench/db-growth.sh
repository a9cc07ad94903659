#!/usr/bin/env bash
# Database growth: drives DEPLOYS (default 1000) real deployments of an image app on rootful
# Podman through the API of two Rivetr instances side by side, one with the default retention
# ([engine] keep_deployments = 50) and one with pruning effectively off (keep_deployments =
# 1000000), and prints the size of rivetr.db (and its WAL) every STEP deployments and at the
# end, with the rows each table holds. Each deployment is a real one: a container started from
# the image, health-checked, switched to, and the previous one drained (drain_seconds = 0).
# Target: with retention the file stops growing once every app has its 50 deployments, and
# nobody runs VACUUM.
#
# BIN=path/to/rivetr uses that binary instead of a release build (the sizes do not depend on
# the build); DEPLOYS and STEP change the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RIVETR_TEST_PODMAN_SOCKET:-}" ]; then
    exec scripts/test-env/engines.sh "$0" "$@"
fi
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=$PWD/target/release/rivetr
    [ -n "${CARGO_TARGET_DIR:-}" ] && BIN=$CARGO_TARGET_DIR/release/rivetr
fi
deploys=${DEPLOYS:-1000}
step=${STEP:-100}
work=$(mktemp -d)
pids=()
image=localhost/rivetr-bench-growth:1
podman_() { podman --remote --url "$RIVETR_TEST_PODMAN_SOCKET" "$@"; }
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    podman_ rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# On failure, keep the instances' logs to read.
trap 'trap - EXIT; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
      podman_ rmi -f "$image" >/dev/null 2>&1 || true; echo "logs kept in $work/*/log" >&2' ERR
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/image"
printf 'FROM localhost/busybox:test\nCMD ["sh", "-c", "mkdir -p /www && echo growth > /www/index.html && exec httpd -f -p 8080 -h /www"]\n' \
    >"$work/image/Dockerfile"
podman_ build -q -t "$image" "$work/image" >/dev/null

# start NAME KEEP: one Rivetr in $work/NAME; sets API to its API port.
start() {
    local name=$1 keep=$2 http https
    API=$(free_port); http=$(free_port); https=$(free_port)
    mkdir -p "$work/$name"
    (cd "$work/$name" && RIVETR_SERVER_API_LISTEN=127.0.0.1:$API RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http \
        RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:$https RIVETR_ACME_ENABLED=false \
        RIVETR_RUNTIME_ENGINE=podman RIVETR_RUNTIME_SOCKET=$RIVETR_TEST_PODMAN_SOCKET \
        RIVETR_ENGINE_DRAIN_SECONDS=0 RIVETR_ENGINE_STOP_TIMEOUT_SECONDS=1 \
        RIVETR_ENGINE_KEEP_DEPLOYMENTS=$keep RIVETR_LOG_LEVEL=info \
        exec "$BIN" serve >"$work/$name/log" 2>&1) &
    pids+=($!)
    for _ in $(seq 1 400); do curl -fs "http://127.0.0.1:$API/api/health" >/dev/null && break; sleep 0.05; done
}
start pruned 50
pruned_api=$API
start full 1000000
full_api=$API

python3 - "$work" "$image" "$deploys" "$step" "pruned:$pruned_api" "full:$full_api" <<'PY'
import json, os, sqlite3, sys, threading, time, urllib.request

work, image, deploys, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
instances = [a.split(":") for a in sys.argv[5:]]

def call(api, token, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None

def sizes(name):
    data = os.path.join(work, name, "data")
    size = lambda f: os.path.getsize(os.path.join(data, f)) if os.path.exists(os.path.join(data, f)) else 0
    db = sqlite3.connect(f"file:{os.path.join(data, 'rivetr.db')}?mode=ro", uri=True, timeout=30)
    count = lambda t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
    rows = {t: count(t) for t in ("deployments", "deployment_logs", "webhook_deliveries")}
    pages, free = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
    mode = db.execute("PRAGMA auto_vacuum").fetchone()[0]
    db.close()
    return size("rivetr.db"), size("rivetr.db-wal"), rows, pages, free, mode

lock = threading.Lock()
report = {}
failures = []

def drive(name, api):
    token = open(os.path.join(work, name, "data", "initial-admin-token")).read().strip()
    app = f"growth-{name}"
    call(api, token, "POST", "/api/apps", {"name": app, "image": image, "port": 8080,
         "healthcheck": {"path": "/", "interval_ms": 20, "timeout_ms": 500, "retries": 100}})
    started = time.time()
    for i in range(1, deploys + 1):
        d = call(api, token, "POST", f"/api/apps/{app}/deployments", {})
        while d["status"] not in ("running", "failed", "cancelled", "superseded"):
            time.sleep(0.02)
            d = call(api, token, "GET", f"/api/deployments/{d['id']}")
        if d["status"] != "running":
            # A deployment that fails (the engine has its bad moments under load) is still a
            # deployment with a log: counted, and the run goes on.
            with lock:
                failures.append(f"{name}: deployment {d['id']} ({i} of {deploys}) ended "
                                f"{d['status']}: {d.get('reason')}")
                print(failures[-1], flush=True)
        if i % step == 0 or i == deploys:
            db, wal, rows, pages, free, mode = sizes(name)
            with lock:
                report.setdefault(i, {})[name] = (db, wal, rows)
                print(f"{name:>6} after {i:>5} deployments ({time.time() - started:6.0f} s): "
                      f"rivetr.db {db / 1024:8.0f} KiB, WAL {wal / 1024:6.0f} KiB, "
                      f"{rows['deployments']:>5} deployments, {rows['deployment_logs']:>6} log lines",
                      flush=True)

threads = [threading.Thread(target=drive, args=(n, a)) for n, a in instances]
for t in threads: t.start()
for t in threads: t.join()
if len(failures) > deploys // 10:
    sys.exit(f"{len(failures)} deployments failed; the engine is not healthy")
time.sleep(3)  # the last prune after the last deployment
print()
print(f"after {deploys} deployments of one image app on Podman ({len(failures)} of them failed):")
for name, _ in instances:
    db, wal, rows, pages, free, mode = sizes(name)
    keep = "keep_deployments = 50" if name == "pruned" else "keep_deployments = 1000000 (pruning off)"
    print(f"  {keep:<42} rivetr.db {db / 1024:8.0f} KiB + WAL {wal / 1024:5.0f} KiB; "
          f"{rows['deployments']} deployments, {rows['deployment_logs']} log lines; "
          f"{pages} pages, {free} free; auto_vacuum {mode}")
for name, api in instances:
    token = open(os.path.join(work, name, "data", "initial-admin-token")).read().strip()
    call(api, token, "DELETE", f"/api/apps/growth-{name}")
PY

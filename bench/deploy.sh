#!/usr/bin/env bash
# Redeploy speed: 10 redeploys of an unchanged repository (build cache warm) with
# drain_seconds = 0 on rootful Podman. Prints the median time from trigger to switch
# (queued_at -> running_at) and the median orchestration overhead: that time minus clone,
# build, container start and health wait, all read from the deployment's stage timestamps.
# Targets: trigger to switch under 1 s; overhead under 200 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RIVETR_TEST_PODMAN_SOCKET:-}" ]; then
    exec scripts/test-env/engines.sh "$0" "$@"
fi
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); http=$(free_port); https=$(free_port)

repo=$work/repo
mkdir -p "$repo/www"
printf 'FROM localhost/busybox:test\nCOPY www /www\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n' >"$repo/Dockerfile"
printf 'bench\n' >"$repo/www/index.html"
printf '[deploy]\ndrain_seconds = 0\n[deploy.healthcheck]\ninterval_ms = 20\nretries = 500\n' >"$repo/deploy.toml"
git -C "$repo" init -q --initial-branch=main
git -C "$repo" -c user.email=b@r -c user.name=bench add -A
git -C "$repo" -c user.email=b@r -c user.name=bench commit -qm bench

(cd "$work" && RIVETR_SERVER_API_LISTEN=127.0.0.1:$api RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http \
    RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:$https RIVETR_ACME_ENABLED=false \
    RIVETR_RUNTIME_ENGINE=podman RIVETR_RUNTIME_SOCKET=$RIVETR_TEST_PODMAN_SOCKET \
    RIVETR_LOG_LEVEL=warn exec "$OLDPWD/target/release/rivetr" serve 2>"$work/log") &
pid=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$api/api/health" >/dev/null && break; sleep 0.05; done

python3 - "$api" "$repo" "$(cat "$work/data/initial-admin-token")" "${RUNS:-10}" <<'PY'
import json, statistics, sys, time, urllib.request
from datetime import datetime

api, repo, token, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None

def ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()

def deploy():
    d = call("POST", "/api/apps/bench/deployments", {})
    while d["status"] not in ("running", "failed", "cancelled", "superseded"):
        time.sleep(0.01)
        d = call("GET", f"/api/deployments/{d['id']}")
    if d["status"] != "running":
        sys.exit(f"deployment {d['id']} ended {d['status']}: {d.get('reason')}")
    return d

call("POST", "/api/apps", {"name": "bench", "git_url": f"file://{repo}", "port": 8080})
deploy()  # first build fills the cache
totals, overheads, parts = [], [], {"clone": [], "build": [], "start": [], "health": []}
for _ in range(runs):
    d = deploy()
    q, c, b, s, h, w, r = (ts(d[k]) for k in ("queued_at", "cloning_at", "building_at", "starting_at",
                                              "health_checking_at", "switching_at", "running_at"))
    clone, build, start, health = b - c, s - b, h - s, w - h
    total = r - q
    totals.append(total)
    overheads.append(total - clone - build - start - health)
    for k, v in zip(parts, (clone, build, start, health)):
        parts[k].append(v)
ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"
print(f"redeploys of an unchanged repo on Podman, drain 0, median of {runs}:")
print(f"  trigger to switch:        {ms(totals)}  (target < 1000 ms)")
print(f"  orchestration overhead:   {ms(overheads)}  (target < 200 ms)")
print("  stages: " + ", ".join(f"{k} {ms(v)}" for k, v in parts.items()))
call("DELETE", "/api/apps/bench")
PY

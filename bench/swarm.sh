#!/usr/bin/env bash
# Redeploy speed on a Docker Swarm, against the single-engine figure of bench/deploy.sh.
# The three-node swarm of scripts/test-env/swarm.sh; an app of 2 replicas, one per worker
# (node.role==worker, spread by node label), drain_seconds = 0, a 20 ms health check.
#  - RUNS (default 10) redeploys of an unchanged repository: the median time from trigger to
#    all replicas switched (queued_at -> running_at), and Rivetr's overhead: that time minus
#    the build, the swarm getting the tasks running and the health wait. A table of medians
#    splits it: clone and build (stage timestamps), push ("pushing" -> "pushed as"), tasks
#    running ("created service" -> the last task's Status.Timestamp, the swarm's own clock),
#    Rivetr noticing them (-> its last "swarm" task line; it polls every 500 ms), health
#    (-> the last "health" line), and the rest. Line times come from the daemon's stderr
#    (rivetr::engine::log at debug level logs every deploy log line as it is said): the log
#    API's `at` is when a 100 ms batch was stored, too coarse for these spans.
#  - bench/deploy.sh (Podman, one container) with the same RUNS, and the ratio swarm/single.
#  - Route follow: one task's container killed on its worker while a client requests the app
#    through Rivetr's proxy every 20 ms: failed requests, and the time until the proxy
#    answers from the replacement task (each task serves its hostname at /host.txt).
# Targets: none fixed; the issue asks for these figures against the single-engine one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RIVETR_TEST_SWARM_SOCKET:-}" ]; then
    exec scripts/test-env/swarm.sh "$0" "$@"
fi
RUNS=${RUNS:-10}
cargo build --release --quiet
work=$(mktemp -d)
pid= token=
cleanup() {
    if [ -n "$token" ]; then  # deleting the app removes its services
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $token" "http://127.0.0.1:$api/api/apps/swarmbench" || true
        token=
    fi
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
}
trap 'cleanup; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); http=$(free_port); https=$(free_port)

repo=$work/repo
mkdir -p "$repo/www"
printf 'FROM localhost/busybox:test\nCOPY www /www\nCMD ["sh", "-c", "hostname > /www/host.txt; exec httpd -f -p 8080 -h /www"]\n' >"$repo/Dockerfile"
printf 'bench\n' >"$repo/www/index.html"
printf '[deploy]\ndrain_seconds = 0\n[deploy.healthcheck]\ninterval_ms = 20\nretries = 500\n' >"$repo/deploy.toml"
git -C "$repo" init -q --initial-branch=main
git -C "$repo" -c user.email=b@r -c user.name=bench add -A
git -C "$repo" -c user.email=b@r -c user.name=bench commit -qm bench
printf '[runtime.swarm]\nregistry = "%s"\n' "$RIVETR_TEST_SWARM_REGISTRY" >"$work/rivetr.toml"

(cd "$work" && RIVETR_CONFIG=$work/rivetr.toml RIVETR_SERVER_API_LISTEN=127.0.0.1:$api \
    RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:$https \
    RIVETR_ACME_ENABLED=false RIVETR_RUNTIME_ENGINE=swarm RIVETR_RUNTIME_SOCKET=$RIVETR_TEST_SWARM_SOCKET \
    RIVETR_LOG_LEVEL=warn,rivetr::engine::log=debug exec "$OLDPWD/target/release/rivetr" serve 2>"$work/log") &
pid=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$api/api/health" >/dev/null && break; sleep 0.05; done
token=$(cat "$work/data/initial-admin-token")

python3 - "$api" "$http" "$repo" "$token" "$RUNS" "$work" <<'PY'
import http.client, json, re, statistics, subprocess, sys, threading, time, urllib.error, urllib.parse, urllib.request
from datetime import datetime, timezone

api, http_port, repo, token, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
MANAGER, HOST = "/run/rivetr-test/swarm/manager.sock", "swarmbench.test"
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None

def dk(sock, path):  # a GET on a node's Docker API
    return json.loads(subprocess.run(["curl", "-sf", "--unix-socket", sock, f"http://d{path}"],
                                     check=True, capture_output=True).stdout)

def ts(s):  # Rivetr's millisecond stamps, the daemon's microsecond ones, Docker's nanosecond ones
    s = re.sub(r"(\.\d{6})\d*Z$", r"\1Z", s.strip())
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()

def trace(dep):  # (time, text) of the deploy log lines of deployment `dep`, from the daemon's stderr
    out = []
    for l in open(f"{work}/log", errors="replace"):
        m = re.match(r"(\S+Z)\s+\w+\s+(.*)", l)
        if m and re.search(rf"\bdeployment={dep}\b", m.group(2)):
            out.append((ts(m.group(1)), m.group(2)))
    return out

def deploy():
    d = call("POST", "/api/apps/swarmbench/deployments", {})
    while d["status"] not in ("running", "failed", "cancelled", "superseded"):
        time.sleep(0.01)
        d = call("GET", f"/api/deployments/{d['id']}")
    if d["status"] != "running":
        sys.exit(f"deployment {d['id']} ended {d['status']}: {d.get('reason')}")
    return d

nodes = {n["ID"]: n["Spec"].get("Labels", {}).get("rivetr.test.name", "?") for n in dk(MANAGER, "/nodes")}
app = {"name": "swarmbench", "git_url": f"file://{repo}", "port": 8080, "domains": [HOST], "replicas": 2,
       "placement": {"constraints": ["node.role==worker"], "spread": ["node.labels.rivetr.test.name"]}}
try:
    call("POST", "/api/apps", app)
    placed = "placement node.role==worker, spread over node.labels.rivetr.test.name"
except urllib.error.HTTPError as e:
    why = e.read().decode(errors="replace")
    if e.code >= 500 or "placement" not in why:
        raise
    del app["placement"]
    call("POST", "/api/apps", app)
    placed = f"NO placement (the API refused it: {why.strip()[:160]})"
first = deploy()  # first build fills the cache, first push fills the registry
keys = ("clone", "build", "push", "tasks running", "Rivetr notices", "health", "rest")
totals, overheads, parts = [], [], {k: [] for k in keys}
for _ in range(runs):
    d = deploy()
    q, c, b, s, r = (ts(d[k]) for k in ("queued_at", "cloning_at", "building_at", "starting_at", "running_at"))
    lines = trace(d["id"])
    at = lambda pat: [t for t, text in lines if re.search(pat, text)]
    service = re.search(r"created service (\S+)", next(x for _, x in lines if "created service" in x)).group(1)
    tasks = dk(MANAGER, "/tasks?filters=" + urllib.parse.quote(json.dumps({"service": [service], "desired-state": ["running"]})))
    swarm_running = max(ts(t["Status"]["Timestamp"]) for t in tasks if t["Status"]["State"] == "running")
    created, seen, healthy = at("created service")[0], at('stream="?swarm')[-1], at('stream="?health')[-1]
    stage = dict(zip(keys, (b - c, s - b, at("pushed as")[0] - at("pushing ")[0], swarm_running - created,
                            seen - swarm_running, healthy - seen)))
    total = r - q
    stage["rest"] = total - sum(stage.values())
    totals.append(total)
    overheads.append(total - stage["build"] - stage["tasks running"] - stage["health"])
    for k, v in stage.items():
        parts[k].append(v)
logs = call("GET", f"/api/deployments/{d['id']}/logs")
ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"
print(f"redeploys of an unchanged repo on a 3-node swarm, 2 replicas, {placed}, drain 0, median of {runs}:")
print(f"  trigger to all replicas switched: {ms(totals)}")
print(f"  Rivetr overhead:                  {ms(overheads)}  (total - build - tasks running - health)")
print("  stage medians:")
for k, v in parts.items():
    print(f"    {k:<15} {ms(v):>8}")
print(f"  (log API: {len(logs)} lines of the last deployment carry {len({l['at'] for l in logs})} distinct `at` stamps)")
open(f"{work}/swarm_ms", "w").write(f"{statistics.median(totals) * 1000:.1f}\n")

# Route follow: kill one task's container while a client requests the app every 20 ms.
filt = urllib.parse.quote(json.dumps({"service": [service], "desired-state": ["running"]}))
victim = next(t for t in dk(MANAGER, f"/tasks?filters={filt}") if t["Status"]["State"] == "running")
cid, node = victim["Status"]["ContainerStatus"]["ContainerID"], nodes[victim["NodeID"]]
seen_log, stop = [], threading.Event()
def client():
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
            conn.request("GET", "/host.txt", headers={"Host": HOST})
            resp = conn.getresponse()
            seen_log.append((time.time(), resp.status, resp.read().decode(errors="replace").strip()))
            conn.close()
        except Exception as e:
            seen_log.append((time.time(), 0, repr(e)))
        time.sleep(0.02)
loop = threading.Thread(target=client)
loop.start()
time.sleep(1)
before = {h for _, st, h in seen_log if st == 200}
killed = time.time()
subprocess.run(["/usr/bin/docker", "-H", f"unix:///run/rivetr-test/swarm/{node}.sock", "kill", cid],
               check=True, capture_output=True)
new = None
while time.time() - killed < 60 and new is None:
    time.sleep(0.05)
    new = next(((t, h) for t, st, h in list(seen_log) if t > killed and st == 200 and h not in before), None)
time.sleep(0.5)
stop.set()
loop.join()
failed = [(st, h) for _, st, h in seen_log if st != 200]
print(f"route follow: killed task {victim['ID'][:12]} (container {cid[:12]}) on {node}; "
      f"{len(seen_log)} requests every 20 ms, {len(failed)} failed{': ' + str(failed[:3]) if failed else ''}")
if new is None:
    print("  the proxy did not answer from a replacement task within 60 s")
else:
    repl = [t for t in dk(MANAGER, f"/tasks?filters={filt}")
            if t["Status"]["State"] == "running" and t["Status"]["ContainerStatus"]["ContainerID"].startswith(new[1])]
    print(f"  proxy answered from the replacement task ({new[1]}) {new[0] - killed:.2f} s after the kill", end="")
    print(f"; the swarm had it running after {ts(repl[0]['Status']['Timestamp']) - killed:.2f} s" if repl else "")
PY
cleanup

echo
echo "reference: bench/deploy.sh (single engine) with RUNS=$RUNS:"
RUNS=$RUNS bench/deploy.sh | tee "$work/single"
python3 - "$(cat "$work/swarm_ms")" "$(sed -n 's/.*trigger to switch: *\([0-9.]*\) ms.*/\1/p' "$work/single")" <<'PY'
import sys
swarm, single = float(sys.argv[1]), float(sys.argv[2])
print(f"trigger to switch, swarm / single engine: {swarm:.0f} / {single:.0f} ms = {swarm / single:.1f}x")
PY

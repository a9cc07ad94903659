#!/usr/bin/env bash
# Backup throughput and memory: a PostgreSQL database of SIZE_MB (default 1024) on rootful
# Podman, backed up by the release binary to moto's S3 server (multipart, signatures checked)
# and to the local directory. Prints the database's size, each backup's size and time, the
# throughput (database bytes per second), and Rivetr's peak RSS (VmHWM) across both.
# Target: peak RSS under 50 MB (the dump streams: at most one 8 MiB part is held).
# ENCRYPT=1: with a backup key set ([databases] backup_key_file), to measure encryption's cost.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RIVETR_TEST_PODMAN_SOCKET:-}" ]; then
    exec scripts/test-env/engines.sh "$0" "$@"
fi
scripts/test-env/db-images.sh >&2
moto_server=$(scripts/test-env/moto.sh)
cargo build --release --quiet
work=$(mktemp -d)
pid=""; moto=""
trap 'kill $pid $moto 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); http=$(free_port); https=$(free_port); s3=$(free_port)
key_file=""
if [ "${ENCRYPT:-0}" = 1 ]; then
    key_file="$work/backup.key"
    head -c 32 /dev/urandom >"$key_file"
    echo "backups encrypted (ENCRYPT=1)"
fi

INITIAL_NO_AUTH_ACTION_COUNT=4 "$moto_server" -H 127.0.0.1 -p "$s3" >"$work/moto.log" 2>&1 &
moto=$!
(cd "$work" && RIVETR_SERVER_API_LISTEN=127.0.0.1:$api RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:$http \
    RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:$https RIVETR_ACME_ENABLED=false \
    RIVETR_RUNTIME_ENGINE=podman RIVETR_RUNTIME_SOCKET=$RIVETR_TEST_PODMAN_SOCKET \
    RIVETR_DATABASES_POSTGRES_IMAGE='localhost/rivetr-test-postgres:{version}' \
    RIVETR_DATABASES_BACKUP_KEY_FILE="$key_file" \
    RIVETR_LOG_LEVEL=warn exec "$OLDPWD/target/release/rivetr" serve 2>"$work/log") &
pid=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$api/api/health" >/dev/null && break; sleep 0.05; done
# A TCP connection, not a request: moto's first four requests go unchecked, and are for IAM.
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$s3") 2>/dev/null && break; sleep 0.1; done

python3 - "$api" "$(cat "$work/data/initial-admin-token")" "$s3" "$pid" "${SIZE_MB:-1024}" \
    "$RIVETR_TEST_PODMAN_SOCKET" <<'PY'
import json, re, subprocess, sys, time, urllib.parse, urllib.request

api, token, s3, pid, size_mb, socket = sys.argv[1:7]
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        text = r.read()
        return json.loads(text) if text else None

# moto: an IAM user whose key may do anything, then the bucket; later calls are checked.
fake = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00"
def iam(params):
    req = urllib.request.Request(f"http://127.0.0.1:{s3}/", method="POST",
        data=urllib.parse.urlencode({**params, "Version": "2010-05-08"}).encode(),
        headers={"Authorization": fake, "Content-Type": "application/x-www-form-urlencoded"})
    return urllib.request.urlopen(req).read().decode()
iam({"Action": "CreateUser", "UserName": "bench"})
key = iam({"Action": "CreateAccessKey", "UserName": "bench"})
ak = re.search("<AccessKeyId>([^<]+)", key).group(1)
sk = re.search("<SecretAccessKey>([^<]+)", key).group(1)
iam({"Action": "PutUserPolicy", "UserName": "bench", "PolicyName": "all", "PolicyDocument":
     json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})})
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{s3}/bench", method="PUT")).read()

db = call("POST", "/api/databases", {"name": "big", "engine": "postgres", "version": "15"})
container = db["container"]
env = json.loads(subprocess.check_output(["podman", "--url", socket, "inspect", "--format",
                                          "{{json .Config.Env}}", container]))
password = next(e.split("=", 1)[1] for e in env if e.startswith("POSTGRES_PASSWORD="))
def psql(sql):
    return subprocess.check_output(["podman", "--url", socket, "exec", "-e", f"PGPASSWORD={password}",
        container, "psql", "-h", "127.0.0.1", "-U", "big", "-d", "big", "-tAc", sql], text=True).strip()
rows = int(size_mb) * 1024 * 1024 // 136   # about 136 bytes a row on disk
started = time.time()
psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) AS v "
     f"FROM generate_series(1, {rows}) g")
db_bytes = int(psql("SELECT pg_database_size('big')"))
print(f"database: {db_bytes / 2**20:.0f} MiB ({rows} rows, filled in {time.time() - started:.0f} s)")

call("POST", "/api/backup-destinations", {"name": "moto", "kind": "s3",
     "endpoint": f"http://127.0.0.1:{s3}", "region": "us-east-1", "bucket": "bench",
     "path_style": True, "access_key_id": ak, "secret_access_key": sk})

def backup(destination):
    started = time.time()
    b = call("POST", f"/api/databases/big/backups?destination={destination}")
    while b["status"] == "running":
        time.sleep(0.2)
        b = next(x for x in call("GET", "/api/databases/big/backups") if x["id"] == b["id"])
    took = time.time() - started
    if b["status"] != "succeeded":
        sys.exit(f"backup to {destination} failed: {b['error']}")
    print(f"{destination:>6}: {b['size_bytes'] / 2**20:.0f} MiB stored in {took:.1f} s: "
          f"{db_bytes / 2**20 / took:.0f} MiB/s of database; rivetr {rss()}")

def rss():
    status = open(f"/proc/{pid}/status").read()
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    now = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return f"peak RSS (VmHWM) {peak / 1024:.1f} MiB, now {now / 1024:.1f} MiB"
print(f"rivetr before the backups: {rss()}")
backup("local")
backup("moto")
print(f"target: peak RSS under 50 MiB")
PY

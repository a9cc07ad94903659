#!/usr/bin/env bash
# Tests Rivetr's API against its own OpenAPI document with schemathesis (issue 17): starts
# `rivetr serve` on rootful Podman with fresh state, runs schemathesis's example-based
# phases (examples, coverage, fuzzing) and its stateful phase with every check, prints the
# summary, and exits non-zero on any failure.
#
#   scripts/test-env/engines.sh scripts/schemathesis.sh
#
# Needs RIVETR_TEST_PODMAN_SOCKET (scripts/test-env/engines.sh exports it). The binary is
# $RIVETR_BIN when set, else `cargo build` makes ${CARGO_TARGET_DIR:-target}/debug/rivetr.
# SCHEMATHESIS_MAX_EXAMPLES (default 20) bounds the examples per operation and phase, which
# bounds the time: about 3 minutes on a 2-CPU machine. Extra arguments go to `schemathesis
# run` (e.g. --include-path-regex '^/api/apps'). The reports (JUnit, and a cassette of every
# request) are left in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-/var/cache/rivetr-test/schemathesis-$SCHEMATHESIS_VERSION}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
OUT=$ROOT/target/schemathesis

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
# Seconds since the script started, for the log: in CI this job takes about twice as long as
# schemathesis's own run, and these say where the rest goes.
since_start() { echo "$SECONDS s in"; }

# The virtual environment, made once; the marker is written last, so an install cut short
# is redone rather than used half-made.
if [ ! -e "$VENV/.complete" ]; then
    log "installing schemathesis==$SCHEMATHESIS_VERSION from PyPI into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    touch "$VENV/.complete"
fi

if [ -z "${RIVETR_TEST_PODMAN_SOCKET:-}" ]; then
    log "RIVETR_TEST_PODMAN_SOCKET is not set: run me through scripts/test-env/engines.sh"
    exit 2
fi

if [ -n "${RIVETR_BIN:-}" ]; then
    BIN=$RIVETR_BIN
else
    cargo build --quiet --locked --bin rivetr
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/rivetr
fi

# A free TCP port on 127.0.0.1 (bound and released; nothing else here races for it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

WORK=$(mktemp -d /tmp/rivetr-schemathesis.XXXXXX)
RIVETR_PID=
cleanup() {
    local cleanup_started=$SECONDS removed=0
    if [ -n "$RIVETR_PID" ]; then
        kill -TERM "$RIVETR_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$RIVETR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RIVETR_PID" 2>/dev/null || true
    fi
    # Containers the run created carry this installation's instance label (Rivetr's own
    # cleanup touches nothing else, and neither does this); the next run starts from fresh
    # state and would never see them, so they go now.
    local sock=${RIVETR_TEST_PODMAN_SOCKET#unix://} instance id
    instance=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT id FROM instance").fetchone()[0])' "$WORK/data/rivetr.db" 2>/dev/null || true)
    if [ -n "$instance" ]; then
        for id in $(curl -sf --unix-socket "$sock" -G 'http://d/v1.41/containers/json?all=1' \
            --data-urlencode "filters={\"label\":[\"io.rivetr.instance=$instance\"]}" |
            python3 -c 'import json, sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))' 2>/dev/null); do
            curl -sf --unix-socket "$sock" -X DELETE "http://d/v1.41/containers/$id?force=1&v=1" >/dev/null || true
            removed=$((removed + 1))
        done
    fi
    rm -rf "$WORK"
    log "cleanup took $((SECONDS - cleanup_started)) s ($removed containers removed), $(since_start)"
}
trap cleanup EXIT

API=127.0.0.1:$(free_port)
log "starting $BIN on $API, $(since_start) (state in $WORK/data, engine $RIVETR_TEST_PODMAN_SOCKET)"
(
    cd "$WORK"
    exec env -u RUST_LOG -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES -u JOURNAL_STREAM \
        RIVETR_SERVER_STATE_DIR="$WORK/data" \
        RIVETR_SERVER_API_LISTEN="$API" \
        RIVETR_SERVER_TRUSTED_PROXIES='["127.0.0.1"]' \
        RIVETR_PROXY_HTTP_LISTEN="127.0.0.1:$(free_port)" \
        RIVETR_PROXY_HTTPS_LISTEN="127.0.0.1:$(free_port)" \
        RIVETR_ACME_ENABLED=false \
        RIVETR_RUNTIME_ENGINE=podman \
        RIVETR_RUNTIME_SOCKET="$RIVETR_TEST_PODMAN_SOCKET" \
        RIVETR_ENGINE_DRAIN_SECONDS=1 \
        RIVETR_ENGINE_STOP_TIMEOUT_SECONDS=2 \
        "$BIN" serve
) >"$WORK/rivetr.log" 2>&1 &
RIVETR_PID=$!

for _ in $(seq 300); do
    curl -sf "http://$API/api/health" >/dev/null 2>&1 && break
    kill -0 "$RIVETR_PID" 2>/dev/null || { log "rivetr exited:"; cat "$WORK/rivetr.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://$API/api/health" >/dev/null || { log "rivetr did not get healthy:"; cat "$WORK/rivetr.log" >&2; exit 1; }
log "rivetr healthy, $(since_start)"
TOKEN=$(cat "$WORK/data/initial-admin-token")
# The hooks (scripts/schemathesis_hooks.py) keep the run from revoking its own token.
TOKEN_ID=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://$API/api/tokens" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')

# Things for the operations on one resource to find: scripts/schemathesis.toml binds these
# names into most generated paths (without them nearly every such request is a 404) and the
# hooks keep the run from deleting them. Deployment 1 fails at once (its repository's host
# does not resolve), which is a deployment to read all the same.
setup() {
    curl -sf -o /dev/null -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data "$3" "http://$API$2" || { log "setting up: $1 $2 failed"; exit 1; }
}
setup POST /api/apps '{"name":"st-app","git_url":"https://st.invalid/app.git"}'
setup PUT /api/apps/st-app/env/ST_KEY '{"value":"v"}'
setup POST /api/apps/st-app/deployments '{}'
setup POST /api/notifications '{"name":"st-hook","kind":"webhook","url":"http://127.0.0.1:9/"}'
setup POST /api/backup-destinations '{"name":"st-backups","kind":"s3","endpoint":"http://127.0.0.1:9","region":"us-east-1","bucket":"b","access_key_id":"k","secret_access_key":"s"}'

mkdir -p "$OUT"
rm -rf "${OUT:?}"/*
started=$(date +%s)
status=0
RIVETR_SCHEMATHESIS_TOKEN_ID=$TOKEN_ID \
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/scripts" \
    "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" \
    run "http://$API/api/openapi.json" \
    --url "http://$API" \
    -H "Authorization: Bearer $TOKEN" \
    --phases examples,coverage,fuzzing,stateful \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed 17 \
    --workers 2 \
    --request-timeout 20 \
    --no-color \
    --report junit,vcr --report-dir "$OUT" \
    "$@" || status=$?
log "schemathesis took $(($(date +%s) - started)) s and exited with $status; reports in $OUT; $(since_start)"
if grep -Eq ' ERROR | panicked' "$WORK/rivetr.log"; then
    log "Rivetr logged errors during the run:"
    grep -E ' ERROR | panicked' "$WORK/rivetr.log" | head -20 >&2
fi
cp "$WORK/rivetr.log" "$OUT/rivetr.log"
exit "$status"

#!/usr/bin/env bash
# Installs moto's S3 server (from PyPI, in a virtual environment cached under /var/cache) for
# the backup tests, and prints the path of its `moto_server` program. Each test starts its own
# server on a free port of 127.0.0.1 (tests/api_backups.rs). Idempotent: a second run only
# prints the path.
set -euo pipefail
MOTO_VERSION=5.2.5
venv=/var/cache/rivetr-moto-$MOTO_VERSION
# The marker is written last: an install cut short is redone, never used half-made.
if [ ! -e "$venv/.complete" ]; then
    echo "moto: installing moto[server]==$MOTO_VERSION from PyPI into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/moto_server"

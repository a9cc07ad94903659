#!/bin/sh
# rpm %post. $1 is the number of rivetr packages installed after this transaction:
# 1 on first install, 2 on upgrade (the old package's %postun restarts the service then).
set -e

units="rivetr-api.socket rivetr-http.socket rivetr-https.socket rivetr.service"

/usr/lib/rivetr/rivetr-setup install
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
if [ "$1" -eq 1 ]; then
    # Works without systemd running too (image builds, installs into another root).
    systemctl --no-reload enable $units
    if [ -d /run/systemd/system ]; then
        # A socket that cannot bind (port 80 or 443 taken by another server) must not fail
        # the transaction; say so and carry on.
        systemctl start $units ||
            echo "rivetr: some units did not start; see: systemctl status $units" >&2
    fi
fi

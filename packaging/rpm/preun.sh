#!/bin/sh
# rpm %preun (of the package being removed or replaced). $1 is the number of rivetr packages
# left after this transaction: 0 on erase, 1 on upgrade (nothing to do then).
set -e

units="rivetr-api.socket rivetr-http.socket rivetr-https.socket rivetr.service"

if [ "$1" -eq 0 ]; then
    # Disable (works without systemd running too) and stop the sockets and the service, and
    # the rivetr user's systemd manager (its rootless Podman). /var/lib/rivetr and /etc/rivetr
    # are kept: rpm has no purge.
    systemctl --no-reload disable $units
    if [ -d /run/systemd/system ]; then
        systemctl stop $units
    fi
    /usr/lib/rivetr/rivetr-setup remove
fi

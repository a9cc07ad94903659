#!/bin/sh
# rpm %postun (of the package being removed or replaced). $1 is the number of rivetr packages
# left after this transaction: 0 on erase, 1 on upgrade.
set -e

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$1" -ge 1 ]; then
        # Upgrade: run the new binary. Only the service restarts; the sockets keep listening,
        # so connections queue instead of being refused. State and config are kept.
        systemctl try-restart rivetr.service
    fi
fi

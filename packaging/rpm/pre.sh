#!/bin/sh
# rpm %pre. $1 is the number of rivetr packages installed after this transaction:
# 1 on first install, 2 on upgrade.
#
# Creates the rivetr user and group before the package's files are laid down, so that
# /etc/rivetr/rivetr.toml (0640 root:rivetr) gets its group. The lines below are exactly
# /usr/lib/sysusers.d/rivetr.conf (packaging/build.sh refuses to build if they differ).
set -e
systemd-sysusers --replace=/usr/lib/sysusers.d/rivetr.conf - <<'EOF'
u rivetr - "Rivetr PaaS" /var/lib/rivetr /usr/sbin/nologin
EOF

#!/bin/sh
# Starts Chromium in a network namespace of its own (see netns.mjs for why): the namespace's
# loopback is brought up, netns.mjs relays the ports that have a socket in
# $RIVETR_E2E_RELAY_DIR, and Chromium (from $CHROMIUM, or /usr/bin/chromium) runs with the
# arguments and the pipes playwright-core gave this script.
set -eu
if [ "${RIVETR_E2E_IN_NETNS:-}" != 1 ]; then
    export RIVETR_E2E_IN_NETNS=1
    # As root a network namespace needs nothing more; otherwise a user namespace comes with it.
    if [ "$(id -u)" = 0 ]; then
        exec unshare --net -- "$0" "$@"
    fi
    exec unshare --net --map-root-user -- "$0" "$@"
fi
ip link set lo up
# The relay must not hold playwright's pipes (fds 3 and 4) open after Chromium exits.
node "$(dirname "$0")/netns.mjs" "$RIVETR_E2E_RELAY_DIR" 3>&- 4>&- &
relay=$!
tries=0
until [ -e "$RIVETR_E2E_RELAY_DIR/ready" ]; do
    if ! kill -0 "$relay" 2>/dev/null || [ "$tries" -ge 200 ]; then
        echo "netns-chromium.sh: the relay in the network namespace did not start" >&2
        exit 1
    fi
    tries=$((tries + 1))
    sleep 0.05
done
status=0
"${CHROMIUM:-/usr/bin/chromium}" "$@" || status=$?
kill "$relay" 2>/dev/null || true
exit "$status"

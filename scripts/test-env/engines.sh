#!/usr/bin/env bash
# Starts the three container engines the runtime tests talk to, runs a command with their
# sockets exported, then stops what it started.
#
#   scripts/test-env/engines.sh cargo test --test integration runtime::
#   scripts/test-env/engines.sh --keep      # start (or reuse), print the exports, leave running
#   scripts/test-env/engines.sh --image unix:///path/podman.sock
#                                           # only import the image into that engine (one
#                                           # another script started, e.g. package-e2e.sh)
#
# Engines (each reused when its socket already answers, and then left running at the end):
#   rootful Podman   RIVETR_TEST_PODMAN_SOCKET           unix:///run/rivetr-test/podman.sock
#   rootless Podman  RIVETR_TEST_PODMAN_ROOTLESS_SOCKET  unix:///run/user/<uid>/podman/podman.sock
#                    (user rivetr-test, created when missing)
#   Docker           RIVETR_TEST_DOCKER_SOCKET           unix:///run/rivetr-test/docker.sock
# Each gets the image localhost/busybox:test, made from busybox-static (no registry here).
#
# Private socket paths keep these engines apart from any other Podman or Docker on the
# machine. The VM quirks (runc, cgroupfs, ulimits) live in test-env/containers.conf and in
# dockerd's flags below, never in Rivetr. An engine that cannot start is reported and left
# out; the tests then fail under CI=true and skip loudly otherwise.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/packages.sh"

RUN_DIR=/run/rivetr-test
TEST_USER=rivetr-test
IMAGE_REPO=localhost/busybox
IMAGE_TAG="test"
export CONTAINERS_CONF="$HERE/containers.conf"
STARTED_PIDS=()

log() { printf 'engines: %s\n' "$*" >&2; }

# True when the engine behind unix socket $1 answers its ping.
answers() {
    curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1
}

# Waits up to $2 seconds for socket $1; pid $3 must stay alive meanwhile.
wait_socket() {
    local sock=$1 secs=$2 pid=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        answers "$sock" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Stops the processes this script started, newest first. Each runs as the leader of its
# own process group (setsid), so helpers it forked (rootless Podman re-executes itself
# inside its user namespace; dockerd runs containerd) are waited for and, if need be,
# killed with it.
stop_started() {
    local i pid
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${STARTED_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    # Rootless Podman leaves a pause process holding its user namespace.
    if [ -n "${ROOTLESS_STARTED:-}" ] && [ -f "$ROOTLESS_PAUSE_PID" ]; then
        kill -TERM "$(cat "$ROOTLESS_PAUSE_PID")" 2>/dev/null || true
    fi
    [ ${#STARTED_PIDS[@]} -eq 0 ] || log "stopped the engines started here"
}

start_podman_rootful() {
    local sock=$RUN_DIR/podman.sock pid
    if answers "$sock"; then
        log "rootful Podman already answers on $sock; reusing it"
    else
        rm -f "$sock"
        # conmon (2.1.6) drops an `oom` file into its working directory, inherited from
        # the service: keep that out of the repository.
        (cd "$RUN_DIR/cwd" && exec setsid podman system service --time=0 "unix://$sock") >"$RUN_DIR/podman.log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        if ! wait_socket "$sock" 30 "$pid"; then
            log "rootful Podman did not start; see $RUN_DIR/podman.log:"
            tail -n 20 "$RUN_DIR/podman.log" >&2 || true
            return 1
        fi
        log "rootful Podman started on $sock (pid $pid)"
    fi
    export RIVETR_TEST_PODMAN_SOCKET="unix://$sock"
}

# The rootless user: created when missing, with subordinate ids and a runtime dir.
prepare_rootless_user() {
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash "$TEST_USER"
    fi
    if ! grep -q "^$TEST_USER:" /etc/subuid || ! grep -q "^$TEST_USER:" /etc/subgid; then
        usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$TEST_USER"
    fi
    local uid home
    uid=$(id -u "$TEST_USER")
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    ROOTLESS_XDG=/run/user/$uid
    ROOTLESS_HOME=$home
    ROOTLESS_PAUSE_PID=$ROOTLESS_XDG/libpod/tmp/pause.pid
    install -d -m 0700 -o "$TEST_USER" -g "$TEST_USER" "$ROOTLESS_XDG" "$ROOTLESS_XDG/podman"
    install -d -m 0755 -o "$TEST_USER" -g "$TEST_USER" "$home/.config" "$home/.config/containers"
    install -m 0644 -o "$TEST_USER" -g "$TEST_USER" "$CONTAINERS_CONF" "$home/.config/containers/containers.conf"
    # slirp4netns needs the tun device; 0666 is its normal mode on desktop and server distros.
    chmod 666 /dev/net/tun
}

start_podman_rootless() {
    prepare_rootless_user
    local sock=$ROOTLESS_XDG/podman/podman.sock pid
    if answers "$sock"; then
        log "rootless Podman already answers on $sock; reusing it"
    else
        rm -f "$sock"
        # setsid and setpriv exec, so the pid recorded is podman's; the working directory
        # is the user's home, where conmon may drop `oom` files.
        (cd "$ROOTLESS_HOME" && exec setsid setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups \
            env -i HOME="$ROOTLESS_HOME" USER="$TEST_USER" LOGNAME="$TEST_USER" \
            PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="$ROOTLESS_XDG" \
            podman system service --time=0 "unix://$sock") >"$RUN_DIR/podman-rootless.log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        ROOTLESS_STARTED=1
        if ! wait_socket "$sock" 60 "$pid"; then
            log "rootless Podman did not start; see $RUN_DIR/podman-rootless.log:"
            tail -n 20 "$RUN_DIR/podman-rootless.log" >&2 || true
            return 1
        fi
        log "rootless Podman started on $sock for $TEST_USER (pid $pid)"
    fi
    export RIVETR_TEST_PODMAN_ROOTLESS_SOCKET="unix://$sock"
}

start_docker() {
    local sock=$RUN_DIR/docker.sock pid
    if answers "$sock"; then
        log "Docker already answers on $sock; reusing it"
    else
        rm -f "$sock"
        (cd "$RUN_DIR/cwd" && exec setsid dockerd --host "unix://$sock" \
            --exec-opt native.cgroupdriver=cgroupfs \
            --data-root /var/lib/rivetr-test-docker --exec-root "$RUN_DIR/docker" \
            --pidfile "$RUN_DIR/docker.pid" \
            --default-ulimit nofile=1024:1024 --default-ulimit nproc=4096:4096) \
            >"$RUN_DIR/docker.log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        if ! wait_socket "$sock" 60 "$pid"; then
            log "dockerd did not start; see $RUN_DIR/docker.log:"
            tail -n 20 "$RUN_DIR/docker.log" >&2 || true
            return 1
        fi
        log "Docker started on $sock (pid $pid)"
    fi
    export RIVETR_TEST_DOCKER_SOCKET="unix://$sock"
}

# A root filesystem with busybox and its applets, as a tar in $RUN_DIR/busybox.tar.
make_busybox_tar() {
    local root=$RUN_DIR/busybox-root applet
    [ -s "$RUN_DIR/busybox.tar" ] && return 0
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    tar -C "$root" -cf "$RUN_DIR/busybox.tar.tmp" .
    mv "$RUN_DIR/busybox.tar.tmp" "$RUN_DIR/busybox.tar"
}

# Imports the busybox image into the engine behind unix:// socket $1 unless it is there.
# Through the Docker-compatible API, which Podman serves too, so one recipe fits all three
# ("repo" carries the tag: Podman ignores a separate "tag" parameter on import).
ensure_image() {
    local sock=${1#unix://}
    if curl -sf --unix-socket "$sock" "http://d/v1.41/images/$IMAGE_REPO:$IMAGE_TAG/json" >/dev/null; then
        return 0
    fi
    make_busybox_tar
    curl -sf --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' \
        --data-binary "@$RUN_DIR/busybox.tar" \
        "http://d/v1.41/images/create?fromSrc=-&repo=$IMAGE_REPO:$IMAGE_TAG" >/dev/null
    curl -sf --unix-socket "$sock" "http://d/v1.41/images/$IMAGE_REPO:$IMAGE_TAG/json" >/dev/null
    log "imported $IMAGE_REPO:$IMAGE_TAG into $1"
}

main() {
    local keep=
    if [ "${1:-}" = --image ]; then
        [ $# -eq 2 ] || { log "usage: $0 --image unix:///path"; return 2; }
        ensure_packages busybox-static curl
        mkdir -p "$RUN_DIR"
        ensure_image "$2"
        return
    fi
    if [ "${1:-}" = --keep ]; then
        keep=1
        shift
    fi
    # dbus: the detection test runs a real D-Bus daemon without systemd on it.
    ensure_packages podman runc uidmap slirp4netns docker.io busybox-static curl iptables dbus
    mkdir -p "$RUN_DIR/cwd"
    [ -n "$keep" ] || trap stop_started EXIT

    start_podman_rootful || true
    start_podman_rootless || true
    start_docker || true
    local var
    for var in RIVETR_TEST_PODMAN_SOCKET RIVETR_TEST_PODMAN_ROOTLESS_SOCKET RIVETR_TEST_DOCKER_SOCKET; do
        if [ -n "${!var:-}" ]; then
            if ! ensure_image "${!var}"; then
                log "cannot import the busybox image into ${!var}; leaving $var unset"
                unset "$var"
            fi
        else
            log "WARNING: $var is not set: that engine's tests will fail under CI=true, skip otherwise"
        fi
    done

    if [ -n "$keep" ]; then
        for var in RIVETR_TEST_PODMAN_SOCKET RIVETR_TEST_PODMAN_ROOTLESS_SOCKET RIVETR_TEST_DOCKER_SOCKET; do
            [ -z "${!var:-}" ] || echo "export $var=${!var}"
        done
        return 0
    fi
    [ $# -gt 0 ] || { log "usage: $0 [--keep] [command...]"; return 2; }
    "$@"
}

main "$@"

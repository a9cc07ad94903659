#!/usr/bin/env bash
# Starts a real three-node Docker Swarm on this one machine, plus a registry, for the Swarm
# runtime tests; runs a command with their addresses exported, then stops what it started.
#
#   scripts/test-env/swarm.sh cargo test --test integration swarm::   # start (or reuse), run, stop what it started
#   scripts/test-env/swarm.sh --keep                    # start (or reuse), print the exports, leave running
#   scripts/test-env/swarm.sh --stop                    # tear down everything this script creates
#   scripts/test-env/swarm.sh --restart-node worker1    # start that node's dockerd again (same flags)
#                                                       # and wait for its socket, e.g. after a test
#                                                       # killed it with kill -9 $(cat $..._PIDFILE)
#
# Exports (printed by --keep, set for the command):
#   RIVETR_TEST_SWARM_SOCKET            unix:///run/rivetr-test/swarm/manager.sock (the manager)
#   RIVETR_TEST_SWARM_REGISTRY          10.77.0.1:5000 (plain HTTP, no auth)
#   RIVETR_TEST_SWARM_WORKER1_SOCKET    unix:///run/rivetr-test/swarm/worker1.sock
#   RIVETR_TEST_SWARM_WORKER2_SOCKET    unix:///run/rivetr-test/swarm/worker2.sock
#   RIVETR_TEST_SWARM_WORKER1_PIDFILE   /run/rivetr-test/swarm/worker1.pid (dockerd's pid)
#   RIVETR_TEST_SWARM_WORKER2_PIDFILE   /run/rivetr-test/swarm/worker2.pid
#   RIVETR_TEST_SWARM_AUTH_REGISTRY     10.77.0.1:5001 (plain HTTP, htpasswd: pushes and pulls need
#   RIVETR_TEST_SWARM_AUTH_USER         this user and password; the password is made at random
#   RIVETR_TEST_SWARM_AUTH_PASSWORD     once and kept in /var/lib/rivetr-test-swarm)
#
# The cluster:
#   - Three dockerd from Debian's docker.io (20.10), nodes manager, worker1, worker2, each in a
#     network namespace of its own, rvsw-NODE, with its own --data-root
#     (/var/lib/rivetr-test-swarm/NODE), --exec-root (/run/rivetr-test/swarm/NODE), --pidfile
#     (/run/rivetr-test/swarm/NODE.pid), socket (/run/rivetr-test/swarm/NODE.sock), log
#     (/run/rivetr-test/swarm/NODE.log), --cgroup-parent (/rivetr-test-swarm-NODE), containerd
#     namespace, and an empty --config-file (so /etc/docker/daemon.json stays out of it).
#     The VM quirks are in the flags: cgroupfs, explicit ulimits (as in engines.sh).
#     Each dockerd is started with `nsenter --net=/run/netns/rvsw-NODE setsid dockerd ...`,
#     not `ip netns exec`, which remounts /sys and hides the cgroups.
#   - Network: each namespace has lo up and a veth (eth0 inside, rvsw-NODE outside) on the
#     bridge rvsw0 in the host namespace. The host side has 10.77.0.1/24; the nodes are
#     manager 10.77.0.11, worker1 10.77.0.12, worker2 10.77.0.13, default route via 10.77.0.1
#     (no forwarding or NAT beyond the /24: the nodes reach nothing but each other and the
#     host). Processes in the host namespace (the Rivetr daemon under test) reach every node's
#     IP directly. Bridged frames pass the host's iptables FORWARD chain here
#     (bridge-nf-call-iptables), whose policy a host Docker sets to DROP, so one rule is
#     inserted, `FORWARD -i rvsw0 -o rvsw0 -j ACCEPT` (comment rivetr-test-swarm), and deleted
#     by --stop. Each node's docker0 (172.17/16) and docker_gwbridge (172.18/16) live in that
#     node's own namespace, so they overlap nothing, not even a Docker in the host namespace.
#   - Swarm: `docker swarm init --advertise-addr 10.77.0.11` on the manager; the workers join
#     with the worker token. Nodes carry the label rivetr.test.name=manager|worker1|worker2 and
#     are set to availability active. All nodes report this machine's hostname: address them
#     by node id or by that label. The manager also runs tasks (it is a candidate).
#   - Registry: Debian's docker-registry (/usr/bin/docker-registry serve CONFIG, not its
#     systemd service), plain HTTP on 10.77.0.1:5000, storage /var/lib/rivetr-test-swarm/registry,
#     log and pid file in /run/rivetr-test/swarm/. Every node has --insecure-registry for it.
#   - Image: localhost/busybox:test is imported into every node (engines.sh --image); to run it
#     as a service, push it to the registry, or create the service with --no-resolve-image.
#
# What does not work here: the default VIP endpoint mode and the ingress routing mesh need
# IPVS, which this kernel lacks. Services must use `--endpoint-mode dnsrr` and host-mode
# published ports (`--publish mode=host,target=PORT[,published=PORT]`); reach a task at its
# node's address (node Status.Addr) and the task's Status.PortStatus.Ports[].PublishedPort
# (listed twice, for IPv4 and IPv6; without published= each task gets a port of its node's
# from 32768 up, often another one when the task is replaced). Seen here (docker.io 20.10.24): a worker's dockerd killed with
# kill -9 is marked Down after ~11 s and its tasks run elsewhere after ~16 s, but its
# containers go on serving on the old ports until --restart-node, whose dockerd first stops
# them (10 s for a busybox httpd, which ignores SIGTERM as PID 1) and is Ready ~12 s after
# the restart began. Restarting the same node more than ~3 times within ~10 s hits the
# manager's registration rate limit and delays the socket by seconds. Services survive
# --stop (the swarm's data stays): tests remove their own.
#
# Reuse: every piece that already answers (socket, registry, bridge, namespace, swarm
# membership) is reused, so a second --keep prints the same exports; with a command, only what
# this run started is stopped at the end (a node restarted with --restart-node meanwhile is
# found through its pid file). --stop stops all three dockerds and their containerd and
# shims, the registry, and removes the namespaces, veths, bridge and the iptables rule; the
# data directories stay, and a later start comes back with the same swarm (stale members are
# removed, broken memberships re-joined).
#
# Logs: /run/rivetr-test/swarm/{manager,worker1,worker2,registry}.log (the previous run's as .prev).
#
# A swarm that cannot be started makes the script exit non-zero with the reason under
# CI=true; otherwise it prints a WARNING and goes on without the exports (--keep exits 0),
# and the swarm tests skip loudly.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/packages.sh"

RUN_DIR=/run/rivetr-test
SW_DIR=$RUN_DIR/swarm
DATA_DIR=/var/lib/rivetr-test-swarm
NODES=(manager worker1 worker2)
declare -A NODE_IP=([manager]=10.77.0.11 [worker1]=10.77.0.12 [worker2]=10.77.0.13)
BRIDGE=rvsw0
HOST_IP=10.77.0.1
REGISTRY=$HOST_IP:5000
# A second registry that takes pushes and pulls only with a user and password (htpasswd), for
# the registry credentials' tests.
AUTH_REGISTRY=$HOST_IP:5001
AUTH_USER=rivetr-test
FW_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment rivetr-test-swarm -j ACCEPT)
# docker.io's own CLI: another docker on PATH (e.g. /usr/local/bin) may be of another version.
DOCKER=/usr/bin/docker
STARTED_NODES=()
REGISTRY_STARTED=()
NET_CREATED=
REUSED=

log() { printf 'swarm: %s\n' "$*" >&2; }

# True when the dockerd behind unix socket path $1 answers its ping.
answers() {
    curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1
}

# True when the registry at $1 answers (401 is an answer: the one with a password).
registry_answers() {
    local code
    code=$(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' "http://$1/v2/" 2>/dev/null) || true
    [ "$code" = 200 ] || [ "$code" = 401 ]
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

# The docker CLI against node $1.
dk() {
    local node=$1
    shift
    "$DOCKER" -H "unix://$SW_DIR/$node.sock" "$@"
}

# True when pid $1 runs a command line containing $2 (so a stale pid file cannot make us
# signal some other process that got the pid since).
pid_runs() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Keeps the previous log $1 (e.g. of a dockerd a test killed) as $1.prev.
keep_old_log() {
    [ ! -s "$1" ] || mv -f "$1" "$1.prev"
}

# The pid in node $1's pid file, when that pid is still that node's dockerd.
node_pid() {
    local pid
    pid=$(cat "$SW_DIR/$1.pid" 2>/dev/null) || return 1
    pid_runs "$pid" "$SW_DIR/$1.sock" && echo "$pid"
}

# True when pid $1 exists and is not a zombie.
alive_not_zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# The pids of the processes whose command line contains $1.
pids_running() {
    local f p
    for f in /proc/[0-9]*/cmdline; do
        p=${f#/proc/}
        p=${p%/cmdline}
        [ "$p" != $$ ] || continue
        if pid_runs "$p" "$1"; then echo "$p"; fi
    done
}

# ---------------------------------------------------------------------------------------------
# Network: bridge, namespaces, veths, the FORWARD rule. Each step is skipped when already done.

setup_network() {
    local node ns
    if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge || return 1
        NET_CREATED=1
    fi
    ip addr replace "$HOST_IP/24" dev "$BRIDGE" || return 1
    ip link set "$BRIDGE" up || return 1
    for node in "${NODES[@]}"; do
        ns=rvsw-$node
        [ -e "/run/netns/$ns" ] || ip netns add "$ns" || return 1
        if ! ip link show dev "rvsw-$node" >/dev/null 2>&1; then
            ip -n "$ns" link del eth0 2>/dev/null || true
            ip link add "rvsw-$node" type veth peer name "rvsp-$node" netns "$ns" || return 1
            ip -n "$ns" link set "rvsp-$node" name eth0 || return 1
        fi
        ip link set "rvsw-$node" master "$BRIDGE" up &&
            ip -n "$ns" link set lo up &&
            ip -n "$ns" addr replace "${NODE_IP[$node]}/24" dev eth0 &&
            ip -n "$ns" link set eth0 up &&
            ip -n "$ns" route replace default via "$HOST_IP" || return 1
    done
    iptables -C "${FW_RULE[@]}" 2>/dev/null || iptables -I "${FW_RULE[@]}" || return 1
}

teardown_network() {
    local node
    while iptables -C "${FW_RULE[@]}" 2>/dev/null; do iptables -D "${FW_RULE[@]}"; done
    for node in "${NODES[@]}"; do
        ip link del "rvsw-$node" 2>/dev/null || true
        [ ! -e "/run/netns/rvsw-$node" ] || ip netns del "rvsw-$node"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Registry.

# Starts the registry NAME on ADDR; with a third argument, only for that user (htpasswd), whose
# password is kept in $DATA_DIR/NAME.password (made once, at random).
start_registry() {
    local name=$1 addr=$2 user=${3:-} pid auth=''
    if registry_answers "$addr"; then
        log "registry $name already answers on $addr; reusing it"
        REUSED=1
        return 0
    fi
    mkdir -p "$DATA_DIR/$name"
    if [ -n "$user" ]; then
        ensure_packages apache2-utils
        [ -s "$DATA_DIR/$name.password" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DATA_DIR/$name.password"
        htpasswd -Bbn "$user" "$(cat "$DATA_DIR/$name.password")" >"$SW_DIR/$name.htpasswd"
        auth="auth:
  htpasswd:
    realm: rivetr-test
    path: $SW_DIR/$name.htpasswd"
    fi
    cat >"$SW_DIR/$name.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $DATA_DIR/$name
  delete:
    enabled: true
http:
  addr: $addr
$auth
EOF
    keep_old_log "$SW_DIR/$name.log"
    (cd "$SW_DIR/cwd" && exec setsid docker-registry serve "$SW_DIR/$name.yml") >"$SW_DIR/$name.log" 2>&1 &
    pid=$!
    echo "$pid" >"$SW_DIR/$name.pid"
    REGISTRY_STARTED+=("$name")
    for _ in $(seq 200); do
        registry_answers "$addr" && { log "registry $name started on $addr (pid $pid)"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "the registry $name did not start; see $SW_DIR/$name.log:"
    tail -n 20 "$SW_DIR/$name.log" >&2 || true
    return 1
}

stop_registry() {
    local name=$1 pid
    pid=$(cat "$SW_DIR/$name.pid" 2>/dev/null) || return 0
    if pid_runs "$pid" "$SW_DIR/$name.yml"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        log "stopped the registry $name (pid $pid)"
    fi
    rm -f "$SW_DIR/$name.pid"
}

# ---------------------------------------------------------------------------------------------
# Nodes.

# Starts node $1's dockerd unless its socket answers. Sets STARTED_NODES / REUSED.
start_node() {
    local node=$1 sock=$SW_DIR/$1.sock pid
    if answers "$sock"; then
        log "$node already answers on $sock; reusing it"
        REUSED=1
        return 0
    fi
    if pid=$(node_pid "$node"); then
        # Still starting (or hung): wait for it rather than start a second one.
        log "$node's dockerd (pid $pid) runs but does not answer yet; waiting for it"
        if wait_socket "$sock" 60 "$pid"; then
            REUSED=1
            return 0
        fi
        log "$node's dockerd (pid $pid) does not answer; see $SW_DIR/$node.log"
        return 1
    fi
    # A stale pid file (its dockerd killed, maybe still a zombie until PID 1 reaps it, which
    # takes a second here) makes dockerd refuse to start.
    rm -f "$SW_DIR/$node.pid"
    # The containerd of a dockerd that was just killed takes 2 to 8 s to exit (and removes
    # its socket as it does, which would be the new containerd's); a new dockerd that finds
    # its pid alive (or a zombie) waits for that socket and gives up. So give it 2 s, then
    # kill it (the containers' shims live on and the new containerd takes them over), and
    # drop its pid file.
    local cpidf=$SW_DIR/$node/containerd/containerd.pid cpid
    cpid=$(cat "$cpidf" 2>/dev/null) || cpid=
    if [ -n "$cpid" ]; then
        for _ in $(seq 20); do
            alive_not_zombie "$cpid" || break
            sleep 0.1
        done
        if alive_not_zombie "$cpid" && pid_runs "$cpid" "$SW_DIR/$node/containerd/"; then
            log "killing $node's containerd left over from an earlier dockerd (pid $cpid)"
            kill -KILL "$cpid" 2>/dev/null || true
            for _ in $(seq 50); do
                alive_not_zombie "$cpid" || break
                sleep 0.1
            done
        fi
        rm -f "$cpidf"
    fi
    rm -f "$sock"
    mkdir -p "$DATA_DIR/$node" "$SW_DIR/$node" "$SW_DIR/cwd"
    [ -s "$SW_DIR/daemon.json" ] || echo '{}' >"$SW_DIR/daemon.json"
    keep_old_log "$SW_DIR/$node.log"
    (cd "$SW_DIR/cwd" && exec nsenter --net="/run/netns/rvsw-$node" setsid dockerd \
        --host "unix://$sock" \
        --config-file "$SW_DIR/daemon.json" \
        --data-root "$DATA_DIR/$node" --exec-root "$SW_DIR/$node" \
        --pidfile "$SW_DIR/$node.pid" \
        --cgroup-parent "/rivetr-test-swarm-$node" \
        --containerd-namespace "rvsw-$node" --containerd-plugins-namespace "rvsw-$node-plugins" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --default-ulimit nofile=1024:1024 --default-ulimit nproc=4096:4096 \
        --insecure-registry "$REGISTRY" --insecure-registry "$AUTH_REGISTRY") \
        >"$SW_DIR/$node.log" 2>&1 &
    pid=$!
    STARTED_NODES+=("$node")
    if ! wait_socket "$sock" 60 "$pid"; then
        log "$node's dockerd did not start; see $SW_DIR/$node.log:"
        tail -n 20 "$SW_DIR/$node.log" >&2 || true
        return 1
    fi
    log "$node started on $sock (pid $pid)"
}

# Stops the dockerds of nodes $@ (TERM to all, newest first, then waits; KILL after 40 s),
# then whatever of theirs is left: containerd and shims (found by their exec-root in their
# command line), container processes (in the node's cgroup parent), and mounts.
stop_nodes() {
    local node pid pids=() names=() p mnt f
    for node in "$@"; do
        pid=$(node_pid "$node") || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
        names+=("$node")
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 400); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    for node in "$@"; do
        for p in $(pids_running "$SW_DIR/$node/"); do kill -KILL "$p" 2>/dev/null || true; done
        for f in /sys/fs/cgroup/*/rivetr-test-swarm-"$node"; do
            [ -d "$f" ] || continue
            find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do
                kill -KILL "$p" 2>/dev/null || true
            done
        done
        sleep 0.2
        for f in /sys/fs/cgroup/*/rivetr-test-swarm-"$node"; do
            [ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
        # (dockerd bind-mounts its data root onto itself; after a kill -9 that stays.)
        awk -v a="$SW_DIR/$node" -v b="$DATA_DIR/$node" \
            '$5 == a || $5 == b || index($5, a "/") == 1 || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo |
            sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
        rm -f "$SW_DIR/$node.sock" "$SW_DIR/$node.pid"
    done
    [ ${#pids[@]} -eq 0 ] || log "stopped ${names[*]} (dockerd pids ${pids[*]})"
}

# ---------------------------------------------------------------------------------------------
# Swarm membership and labels.

# Waits up to $2 seconds while node $1's swarm state is "pending"; prints the final state.
settled_state() {
    local node=$1 secs=$2 state i
    for ((i = 0; i < secs * 2; i++)); do
        state=$(dk "$node" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || state=unknown
        [ "$state" = pending ] || break
        sleep 0.5
    done
    echo "$state"
}

ensure_swarm() {
    # Called in a condition (no errexit here): every step that matters is checked.
    local state control token node id ids=() want i
    state=$(settled_state manager 30)
    control=$(dk manager info --format '{{.Swarm.ControlAvailable}}')
    if [ "$state" != active ] || [ "$control" != true ]; then
        [ "$state" = inactive ] || dk manager swarm leave --force >/dev/null 2>&1 || true
        dk manager swarm init --advertise-addr "${NODE_IP[manager]}" \
            --listen-addr "${NODE_IP[manager]}:2377" >/dev/null || return 1
        log "swarm initialised on manager (${NODE_IP[manager]})"
    fi
    token=$(dk manager swarm join-token -q worker) || return 1
    id=$(dk manager info --format '{{.Swarm.NodeID}}') || return 1
    ids+=("$id")
    for node in worker1 worker2; do
        state=$(settled_state "$node" 20)
        id=$(dk "$node" info --format '{{.Swarm.NodeID}}')
        if [ "$state" != active ] || [ -z "$id" ] || ! dk manager node inspect "$id" >/dev/null 2>&1; then
            [ "$state" = inactive ] || dk "$node" swarm leave --force >/dev/null 2>&1 || true
            dk "$node" swarm join --token "$token" --advertise-addr "${NODE_IP[$node]}" \
                --listen-addr "${NODE_IP[$node]}:2377" "${NODE_IP[manager]}:2377" >/dev/null || return 1
            id=$(dk "$node" info --format '{{.Swarm.NodeID}}') || return 1
            log "$node joined the swarm (node $id)"
        fi
        ids+=("$id")
    done
    # Members left over from an earlier swarm whose node has since re-joined under a new id.
    for id in $(dk manager node ls -q); do
        case " ${ids[*]} " in *" $id "*) ;; *)
            dk manager node rm --force "$id" >/dev/null && log "removed stale node $id" ;;
        esac
    done
    for i in 0 1 2; do
        node=${NODES[i]}
        id=${ids[i]}
        want="$node active"
        if [ "$(dk manager node inspect -f '{{index .Spec.Labels "rivetr.test.name"}} {{.Spec.Availability}}' "$id")" != "$want" ]; then
            dk manager node update --label-add "rivetr.test.name=$node" --availability active "$id" >/dev/null ||
                return 1
        fi
    done
    for _ in $(seq 120); do
        if [ "$(dk manager node ls --format '{{.Status}}' | grep -c '^Ready$')" = 3 ]; then
            log "3 nodes Ready: manager ${ids[0]}, worker1 ${ids[1]}, worker2 ${ids[2]}"
            return 0
        fi
        sleep 0.5
    done
    log "the nodes are not all Ready after 60 s:"
    dk manager node ls >&2 || true
    return 1
}

# ---------------------------------------------------------------------------------------------

start_swarm() {
    local node
    if [ -e /run/containerd/containerd.sock ]; then
        log "note: /run/containerd/containerd.sock exists, so the nodes' dockerd use that containerd (each in its own namespace)"
    fi
    setup_network || { log "cannot set up the network (bridge $BRIDGE, namespaces rvsw-*)"; return 1; }
    start_registry registry "$REGISTRY" || return 1
    start_registry registry-auth "$AUTH_REGISTRY" "$AUTH_USER" || return 1
    for node in "${NODES[@]}"; do
        start_node "$node" || return 1
    done
    ensure_swarm || { log "cannot form the swarm"; return 1; }
    for node in "${NODES[@]}"; do
        "$HERE/engines.sh" --image "unix://$SW_DIR/$node.sock" ||
            { log "cannot import the busybox image into $node"; return 1; }
    done
}

# Stops what this run started (newest first), and the network when this run created it and
# reused nothing.
stop_started() {
    local i nodes=()
    for ((i = ${#STARTED_NODES[@]} - 1; i >= 0; i--)); do nodes+=("${STARTED_NODES[i]}"); done
    [ ${#nodes[@]} -eq 0 ] || stop_nodes "${nodes[@]}"
    for ((i = ${#REGISTRY_STARTED[@]} - 1; i >= 0; i--)); do stop_registry "${REGISTRY_STARTED[i]}"; done
    if [ -n "$NET_CREATED" ] && [ -z "$REUSED" ]; then
        teardown_network
        log "removed the network"
    fi
}

stop_everything() {
    stop_nodes worker2 worker1 manager
    stop_registry registry-auth
    stop_registry registry
    teardown_network
    log "stopped: no dockerd, registry, namespace, veth, bridge or FORWARD rule of this script is left"
}

EXPORTS=(RIVETR_TEST_SWARM_SOCKET RIVETR_TEST_SWARM_REGISTRY
    RIVETR_TEST_SWARM_WORKER1_SOCKET RIVETR_TEST_SWARM_WORKER2_SOCKET
    RIVETR_TEST_SWARM_WORKER1_PIDFILE RIVETR_TEST_SWARM_WORKER2_PIDFILE
    RIVETR_TEST_SWARM_AUTH_REGISTRY RIVETR_TEST_SWARM_AUTH_USER RIVETR_TEST_SWARM_AUTH_PASSWORD)

main() {
    local keep='' var
    case "${1:-}" in
    --stop)
        [ $# -eq 1 ] || { log "usage: $0 --stop"; return 2; }
        stop_everything
        return
        ;;
    --restart-node)
        case "${2:-}" in manager | worker1 | worker2) ;; *)
            log "usage: $0 --restart-node manager|worker1|worker2"; return 2 ;;
        esac
        mkdir -p "$SW_DIR/cwd"
        setup_network
        start_node "$2"
        return
        ;;
    --keep)
        keep=1
        shift
        ;;
    esac
    [ -n "$keep" ] || [ $# -gt 0 ] || { log "usage: $0 --keep | --stop | --restart-node NODE | command..."; return 2; }
    ensure_packages docker.io docker-registry busybox-static curl iptables iproute2 util-linux
    mkdir -p "$SW_DIR/cwd"
    [ -n "$keep" ] || trap stop_started EXIT

    if start_swarm; then
        export RIVETR_TEST_SWARM_SOCKET="unix://$SW_DIR/manager.sock"
        export RIVETR_TEST_SWARM_REGISTRY="$REGISTRY"
        export RIVETR_TEST_SWARM_WORKER1_SOCKET="unix://$SW_DIR/worker1.sock"
        export RIVETR_TEST_SWARM_WORKER2_SOCKET="unix://$SW_DIR/worker2.sock"
        export RIVETR_TEST_SWARM_WORKER1_PIDFILE="$SW_DIR/worker1.pid"
        export RIVETR_TEST_SWARM_WORKER2_PIDFILE="$SW_DIR/worker2.pid"
        export RIVETR_TEST_SWARM_AUTH_REGISTRY="$AUTH_REGISTRY"
        export RIVETR_TEST_SWARM_AUTH_USER="$AUTH_USER"
        RIVETR_TEST_SWARM_AUTH_PASSWORD=$(cat "$DATA_DIR/registry-auth.password")
        export RIVETR_TEST_SWARM_AUTH_PASSWORD
    else
        [ -z "$keep" ] || stop_started
        if [ "${CI:-}" = true ]; then
            log "ERROR: the swarm could not be started (see above); CI=true needs it"
            return 1
        fi
        log "WARNING: no swarm: RIVETR_TEST_SWARM_* are not set; the swarm tests will skip (they fail under CI=true)"
    fi

    if [ -n "$keep" ]; then
        for var in "${EXPORTS[@]}"; do
            [ -z "${!var:-}" ] || echo "export $var=${!var}"
        done
        return 0
    fi
    "$@"
}

main "$@"

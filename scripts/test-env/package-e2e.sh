#!/usr/bin/env bash
# End-to-end test of the Rivetr packages (issue 7), run by scripts/test-all.sh.
#
# Builds the .deb and .rpm with packaging/build.sh, lints them on this machine, then installs
# them in a Debian 12 container whose PID 1 is systemd (rootful Podman, --systemd=always) and
# checks, with real apt, dpkg, rpm, systemctl and journalctl: dependencies, sockets, socket
# activation, readiness and status, journald fields, reload, the watchdog, a restart under load,
# deploying an app through a signed GitHub push webhook and serving it on port 80, upgrade
# (the app still served), remove, purge, and the rpm's scriptlets.
#
# Deployed apps run on rootful Podman on this machine (nested Podman cannot run app containers
# in these VMs), started by this script as a private service: its own storage, its own socket,
# and its own network namespace, which the systemd container joins. The socket's directory is
# bind-mounted into the container, and /etc/rivetr/rivetr.toml points [runtime] at it. Rivetr
# publishes app ports on 127.0.0.1 and its proxy and health checks connect there, so Rivetr and
# the engine must share a network namespace, as they do on a real server; a namespace of their
# own (rather than this machine's, with --network=host) keeps ports 80, 443, 8080 and the apps'
# ports apart from anything else on this machine, including other engineers' tests, and the
# engine's own storage keeps Rivetr's start-up clean-up of labelled containers away from the
# containers of other Rivetr instances (cargo tests) on this machine's default rootful Podman.
# slirp4netns gives the namespace user-mode NAT to Debian's mirror without touching this
# machine's firewall; nothing is published.
#
# Before the container, the rpm is also installed and erased in a scratch root (an overlay of
# the container's root file system) where systemd does not run, for the scriptlets' offline
# paths.
#
# Every step fails the run on the first thing that is not as expected, and prints the
# container's view of rivetr.service before the container is removed. Set
# RIVETR_E2E_KEEP=1 to keep the container and the engine for inspection (the next run removes
# them first).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
. scripts/test-env/packages.sh
export CONTAINERS_CONF="$repo/scripts/test-env/containers.conf"

CACHE=/var/cache/rivetr-e2e
ensure_packages debootstrap podman runc uidmap slirp4netns lintian rpmlint rpm python3-venv binutils \
    iproute2 curl jq
CT=rivetr-pkg-e2e-$$
# What the base image holds besides debootstrap's minbase: systemd as init, and the tools the
# checks use inside (curl, ss, man, sqlite3, ps). Nothing Rivetr depends on, so that apt has to
# bring in git, podman, libpam-systemd... itself.
ROOTFS_INCLUDE=systemd,systemd-sysv,dbus,ca-certificates,curl,iproute2,man-db,sqlite3,procps
WATCHDOG_SEC=$(sed -n 's/^WatchdogSec=\([0-9]*\)s$/\1/p' systemd/rivetr.service)
[ -n "$WATCHDOG_SEC" ] || { echo "no WatchdogSec=<n>s in systemd/rivetr.service" >&2; exit 1; }

# The apps' engine (see above). One at a time on a machine (the lock below), so fixed names:
# a run removes what an interrupted or kept run left.
ENGINE_NETNS=rivetr-e2e
ENGINE_DIR=/run/rivetr-e2e-engine # pid files, logs, runroot; sock/ is bind-mounted
ENGINE_SOCK=$ENGINE_DIR/sock/podman.sock
ENGINE_STORAGE=$CACHE/engine-storage # its images (busybox) are kept between runs
CT_ENGINE_DIR=/run/host-podman       # where the container sees $ENGINE_DIR/sock
# The app the deploy steps create, and what its pushed commit serves.
APP=e2e-app
APP_HOST=e2e-app.test

work=$(mktemp -d /tmp/rivetr-pkg-e2e.XXXXXX)
declare -a summary=()
declare -a step_times=()
current_step=

log() { printf '%s\n' "$*"; }
note() { summary+=("$*"); log "    $*"; }
fail() {
    log "FAIL [$current_step]: $*" >&2
    exit 1
}
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

# Runs a bash command line inside the container.
ct() { podman exec "$CT" bash -c "$1"; }
# Writes stdin to a file inside the container.
ct_write() { podman exec -i "$CT" bash -c "cat >'$1'"; }
# The apps' engine, through its socket.
engine() { podman --remote --url "unix://$ENGINE_SOCK" "$@"; }
# systemctl show -p PROP --value UNIT, inside the container.
prop() { podman exec "$CT" systemctl show -p "$2" --value "$1"; }
expect_eq() { # what got want
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}
# Polls a command inside the container until it succeeds, for at most $2 seconds.
wait_for() { # what seconds command
    local deadline=$(($(date +%s) + $2))
    until ct "$3" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $2 s waiting for: $1"
        sleep 0.2
    done
}
# A point in time for `journalctl --since` (cursors do not survive the flush of the journal
# from /run to /var, which happens while the tests run).
journal_mark() { ct "date +@%s.%6N"; }
health() { ct "curl -fsS --max-time 10 http://127.0.0.1:8080/api/health"; }

scratch_mount=
engine_started=
on_exit() {
    local rc=$?
    [ -z "$scratch_mount" ] || umount "$scratch_mount" || true
    if [ $rc -ne 0 ] && podman container exists "$CT" 2>/dev/null; then
        log "---- diagnostics from the container ----" >&2
        podman exec "$CT" bash -c 'systemctl --no-pager status "rivetr*" ; systemctl --no-pager --failed;
            journalctl --no-pager -n 80 -u rivetr -u rivetr-api.socket -u rivetr-http.socket' >&2 || true
    fi
    if [ $rc -ne 0 ] && [ -n "$engine_started" ]; then
        log "---- the apps' engine: containers, and the end of its log ----" >&2
        engine ps -a >&2 || true
        tail -n 20 "$ENGINE_DIR/podman.log" >&2 || true
    fi
    if [ "${RIVETR_E2E_KEEP:-}" = 1 ] && [ $rc -ne 0 ]; then
        log "keeping container $CT, $work and the engine on $ENGINE_SOCK (network namespace $ENGINE_NETNS)" >&2
    else
        podman rm -f -t 0 "$CT" >/dev/null 2>&1 || true
        [ -z "$engine_started" ] || stop_engine || true
        rm -rf "$work"
    fi
    exit $rc
}
trap on_exit EXIT

run_step() {
    current_step=$1
    local t0 took
    t0=$(now)
    log "--- $1"
    "$1"
    took=$(elapsed "$t0" "$(now)")
    step_times+=("$(printf '%7s s  %s' "$took" "$1")")
    log "    ok ($took s)"
}

# ---------------------------------------------------------------------------------------------
# Packages, built and linted on this machine.

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
# A higher version of the same build, for the upgrade steps.
upgrade_version="$version+e2e1"
deb=rivetr_${version}-1_amd64.deb
deb_up=rivetr_${upgrade_version}-1_amd64.deb
rpm=rivetr-${version}-1.x86_64.rpm
rpm_up=rivetr-${upgrade_version}-1.x86_64.rpm

step_build_packages() {
    packaging/build.sh --out "$work/dist" >/dev/null
    packaging/build.sh --out "$work/dist" --version "$upgrade_version" >/dev/null
    for f in "$deb" "$deb_up" "$rpm" "$rpm_up"; do
        [ -s "$work/dist/$f" ] || fail "packaging/build.sh did not make $f"
    done
}

step_lint() {
    local out score
    # Errors fail; warnings are printed (and listed with their reasons in the packaging notes).
    lintian --fail-on error --pedantic "$work/dist/$deb" >"$work/lintian.txt" 2>&1 ||
        { cat "$work/lintian.txt"; fail "lintian reports errors"; }
    grep -v 'running with root privileges' "$work/lintian.txt" | sed 's/^/    lintian: /' || true
    rpmlint -c packaging/rpmlint.toml "$work/dist/$rpm" >"$work/rpmlint.txt" 2>&1 ||
        { cat "$work/rpmlint.txt"; fail "rpmlint reports errors"; }
    grep -E ': [EW]: |checked;' "$work/rpmlint.txt" | sed 's/^/    rpmlint: /' || true

    out=$(systemd-analyze security --offline=true --threshold=20 systemd/rivetr.service) ||
        { echo "$out"; fail "systemd-analyze security: exposure above 2.0"; }
    score=$(echo "$out" | sed -n 's/.*Overall exposure level for rivetr.service: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || fail "no exposure level in systemd-analyze output"
    note "systemd-analyze security --offline=true systemd/rivetr.service: $score (limit 2.0)"
}

# Same files, modes and owners in both formats, except each format's own documentation paths.
step_rpm_lists_same_files() {
    dpkg-deb -c "$work/dist/$deb" >"$work/deb-files.txt"
    rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]' \
        "$work/dist/$rpm" >"$work/rpm-files.txt"
    rpm -qlp "$work/dist/$rpm" >"$work/rpm-qlp.txt"
    python3 - "$work" <<'EOF' || fail "deb and rpm contents differ"
import sys
work = sys.argv[1]
def entries(lines, mode_i, owner_i, path_i, strip_dot):
    out = {}
    for line in lines:
        f = line.split()
        if not f or f[mode_i].startswith("d"):
            continue
        path = f[path_i][1:] if strip_dot else f[path_i]
        out[path] = (f[mode_i], f[owner_i])
    return out
deb = entries(open(f"{work}/deb-files.txt"), 0, 1, 5, True)
rpm = entries(open(f"{work}/rpm-files.txt"), 0, 1, 2, False)
qlp = {l.strip() for l in open(f"{work}/rpm-qlp.txt") if l.strip()}
only_deb = {"/usr/share/doc/rivetr/copyright", "/usr/share/doc/rivetr/changelog.Debian.gz",
            "/usr/share/zsh/vendor-completions/_rivetr"}
only_rpm = {"/usr/share/licenses/rivetr/LICENSE", "/usr/share/zsh/site-functions/_rivetr"}
errors = []
if set(deb) - set(rpm) != only_deb:
    errors.append(f"only in the deb: {sorted(set(deb) - set(rpm))}, expected {sorted(only_deb)}")
if set(rpm) - set(deb) != only_rpm:
    errors.append(f"only in the rpm: {sorted(set(rpm) - set(deb))}, expected {sorted(only_rpm)}")
if not set(rpm) <= qlp:
    errors.append(f"rpm -qlp lacks {sorted(set(rpm) - qlp)}")
for path in sorted(set(deb) & set(rpm)):
    if deb[path] != rpm[path]:
        errors.append(f"{path}: deb {deb[path]} rpm {rpm[path]}")
if errors:
    sys.exit("\n".join(errors))
print(f"    {len(set(deb) & set(rpm))} files with the same mode and owner in both; "
      f"deb-only {sorted(only_deb)}; rpm-only {sorted(only_rpm)}")
EOF
    rpm -qp --scripts "$work/dist/$rpm" >"$work/rpm-scripts.txt"
    for s in preinstall postinstall preuninstall postuninstall; do
        grep -q "^$s scriptlet" "$work/rpm-scripts.txt" || fail "rpm has no $s scriptlet"
    done
}

# ---------------------------------------------------------------------------------------------
# The container, and the root file system it is made from.

rootfs=
image=

# Debian 12 root file system (debootstrap, cached) and the Podman image made from it.
step_base_image() {
    local mirror key
    mirror=$(awk '/^URIs:/ && $2 ~ /\/debian$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    [ -n "$mirror" ] || fail "no Debian mirror in /etc/apt/sources.list.d/debian.sources"
    # The cached root file system and image are rebuilt when what goes into them changes.
    key=$(printf '%s\n' "$ROOTFS_INCLUDE" "$mirror" "v1" | cat - /etc/apt/sources.list.d/debian.sources |
        sha256sum | cut -c1-12)
    rootfs=$CACHE/rootfs-bookworm-$key
    image=localhost/rivetr-e2e-systemd:$key
    mkdir -p "$CACHE/apt-archives/partial"
    if [ ! -d "$rootfs" ]; then
        log "    debootstrap bookworm from $mirror into $rootfs"
        rm -rf "$rootfs.tmp"
        debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" --cache-dir="$CACHE/apt-archives" \
            bookworm "$rootfs.tmp" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
        # The same apt sources as this machine, which reaches the mirror.
        rm -f "$rootfs.tmp/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$rootfs.tmp/etc/apt/sources.list.d/"
        mv "$rootfs.tmp" "$rootfs"
    fi
    if ! podman image exists "$image"; then
        tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$image" >"$work/import.log" 2>&1 ||
            { cat "$work/import.log"; fail "podman import"; }
    fi
}

# The rpm installed with this machine's rpm into a scratch copy of that root file system, where
# systemd does not run and /proc is not mounted: the scriptlets' offline paths (rpm runs them
# chrooted there). tmpfiles.d is left to the first boot there.
step_rpm_scratch_root() {
    # A writable overlay over the cached root file system: a copy without copying.
    local root=$work/scratch-root
    mkdir -p "$root" "$work/scratch-upper" "$work/scratch-work"
    mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/scratch-upper,workdir=$work/scratch-work" "$root"
    scratch_mount=$root
    rpm --root="$root" --nodeps -i "$work/dist/$rpm" >"$work/rpm-scratch.log" 2>&1 ||
        { cat "$work/rpm-scratch.log"; fail "rpm --root -i"; }
    grep -q '^rivetr:' "$root/etc/passwd" || fail "scratch root: no rivetr user"
    for unit in sockets.target.wants/rivetr-api.socket sockets.target.wants/rivetr-http.socket \
        sockets.target.wants/rivetr-https.socket multi-user.target.wants/rivetr.service; do
        [ -L "$root/etc/systemd/system/$unit" ] || fail "scratch root: $unit not enabled"
    done
    [ -e "$root/var/lib/systemd/linger/rivetr" ] || fail "scratch root: no linger flag"
    [ "$(stat -c '%a %s' "$root/etc/rivetr/rivetr.key")" = "600 32" ] || fail "scratch root: key"
    grep -q 'tmpfiles.d/rivetr.conf applies at the next boot' "$work/rpm-scratch.log" ||
        fail "scratch root: rivetr-setup did not say tmpfiles.d waits for the boot"
    if grep -q 'scriptlet failed' "$work/rpm-scratch.log"; then
        cat "$work/rpm-scratch.log"
        fail "scratch root: a scriptlet failed"
    fi
    grep -q '^rivetr:' "$root/etc/subuid" || fail "scratch root: no subordinate UIDs"
    rpm --root="$root" -e rivetr >>"$work/rpm-scratch.log" 2>&1 ||
        { cat "$work/rpm-scratch.log"; fail "rpm --root -e"; }
    if grep -q 'scriptlet failed' "$work/rpm-scratch.log"; then
        cat "$work/rpm-scratch.log"
        fail "scratch root: a scriptlet failed on erase"
    fi
    if ls "$root"/etc/systemd/system/*.wants/rivetr* >/dev/null 2>&1; then
        fail "scratch root: units still enabled after rpm -e"
    fi
    [ ! -e "$root/var/lib/systemd/linger/rivetr" ] || fail "scratch root: linger flag left after rpm -e"
    umount "$root"
    scratch_mount=
}

# The apps' engine: rootful Podman as a service on a private socket, in a network namespace
# of its own with slirp4netns for outgoing traffic, with its own storage.

# True when the engine answers on its socket.
engine_answers() { curl -sf --max-time 2 --unix-socket "$ENGINE_SOCK" http://d/_ping >/dev/null 2>&1; }

# Stops what step_engine started, in this run or in an interrupted or kept one: the apps'
# containers, the Podman service, slirp4netns (each by the pid it recorded, if that pid is
# still that program), then the namespace.
stop_engine() {
    local name pid
    if engine_answers; then
        engine rm -af -t 0 >/dev/null || log "warning: cannot remove the apps' containers" >&2
        # The images the deployments built; busybox stays cached.
        engine images --format '{{.Repository}}:{{.Tag}}' |
            { grep -E '^(localhost/rivetr-[0-9a-f]+/|(localhost/|docker.io/)?rivetr/)' || true; } |
            xargs -r podman --remote --url "unix://$ENGINE_SOCK" rmi -f >/dev/null ||
            log "warning: cannot remove the apps' images" >&2
    fi
    for name in podman slirp4netns; do
        [ -f "$ENGINE_DIR/$name.pid" ] || continue
        pid=$(cat "$ENGINE_DIR/$name.pid")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        rm -f "$ENGINE_DIR/$name.pid"
    done
    if [ -e "/run/netns/$ENGINE_NETNS" ]; then
        ip netns del "$ENGINE_NETNS"
    fi
    rm -rf "$ENGINE_DIR"
}

# GID of the group that may use the engine's socket: free on this machine (where the socket
# file lives) and given the same number inside the container.
ENGINE_GID=

step_engine() {
    # Containers of interrupted or kept runs (another run cannot be under way: the lock).
    podman ps -aq --filter 'name=^rivetr-pkg-e2e-' | xargs -r podman rm -f -t 0 >/dev/null
    stop_engine
    engine_started=1
    mkdir -p "$ENGINE_DIR/cwd" "$ENGINE_DIR/sock" "$ENGINE_STORAGE"
    ip netns add "$ENGINE_NETNS"
    # (exec: the recorded pid is the program's; setsid: it and its helpers form one group)
    (exec setsid slirp4netns --configure --mtu=65520 --disable-host-loopback \
        --netns-type=path "/run/netns/$ENGINE_NETNS" tap0) >"$ENGINE_DIR/slirp4netns.log" 2>&1 &
    echo $! >"$ENGINE_DIR/slirp4netns.pid"
    local deadline=$(($(date +%s) + 10))
    until ip -n "$ENGINE_NETNS" route show default | grep -q 'via 10.0.2.2'; do
        [ "$(date +%s)" -lt "$deadline" ] || { cat "$ENGINE_DIR/slirp4netns.log"; fail "slirp4netns did not configure $ENGINE_NETNS"; }
        sleep 0.1
    done
    # conmon drops `oom` files into its working directory, inherited from the service.
    (cd "$ENGINE_DIR/cwd" && exec setsid nsenter --net="/run/netns/$ENGINE_NETNS" \
        podman --root "$ENGINE_STORAGE/root" --runroot "$ENGINE_DIR/runroot" --tmpdir "$ENGINE_DIR/tmp" \
        system service --time=0 "unix://$ENGINE_SOCK") >"$ENGINE_DIR/podman.log" 2>&1 &
    echo $! >"$ENGINE_DIR/podman.pid"
    deadline=$(($(date +%s) + 30))
    until engine_answers; do
        if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$(cat "$ENGINE_DIR/podman.pid")" 2>/dev/null; then
            tail -20 "$ENGINE_DIR/podman.log"
            fail "the apps' Podman service did not answer on $ENGINE_SOCK"
        fi
        sleep 0.1
    done
    # Only root and members of that group may use it (the service makes the socket 0600).
    ENGINE_GID=$(python3 -c 'import grp; used = {g.gr_gid for g in grp.getgrall()}; print(next(g for g in range(2300, 60000) if g not in used))')
    chgrp "$ENGINE_GID" "$ENGINE_DIR/sock" "$ENGINE_SOCK"
    chmod 0750 "$ENGINE_DIR/sock"
    chmod 0660 "$ENGINE_SOCK"
    # The apps' base image, made as for the cargo tests (no registry here).
    scripts/test-env/engines.sh --image "unix://$ENGINE_SOCK" >"$work/engine-image.log" 2>&1 ||
        { cat "$work/engine-image.log"; fail "cannot import localhost/busybox:test into the apps' engine"; }
    local info
    info=$(curl -sf --unix-socket "$ENGINE_SOCK" http://d/v4.0.0/libpod/info) || fail "libpod info from the apps' engine"
    echo "$info" | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert not i["host"]["security"]["rootless"], "the apps engine is rootless"
print(f"    apps engine: rootful podman {i['"'version'"']['"'Version'"']}, storage {i['"'store'"']['"'graphRoot'"']}, "
      f"network namespace {sys.argv[1]}, socket group {sys.argv[2]}")
' "$ENGINE_NETNS" "$ENGINE_GID" || fail "unexpected libpod info from the apps' engine"
}

step_start_container() {
    # --privileged: the hardened rivetr.service needs mount namespaces, and the rivetr user's
    # rootless Podman needs newuidmap to map its subordinate IDs inside this container.
    # --network: the apps' engine's namespace; --dns: slirp4netns's forwarder in it.
    podman run -d --name "$CT" --hostname rivetr-e2e --privileged --systemd=always \
        --network="ns:/run/netns/$ENGINE_NETNS" --dns=10.0.2.3 \
        -v "$CACHE/apt-archives:/var/cache/apt/archives" -v "$work/dist:/dist:ro" \
        -v "$ENGINE_DIR/sock:$CT_ENGINE_DIR" \
        "$image" /sbin/init >/dev/null
    wait_for "systemd in the container to accept systemctl" 30 "test -S /run/systemd/private"
    # Shared mount propagation from / down, as systemd sets it up on a real machine (it skips
    # that in a container, and Podman makes the container's mounts private). systemd 252 mounts
    # each unit's /run/credentials/<unit> in a child mount namespace; with private propagation
    # the mount never reaches the service, which sees an empty root-only directory and cannot
    # read LoadCredential=rivetr.key ("Permission denied"), as seen on these VMs' kernel 6.18.
    ct "mount --make-rshared /"
    local state
    state=$(ct "systemctl is-system-running --wait" || true)
    [ "$state" = running ] || { ct "systemctl --failed --no-pager" || true; fail "system state '$state'"; }
    ct "apt-get update -qq" || fail "apt-get update in the container"
}

step_apt_install() {
    local t0 t1 t2
    t0=$(now)
    ct "DEBIAN_FRONTEND=noninteractive apt-get install -y /dist/$deb" >"$work/apt-install.log" 2>&1 ||
        { tail -30 "$work/apt-install.log"; fail "apt install ./$deb"; }
    t1=$(now)
    wait_for "health on :8080" 60 "curl -fsS --max-time 2 http://127.0.0.1:8080/api/health"
    t2=$(now)
    for dep in git podman libpam-systemd; do
        ct "dpkg-query -W -f='\${Status}' $dep" | grep -q "install ok installed" ||
            fail "dependency $dep not installed"
    done
    note "apt install ./$deb (with its dependencies, $(grep -c '^Setting up' "$work/apt-install.log") packages set up): $(elapsed "$t0" "$t1") s; apt install -> health: $(elapsed "$t0" "$t2") s"
    health | grep -q "\"version\":\"$version\"" || fail "health does not report version $version"
}

step_installed_files() {
    local f
    for f in /usr/bin/rivetr /usr/lib/systemd/system/rivetr.service \
        /usr/lib/systemd/system/rivetr-api.socket /usr/lib/systemd/system/rivetr-http.socket \
        /usr/lib/systemd/system/rivetr-https.socket /usr/lib/sysusers.d/rivetr.conf \
        /usr/lib/tmpfiles.d/rivetr.conf /etc/rivetr/rivetr.toml /usr/share/man/man1/rivetr.1.gz \
        /usr/share/bash-completion/completions/rivetr /usr/share/zsh/vendor-completions/_rivetr \
        /usr/share/fish/vendor_completions.d/rivetr.fish /usr/share/doc/rivetr/copyright \
        /usr/share/doc/rivetr/README.md; do
        ct "dpkg -L rivetr | grep -qx '$f'" || fail "dpkg -L rivetr lacks $f"
    done
    ct "dpkg-query -W -f='\${Conffiles}' rivetr" | grep -q ' /etc/rivetr/rivetr.toml ' ||
        fail "/etc/rivetr/rivetr.toml is not a conffile"
    expect_eq "rivetr.toml" "$(ct 'stat -c "%a %U %G" /etc/rivetr/rivetr.toml')" "640 root rivetr"
    expect_eq "rivetr.key" "$(ct 'stat -c "%a %U %G %s" /etc/rivetr/rivetr.key')" "600 root root 32"
    expect_eq "/var/lib/rivetr" "$(ct 'stat -c "%a %U %G" /var/lib/rivetr')" "750 rivetr rivetr"
    expect_eq "rivetr user" "$(ct 'getent passwd rivetr | cut -d: -f6,7')" "/var/lib/rivetr:/usr/sbin/nologin"
    ct "man -w rivetr" | grep -q /usr/share/man/man1/rivetr.1.gz || fail "man rivetr"
    ct "MANWIDTH=100 man rivetr 2>/dev/null" | grep -q 'rivetr-serve(1)' || fail "man rivetr does not render"
    ct "bash -c '. /usr/share/bash-completion/completions/rivetr && complete -p rivetr'" >/dev/null ||
        fail "bash completion does not load"
}

step_rootless_podman_user() {
    local uid
    uid=$(ct "id -u rivetr")
    ct "grep -Eq '^rivetr:[0-9]+:65536$' /etc/subuid" || fail "no subuid range for rivetr"
    ct "grep -Eq '^rivetr:[0-9]+:65536$' /etc/subgid" || fail "no subgid range for rivetr"
    ct "test -e /var/lib/systemd/linger/rivetr" || fail "lingering not enabled"
    expect_eq "user@$uid.service" "$(prop "user@$uid.service" ActiveState)" active
    wait_for "the rivetr user's podman.socket" 20 "systemctl --user -M rivetr@ is-active podman.socket"
    ct "test -S /run/rivetr/podman/podman.sock" || fail "no socket at /run/rivetr/podman/podman.sock"
    # The socket as seen from inside rivetr.service's sandbox: a unit with exactly its
    # [Service] settings (user, hardening, environment), running curl instead of rivetr.
    ct "sed -e 's|^Type=notify|Type=oneshot|' -e '/^ExecReload=/d' -e '/^Restart/d' -e '/^WatchdogSec=/d' \
            -e '/^Sockets=/d' -e '/^\[Install\]/,\$d' \
            -e 's|^ExecStart=.*|ExecStart=/usr/bin/curl -fsS --max-time 60 --unix-socket \${XDG_RUNTIME_DIR}/podman/podman.sock http://d/v4.0.0/libpod/info\nStandardOutput=truncate:/run/rivetr-sandbox-probe.json|' \
            /usr/lib/systemd/system/rivetr.service >/run/systemd/system/rivetr-sandbox-probe.service &&
        systemctl daemon-reload && systemctl start rivetr-sandbox-probe.service" ||
        fail "the rivetr user's Podman is not reachable from rivetr.service's sandbox"
    ct "cat /run/rivetr-sandbox-probe.json" >"$work/libpod-info.json"
    python3 - "$work/libpod-info.json" <<'EOF' || fail "unexpected libpod info from the rivetr user's Podman"
import json, sys
info = json.load(open(sys.argv[1]))
version = info["version"]["Version"]
maps = info["host"]["idMappings"]["uidmap"]
assert info["host"]["security"]["rootless"], "podman is not rootless"
assert any(m["size"] == 65536 for m in maps), f"subordinate uids not mapped: {maps}"
print(f"    reached from rivetr.service's sandbox: podman {version}, rootless, uid map {maps}")
EOF
    ct "rm /run/systemd/system/rivetr-sandbox-probe.service && systemctl daemon-reload"
}

step_sockets_and_enablement() {
    local name port
    for name in api:8080 http:80 https:443; do
        port=${name#*:}
        name=${name%:*}
        expect_eq "rivetr-$name.socket active" "$(prop "rivetr-$name.socket" ActiveState)" active
        expect_eq "rivetr-$name.socket enabled" "$(ct "systemctl is-enabled rivetr-$name.socket")" enabled
        expect_eq "rivetr-$name.socket name" "$(prop "rivetr-$name.socket" FileDescriptorName)" "$name"
        ct "ss -Htln 'sport = :$port'" | grep -q LISTEN || fail "nothing listens on port $port"
    done
    expect_eq "rivetr.service enabled" "$(ct 'systemctl is-enabled rivetr.service')" enabled
}

# The runtime part may say "no container runtime (...)": right after a first install, the
# rivetr user's podman.socket (its user manager starts with lingering) can come up after
# rivetr.service has looked for it. Reported, not failed here; step_deploy_app requires the
# runtime.
status_re='^serving [0-9]+ apps, [0-9]+ routes; [0-9]+ deploys queued; api on \S+:8080; proxy on \S+:80 and \S+:443 \(tls\); (runtime podman \S+( \(rootless\))?|no container runtime \(.+\))$'
step_ready_and_status() { # [label]
    # Type=notify: "active (running)" only after READY=1; STATUS= came with it.
    expect_eq "ActiveState" "$(prop rivetr.service ActiveState)" active
    expect_eq "SubState" "$(prop rivetr.service SubState)" running
    local status
    status=$(prop rivetr.service StatusText)
    [[ $status =~ $status_re ]] || fail "StatusText '$status'"
    note "${1:-deb}: systemctl show -p StatusText rivetr: $status"
    case $status in *"no container runtime"*)
        note "WARNING (${1:-deb}): rivetr.service started before the rivetr user's Podman socket existed" ;;
    esac
}

step_verify_units() {
    local out
    out=$(ct "systemd-analyze verify /usr/lib/systemd/system/rivetr.service /usr/lib/systemd/system/rivetr-api.socket \
        /usr/lib/systemd/system/rivetr-http.socket /usr/lib/systemd/system/rivetr-https.socket 2>&1") ||
        { echo "$out"; fail "systemd-analyze verify"; }
    if echo "$out" | grep -q rivetr; then
        echo "$out"
        fail "systemd-analyze verify warns about Rivetr's units"
    fi
    out=$(ct "systemd-analyze security --threshold=20 rivetr.service") ||
        { echo "$out"; fail "installed rivetr.service: exposure above 2.0"; }
    note "systemd-analyze security rivetr.service (installed, running): $(echo "$out" | sed -n 's/.*Overall exposure level for rivetr.service: \([0-9.]*\).*/\1/p')"
}

step_journal_fields() {
    ct "journalctl -u rivetr.service -o json --no-pager" >"$work/journal.json"
    python3 - "$work/journal.json" "$version" <<'EOF' || fail "journal entries"
import json, sys
path, version = sys.argv[1], sys.argv[2]
entries = [json.loads(l) for l in open(path) if l.strip()]
own = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "rivetr"]
assert own, "no entries with SYSLOG_IDENTIFIER=rivetr"
native = [e for e in own if e.get("_TRANSPORT") == "journal"]
assert native, "rivetr's entries did not come through the native journal protocol"
serving = [e for e in native if e.get("MESSAGE") == "rivetr is serving"]
assert serving, "no 'rivetr is serving' entry"
e = serving[-1]
assert e.get("RIVETR_STATE_DIR") == "/var/lib/rivetr", e
assert e.get("RIVETR_VERSION") == version, e
# tracing-journald maps INFO to 5 (notice), DEBUG to 6, TRACE to 7.
assert e.get("PRIORITY") == "5", e
sockets = {x.get("RIVETR_SOCKET") for x in native if "RIVETR_SOCKET" in x}
assert {"api", "http"} <= sockets, sockets
fields = sorted({k for x in native for k in x if k.startswith("RIVETR_")})
print(f"    {len(native)} native entries; Rivetr's fields: {', '.join(fields)}")
EOF
}

step_socket_activation() {
    local pid
    ct "systemctl stop rivetr.service"
    expect_eq "after stop: rivetr.service" "$(prop rivetr.service ActiveState)" inactive
    for s in api http https; do
        expect_eq "after stop: rivetr-$s.socket" "$(prop "rivetr-$s.socket" ActiveState)" active
    done
    # Only systemd holds the listening socket now.
    ct "ss -Htlnp 'sport = :8080'" | grep -q 'systemd' || fail "port 8080 not held by systemd"
    if ct "ss -Htlnp 'sport = :8080'" | grep -q 'rivetr'; then fail "rivetr still holds port 8080"; fi
    health | grep -q '"status":"ok"' || fail "the first connection to 8080 did not start rivetr"
    expect_eq "after connection: rivetr.service" "$(prop rivetr.service ActiveState)" active
    pid=$(prop rivetr.service MainPID)
    [ "$pid" -gt 0 ] || fail "no main PID after socket activation"
}

step_reload() {
    local pid restarts since
    pid=$(prop rivetr.service MainPID)
    restarts=$(prop rivetr.service NRestarts)
    ct "sed -i 's/^level = \"info\"$/level = \"debug\"/' /etc/rivetr/rivetr.toml && grep -q '^level = \"debug\"$' /etc/rivetr/rivetr.toml" ||
        fail "cannot set level = debug in /etc/rivetr/rivetr.toml"
    since=$(journal_mark)
    # At debug level systemd logs every notification it receives, so the RELOADING=1 ...
    # READY=1 sequence is visible in the journal.
    ct "systemd-analyze log-level debug"
    ct "systemctl reload rivetr.service"
    wait_for "configuration reloaded with level debug" 15 \
        "journalctl -u rivetr.service --since='$since' -o json | grep '\"MESSAGE\":\"configuration reloaded\"' | grep -q '\"RIVETR_LEVEL\":\"debug\"'"
    wait_for "READY=1 after RELOADING=1" 15 \
        "journalctl -u rivetr.service --since='$since' -o cat | grep -A50 'notification message.*RELOADING=1' | grep -q 'notification message.*READY=1'"
    ct "systemd-analyze log-level info"
    expect_eq "main PID after reload" "$(prop rivetr.service MainPID)" "$pid"
    expect_eq "NRestarts after reload" "$(prop rivetr.service NRestarts)" "$restarts"
    expect_eq "ActiveState after reload" "$(prop rivetr.service ActiveState)" active
    local status
    status=$(prop rivetr.service StatusText)
    [[ $status =~ $status_re ]] || fail "StatusText after reload: '$status'"
}

step_watchdog() {
    local pid restarts since t0 t1 new
    pid=$(prop rivetr.service MainPID)
    restarts=$(prop rivetr.service NRestarts)
    since=$(journal_mark)
    ct "kill -STOP $pid"
    t0=$(now)
    local deadline=$(($(date +%s) + WATCHDOG_SEC + 20))
    while :; do
        new=$(prop rivetr.service MainPID)
        if [ "$new" != 0 ] && [ "$new" != "$pid" ] && [ "$(prop rivetr.service ActiveState)" = active ]; then
            break
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "no restart within $((WATCHDOG_SEC + 20)) s of SIGSTOP"
        sleep 0.5
    done
    t1=$(now)
    # (journald may write systemd's message a moment after the restart is visible)
    wait_for "systemd's watchdog timeout message" 10 \
        "journalctl -u rivetr.service --since='$since' -o cat | grep -q 'rivetr.service: Watchdog timeout'"
    expect_eq "NRestarts after watchdog" "$(prop rivetr.service NRestarts)" "$((restarts + 1))"
    local took
    took=$(elapsed "$t0" "$t1")
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= $WATCHDOG_SEC + 10 else 1)" "$took" ||
        fail "restart took $took s after SIGSTOP, more than WatchdogSec + 10 s"
    health >/dev/null || fail "no health after the watchdog restart"
    note "kill -STOP main PID -> new main PID active: $took s (WatchdogSec=${WATCHDOG_SEC}s, limit $((WATCHDOG_SEC + 10)) s)"
}

# Client loops inside the container send requests for Host $1 (default e2e.invalid, which no
# app serves) to the proxy socket (port 80) until /tmp/load/stop exists; each request is
# logged as "start end curl-exit http-code".
start_load() { # [host]
    ct "rm -rf /tmp/load && mkdir /tmp/load"
    podman exec -d "$CT" bash -c '
        for w in 1 2 3 4; do
            ( while [ ! -e /tmp/load/stop ]; do
                s=$(date +%s.%N)
                code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "Host: $1" http://127.0.0.1:80/)
                rc=$?
                echo "$s $(date +%s.%N) $rc $code" >>/tmp/load/w$w.log
              done; touch /tmp/load/done$w ) &
        done; wait' _ "${1:-e2e.invalid}" >/dev/null
    wait_for "client loops running" 20 "[ \$(cat /tmp/load/w*.log 2>/dev/null | wc -l) -ge 40 ]"
}
# Stops the loops and checks every request got an HTTP answer (with code want-code, when
# given); prints the counts. With a file of kill -9 instants (container time, one a line: the
# instant before the kill and the one after it), a request that was inside the killed process
# then and got no whole answer (curl: empty reply, reset, or an answer cut short) is counted
# apart as lost with the process: the kernel closes the connections a process accepted when
# it dies, and no server can answer on them.
stop_load() { # window-start window-end label [want-code] [kill-instants-file]
    local n
    n=$(ct "cat /tmp/load/w*.log | wc -l")
    wait_for "requests after the restart" 30 "[ \$(cat /tmp/load/w*.log | wc -l) -ge $((n + 40)) ]"
    ct "touch /tmp/load/stop"
    wait_for "client loops to end" 30 "[ \$(ls /tmp/load/done* 2>/dev/null | wc -l) -eq 4 ]"
    ct "cat /tmp/load/w*.log" >"$work/load-$3.txt"
    python3 - "$work/load-$3.txt" "$1" "$2" "$3" "${4:-}" "${5:-/dev/null}" <<'EOF'
import collections, sys
path, t0, t1, label, want, kills = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
kills = [(float(l.split()[0]), float(l.split()[-1])) for l in open(kills) if l.strip()]
rows = [l.split() for l in open(path) if l.strip()]
total = len(rows)
refused = sum(1 for r in rows if r[2] == "7")
def in_killed_process(r):
    # curl: 52 empty reply, 56 reset, 18 an answer cut short.
    return r[2] in ("18", "52", "56") and any(
        float(r[0]) <= after and before <= float(r[1]) for before, after in kills)
lost = [r for r in rows if in_killed_process(r)]
failed = [r for r in rows if not in_killed_process(r) and
          (r[2] != "0" or not r[3].isdigit() or r[3] == "000" or (want and r[3] != want))]
during = sum(1 for r in rows if float(r[0]) < t1 and float(r[1]) > t0)
codes = collections.Counter(r[3] for r in rows)
lost_text = f", {len(lost)} lost inside the killed process" if kills else ""
print(f"    {label}: {total} requests to port 80, {refused} refused, {len(failed)} without "
      f"{'an HTTP ' + want if want else 'an HTTP answer'}{lost_text}, {during} overlapping the {t1 - t0:.2f} s {label} window; HTTP codes {dict(codes)}")
if refused or failed:
    sys.exit(f"failed requests (start end curl-exit http-code): {failed[:10]}")
if during == 0:
    sys.exit(f"no request overlapped the {label}: the check proves nothing")
EOF
}

step_restart_under_load() {
    local pid t0 t1
    pid=$(prop rivetr.service MainPID)
    start_load
    t0=$(ct "date +%s.%N")
    ct "systemctl restart rivetr.service"
    t1=$(ct "date +%s.%N")
    [ "$(prop rivetr.service MainPID)" != "$pid" ] || fail "systemctl restart kept the same PID"
    stop_load "$t0" "$t1" restart >"$work/restart-load.txt" || { cat "$work/restart-load.txt"; fail "requests failed during systemctl restart"; }
    note "systemctl restart rivetr under load: $(sed 's/^ *restart: //' "$work/restart-load.txt")"
}

# The busybox web app of tests/common/platform.rs.
APP_DOCKERFILE='FROM localhost/busybox:test
COPY www /www
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
'
app_body=       # what the pushed commit serves at /
app_secret=     # the app's webhook secret
app_deployment= # the deployment the webhook queued
app_container=  # its container in the apps' engine

# A call to the API from inside the container with the initial admin token (read there, never
# copied out). Prints the body, then the HTTP status on a line of its own.
api() { # method path [file inside the container holding the JSON body]
    ct "curl -sS --max-time 30 -X $1 -H \"Authorization: Bearer \$(cat /var/lib/rivetr/initial-admin-token)\" \
        ${3:+-H 'Content-Type: application/json' --data-binary @$3} -w '\n%{http_code}' http://127.0.0.1:8080$2"
}
api_status() { printf '%s\n' "$1" | tail -n1; }
api_body() { printf '%s\n' "$1" | sed '$d'; }
# The app's containers in the engine, one "id state" line each (state as libpod names it:
# running, exited...; `podman ps --format {{.State}}` prints "Up 2 seconds ago" instead).
app_containers() {
    curl -sf --max-time 10 --unix-socket "$ENGINE_SOCK" -G --data-urlencode "filters={\"label\":[\"io.rivetr.app=$APP\"]}" \
        "http://d/v4.0.0/libpod/containers/json?all=true" | jq -r '.[] | "\(.Id[0:12]) \(.State)"'
}
# What the proxy on port 80 answers for the app's host name: "code body".
through_proxy() { ct "curl -sS --max-time 10 -H 'Host: ${1:-$APP_HOST}' -o /tmp/e2e-proxy.out -w '%{http_code} ' http://127.0.0.1:80/ && cat /tmp/e2e-proxy.out"; }

# Rivetr on the engine outside the container; an app created through the API from a git
# repository; a signed GitHub push webhook for one of its commits; the proxy on port 80 serving
# that commit. Measures webhook -> the proxy serving the new app.
step_deploy_app() {
    local out secret sha later result took t0 t1 id
    # The rivetr user reaches the engine's socket as a member of the socket's group, as the
    # packaged rivetr.toml documents for Docker's socket (group docker); the shipped unit as is.
    # (Under its PrivateUsers=yes the group shows as "nogroup", but the kernel checks the real one.)
    ct "groupadd --gid $ENGINE_GID host-podman && usermod -aG host-podman rivetr"
    ct "sed -i '/^\[runtime\]/,/^\[/ s|^socket = .*|socket = \"unix://$CT_ENGINE_DIR/podman.sock\"|' /etc/rivetr/rivetr.toml"
    ct "grep -qx 'engine = \"podman\"' /etc/rivetr/rivetr.toml && grep -qx 'socket = \"unix://$CT_ENGINE_DIR/podman.sock\"' /etc/rivetr/rivetr.toml" ||
        fail "cannot point [runtime] of /etc/rivetr/rivetr.toml at $CT_ENGINE_DIR/podman.sock"
    # Only the log level follows a reload; the runtime follows a restart.
    ct "systemctl restart rivetr.service"
    health >"$work/health.json" || fail "no health after pointing Rivetr at the apps' engine"
    jq -e '.runtime.status == "ok" and .runtime.engine == "podman" and .runtime.rootless == false' "$work/health.json" >/dev/null ||
        fail "Rivetr does not use the rootful engine: $(jq -c .runtime "$work/health.json")"

    # The app's repository, served by git daemon as a forge would serve it (rivetr clones as
    # its own user, and git refuses a local repository another user owns).
    ct "mkdir -p /srv/git /root/$APP/www && git init -q --bare --initial-branch=main /srv/git/$APP.git &&
        cd /root/$APP && git init -q --initial-branch=main && git config user.email e2e@rivetr.test &&
        git config user.name 'Rivetr e2e' && git remote add origin /srv/git/$APP.git"
    printf '%s' "$APP_DOCKERFILE" | ct_write "/root/$APP/Dockerfile"
    app_body="rivetr e2e app, pushed commit ($$)"
    printf '%s\n' "$app_body" | ct_write "/root/$APP/www/index.html"
    sha=$(ct "cd /root/$APP && git add -A && git commit -q -m 'the pushed version' && git rev-parse HEAD")
    # A later commit on the branch: the webhook names the first, and that must be what runs.
    printf 'not pushed\n' | ct_write "/root/$APP/www/index.html"
    later=$(ct "cd /root/$APP && git commit -q -am 'a later version' && git rev-parse HEAD && git push -q origin main")
    [ "$later" != "$sha" ] || fail "git made one commit, not two"
    ct "systemd-run --quiet --unit=e2e-git-daemon git daemon --reuseaddr --listen=127.0.0.1 \
        --base-path=/srv/git --export-all /srv/git"
    wait_for "git daemon" 15 "git ls-remote git://127.0.0.1/$APP.git main | grep -q $later"

    # The app, through the API.
    jq -n --arg name "$APP" --arg url "git://127.0.0.1/$APP.git" --arg host "$APP_HOST" \
        '{name: $name, git_url: $url, branch: "main", port: 8080, domains: [$host],
          healthcheck: {path: "/", interval_ms: 200, timeout_ms: 1000, retries: 50}}' |
        ct_write /tmp/e2e-app.json
    out=$(api POST /api/apps /tmp/e2e-app.json)
    [ "$(api_status "$out")" = 201 ] || fail "POST /api/apps: $out"
    secret=$(api_body "$out" | jq -er .webhook_secret) || fail "no webhook_secret in: $out"
    app_secret=$secret
    api_body "$out" | jq -e --arg suffix "/webhooks/github/$APP" '.webhooks.github | endswith($suffix)' >/dev/null ||
        fail "no GitHub webhook URL for $APP in: $out"

    # GitHub's push payload (tests/fixtures) for our branch and commit, signed with the secret.
    jq -c --arg sha "$sha" '.ref = "refs/heads/main" | .after = $sha | .deleted = false' \
        tests/fixtures/webhooks/github/push.json >"$work/push.json"
    ct_write /tmp/e2e-push.json <"$work/push.json"
    local sig
    sig=$(python3 -c 'import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' \
        "$secret" "$work/push.json")
    # Timed inside the container: from sending the webhook until the proxy answers for the
    # app's host with the pushed commit's page. Fails at once if the deployment fails.
    result=$(podman exec "$CT" bash -c '
        want=$1 sig=$2 app=$3 host=$4
        t0=$(date +%s.%N)
        code=$(curl -sS --max-time 30 -o /tmp/e2e-webhook.json -w "%{http_code}" -X POST \
            -H "Content-Type: application/json" -H "User-Agent: GitHub-Hookshot/e2e" \
            -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: e2e-$(date +%s%N)" \
            -H "X-Hub-Signature-256: sha256=$sig" --data-binary @/tmp/e2e-push.json \
            "http://127.0.0.1:8080/webhooks/github/$app")
        [ "$code" = 202 ] || { echo "webhook answered $code: $(cat /tmp/e2e-webhook.json)"; exit 1; }
        id=$(sed -n "s/.*\"deployment_id\":\([0-9]*\).*/\1/p" /tmp/e2e-webhook.json)
        [ -n "$id" ] || { echo "no deployment id in $(cat /tmp/e2e-webhook.json)"; exit 1; }
        deadline=$(($(date +%s) + 300))
        until [ "$(curl -s --max-time 5 -H "Host: $host" http://127.0.0.1:80/)" = "$want" ]; do
            d=$(curl -s --max-time 5 -H "Authorization: Bearer $(cat /var/lib/rivetr/initial-admin-token)" \
                "http://127.0.0.1:8080/api/deployments/$id")
            case $d in *\"status\":\"failed\"* | *\"status\":\"cancelled\"*) echo "deployment $id: $d"; exit 1 ;; esac
            [ "$(date +%s)" -lt "$deadline" ] || { echo "deployment $id not served after 300 s: $d"; exit 1; }
            sleep 0.1
        done
        t1=$(date +%s.%N)
        echo "$id $t0 $t1"' _ "$app_body" "$sig" "$APP" "$APP_HOST") || {
        echo "$result"
        id=$(echo "$result" | sed -n 's/^deployment \([0-9]*\).*/\1/p')
        [ -z "$id" ] || api GET "/api/deployments/$id/logs" | sed '$d' | jq -r '.[] | "[\(.stream)] \(.line)"' | tail -40 || true
        fail "the webhook did not deploy the app"
    }
    read -r app_deployment t0 t1 <<<"$result"
    took=$(elapsed "$t0" "$t1")

    out=$(api GET "/api/deployments/$app_deployment")
    [ "$(api_status "$out")" = 200 ] || fail "GET /api/deployments/$app_deployment: $out"
    api_body "$out" >"$work/deployment.json"
    jq -e --arg sha "$sha" '.status == "running" and .commit_sha == $sha and .trigger == "webhook"' \
        "$work/deployment.json" >/dev/null || fail "deployment $app_deployment: $(cat "$work/deployment.json")"
    expect_eq "proxy, Host $APP_HOST" "$(through_proxy)" "200 $app_body"
    through_proxy e2e.invalid | grep -q '^404 ' || fail "the proxy serves the app for another host: $(through_proxy e2e.invalid)"
    # The app's container runs in the engine outside the container.
    app_containers >"$work/app-containers.txt"
    if [ "$(wc -l <"$work/app-containers.txt")" != 1 ] || ! grep -q ' running$' "$work/app-containers.txt"; then
        fail "the app's containers in the engine: $(cat "$work/app-containers.txt")"
    fi
    app_container=$(cut -d' ' -f1 "$work/app-containers.txt")
    # (clone, build, start, health check, route switch: from the POST to the first 200 with the
    # pushed commit's page through port 80)
    note "webhook -> serving: $took s (deployment $app_deployment of commit ${sha:0:12}, container $app_container in the apps' engine)"
}

step_upgrade() {
    local pid key_sum t0 t1
    # The status line counts the deployed app and its route: the daemon after the upgrade must
    # read them from the same database. (The line is written at start and on reload.)
    ct "systemctl reload rivetr.service"
    wait_for "status line counting 1 app" 15 "systemctl show -p StatusText --value rivetr | grep -q '^serving 1 apps, 1 routes; '"
    key_sum=$(ct "sha256sum /etc/rivetr/rivetr.key")
    pid=$(prop rivetr.service MainPID)
    # Requests for the app all through the upgrade: each must get the app's 200.
    start_load "$APP_HOST"
    t0=$(ct "date +%s.%N")
    ct "DEBIAN_FRONTEND=noninteractive apt-get install -y /dist/$deb_up" >"$work/apt-upgrade.log" 2>&1 ||
        { tail -30 "$work/apt-upgrade.log"; fail "apt install ./$deb_up (upgrade)"; }
    t1=$(ct "date +%s.%N")
    stop_load "$t0" "$t1" upgrade 200 >"$work/upgrade-load.txt" || { cat "$work/upgrade-load.txt"; fail "requests for the app failed during the upgrade"; }
    note "apt upgrade to $upgrade_version-1 under load on the deployed app: $(sed 's/^ *upgrade: //' "$work/upgrade-load.txt")"
    expect_eq "installed version" "$(ct "dpkg-query -W -f='\${Version}' rivetr")" "$upgrade_version-1"
    [ "$(prop rivetr.service MainPID)" != "$pid" ] || fail "the upgrade did not restart rivetr.service"
    expect_eq "ActiveState after upgrade" "$(prop rivetr.service ActiveState)" active
    health | grep -q '"status":"ok"' || fail "no health after the upgrade"
    prop rivetr.service StatusText | grep -q '^serving 1 apps, 1 routes; ' || fail "status after upgrade: $(prop rivetr.service StatusText)"
    ct "grep -q '^level = \"debug\"$' /etc/rivetr/rivetr.toml && grep -qx 'socket = \"unix://$CT_ENGINE_DIR/podman.sock\"' /etc/rivetr/rivetr.toml" ||
        fail "the upgrade replaced the edited rivetr.toml"
    ct "test ! -e /etc/rivetr/rivetr.toml.dpkg-new && test ! -e /etc/rivetr/rivetr.toml.dpkg-dist" ||
        fail "dpkg left a new rivetr.toml beside the edited one"
    expect_eq "key after upgrade" "$(ct "sha256sum /etc/rivetr/rivetr.key")" "$key_sum"
}

# After the upgrade: the app, its deployment and its container are the same, and served.
step_app_after_upgrade() {
    local out
    out=$(api GET "/api/apps/$APP")
    [ "$(api_status "$out")" = 200 ] || fail "GET /api/apps/$APP after the upgrade: $out"
    out=$(api GET "/api/deployments/$app_deployment")
    api_body "$out" | jq -e '.status == "running"' >/dev/null || fail "deployment $app_deployment after the upgrade: $out"
    out=$(api GET "/api/apps/$APP/deployments")
    expect_eq "deployments of $APP after the upgrade" "$(api_body "$out" | jq -c '[.[].id]')" "[$app_deployment]"
    expect_eq "the app's containers after the upgrade" "$(app_containers)" "$app_container running"
    expect_eq "proxy after the upgrade, Host $APP_HOST" "$(through_proxy)" "200 $app_body"
    expect_eq "runtime after the upgrade" "$(health | jq -c '[.runtime.engine, .runtime.rootless]')" '["podman",false]'
}

# A database query as the service's user (a file sqlite3 creates must not be root's).
db_query() { ct "runuser -u rivetr -- sqlite3 /var/lib/rivetr/rivetr.db \"$1\""; }

# Sends GitHub's push webhook for commit $1 of the app, signed with its secret; prints the
# deployment id.
send_push() {
    local sha=$1 sig
    jq -c --arg sha "$sha" '.ref = "refs/heads/main" | .after = $sha | .deleted = false' \
        tests/fixtures/webhooks/github/push.json >"$work/push-kill.json"
    ct_write /tmp/e2e-push-kill.json <"$work/push-kill.json"
    sig=$(python3 -c 'import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' \
        "$app_secret" "$work/push-kill.json")
    podman exec "$CT" bash -c '
        code=$(curl -sS --max-time 30 -o /tmp/e2e-webhook-kill.json -w "%{http_code}" -X POST \
            -H "Content-Type: application/json" -H "User-Agent: GitHub-Hookshot/e2e" \
            -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: e2e-kill-$(date +%s%N)" \
            -H "X-Hub-Signature-256: sha256=$1" --data-binary @/tmp/e2e-push-kill.json \
            "http://127.0.0.1:8080/webhooks/github/$2")
        [ "$code" = 202 ] || { echo "webhook answered $code: $(cat /tmp/e2e-webhook-kill.json)" >&2; exit 1; }
        sed -n "s/.*\"deployment_id\":\([0-9]*\).*/\1/p" /tmp/e2e-webhook-kill.json' _ "$sig" "$APP"
}

# Issue 17: `kill -9` of the service at random moments of webhook deploys, KILL_ROUNDS times,
# with clients requesting the app through port 80 all along. systemd restarts it (Restart=
# on-failure, RestartSec=1s) and holds the sockets meanwhile: no request may be refused or go
# unanswered. After each restart: no deployment left under way, exactly one running deployment
# and one running container for the app, and PRAGMA integrity_check ok.
KILL_ROUNDS=${KILL_ROUNDS:-20}
step_kill9_during_deploys() {
    local i sha id delay pid new t0 t1 took max=0 restarts states
    # A replaced version drains 1 s and gets 2 s to stop (the packaged 10 s and 10 s would
    # make each round wait 20 s for the app's old container to go).
    ct "sed -i 's/^drain_seconds = .*/drain_seconds = 1/; s/^stop_timeout_seconds = .*/stop_timeout_seconds = 2/' /etc/rivetr/rivetr.toml"
    ct "grep -qx 'drain_seconds = 1' /etc/rivetr/rivetr.toml && grep -qx 'stop_timeout_seconds = 2' /etc/rivetr/rivetr.toml" ||
        fail "cannot set drain_seconds and stop_timeout_seconds in /etc/rivetr/rivetr.toml"
    ct "systemctl restart rivetr.service"
    health >/dev/null || fail "no health after the restart with the shorter drain"
    restarts=$(prop rivetr.service NRestarts)
    start_load "$APP_HOST"
    t0=$(ct "date +%s.%N")
    for i in $(seq "$KILL_ROUNDS"); do
        sha=$(ct "cd /root/$APP && echo 'kill round $i' >www/index.html && git commit -q -am 'kill round $i' && git push -q origin main && git rev-parse HEAD")
        id=$(send_push "$sha") || fail "round $i: the webhook was not accepted"
        # Anywhere from the queue to the switch: a deploy of this app takes about a second
        # here (0 to 4 s, the first try, interrupted 2 of 20).
        delay=$((RANDOM % 12))
        sleep "$((delay / 10)).$((delay % 10))"
        pid=$(prop rivetr.service MainPID)
        local killed_at
        killed_at=$(now)
        # The instants before and after the kill: on a loaded machine the kill itself can
        # come tens of milliseconds after the first.
        ct "before=\$(date +%s.%N) && kill -9 $pid && echo \"\$before \$(date +%s.%N)\" >>/tmp/load/kills"
        local deadline=$(($(date +%s) + 30))
        until new=$(prop rivetr.service MainPID) && [ "$new" != 0 ] && [ "$new" != "$pid" ] &&
            [ "$(prop rivetr.service ActiveState)" = active ] && health >/dev/null 2>&1; do
            [ "$(date +%s)" -lt "$deadline" ] || fail "round $i: no healthy restart within 30 s of kill -9"
            sleep 0.1
        done
        took=$(elapsed "$killed_at" "$(now)")
        max=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$max" "$took")
        wait_for "round $i: no deployment under way" 120 \
            "[ \$(runuser -u rivetr -- sqlite3 /var/lib/rivetr/rivetr.db \"SELECT COUNT(*) FROM deployments WHERE status NOT IN ('running', 'failed', 'cancelled', 'superseded', 'replaced')\") = 0 ]"
        expect_eq "round $i: running deployments of $APP" \
            "$(db_query "SELECT COUNT(*) FROM deployments d JOIN apps a ON a.id = d.app_id WHERE a.name = '$APP' AND d.status = 'running'")" 1
        local deadline2=$(($(date +%s) + 60))
        until [ "$(app_containers | grep -c ' running$')" = 1 ] && [ "$(app_containers | wc -l)" = 1 ]; do
            [ "$(date +%s)" -lt "$deadline2" ] || fail "round $i: the app's containers: $(app_containers | tr '\n' ' ')"
            sleep 0.2
        done
        expect_eq "round $i: integrity_check" "$(db_query 'PRAGMA integrity_check')" ok
        states+="$id:$(db_query "SELECT status FROM deployments WHERE id = $id") "
        log "    round $i: kill -9 ${delay}00 ms after the webhook of deployment $id; healthy again after $took s"
    done
    t1=$(ct "date +%s.%N")
    ct "cat /tmp/load/kills" >"$work/kill-instants.txt"
    stop_load "$t0" "$t1" kill9 200 "$work/kill-instants.txt" >"$work/kill9-load.txt" ||
        { cat "$work/kill9-load.txt"; fail "requests failed across kill -9"; }
    expect_eq "NRestarts after $KILL_ROUNDS kills" "$(prop rivetr.service NRestarts)" "$((restarts + KILL_ROUNDS))"
    expect_eq "proxy serves the running deployment's commit" "$(through_proxy | cut -d' ' -f1)" 200
    note "kill -9 x $KILL_ROUNDS during webhook deploys: $(sed 's/^ *kill9: //' "$work/kill9-load.txt"); longest kill -> healthy $max s; deployments' ends: $states"
}

step_remove() {
    ct "DEBIAN_FRONTEND=noninteractive apt-get remove -y rivetr" >"$work/apt-remove.log" 2>&1 ||
        { tail -30 "$work/apt-remove.log"; fail "apt remove rivetr"; }
    expect_eq "dpkg status after remove" "$(ct "dpkg-query -W -f='\${Status}' rivetr")" "deinstall ok config-files"
    for u in rivetr.service rivetr-api.socket rivetr-http.socket rivetr-https.socket; do
        expect_eq "$u after remove" "$(prop "$u" ActiveState)" inactive
        expect_eq "$u is-enabled after remove" "$(ct "systemctl is-enabled $u || true")" masked
    done
    for port in 8080 80 443; do
        if ct "ss -Htln 'sport = :$port'" | grep -q LISTEN; then fail "port $port still listens after remove"; fi
    done
    expect_eq "app row after remove" \
        "$(ct "runuser -u rivetr -- sqlite3 /var/lib/rivetr/rivetr.db \"SELECT name FROM apps WHERE name = '$APP'\"")" "$APP"
    ct "grep -q '^level = \"debug\"$' /etc/rivetr/rivetr.toml && test -s /etc/rivetr/rivetr.key" ||
        fail "configuration or key gone after remove"
    ct "test ! -e /var/lib/systemd/linger/rivetr" || fail "lingering still enabled after remove"
    expect_eq "user manager after remove" "$(prop "user@$(ct 'id -u rivetr').service" ActiveState)" inactive
}

step_purge() {
    ct "DEBIAN_FRONTEND=noninteractive apt-get purge -y rivetr" >"$work/apt-purge.log" 2>&1 ||
        { tail -30 "$work/apt-purge.log"; fail "apt purge rivetr"; }
    local status
    status=$(ct "dpkg-query -W -f='\${Status}' rivetr 2>/dev/null || true")
    case "$status" in
    "" | *" not-installed") ;;
    *) fail "dpkg status after purge: '$status'" ;;
    esac
    for path in /var/lib/rivetr /etc/rivetr /run/rivetr; do
        ct "test ! -e $path" || fail "$path left after purge"
    done
    ct "! ls /etc/systemd/system/rivetr* /etc/systemd/system/*.wants/rivetr* 2>/dev/null" ||
        fail "unit links or masks left after purge: $(ct 'ls /etc/systemd/system/rivetr* /etc/systemd/system/*.wants/rivetr* 2>&1')"
    # The system user stays, as Debian packages leave theirs (see packaging/deb/postrm).
    ct "id rivetr >/dev/null" || fail "the rivetr user was removed"
    # Start the rpm steps from a machine that has never seen Rivetr's user either.
    ct "userdel rivetr && ! grep -q '^rivetr:' /etc/subuid /etc/subgid"
}

# The rpm with Debian's rpm, in the same booted container: its scriptlets run against real
# systemd with rpm's instance counts (install 1, upgrade 2 then 1, erase 0). --nodeps because
# rpm's database does not know the dpkg-installed dependencies (they are present).
# rpm only warns when a %post or %postun scriptlet fails; that must fail the test.
rpm_in_ct() { # rpm arguments
    ct "rpm $*" >"$work/rpm-cmd.log" 2>&1 || { cat "$work/rpm-cmd.log"; fail "rpm $*"; }
    grep -v -e 'should not be used directly' -e 'assuming you know what you are doing' "$work/rpm-cmd.log" | sed 's/^/    /' || true
    if grep -q 'scriptlet failed' "$work/rpm-cmd.log"; then fail "rpm $*: a scriptlet failed"; fi
}

step_rpm() {
    ct "DEBIAN_FRONTEND=noninteractive apt-get install -y rpm" >"$work/apt-rpm.log" 2>&1 ||
        { tail -20 "$work/apt-rpm.log"; fail "apt install rpm"; }
    rpm_in_ct -i --nodeps "/dist/$rpm"
    wait_for "health after rpm -i" 30 "curl -fsS --max-time 2 http://127.0.0.1:8080/api/health"
    ct "id rivetr >/dev/null" || fail "rpm %pre did not create the rivetr user"
    step_sockets_and_enablement
    step_ready_and_status rpm
    expect_eq "rivetr.toml (rpm)" "$(ct 'stat -c "%a %U %G" /etc/rivetr/rivetr.toml')" "640 root rivetr"
    expect_eq "rivetr.key (rpm)" "$(ct 'stat -c "%a %U %G %s" /etc/rivetr/rivetr.key')" "600 root root 32"
    ct "test -e /var/lib/systemd/linger/rivetr" || fail "rpm: lingering not enabled"
    wait_for "the rivetr user's podman.socket (rpm)" 20 "systemctl --user -M rivetr@ is-active podman.socket"

    local pid
    ct "sed -i 's/^level = \"info\"$/level = \"debug\"/' /etc/rivetr/rivetr.toml"
    pid=$(prop rivetr.service MainPID)
    rpm_in_ct -U --nodeps "/dist/$rpm_up"
    expect_eq "rpm -q after upgrade" "$(ct 'rpm -q rivetr')" "rivetr-$upgrade_version-1.x86_64"
    [ "$(prop rivetr.service MainPID)" != "$pid" ] || fail "rpm upgrade did not restart rivetr.service"
    health | grep -q '"status":"ok"' || fail "no health after rpm -U"
    ct "grep -q '^level = \"debug\"$' /etc/rivetr/rivetr.toml && test ! -e /etc/rivetr/rivetr.toml.rpmnew" ||
        fail "rpm -U did not keep the edited rivetr.toml"
    expect_eq "rivetr.service enabled after rpm -U" "$(ct 'systemctl is-enabled rivetr.service')" enabled

    rpm_in_ct -e rivetr
    for u in rivetr.service rivetr-api.socket rivetr-http.socket rivetr-https.socket; do
        expect_eq "$u after rpm -e" "$(prop "$u" ActiveState)" inactive
    done
    ct "! ls /etc/systemd/system/*.wants/rivetr* 2>/dev/null" || fail "rpm -e left units enabled"
    for port in 8080 80 443; do
        if ct "ss -Htln 'sport = :$port'" | grep -q LISTEN; then fail "port $port still listens after rpm -e"; fi
    done
    ct "test -s /var/lib/rivetr/rivetr.db && test -s /etc/rivetr/rivetr.key" || fail "rpm -e removed state or key"
    # rpm keeps an edited %config(noreplace) file as .rpmsave.
    ct "grep -q '^level = \"debug\"$' /etc/rivetr/rivetr.toml.rpmsave" || fail "rpm -e lost the edited configuration"
    ct "test ! -e /var/lib/systemd/linger/rivetr" || fail "rpm -e left lingering enabled"
}

steps=(
    step_build_packages
    step_lint
    step_rpm_lists_same_files
    step_base_image
    step_rpm_scratch_root
    step_engine
    step_start_container
    step_apt_install
    step_installed_files
    step_rootless_podman_user
    step_sockets_and_enablement
    step_ready_and_status
    step_verify_units
    step_journal_fields
    step_socket_activation
    step_reload
    step_watchdog
    step_restart_under_load
    step_deploy_app
    step_upgrade
    step_app_after_upgrade
    step_kill9_during_deploys
    step_remove
    step_purge
    step_rpm
)

exec 9>"$CACHE.lock"
flock 9 # one run at a time on a machine: the container cache and apt archives are shared
mkdir -p "$CACHE"
t_all=$(now)
for step in "${steps[@]}"; do
    run_step "$step"
done
log ""
log "package end-to-end test passed in $(elapsed "$t_all" "$(now)") s; per step:"
for line in "${step_times[@]}"; do
    log "  $line"
done
for line in "${summary[@]}"; do
    log "  * $line"
done

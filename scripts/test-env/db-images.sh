#!/usr/bin/env bash
# Builds, without a registry, the database images Rivetr's database tests run, from Debian 12
# (bookworm) packages, and imports them into the test container engines:
#
#   localhost/rivetr-test-postgres:15     Debian postgresql-15
#   localhost/rivetr-test-mariadb:10.11   Debian mariadb-server, mariadb-client
#   localhost/rivetr-test-redis:7         Debian redis-server, redis-tools
#
#   eval "$(scripts/test-env/engines.sh --keep)"; scripts/test-env/db-images.sh
#                             # into each engine named by RIVETR_TEST_PODMAN_SOCKET,
#                             # RIVETR_TEST_PODMAN_ROOTLESS_SOCKET and RIVETR_TEST_DOCKER_SOCKET
#   scripts/test-env/db-images.sh unix:///path/engine.sock ...
#                             # into these engines instead (Podman or Docker, any number)
#   scripts/test-env/db-images.sh --build-only
#                             # only build the cached tars (no engine needed)
#
# The images follow the contract of the official postgres, mariadb and redis images on Docker
# Hub, so Rivetr sets the same variables for both (the entrypoint below has the details):
#   postgres  POSTGRES_PASSWORD (required), POSTGRES_USER (postgres), POSTGRES_DB (= user);
#             data /var/lib/postgresql/data (PGDATA), port 5432, CMD ["postgres"], stop signal
#             SIGINT (fast shutdown) as in the official image; psql, pg_dump, pg_restore and
#             pg_isready on PATH. One difference: TCP from 127.0.0.1 inside the container needs
#             the password too (the official image trusts it); only the Unix socket is trusted.
#   mariadb   MARIADB_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD or their
#             MYSQL_* names (also *_FILE, MARIADB_ROOT_HOST, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD,
#             MARIADB_RANDOM_ROOT_PASSWORD); data /var/lib/mysql, 0.0.0.0:3306, CMD ["mariadbd"];
#             mariadb, mariadb-dump, mariadb-admin and the mysql* names on PATH.
#   redis     data and working directory /data, port 6379, CMD ["redis-server"]; the arguments
#             alone make the configuration (Debian's /etc/redis/redis.conf is not read).
# Each runs its server as its own user (setpriv) and as PID 1, after chowning the data
# directory, so it also works as root inside rootless Podman's user namespace. As in the
# official images the data path is a VOLUME: a container without a mount there gets an
# anonymous volume, which only `rm -v` (API: v=true) removes with it.
#
# Three root file systems, one per server, from one debootstrap --variant=minbase: the minbase
# system is made once, the packages of all three downloaded once, then copied and installed
# three times in parallel. One root file system with all three servers would build a little
# faster and import once per engine (~400 MB instead of 190 + 315 + 86 MB), but each image would
# hold the other servers' tools, so a test would not notice Rivetr running, say, mysqldump in the
# postgres container; and each would be 400 MB: rootless Podman here stores images with the vfs
# driver, which copies the whole image for every container (5-8 s at 400 MB on an idle machine).
#
# Each tar becomes an image in one import per engine: Podman takes the whole configuration
# (ENTRYPOINT, CMD, ENV, VOLUME, STOPSIGNAL...) as the import's `changes`; Docker's import
# refuses STOPSIGNAL, so there the configuration comes from a metadata-only build FROM the
# import (no extra layer, ~1 s). (On rootless Podman's vfs a build would copy the image: ~50 s.)
#
# Cached in $RIVETR_DB_IMAGES_CACHE (default /var/cache/rivetr-db-images): the root file systems
# and tars, keyed by a hash of the package lists, the entrypoint and the recipe that makes them
# (and the apt sources). Images carry the key of both their tar and their configuration in a
# label; an engine whose images carry the current key is left alone, so a second run takes about
# a second. Debian packages are cached in /var/cache/rivetr-e2e/apt-archives, shared with
# package-e2e.sh ($RIVETR_DB_IMAGES_APT_ARCHIVES overrides). A lock keeps two runs apart.
# Nothing comes from a registry: only from the Debian mirror of this machine's apt sources.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/packages.sh"

CACHE=${RIVETR_DB_IMAGES_CACHE:-/var/cache/rivetr-db-images}
APT_ARCHIVES=${RIVETR_DB_IMAGES_APT_ARCHIVES:-/var/cache/rivetr-e2e/apt-archives}
SOURCES=/etc/apt/sources.list.d/debian.sources
KEY_LABEL=io.rivetr.test.db-images.key
KINDS=(postgres mariadb redis)
declare -A IMAGE=(
    [postgres]=localhost/rivetr-test-postgres:15
    [mariadb]=localhost/rivetr-test-mariadb:10.11
    [redis]=localhost/rivetr-test-redis:7
)
declare -A PACKAGES=(
    [postgres]="postgresql-15"
    [mariadb]="mariadb-server mariadb-client"
    [redis]="redis-server redis-tools"
)
PATH_DEFAULT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'db-images: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# ---------------------------------------------------------------------------------------------
# What goes into the root file systems.

# /usr/local/bin/docker-entrypoint.sh of each image; @KIND@ becomes the image's kind.
ENTRYPOINT_SH=$(
    cat <<'ENTRYPOINT'
#!/bin/bash
# Entrypoint of Rivetr's test database images (written by scripts/test-env/db-images.sh).
# Behaves like the official postgres, mariadb and redis images' entrypoints: the same
# environment variables and data paths, initialisation on the first start only, and the server
# exec'd as its own user so it is PID 1 and receives the stop signal.
set -Eeuo pipefail

log() { printf '%s entrypoint: %s\n' "$(date -u '+%F %T')" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# file_env VAR [DEFAULT]: VAR from itself, from the file named by VAR_FILE, or DEFAULT.
file_env() {
    local var=$1 file_var="${1}_FILE" def=${2:-} val
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both $var and $file_var are set (but are exclusive)"
    fi
    val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!file_var:-}" ]; then
        val=$(<"${!file_var}")
    fi
    export "$var=$val"
    unset "$file_var"
}

# Runs this script again as user $1 (the server's), with the remaining arguments; exec, so the
# server stays PID 1.
as_user() {
    local user=$1 home
    shift
    home=$(getent passwd "$user" | cut -d: -f6)
    exec setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$home" "$BASH_SOURCE" "$@"
}

postgres_main() {
    [ $# -gt 0 ] || set -- postgres
    if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
    [ "$1" = postgres ] || exec "$@"
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
        chmod 00700 "$PGDATA"
        chmod 03775 /var/run/postgresql
        as_user postgres "$@"
    fi
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        local method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256} out pwfile
        local -a initdb_args=(--auth-local=trust)
        pwfile=$(mktemp)
        if [ -n "$POSTGRES_PASSWORD" ]; then
            printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
            initdb_args+=(--auth-host=scram-sha-256 --pwfile="$pwfile")
        elif [ "$method" = trust ]; then
            initdb_args+=(--auth-host=trust)
        else
            rm -f "$pwfile"
            die "the database is uninitialized and POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)"
        fi
        log "initialising $PGDATA for user $POSTGRES_USER"
        # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
        initdb -D "$PGDATA" --username="$POSTGRES_USER" "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} ||
            { rm -f "$pwfile"; die "initdb failed"; }
        rm -f "$pwfile"
        printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
        printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
        if [ "$POSTGRES_DB" != postgres ]; then
            # Single-user mode: no temporary server, nothing listens before the real start.
            out=$(printf 'CREATE DATABASE "%s";\n' "${POSTGRES_DB//\"/\"\"}" |
                postgres --single -D "$PGDATA" postgres 2>&1) || die "CREATE DATABASE: $out"
            if grep -q 'ERROR:' <<<"$out"; then die "CREATE DATABASE: $out"; fi
            log "created database $POSTGRES_DB"
        fi
        log "initialised; starting the server"
    fi
    exec "$@"
}

sql_string() {
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\'\'}"
}
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

mariadb_main() {
    [ $# -gt 0 ] || set -- mariadbd
    if [ "${1:0:1}" = - ]; then set -- mariadbd "$@"; fi
    case "$1" in
    mariadbd | mysqld) ;;
    *) exec "$@" ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        mkdir -p /var/lib/mysql /run/mysqld
        find /var/lib/mysql /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
        as_user mysql "$@"
    fi
    local name alias
    for name in ROOT_PASSWORD DATABASE USER PASSWORD ROOT_HOST RANDOM_ROOT_PASSWORD; do
        alias=MYSQL_$name
        file_env "$alias"
        file_env "MARIADB_$name" "${!alias}"
    done
    file_env MYSQL_ALLOW_EMPTY_PASSWORD
    file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD "$MYSQL_ALLOW_EMPTY_PASSWORD"
    if [ ! -d /var/lib/mysql/mysql ]; then
        local root_host=${MARIADB_ROOT_HOST:-%} dir sql
        if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] &&
            [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
            die "the database is uninitialized and no root password option is set: one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD"
        fi
        if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD" ]; then
            MARIADB_ROOT_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
            log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
        fi
        [ "$MARIADB_USER" != root ] || die "MARIADB_USER=root: root is set up by MARIADB_ROOT_PASSWORD"
        if [ -n "$MARIADB_USER" ] && [ -z "$MARIADB_PASSWORD" ]; then
            die "MARIADB_USER is set but MARIADB_PASSWORD is not"
        fi
        # Run by mariadb-install-db after the system tables, in bootstrap mode (no temporary
        # server, nothing listens before the real start). Only root@localhost and root@ROOT_HOST
        # remain, with the password (install-db's root@<hostname>, root@127.0.0.1 and root@::1
        # would take no password). Bootstrap's user may not GRANT PROXY: root@ROOT_HOST gets
        # root@localhost's proxy grant as install-db gives that one, by a row.
        sql="DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');
DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';
"
        if [ "$root_host" != localhost ]; then
            sql+="INSERT INTO mysql.proxies_priv VALUES ($(sql_string "$root_host"), 'root', '', '', TRUE, '', NOW());
"
        fi
        sql+="FLUSH PRIVILEGES;
"
        if [ -n "$MARIADB_ROOT_PASSWORD" ]; then
            sql+="ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$MARIADB_ROOT_PASSWORD");
"
        fi
        if [ "$root_host" != localhost ]; then
            sql+="CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$MARIADB_ROOT_PASSWORD");
GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;
"
        fi
        if [ -n "$MARIADB_DATABASE" ]; then
            sql+="CREATE DATABASE IF NOT EXISTS $(sql_ident "$MARIADB_DATABASE");
"
        fi
        if [ -n "$MARIADB_USER" ]; then
            sql+="CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");
"
            if [ -n "$MARIADB_DATABASE" ]; then
                sql+="GRANT ALL ON $(sql_ident "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';
"
            fi
        fi
        dir=$(umask 077 && mktemp -d)
        printf '%s' "$sql" >"$dir/init.sql"
        log "initialising /var/lib/mysql"
        mariadb-install-db --datadir=/var/lib/mysql --rpm --auth-root-authentication-method=normal \
            --skip-test-db --skip-name-resolve --extra-file="$dir/init.sql" "${@:2}" >"$dir/install.log" 2>&1 ||
            { cat "$dir/install.log" >&2; rm -rf "$dir"; die "mariadb-install-db failed"; }
        rm -rf "$dir"
        log "initialised${MARIADB_DATABASE:+ (database $MARIADB_DATABASE)}${MARIADB_USER:+ (user $MARIADB_USER)}; starting the server"
    fi
    exec "$@"
}

redis_main() {
    [ $# -gt 0 ] || set -- redis-server
    if [ "${1:0:1}" = - ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
    if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
        if [ -d /data ]; then find /data \! -user redis -exec chown redis '{}' +; fi
        as_user redis "$@"
    fi
    # As the official image: a private umask for the data files unless one was chosen.
    if [ "$(umask)" = 0022 ]; then umask 0077; fi
    exec "$@"
}

# The server of this image (filled in by db-images.sh).
"@KIND@_main" "$@"
ENTRYPOINT
)

# As the official image's docker.cnf, plus listening on all IPv4 addresses (Debian's
# 50-server.cnf binds 127.0.0.1). Read after Debian's files, so it wins.
MARIADB_CNF=$(
    cat <<'CNF'
# Rivetr's test image (scripts/test-env/db-images.sh)
[mysqld]
bind-address = 0.0.0.0
skip-name-resolve
host-cache-size = 0
CNF
)

# Each image's configuration, one Dockerfile instruction a line (one variable per ENV: Podman's
# import `changes` takes only one).
image_config() { # kind
    local volume port cmd stop=SIGTERM workdir=/ path=$PATH_DEFAULT
    case "$1" in
    postgres)
        volume=/var/lib/postgresql/data port=5432 cmd=postgres stop=SIGINT
        path=/usr/lib/postgresql/15/bin:$PATH_DEFAULT
        ;;
    mariadb) volume=/var/lib/mysql port=3306 cmd=mariadbd ;;
    redis) volume=/data port=6379 cmd=redis-server workdir=/data ;;
    esac
    echo "ENV PATH=$path"
    echo "ENV LANG=C.UTF-8"
    if [ "$1" = postgres ]; then
        echo "ENV PG_MAJOR=15"
        echo "ENV PGDATA=$volume"
    fi
    echo "VOLUME $volume"
    echo "WORKDIR $workdir"
    echo "EXPOSE $port"
    echo "STOPSIGNAL $stop"
    echo 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
    echo "CMD [\"$cmd\"]"
}

# Copies the .deb files of directory $1 that $2 lacks into $2: hard links when both are on one
# file system.
copy_debs() {
    find "$1" -maxdepth 1 -name '*.deb' -exec cp -ln -t "$2/" {} + 2>/dev/null ||
        find "$1" -maxdepth 1 -name '*.deb' -exec cp -n -t "$2/" {} +
}

# Runs a shell command line in root file system $1, with a clean environment.
in_root() { # root command-line [arguments...]
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=$PATH_DEFAULT DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
        sh -ec "$@"
}

# The minbase system in $1 (made by debootstrap --foreign), finished and given apt lists and
# the packages of all three images. The texts of this function and the next are part of the
# cache key.
prepare_base() {
    local root=$1
    # dpkg does not fsync (the build is thrown away if it breaks) and leaves out documentation
    # and translations.
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/rivetr-build-unsafe-io"
    cat >"$root/etc/dpkg/dpkg.cfg.d/rivetr-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/i18n/*
EOF
    chroot "$root" /debootstrap/debootstrap --second-stage
    # Services never start while packages are installed (debootstrap removed its own).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    # The same apt sources as this machine (with the security updates).
    rm -f "$root/etc/apt/sources.list"
    cp "$SOURCES" "$root/etc/apt/sources.list.d/"
    # What minbase installed before the exclusions; the build host's resolver stays for apt.
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/i18n/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    # Every package of the three images, downloaded once (cached ones hard-linked in).
    copy_debs "$APT_ARCHIVES" "$root/var/cache/apt/archives"
    # shellcheck disable=SC2068 # a list of package names
    in_root "$root" 'apt-get update -qq
        apt-get install -y -qq --no-install-recommends --download-only "$@"' sh ${PACKAGES[@]}
    copy_debs "$root/var/cache/apt/archives" "$APT_ARCHIVES"
}

# Installs kind $2's packages into $1 (a copy of the prepared base) and makes it that image's
# root file system.
install_kind() {
    local root=$1 kind=$2 n
    if [ "$kind" = postgres ]; then
        # postgresql-common would make a cluster in /var/lib/postgresql/15/main; the entrypoint
        # makes one in PGDATA instead.
        mkdir -p "$root/etc/postgresql-common"
        echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.conf"
    fi
    # shellcheck disable=SC2086 # a list of package names
    in_root "$root" 'apt-get install -y -qq --no-install-recommends "$@"' sh ${PACKAGES[$kind]}
    case "$kind" in
    postgres)
        # PostgreSQL's JIT: libLLVM (105 MB) and libz3 (23 MB, for LLVM only) would be most of
        # the image; without llvmjit.so PostgreSQL runs without JIT, silently (jit.c checks
        # for the file).
        chroot "$root" dpkg --purge --force-depends libllvm14 libz3-4
        rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode
        in_root "$root" 'mkdir -p /var/lib/postgresql/data /run/postgresql
            chown postgres:postgres /var/lib/postgresql/data /run/postgresql
            chmod 0700 /var/lib/postgresql/data
            chmod 03775 /run/postgresql'
        for n in initdb postgres psql pg_dump pg_restore pg_isready; do
            [ -x "$root/usr/lib/postgresql/15/bin/$n" ] || die "postgresql-15 has no $n"
        done
        ;;
    mariadb)
        # mariadb-server's postinst made a data directory: the entrypoint makes its own.
        rm -rf "${root:?}"/var/lib/mysql/*
        in_root "$root" 'mkdir -p /run/mysqld; chown mysql:mysql /var/lib/mysql /run/mysqld'
        printf '%s\n' "$MARIADB_CNF" >"$root/etc/mysql/mariadb.conf.d/99-rivetr-container.cnf"
        # The official mysql image has only the mysql* names: both kinds are here.
        for n in mysql:mariadb mysqldump:mariadb-dump mysqladmin:mariadb-admin; do
            [ -e "$root/usr/bin/${n%%:*}" ] || ln -s "${n#*:}" "$root/usr/bin/${n%%:*}"
        done
        for n in mariadbd mariadb mariadb-dump mariadb-admin mariadb-install-db mysql mysqldump mysqladmin; do
            in_root "$root" "command -v $n" >/dev/null || die "no $n in the mariadb image"
        done
        ;;
    redis)
        in_root "$root" 'mkdir -p /data; chown redis:redis /data'
        for n in redis-server redis-cli; do
            in_root "$root" "command -v $n" >/dev/null || die "no $n in the redis image"
        done
        ;;
    esac
    printf '%s\n' "${ENTRYPOINT_SH//@KIND@/$kind}" >"$root/usr/local/bin/docker-entrypoint.sh"
    chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
    # Out: packages and their lists, build-only settings, logs, the build host's resolver and
    # name (engines provide both).
    rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
        "$root/etc/dpkg/dpkg.cfg.d/rivetr-build-unsafe-io" "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root/etc/resolv.conf" "$root/etc/hostname"
    rm -rf "$root"/var/lib/apt/lists/* "$root/debootstrap"
    find "$root/var/log" -type f -delete
}

MIRROR=$(awk '/^URIs:/ && $2 ~ /\/debian$/ {print $2; exit}' "$SOURCES")
[ -n "$MIRROR" ] || die "no Debian mirror in $SOURCES"
ROOTFS_KEY=$({
    printf '%s\n' "v2" "$MIRROR" "${PACKAGES[@]}" "$ENTRYPOINT_SH" "$MARIADB_CNF"
    declare -f prepare_base install_kind
    cat "$SOURCES"
} | sha256sum | cut -c1-12)
# The label on the images: the tars' key and the images' configuration.
IMAGE_KEY=$({
    echo "$ROOTFS_KEY"
    for kind in "${KINDS[@]}"; do image_config "$kind"; done
} | sha256sum | cut -c1-12)
BUILD=$CACHE/$ROOTFS_KEY # root file systems <kind>/ and tars <kind>.tar

# ---------------------------------------------------------------------------------------------
# The root file systems and their tars (cached).

build_tars() {
    local tmp=$BUILD.tmp t0=$SECONDS kind old
    local -A pids=()
    [ -s "$BUILD/redis.tar" ] && return 0
    mkdir -p "$APT_ARCHIVES/partial"
    rm -rf --one-file-system "$tmp"
    mkdir -p "$tmp"
    log "debootstrap bookworm (minbase) from $MIRROR into $tmp/base"
    debootstrap --foreign --variant=minbase --cache-dir="$APT_ARCHIVES" bookworm "$tmp/base" "$MIRROR" \
        >"$tmp/base.log" 2>&1 || { tail -n 20 "$tmp/base.log" >&2; die "debootstrap failed (log: $tmp/base.log)"; }
    # In the background and waited for, here and below: in a `||` list, set -e would not apply
    # inside the function.
    prepare_base "$tmp/base" >>"$tmp/base.log" 2>&1 &
    wait $! || { tail -n 20 "$tmp/base.log" >&2; die "making the base system failed (log: $tmp/base.log)"; }
    log "base system and packages ready ($((SECONDS - t0)) s); installing the three servers"
    mkdir -p "$tmp/debs"
    find "$tmp/base/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec mv -t "$tmp/debs/" {} +
    for kind in "${KINDS[@]}"; do
        cp -a "$tmp/base" "$tmp/$kind"
        copy_debs "$tmp/debs" "$tmp/$kind/var/cache/apt/archives"
        install_kind "$tmp/$kind" "$kind" >"$tmp/$kind.log" 2>&1 &
        pids[$kind]=$!
    done
    for kind in "${KINDS[@]}"; do
        wait "${pids[$kind]}" || { tail -n 20 "$tmp/$kind.log" >&2; die "installing $kind failed (log: $tmp/$kind.log)"; }
    done
    rm -rf --one-file-system "$tmp/base" "$tmp/debs"
    for kind in "${KINDS[@]}"; do
        # No device nodes: the engines make /dev, and rootless Podman could not create them.
        tar -C "$tmp/$kind" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
            -cf "$tmp/$kind.tar" .
    done
    mv "$tmp" "$BUILD"
    for kind in "${KINDS[@]}"; do
        log "$BUILD/$kind.tar: $(du -h "$BUILD/$kind.tar" | cut -f1)"
    done
    log "tars ready ($((SECONDS - t0)) s)"
    # What earlier versions of this script made.
    for old in "$CACHE"/*; do
        [ "$old" = "$BUILD" ] || rm -rf --one-file-system "$old"
    done
}

# ---------------------------------------------------------------------------------------------
# The engines, through the Docker-compatible API (Podman serves it too).

api() { # socket method path [curl arguments...]
    local sock=${1#unix://} method=$2 path=$3
    shift 3
    curl -sS --fail-with-body --unix-socket "$sock" -X "$method" "$@" "http://d/v1.41$path"
}

# The value of our key label on image $2 in engine $1; "" when the image is missing.
image_key() {
    api "$1" GET "/images/$2/json" 2>/dev/null | jq -r --arg l "$KEY_LABEL" '.Config.Labels[$l] // ""' || true
}
image_id() { api "$1" GET "/images/$2/json" 2>/dev/null | jq -r '.Id' || true; }
uri() { jq -rn --arg v "$1" '$v|@uri'; }

# Makes image $2 in engine $1 from its tar, unless it is there with the current key.
ensure_image() {
    local sock=$1 kind=$2 image=${IMAGE[$2]} old query line out ctx t0
    [ "$(image_key "$sock" "$image")" != "$IMAGE_KEY" ] || return 0
    build_tars
    t0=$SECONDS
    old=$(image_id "$sock" "$image")
    query="fromSrc=-&repo=$(uri "$image")"
    if curl -sf --max-time 5 --unix-socket "${sock#unix://}" http://d/v4.0.0/libpod/_ping >/dev/null; then
        # Podman: the configuration comes with the import.
        while read -r line; do
            query+="&changes=$(uri "$line")"
        done < <(image_config "$kind"; echo "LABEL $KEY_LABEL=$IMAGE_KEY")
        out=$(api "$sock" POST "/images/create?$query" -H 'Content-Type: application/x-tar' -T "$BUILD/$kind.tar") ||
            die "$sock: import of $image failed: $out"
    else
        # Docker: the import, then its configuration by a build FROM it (no layer of its own).
        out=$(api "$sock" POST "/images/create?$query" -H 'Content-Type: application/x-tar' -T "$BUILD/$kind.tar") ||
            die "$sock: import of $image failed: $out"
        ctx=$(mktemp -d)
        { echo "FROM $image"; image_config "$kind"; echo "LABEL $KEY_LABEL=$IMAGE_KEY"; } >"$ctx/Dockerfile"
        tar -C "$ctx" -cf "$ctx/context.tar" Dockerfile
        out=$(api "$sock" POST "/build?t=$(uri "$image")&rm=1&forcerm=1" -H 'Content-Type: application/x-tar' \
            -T "$ctx/context.tar") || { rm -rf "$ctx"; die "$sock: build of $image failed: $out"; }
        rm -rf "$ctx"
        ! grep -q '"error' <<<"$out" || die "$sock: build of $image failed: $out"
    fi
    [ "$(image_key "$sock" "$image")" = "$IMAGE_KEY" ] || die "$sock: $image does not carry key $IMAGE_KEY: $out"
    # The image this one replaces, unless something still uses it (errors ignored).
    if [ -n "$old" ] && [ "$old" != "$(image_id "$sock" "$image")" ]; then
        api "$sock" DELETE "/images/$old" >/dev/null 2>&1 || true
    fi
    log "$sock: $image imported ($((SECONDS - t0)) s)"
}

main() {
    local -a socks=()
    local var sock kind build_only= t0=$SECONDS
    case "${1:-}" in
    --build-only) build_only=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        return 0
        ;;
    unix://*) socks=("$@") ;;
    "")
        for var in RIVETR_TEST_PODMAN_SOCKET RIVETR_TEST_PODMAN_ROOTLESS_SOCKET RIVETR_TEST_DOCKER_SOCKET; do
            if [ -n "${!var:-}" ]; then socks+=("${!var}"); else log "$var is not set: skipping that engine"; fi
        done
        ;;
    *) die "usage: $0 [--build-only | unix:///engine.sock ...]" ;;
    esac
    [ -n "$build_only" ] || [ ${#socks[@]} -gt 0 ] ||
        die "no engine: set the RIVETR_TEST_*_SOCKET variables (scripts/test-env/engines.sh --keep) or name sockets"
    ensure_packages debootstrap curl jq tar
    mkdir -p "$CACHE"
    exec 9>"$CACHE.lock"
    flock 9 # one run at a time: the cache and the engines' images are shared
    if [ -n "$build_only" ]; then
        build_tars
        log "$BUILD (key $ROOTFS_KEY)"
        return 0
    fi
    for sock in "${socks[@]}"; do
        for kind in "${KINDS[@]}"; do
            ensure_image "$sock" "$kind"
        done
    done
    log "done in $((SECONDS - t0)) s: ${IMAGE[*]} (key $IMAGE_KEY) in ${socks[*]}"
}

main "$@"

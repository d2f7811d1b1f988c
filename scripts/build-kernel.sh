#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build (or reuse) the test kernel: Debian's linux-source-7.3, tinyconfig
# plus kernel/procft.config (and kernel/profile.config: the function tracer),
# plus kernel/patches/*.patch.
#
# Usage: build-kernel.sh [debug]
#   debug: the debug test kernel, kernel/debug.config merged on top
#   (lockdep, KASAN, debug objects, list debugging, KFENCE).
#
# Prints the kernel build directory on stdout.  The build is cached under
# $PROCFT_CACHE/kernel/<version>[-<variant>]-<key>; a changed fragment,
# patch or compiler gives a new key and a fresh build.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VARIANT=${1:-}
kernel_fragments "$VARIANT" >/dev/null # an unknown variant ends here
mapfile -t FRAGMENTS < <(kernel_fragments "$VARIANT")
NAME="test kernel${VARIANT:+ ($VARIANT)}"

DL=$PROCFT_CACHE/download
mkdir -p "$DL"

# The build directory for the downloaded source, if it is there.
build_dir() {
	local deb srcver
	deb=$(ls -t "$DL"/linux-source-${KVER_SERIES}_*.deb 2>/dev/null | head -n1)
	[ -n "$deb" ] || return 1
	srcver=$(dpkg-deb -f "$deb" Version)
	echo "$PROCFT_CACHE/kernel/$srcver${VARIANT:+-$VARIANT}-$(kernel_key "$srcver" "$VARIANT")"
}

# A finished build is never removed, so it is used without waiting for
# the lock (another variant may be building meanwhile).
if KDIR=$(build_dir) && [ -f "$KDIR/.procft-built" ]; then
	log "$NAME is cached in $KDIR"
	echo "$KDIR"
	exit 0
fi

# One build at a time per cache (parallel `make` invocations share it).
exec 9>"$PROCFT_CACHE/.lock"
flock 9
# Holding the lock, any build without its marker was interrupted: remove it.
for d in "$PROCFT_CACHE"/kernel/*/; do
	if [ -d "$d" ] && [ ! -f "$d/.procft-built" ]; then
		log "removing unfinished build ${d%/}"
		rm -rf "$d"
	fi
done

fetch_source() {
	local tarball=$DL/linux-source-$KVER_SERIES.tar.xz
	if [ -s "$tarball" ]; then
		echo "$tarball"
		return
	fi
	# A private apt configuration: trixie-backports is only read for this
	# one download; the host's own apt sources and state stay untouched.
	local apt=$DL/apt
	mkdir -p "$apt/lists/partial"
	cat > "$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
SRC
	local opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
		    -o Dir::Etc::SourceParts=/dev/null
		    -o "Dir::State::Lists=$apt/lists"
		    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
		    -o APT::Architecture=amd64 -o APT::Sandbox::User=root)
	log "downloading linux-source-$KVER_SERIES from trixie-backports"
	apt-get -qq "${opts[@]}" update
	(cd "$DL" && apt-get -qq "${opts[@]}" download "linux-source-$KVER_SERIES")
	local deb
	deb=$(ls -t "$DL"/linux-source-${KVER_SERIES}_*.deb | head -n1)
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xO --wildcards "*/linux-source-$KVER_SERIES.tar.xz" > "$tarball.tmp"
	mv "$tarball.tmp" "$tarball"
	echo "$tarball"
}

tarball=$(fetch_source)
deb=$(ls -t "$DL"/linux-source-${KVER_SERIES}_*.deb | head -n1)
srcver=$(dpkg-deb -f "$deb" Version)
key=$(kernel_key "$srcver" "$VARIANT")
KDIR=$PROCFT_CACHE/kernel/$srcver${VARIANT:+-$VARIANT}-$key

if [ -f "$KDIR/.procft-built" ]; then
	log "$NAME $srcver (key $key) is cached in $KDIR"
	echo "$KDIR"
	exit 0
fi

log "building $NAME $srcver (key $key) in $KDIR"
start=$(date +%s)
# Built in place (Kbuild output records absolute paths); the marker file
# is written last, so an interrupted build is redone from scratch.
rm -rf "$KDIR"
mkdir -p "$KDIR"
tar -xJf "$tarball" -C "$KDIR" --strip-components=1
cd "$KDIR"
shopt -s nullglob
for p in "$PROCFT_ROOT"/kernel/patches/*.patch; do
	log "applying $(basename "$p")"
	patch -p1 --quiet --forward < "$p"
done
shopt -u nullglob
# shellcheck disable=SC2046
make -s $(kmake_vars) tinyconfig >/dev/null
# shellcheck disable=SC2046
KCONFIG_CONFIG=.config scripts/kconfig/merge_config.sh -m .config \
	"${FRAGMENTS[@]}" >/dev/null
# shellcheck disable=SC2046
make -s $(kmake_vars) olddefconfig >/dev/null
# Every option of the fragments must have survived (a silently dropped
# dependency would otherwise surface as a confusing test failure); where
# two fragments set an option, the later one's value is wanted.
declare -A want
for f in "${FRAGMENTS[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		esac
	done < "$f"
done
bad=0
for opt in "${!want[@]}"; do
	line=${want[$opt]}
	grep -qx "$line" .config || { log "config: wanted $line, got: $(grep "^$opt=" .config || echo unset)"; bad=1; }
done
[ $bad = 0 ] || die "$(basename -a "${FRAGMENTS[@]}" | paste -sd+) does not apply cleanly"
# shellcheck disable=SC2046
make -s -j"$(($(nproc) + 1))" $(kmake_vars) bzImage modules >&2
touch .procft-built
log "$NAME ready in $KDIR (built in $(( $(date +%s) - start )) s)"
echo "$KDIR"

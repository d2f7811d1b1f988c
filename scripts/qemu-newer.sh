#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Fetches Debian's bookworm-backports QEMU (10.0 when written) into the
# cache, without installing it, and prints the path of its
# qemu-system-x86_64. `make bench` runs on it (PROCFT_BENCH_QEMU: another
# binary).
#
# Why: bookworm's QEMU 7.2 under -icount with two vCPUs now and then
# leaves a halted vCPU asleep with an interrupt pending, for seconds or
# for good (bench/results/vcpu-stalls.txt). The tests do not use -icount
# and keep the system's QEMU.
#
# Only the three QEMU packages are unpacked, at the version
# bookworm-backports has when first fetched (kept in the cache's
# `version` file); the libraries they need are bookworm's own (the
# backport is built against them), and the firmware is the system's
# (seabios, ipxe-qemu, installed with qemu-system-x86). Prints nothing
# and fails if any of that is not so: the caller then uses the system's
# QEMU.
set -eu
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/procft/qemu/bookworm-backports
BIN=$CACHE/root/usr/bin/qemu-system-x86_64

if [ ! -x "$BIN" ]; then
	grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || {
		echo "qemu-newer.sh: only for Debian bookworm hosts" >&2
		exit 1
	}
	mkdir -p "$CACHE/lists/partial" "$CACHE/cache/archives/partial"
	rm -rf "$CACHE/debs" "$CACHE/new"
	mkdir -p "$CACHE/debs" "$CACHE/new"
	echo "deb http://deb.debian.org/debian bookworm-backports main" > "$CACHE/sources.list"
	# A private package list and cache: the system's sources and packages
	# stay as they are.
	set -- -o "Dir::Etc::sourcelist=$CACHE/sources.list" -o Dir::Etc::sourceparts=- \
		-o "Dir::State::Lists=$CACHE/lists" -o "Dir::Cache=$CACHE/cache" \
		-o "APT::Sandbox::User=$(id -un)"
	apt-get "$@" -qq update >&2
	version=$(apt-cache "$@" show qemu-system-x86/bookworm-backports |
		sed -n 's/^Version: //p' | head -1)
	[ -n "$version" ] || {
		echo "qemu-newer.sh: no qemu-system-x86 in bookworm-backports" >&2
		exit 1
	}
	(cd "$CACHE/debs" && apt-get "$@" -qq download \
		"qemu-system-x86=$version" "qemu-system-common=$version" \
		"qemu-system-data=$version" >&2)
	for deb in "$CACHE"/debs/*.deb; do
		dpkg -x "$deb" "$CACHE/new"
	done
	# Kept only once it runs here: a failed fetch is tried again next time.
	if ldd "$CACHE/new/usr/bin/qemu-system-x86_64" | grep 'not found' >&2 ||
		! "$CACHE/new/usr/bin/qemu-system-x86_64" --version > /dev/null; then
		echo "qemu-newer.sh: QEMU $version does not run on this host" >&2
		exit 1
	fi
	rm -rf "$CACHE/root" "$CACHE/debs"
	mv "$CACHE/new" "$CACHE/root"
	echo "$version" > "$CACHE/version"
fi
echo "$BIN"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Fetches Debian's bookworm-backports QEMU (10.0) into the cache, without
# installing it, and prints the path of its qemu-system-x86_64: for the
# benchmark (PROCFT_QEMU=$(scripts/qemu-newer.sh) make bench).
#
# Why: bookworm's QEMU 7.2 under -icount with two vCPUs now and then
# leaves a halted vCPU asleep with an interrupt pending, for seconds or
# for good (bench/results/vcpu-stalls.txt). The tests do not use -icount
# and keep the system's QEMU.
#
# Only the three QEMU packages are unpacked; the libraries they need are
# bookworm's own (the backport is built against them), and the firmware
# is the system's (seabios, ipxe-qemu, installed with qemu-system-x86).
set -eu
VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/procft/qemu/$(echo "$VERSION" | tr ':~+' '___')
BIN=$CACHE/root/usr/bin/qemu-system-x86_64

if [ ! -x "$BIN" ]; then
	grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || {
		echo "qemu-newer.sh: only for Debian bookworm hosts" >&2
		exit 1
	}
	mkdir -p "$CACHE/lists/partial" "$CACHE/debs"
	echo "deb http://deb.debian.org/debian bookworm-backports main" > "$CACHE/sources.list"
	# A private package list: the system's sources and packages stay as
	# they are.
	set -- -o "Dir::Etc::sourcelist=$CACHE/sources.list" -o Dir::Etc::sourceparts=- \
		-o "Dir::State::Lists=$CACHE/lists" -o APT::Sandbox::User=root
	apt-get "$@" -qq update >&2
	(cd "$CACHE/debs" && apt-get "$@" -qq download \
		"qemu-system-x86=$VERSION" "qemu-system-common=$VERSION" "qemu-system-data=$VERSION" >&2)
	for deb in "$CACHE"/debs/*.deb; do
		dpkg -x "$deb" "$CACHE/root"
	done
	if ldd "$BIN" | grep -q 'not found'; then
		echo "qemu-newer.sh: libraries missing for $BIN:" >&2
		ldd "$BIN" | grep 'not found' >&2
		exit 1
	fi
fi
echo "$BIN"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Proves dkms.conf: `dkms add` and `dkms build` of procft against the kernel
# build tree KDIR (dkms's --kernelsourcedir, its release as -k), in private
# dkms and source trees under build/dkms (nothing of the host's own dkms
# state is touched). Leaves the module at build/dkms/procft.ko and the
# kernel it is for in build/dkms/kdir: the test VM of that kernel loads it
# (selftests/dkms_load.sh).
# Usage: dkms-check.sh KDIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdir=$1
command -v dkms >/dev/null || die "dkms is not installed (scripts/setup-host.sh installs it)"
kver=$(cat "$kdir/include/config/kernel.release")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$PROCFT_ROOT/dkms.conf")
D=$PROCFT_ROOT/build/dkms
rm -rf "$D"
# The source tree as a distribution package would ship it: the module's
# sources, dkms.conf and its build helper.
src=$D/src/procft-$ver
mkdir -p "$src/scripts" "$src/rust" "$D/tree"
cp "$PROCFT_ROOT"/{Kbuild,dkms.conf} "$src/"
(cd "$PROCFT_ROOT" && find rust \( -name '*.rs' -o -name '*.c' \) -exec cp --parents {} "$src/" \;)
(cd "$PROCFT_ROOT" && find include -name '*.h' -exec cp --parents {} "$src/" \;)
cp "$PROCFT_ROOT/scripts/dkms-make.sh" "$src/scripts/"
trees=(--sourcetree "$D/src" --dkmstree "$D/tree")
dkms add -m procft -v "$ver" "${trees[@]}" >"$D/add.log" 2>&1 ||
	{ cat "$D/add.log"; die "dkms add failed"; }
# BINDGEN as for the test kernel (dkms-make.sh would also find it).
if ! BINDGEN=$BINDGEN dkms build -m procft -v "$ver" -k "$kver" \
	--kernelsourcedir "$kdir" "${trees[@]}" >"$D/build.log" 2>&1; then
	cat "$D/build.log"
	cat "$D/tree/procft/$ver/build/make.log" 2>/dev/null || true
	die "dkms build failed"
fi
ko=$(find "$D/tree/procft/$ver/$kver" -name 'procft.ko*' | head -1)
[ -n "$ko" ] || die "dkms build left no procft.ko in $D/tree"
case "$ko" in
*.ko) cp "$ko" "$D/procft.ko" ;;
*.xz) xz -dc "$ko" >"$D/procft.ko" ;;
*.zst) zstd -qdc "$ko" >"$D/procft.ko" ;;
*.gz) gzip -dc "$ko" >"$D/procft.ko" ;;
*) die "unknown module compression: $ko" ;;
esac
log "dkms build of procft/$ver for $kver: $(dkms status -m procft "${trees[@]}" 2>/dev/null | head -1)"
echo "$kdir" >"$D/kdir"

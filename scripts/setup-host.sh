#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what building and testing procft needs on a Debian 12 host.
# Idempotent: prints what it installs and does nothing when all is there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev bc bison flex libelf-dev
      libssl-dev cpio kmod rsync xz-utils qemu-system-x86 busybox-static
      e2fsprogs rustc-web rust-web-src rust-web-clippy libc6-dev gcc make
      python3 python3.11 perl criu sqlite3 lighttpd groff-base bsdextrautils
      dkms apache2-utils python3-docutils redis-server redis-tools
      memcached libmemcached-tools)

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
# rustc-web must be new enough for the kernel (>= 1.85) and for the
# bookworm-security version that ships the matching library source.
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d "$RUST_LIB_SRC/core" ] || die "rust-web-src did not provide $RUST_LIB_SRC"

if ! [ -x "$BINDGEN" ] || ! "$BINDGEN" --version | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION into $PROCFT_CACHE/tools"
	cargo install --quiet --locked --root "$PROCFT_CACHE/tools" \
		--version "$BINDGEN_VERSION" bindgen-cli
fi
log "host toolchain ready ($("$KRUSTC" --version), $("$BINDGEN" --version))"

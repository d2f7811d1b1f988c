#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Builds (or cleans) procft.ko in the current directory for the kernel
# whose build tree is KDIR, with the tools that kernel was built with, as
# its .config records them: the clang/LLVM version (LLVM=-<major> when
# clang-<major> is installed, else LLVM=1) and the rustc whose
# `rustc --version` is the kernel's CONFIG_RUSTC_VERSION_TEXT (a module's
# Rust metadata must come from the very compiler of the kernel's), with
# that rustc's rustdoc and library source, and the bindgen of
# CONFIG_BINDGEN_VERSION_TEXT. RUSTC=, RUSTDOC=, BINDGEN=, RUST_LIB_SRC=
# and LLVM= in the environment take precedence. Called by dkms.conf.
# Usage: dkms-make.sh KDIR modules|clean
set -eu
kdir=$1
target=$2
cfg=$kdir/.config
die() { echo "dkms-make.sh: $*" >&2; exit 1; }
[ -r "$cfg" ] || die "$kdir has no .config: not a kernel build tree"
conf() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$cfg"; }
[ "$(conf CONFIG_RUST)" = y ] || die "$kdir: the kernel has no CONFIG_RUST=y; procft needs a Rust-enabled kernel"

if [ -z "${LLVM:-}" ] && [ "$(conf CONFIG_CC_IS_CLANG)" = y ]; then
	major=$(($(conf CONFIG_CLANG_VERSION) / 10000))
	if command -v "clang-$major" >/dev/null; then LLVM=-$major; else LLVM=1; fi
fi

# The first candidate that reports the wanted version.
pick() {
	want=$1
	shift
	for c in "$@"; do
		[ -n "$c" ] && [ -x "$c" ] && [ "$("$c" --version 2>/dev/null | head -1)" = "$want" ] &&
			{ echo "$c"; return; }
	done
}
rustc_want=$(conf CONFIG_RUSTC_VERSION_TEXT)
if [ -z "${RUSTC:-}" ]; then
	RUSTC=$(pick "$rustc_want" /usr/bin/rustc "$(command -v rustc || true)" \
		/usr/local/bin/rustc "$HOME/.cargo/bin/rustc")
	[ -n "$RUSTC" ] || die "no rustc reports '$rustc_want' (the kernel's compiler); set RUSTC="
fi
RUSTDOC=${RUSTDOC:-$(dirname "$RUSTC")/rustdoc}
RUST_LIB_SRC=${RUST_LIB_SRC:-$("$RUSTC" --print sysroot)/lib/rustlib/src/rust/library}
bindgen_want=$(conf CONFIG_BINDGEN_VERSION_TEXT)
if [ -z "${BINDGEN:-}" ]; then
	BINDGEN=$(pick "$bindgen_want" "$(command -v bindgen || true)" /usr/local/bin/bindgen \
		"$HOME/.cargo/bin/bindgen" "${XDG_CACHE_HOME:-$HOME/.cache}/procft/tools/bin/bindgen")
	BINDGEN=${BINDGEN:-bindgen}
fi
set -x
exec make -C "$kdir" M="$PWD" ${LLVM:+LLVM=$LLVM} RUSTC="$RUSTC" RUSTDOC="$RUSTDOC" \
	BINDGEN="$BINDGEN" RUST_LIB_SRC="$RUST_LIB_SRC" "$target"

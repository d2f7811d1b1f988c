# SPDX-License-Identifier: GPL-2.0
# Shared settings for procft's scripts.  Sourced, not run.

PROCFT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything expensive lives outside the repository so a clean checkout can
# reuse it; delete this directory to rebuild from nothing.
PROCFT_CACHE=${PROCFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/procft}
KVER_SERIES=7.3
LLVM_SUFFIX=-19
# Debian's rustc-web: rustup's toolchain has no rust-src, which the kernel
# needs to build `core` itself.
KRUSTC=/usr/bin/rustc
KRUSTDOC=/usr/bin/rustdoc
RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library
BINDGEN_VERSION=0.73.2
BINDGEN=$PROCFT_CACHE/tools/bin/bindgen

log() { printf '[procft] %s\n' "$*" >&2; }
die() { printf '[procft] error: %s\n' "$*" >&2; exit 1; }

kmake_vars() {
	echo "LLVM=$LLVM_SUFFIX RUSTC=$KRUSTC RUSTDOC=$KRUSTDOC BINDGEN=$BINDGEN RUST_LIB_SRC=$RUST_LIB_SRC"
}

# The config fragments of a kernel variant, in merge order: the test
# kernel (no variant) has kernel/procft.config and kernel/profile.config
# (the function tracer, for make profile); the debug kernel (`debug`) has
# kernel/debug.config on top of kernel/procft.config.
kernel_fragments() {
	echo "$PROCFT_ROOT/kernel/procft.config"
	case "${1:-}" in
	"") echo "$PROCFT_ROOT/kernel/profile.config" ;;
	debug) echo "$PROCFT_ROOT/kernel/debug.config" ;;
	*) die "unknown kernel variant '$1' (known: debug)" ;;
	esac
}

# The kernel build is keyed by the kernel source version, the config
# fragments, the patches and the Rust compiler (a module's .rmeta must come
# from the same rustc as the kernel's).
kernel_key() {
	local srcver=$1 variant=${2:-} f
	{
		echo "$srcver"
		while IFS= read -r f; do
			cat "$f"
		done < <(kernel_fragments "$variant")
		cat "$PROCFT_ROOT"/kernel/patches/*.patch 2>/dev/null
		"$KRUSTC" --version 2>/dev/null
		echo "llvm$LLVM_SUFFIX bindgen$BINDGEN_VERSION"
	} | sha256sum | cut -c1-16
}

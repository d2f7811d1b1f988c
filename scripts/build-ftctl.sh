#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build tools/ftctl as a static binary (it runs in the test VM's initramfs)
# and run its unit tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PROCFT_ROOT/tools/ftctl"
target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=$PROCFT_ROOT/build/ftctl
cargo test --quiet --release --target "$target" >&2
RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --quiet --release --target "$target"
install -D -m 0755 "$CARGO_TARGET_DIR/$target/release/ftctl" "$PROCFT_ROOT/build/bin/ftctl"
# A static(-pie) binary has no program interpreter.
if readelf -l "$PROCFT_ROOT/build/bin/ftctl" | grep -q INTERP; then
	die "ftctl is not statically linked"
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build tools/ftctl as a static binary (it runs in the test VM's initramfs)
# and run its unit tests; then its man pages and shell completions
# (build/man, build/completions), written by ftctl-gen from the same
# command-line definition, and check them (scripts/check-man.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PROCFT_ROOT/tools/ftctl"
target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=$PROCFT_ROOT/build/ftctl
cargo test --quiet --release --locked --target "$target" >&2
RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --quiet --release --locked --target "$target"
install -D -m 0755 "$CARGO_TARGET_DIR/$target/release/ftctl" "$PROCFT_ROOT/build/bin/ftctl"
# A static(-pie) binary has no program interpreter.
if readelf -l "$PROCFT_ROOT/build/bin/ftctl" | grep -q INTERP; then
	die "ftctl is not statically linked"
fi
# ftctl-gen is a host tool with the generators' crates; ftctl itself
# does not link them.
rm -rf "$PROCFT_ROOT/build/man" "$PROCFT_ROOT/build/completions"
CARGO_TARGET_DIR=$PROCFT_ROOT/build/ftctl-gen \
	cargo run --quiet --release --locked --features gen --bin ftctl-gen -- \
	"$PROCFT_ROOT/build/man" "$PROCFT_ROOT/build/completions"
install -m 0644 "$PROCFT_ROOT/Documentation/man/procft.4" "$PROCFT_ROOT/build/man/procft.4"
"$PROCFT_ROOT/scripts/check-man.sh"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Static checks: rustfmt on the module and ftctl, clippy (the kernel's
# CLIPPY=1 build, with the clippy matching the kernel's rustc) and
# checkpatch on the C shim, the module's layering (scripts/crate-graph.py).
# Any finding fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KDIR=$1
cd "$PROCFT_ROOT"
fail=0

log "rustfmt"
rustfmt --check --edition 2021 --config-path .rustfmt.toml rust/procft_main.rs || fail=1
(cd tools/ftctl && cargo fmt --check) || fail=1

# Clippy over the module, built with the make variables given (the crate
# is rebuilt, so that clippy sees it).
clippy_module() {
	rm -f rust/procft_main.o
	# shellcheck disable=SC2046
	out=$(make -s -C "$KDIR" M="$PROCFT_ROOT" $(kmake_vars) CLIPPY=1 "$@" \
		CLIPPY_DRIVER=/usr/bin/clippy-driver modules 2>&1) || { echo "$out"; fail=1; }
	if grep -qE '^(warning|error)' <<<"$out"; then
		echo "$out"
		fail=1
	fi
}

log "clippy (module)"
clippy_module

log "clippy (module, PROCFT_PROFILE=1: the profiling build's code too)"
clippy_module PROCFT_PROFILE=1
# Back to the normal build.
rm -f rust/procft_main.o rust/procft_shim.o
make -s -C "$KDIR" M="$PROCFT_ROOT" $(kmake_vars) modules >/dev/null

log "clippy (ftctl)"
(cd tools/ftctl && CARGO_TARGET_DIR=$PROCFT_ROOT/build/ftctl-clippy \
	cargo clippy --quiet --release --all-targets --features gen -- -D warnings) || fail=1

log "layers (no cycle in the use crate:: graph)"
scripts/crate-graph.py || fail=1

log "documentation (docutils)"
scripts/check-rst.py || fail=1

log "system call table"
scripts/check-syscalls.py "$KDIR" || fail=1

log "bench chart (bench/svg.py on the recorded results)"
for f in bench/results/bench-*.txt; do
	bench/svg.py "$f" "$PROCFT_ROOT/build/lint-bench.svg" || fail=1
done

# RCU_TASKS_TRACE is ignored: checkpatch keeps Tasks Trace RCU to BPF and
# RCU, but the sys_enter/sys_exit tracepoints and the kernel's system-call
# hook (kernel/patches/0003) run procft's handlers inside a Tasks Trace RCU
# read section, so what a handler may still hold (a group, through its
# role) is freed after that grace period (procft_defer() in the shim,
# its only use). ENOSYS is ignored: ft_join_race's seccomp filter makes
# clone3() fail with it on purpose, as container runtimes' default
# profiles do.
log "checkpatch (C shim and headers)"
"$KDIR/scripts/checkpatch.pl" --no-tree --quiet --show-types --ignore RCU_TASKS_TRACE,ENOSYS -f \
	rust/procft_shim.c include/procft_shim.h include/uapi/linux/procft.h \
	selftests/*.c selftests/*.h bench/*.c || fail=1

[ $fail = 0 ] && log "lint clean"
exit $fail

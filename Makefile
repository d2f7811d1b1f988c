# SPDX-License-Identifier: GPL-2.0
#
# procft top-level Makefile.
#
#   make check   set up everything on a fresh Debian 12 machine, boot the
#                test VM and run every test (non-zero exit on any failure)
#   make run     same set-up, then the demo in the test VM
#   make soak    the fuzzer (selftests/ft_fuzz.c) alone in the test VM for
#                PROCFT_FUZZ_SECS seconds (default 900; PROCFT_FUZZ_SEED
#                replays a seed)
#   make module  build procft.ko (KDIR=<kernel build dir> to use your own
#                Rust-enabled 7.x kernel; default: the cached test kernel)
#
# The module itself follows the out-of-tree conventions:
#   make -C $KDIR M=$PWD modules
# (Kbuild holds the module's object list).

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD := $(ROOT)/build
CACHE ?= $(or $(PROCFT_CACHE),$(HOME)/.cache/procft)
export PROCFT_CACHE := $(CACHE)

# Tool variables for building against the cached test kernel (Debian's
# clang-19 and rustc-web; see scripts/lib.sh).  Override them with KDIR.
KMAKE ?= LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
	BINDGEN=$(CACHE)/tools/bin/bindgen \
	RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library

.PHONY: all setup kernel module ftctl selftests bench lint check soak run fmt clean

all: module ftctl selftests

setup:
	@scripts/setup-host.sh

# The kernel build directory, resolved once (building it if needed).
$(BUILD)/kdir: setup FORCE
	@mkdir -p $(BUILD)
	@if [ -n "$(KDIR)" ]; then echo "$(KDIR)"; else scripts/build-kernel.sh; fi > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

kernel: $(BUILD)/kdir

module: $(BUILD)/kdir
	$(MAKE) -C "$$(cat $(BUILD)/kdir)" M=$(ROOT) $(KMAKE) modules

ftctl: setup
	@scripts/build-ftctl.sh

selftests: setup
	$(MAKE) -C selftests OUT=$(BUILD)/selftests

lint: module ftctl
	scripts/lint.sh "$$(cat $(BUILD)/kdir)"

check: module ftctl selftests lint
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" test

soak: module ftctl selftests
	PROCFT_TESTS=ft_fuzz PROCFT_FUZZ_SECS=$${PROCFT_FUZZ_SECS:-900} \
		scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" test

run: module ftctl selftests
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" demo

# Benchmarks, printed as ratios to an unprotected run in the same VM.
bench: module ftctl selftests
	$(MAKE) -C bench OUT=$(BUILD)/bench
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --quiet bench
	@grep '^BENCH' $(BUILD)/vm/serial.log | sed 's/^BENCH //' 

fmt:
	rustfmt --edition 2021 --config-path $(ROOT)/.rustfmt.toml rust/procft_main.rs
	cd tools/ftctl && cargo fmt

clean:
	-[ -f $(BUILD)/kdir ] && $(MAKE) -C "$$(cat $(BUILD)/kdir)" M=$(ROOT) clean
	rm -rf $(BUILD)
	rm -f procft.ko

FORCE:

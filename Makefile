# SPDX-License-Identifier: GPL-2.0
#
# procft top-level Makefile.
#
#   make check   set up everything on a fresh Debian 12 machine, boot the
#                test VM and run every test (non-zero exit on any failure)
#   make check-debug
#                the same suite on the debug test kernel (lockdep, KASAN,
#                debug objects, list debugging, KFENCE); any report fails
#                (KDIR_DEBUG=<debug kernel build dir> to use your own)
#   make run     same set-up, then the demo in the test VM
#   make bench   the benchmarks in the test VM (bench/bench.sh: ratios to
#                the same workloads without procft.ko, memory, recovery)
#   make profile per-call cost breakdown (function_graph, then procft's
#                own sections in instructions) of getppid() and a 4 KiB
#                pipe write+read at levels 0, 1 and 2
#   make soak    the long pass of the machine-check tests on real programs
#   make fuzz    the fuzzer (selftests/ft_fuzz.c) alone in the test VM for
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

.PHONY: all setup kernel module ftctl selftests bench profile lint dkms check run soak fuzz fmt clean \
	kernel-debug module-debug check-debug

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

# `dkms build` of dkms.conf against the same kernel; the VM loads its result.
dkms: $(BUILD)/kdir
	scripts/dkms-check.sh "$$(cat $(BUILD)/kdir)"

# Then, unless PROCFT_TESTS picks tests, the core tests once more with
# system calls from the sys_enter/sys_exit tracepoints and promotion by
# copying pages (the paths of a kernel without kernel/patches/0003 and
# 0004), and the primary taking its group lock at every call.
check: module ftctl selftests lint dkms
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" test
ifeq ($(PROCFT_TESTS),)
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --out $(BUILD)/vm-tracepoints \
		--modargs "syscall_tracepoints=1 copy_promotion=1 lockfree_entry=0" --filter @fallback test
endif

# The debug test kernel (scripts/build-kernel.sh debug) and procft.ko built
# for it: module objects belong to one kernel, so it is built from a copy
# of the module's sources in build/debug/src (Kbuild's MO= refuses a
# source tree that holds a build, as the tree does after `make module`).
DEBUG := $(BUILD)/debug
MODULE_SRCS := Kbuild $(wildcard rust/*.rs rust/*/*.rs rust/*.c) $(shell find include -name '*.h')
# Copies the module's sources into directory $(1), keeping their times (a
# build there is then incremental).
copy-module-srcs = for f in $(MODULE_SRCS); do \
		mkdir -p $(1)/$$(dirname $$f) && cp -pu $$f $(1)/$$f || exit 1; \
	done

$(DEBUG)/kdir: setup FORCE
	@mkdir -p $(DEBUG)
	@if [ -n "$(KDIR_DEBUG)" ]; then echo "$(KDIR_DEBUG)"; \
		else scripts/build-kernel.sh debug; fi > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

kernel-debug: $(DEBUG)/kdir

module-debug: $(DEBUG)/kdir
	@$(call copy-module-srcs,$(DEBUG)/src)
	$(MAKE) -C "$$(cat $(DEBUG)/kdir)" M=$(DEBUG)/src $(KMAKE) modules

# A real machine check switches lockdep off for the rest of the boot, so
# the suite runs in two boots: the tests without machine checks (lockdep
# must still be on at the end), then those with them.  PROCFT_TESTS=<...>
# runs one boot with just those.
# pci=noacpi: with lockdep and KASAN under TCG, the ACPI interpreter takes
# about 30 s to run QEMU's PCI routing method (_PRT), and on a loaded host
# it hits ACPICA's 30 s loop limit: the disk then gets no interrupt.  The
# BIOS's routing table serves as well.
DEBUG_VM = scripts/vm.py --kdir "$$(cat $(DEBUG)/kdir)" --module $(DEBUG)/src/procft.ko \
	--append pci=noacpi --timeout 3600

check-debug: module-debug ftctl selftests
ifeq ($(PROCFT_TESTS),)
	$(DEBUG_VM) --out $(DEBUG)/vm-nomce --filter @nomce --expect-lockdep test
	$(DEBUG_VM) --out $(DEBUG)/vm-mce --filter @mce test
else
	$(DEBUG_VM) --out $(DEBUG)/vm test
endif

fuzz: module ftctl selftests
	PROCFT_TESTS=ft_fuzz PROCFT_FUZZ_SECS=$${PROCFT_FUZZ_SECS:-900} \
		scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" test

run: module ftctl selftests
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" demo

# Benchmarks, printed as ratios to a run of the same workload in the same
# VM without procft.ko (bench/bench.sh loads it after that run), medians of
# PROCFT_BENCH_ROUNDS rounds; the table also goes to build/bench.txt.
PROCFT_BENCH_ROUNDS ?= 5
# The parts of bench/bench.sh to run, comma-separated: workloads, memory,
# recovery (default all three).
PROCFT_BENCH_PARTS ?= workloads,memory,recovery
# The workloads of that part, comma-separated (default all: getppid, rdtsc,
# pipe, fork, compute, sqlite, lighttpd).
PROCFT_BENCH_WORKLOADS ?=
# Guest time for the benchmarks: by default the instruction count (QEMU
# -icount, shift 0: one nanosecond per instruction, the vCPUs taking turns
# on one host thread), which the host's load and speed do not move; it
# counts instructions, not cache misses. PROCFT_BENCH_ICOUNT= (empty)
# measures wall-clock time instead.
PROCFT_BENCH_ICOUNT ?= 0
comma := ,
BENCH_CLOCK = $(if $(PROCFT_BENCH_ICOUNT),--icount $(PROCFT_BENCH_ICOUNT))
# More kernel command-line arguments for the benchmark VM. By default
# mce=recovery: the kernel then copies pages for copy-on-write with
# copy_mc_fragile() (8-byte moves) instead of rep movsb, which QEMU's TCG
# runs a byte per loop, 7x slower (bench strings: 750 ms against 110 ms
# for rep movsq at 256 MiB); on hardware with ERMS rep movsb is the fast
# one. Both copies are machine-check safe. PROCFT_BENCH_BOOT= measures with
# the kernel's default.
PROCFT_BENCH_BOOT ?= mce=recovery
# PROCFT_BENCH_WATCH=1: a real-time watcher on each vCPU beside every timed
# run, and a run during which the emulator stalled a vCPU is made again
# (bench/bench.sh, watch_start); the report then says whether any did. By
# default on, unless the benchmark falls back to the QEMU on the PATH
# because scripts/qemu-newer.sh failed (bookworm's QEMU 7.2: three of five
# boots with it hung, bench/results/vcpu-stalls.txt).
PROCFT_BENCH_WATCH ?=

# PROCFT_BENCH_QEMU: the emulator the benchmark runs on. By default, on a
# Debian bookworm host, bookworm-backports' QEMU 10, fetched into the cache
# (not installed) by scripts/qemu-newer.sh: bookworm's QEMU 7.2 leaves a
# halted vCPU asleep with an interrupt pending now and then under -icount
# with two vCPUs, for seconds or for good (bench/results/vcpu-stalls.txt).
# Elsewhere, or if that fails, the QEMU on the PATH. The tests keep the
# system's QEMU.
PROCFT_BENCH_QEMU ?=

bench: module ftctl selftests
	$(MAKE) -C bench OUT=$(BUILD)/bench
	@rc=0; load0=$$(cut -d' ' -f1-3 /proc/loadavg); \
	q="$(PROCFT_BENCH_QEMU)"; fallback=0; \
	[ -n "$$q" ] || q=$$(scripts/qemu-newer.sh) || { q=qemu-system-x86_64; fallback=1; }; \
	watch="$(PROCFT_BENCH_WATCH)"; [ -n "$$watch" ] || watch=$$((1 - fallback)); \
	PROCFT_QEMU="$$q" scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --quiet --timeout 7200 $(BENCH_CLOCK) \
		$(if $(PROCFT_MODARGS),--modargs "$(PROCFT_MODARGS)") \
		--append "benchrounds=$(PROCFT_BENCH_ROUNDS) benchparts=$(PROCFT_BENCH_PARTS) benchwatch=$$watch $(if $(PROCFT_BENCH_WORKLOADS),benchworkloads=$(PROCFT_BENCH_WORKLOADS)) $(PROCFT_BENCH_BOOT)" bench || rc=$$?; \
	{ grep '^BENCH' $(BUILD)/vm/serial.log | sed 's/^BENCH *//'; \
	  echo; echo "host: $$(nproc) CPUs, load average $$load0 before, $$(cut -d' ' -f1-3 /proc/loadavg) after"; \
	  echo "guest time: $(if $(PROCFT_BENCH_ICOUNT),instruction count (-icount shift=$(PROCFT_BENCH_ICOUNT)$(comma)sleep=off),wall clock)"; \
	  echo "guest boot: $(or $(PROCFT_BENCH_BOOT),the kernel's defaults)"; \
	  echo "emulator: $$("$$q" --version | head -1)"; \
	} | tee $(BUILD)/bench.txt; \
	$(if $(findstring workloads,$(PROCFT_BENCH_PARTS)),bench/svg.py $(BUILD)/bench.txt $(BUILD)/bench.svg && echo "chart: $(BUILD)/bench.svg";) \
	exit $$rc

# Per-call cost breakdown of getppid() and a 4 KiB pipe write+read at
# levels 0 (procft loaded), 1 and 2: function_graph traces taken in the VM
# (bench/profile.sh), summed up by bench/profile.py into build/profile.txt.
#
# Then the instructions each section of procft's call path takes per call
# (rust/profile.rs), from a profiling build of the module (PROCFT_PROFILE=1,
# built from a copy of its sources in build/profile-module) on one vCPU under
# -icount, so the time-stamp counter counts the measured task's
# instructions only; into build/profile-sections.txt.
profile: module ftctl selftests
	$(MAKE) -C bench OUT=$(BUILD)/bench
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --quiet --timeout 3600 $(BENCH_CLOCK) profile
	@rm -rf $(BUILD)/profile
	@debugfs -R "rdump /profile $(BUILD)" $(BUILD)/vm/disk.ext4 > /dev/null 2>&1; \
	[ -d $(BUILD)/profile ] || { echo "no traces on the VM disk"; exit 1; }
	bench/profile.py $(BUILD)/profile | tee $(BUILD)/profile.txt
	@$(call copy-module-srcs,$(BUILD)/profile-module)
	$(MAKE) -C "$$(cat $(BUILD)/kdir)" M=$(BUILD)/profile-module $(KMAKE) PROCFT_PROFILE=1 modules
	PROCFT_SMP=1 scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --module $(BUILD)/profile-module/procft.ko \
		--quiet --timeout 3600 --icount 0 --append profilesections=1 profile
	@grep -a '^SECTIONS' $(BUILD)/vm/serial.log | sed 's/^SECTIONS //' | tee $(BUILD)/profile-sections.txt

# The long run of the machine-check tests on real programs: at least
# PROCFT_SOAK (default 500) machine checks into sqlite3, lighttpd and
# python3.11 at level 2 (selftests/ft_real.c; `make check` runs a short one).
PROCFT_SOAK ?= 500
soak: module ftctl selftests
	@printf '#!/bin/sh\nexec /selftests/soak.sh %s\n' "$(PROCFT_SOAK)" > $(BUILD)/soak-run.sh
	scripts/vm.py --kdir "$$(cat $(BUILD)/kdir)" --timeout 14400 script --script $(BUILD)/soak-run.sh

fmt:
	rustfmt --edition 2021 --config-path $(ROOT)/.rustfmt.toml rust/procft_main.rs
	cd tools/ftctl && cargo fmt

clean:
	-[ -f $(BUILD)/kdir ] && $(MAKE) -C "$$(cat $(BUILD)/kdir)" M=$(ROOT) clean
	rm -rf $(BUILD)
	rm -f procft.ko

FORCE:

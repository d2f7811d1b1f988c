#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Per-call cost breakdown, in the test VM (scripts/vm.py profile): the
# function_graph tracer on every system call (what do_syscall_64 calls:
# the sys_enter/sys_exit probes, the call, task_work and signal work on
# the way out) of one benchmark process and its duplicates, for
# getppid() and a 4 KiB pipe write+read at level 0 (procft loaded, the
# process unprotected), 1 and 2.  Only the calls between the process's
# "procft-profile begin/end" marks count.  The raw traces go to the ext4
# disk (/profile), which `make profile` reads back on the host and sums
# up with bench/profile.py.
#
# function_graph costs a lot per traced function (more under TCG), so the
# absolute times are inflated, most where the most functions run: read
# the shares and counts, and compare runs of the same kind.
#
# With profilesections=1 on the kernel command line (the second run of
# `make profile`: a profiling build of procft.ko, PROCFT_PROFILE=1, one
# vCPU, -icount) it instead runs each workload at levels 1 and 2 and
# prints the instructions each section of procft's call path took per call
# (rust/profile.rs), as the module reports them when it is unloaded.
B=/bench/bench
T=/sys/kernel/tracing
OUT=/mnt/disk/profile

die() {
	echo "PROFILE FAILED: $*"
	exit 1
}

if [ "$profilesections" = 1 ]; then
	for w in "getppid 20000" "pipe 2000"; do
		for l in 1 2; do
			insmod /lib/modules/procft.ko || die "insmod procft.ko"
			grep -q procft_rs_profile_hook /proc/kallsyms ||
				die "procft.ko is not a profiling build (PROCFT_PROFILE=1)"
			chmod 0666 /dev/procft
			dmesg -c > /dev/null
			ftctl run -l $l -- $B $w > /dev/null || die "$w at level $l"
			rmmod procft || die "rmmod procft"
			echo "SECTIONS ${w%% *}, level $l ($(echo $w | cut -d' ' -f2) operations):"
			dmesg -c | sed -n 's/.*procft: profile: /SECTIONS   /p'
		done
	done
	echo "PROFILE done"
	exit 0
fi

mountpoint -q $T || mount -t tracefs nodev $T || die "no tracefs"
grep -qw function_graph $T/available_tracers || die "the kernel has no function_graph tracer"
insmod /lib/modules/procft.ko || die "insmod procft.ko"
chmod 0666 /dev/procft
mkdir -p $OUT || die "no ext4 disk"

echo 0 > $T/tracing_on
echo function_graph > $T/current_tracer || die "function_graph"
# do_syscall_64() and the entry code inlined in it are noinstr: the graphs
# start at what it calls, where the tracer can see them: the tracepoint
# iterators and procft's probes (sys_enter/sys_exit), the call itself
# (__x64_sys_*), and the work on the way out (task_work, signals, a
# reschedule).
: > $T/set_graph_function
roots=""
# procft_sys_enter/exit: what the kernel's system-call hook calls
# (kernel/patches/0003), and what the tracepoint probes call without it.
for f in __traceiter_sys_enter __traceiter_sys_exit procft_probe_sys_enter procft_probe_sys_exit \
	procft_sys_enter procft_sys_exit '__x64_sys_*' task_work_run arch_do_signal_or_restart \
	schedule; do
	echo "$f" >> $T/set_graph_function 2>/dev/null && roots="$roots $f"
done
echo "PROFILE graph roots:$roots"
case "$roots" in
*procft_sys_enter*__x64_sys_* | *procft_probe_sys_enter*__x64_sys_*) ;;
*) die "cannot trace procft's entry and the calls (roots:$roots)" ;;
esac
echo 65536 > $T/buffer_size_kb
for o in funcgraph-proc funcgraph-tail function-fork; do
	echo 1 > $T/options/$o || die "option $o"
done
# Interrupts are not the call's; time asleep is not its cost either.
echo 0 > $T/options/funcgraph-irqs
echo 0 > $T/options/sleep-time

# $1 workload, $2 operations, $3 level.
profile() {
	echo > $T/trace
	echo 1 > $T/tracing_on
	if [ $3 = 0 ]; then
		sh -c "echo \$\$ > $T/set_ftrace_pid; BENCH_MARK=1 exec $B $1 $2" > /dev/null ||
			die "$1 at level $3"
	else
		sh -c "echo \$\$ > $T/set_ftrace_pid; BENCH_MARK=1 exec ftctl run -l $3 -- $B $1 $2" \
			> /dev/null || die "$1 at level $3"
	fi
	echo 0 > $T/tracing_on
	echo > $T/set_ftrace_pid
	f=$OUT/$1.l$3.txt
	cat $T/trace > $f
	grep -q "procft-profile end $2" $f || die "$1 at level $3: no end mark in the trace"
	grep -H 'overrun' $T/per_cpu/cpu*/stats | grep -v ' 0$' | sed 's/^/PROFILE overrun: /'
	echo "PROFILE $1 level $3: $(wc -l < $f) lines"
}

for l in 0 1 2; do
	profile getppid 200 $l
	profile pipe 100 $l
done
echo nop > $T/current_tracer
sync
echo "PROFILE done"

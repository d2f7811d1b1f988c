#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs every procft selftest in the test VM, kselftest style: one TAP line
# per test program, its own TAP output indented as comments.
# Usage: run_tests.sh [filter]
#   filter: a substring of the test names to run, or a group:
#   @nomce  every test that raises no real machine check
#   @mce    those that do (with module_load.sh first and leftovers.sh last)
#   @fallback  the core ones, for a second boot with the module's system
#           calls from the tracepoints and promotion by copying pages
#           (syscall_tracepoints=1 copy_promotion=1)
# A real machine check taints the kernel and switches lockdep off for the
# rest of the boot, so the debug kernel runs the suite as the two groups,
# one boot each (make check-debug).
cd "$(dirname "$0")"
TESTS="module_load.sh dkms_load.sh ft_join_race ft_interfaces ft_lifecycle ft_unprotected ft_refuse ft_replicas ft_numa ft_sync ft_threads ft_redis ft_memcached ft_signals ft_blocked ft_wake ft_stuck ft_equiv.sh mce_roundtrip mce_replica mce_primary mce_owner mce_inject ft_failover ft_takeover ft_respawn ft_wipeonfork ft_kernel_read ft_bounds ft_trace.sh ft_ctl.sh ft_soak ft_storm.sh ft_real ft_fuzz leftovers.sh"
# The tests that ask the host for a machine check (host_inject_mce()).
MCE_TESTS="ft_redis ft_memcached mce_roundtrip mce_replica mce_primary mce_owner mce_inject ft_bounds ft_soak ft_storm.sh ft_real ft_fuzz"
# The core of replication, failover and memory errors, again on the
# tracepoint path (make check's second boot).
FALLBACK_TESTS="module_load.sh ft_unprotected ft_replicas ft_sync ft_signals ft_blocked mce_replica mce_primary ft_failover ft_takeover ft_respawn leftovers.sh"
filter=$1
set --
for t in $TESTS; do
	case " $MCE_TESTS " in *" $t "*) mce=1 ;; *) mce=0 ;; esac
	case "$filter" in
	@nomce) [ $mce = 0 ] ;;
	@mce) [ $mce = 1 ] || [ "$t" = module_load.sh ] || [ "$t" = leftovers.sh ] ;;
	@fallback) case " $FALLBACK_TESTS " in *" $t "*) ;; *) false ;; esac ;;
	*) case "$t" in *"$filter"*) ;; *) false ;; esac ;;
	esac && set -- "$@" "$t"
done
echo "TAP version 13"
echo "1..$#"
n=0
rc=0
for t in "$@"; do
	n=$((n + 1))
	echo "# selftests: procft: $t"
	start=$(cut -d' ' -f1 /proc/uptime)
	# A hung test is killed and fails, instead of hanging the whole run.
	# The fuzzer runs for ftfuzz= seconds (kernel command line) if given.
	limit=600
	[ "$t" = ft_fuzz ] && limit=$((${ftfuzz:-75} + 600))
	timeout $limit ./$t > /tmp/$t.out 2>&1
	st=$?
	[ $st = 143 ] && echo "# $t: killed after $limit s" >> /tmp/$t.out
	end=$(cut -d' ' -f1 /proc/uptime)
	sed 's/^/# /' /tmp/$t.out
	# A test's own plan must match the results it printed.
	plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' /tmp/$t.out | head -1)
	ran=$(grep -cE '^(not )?ok [0-9]+' /tmp/$t.out)
	if [ $st = 0 ] && [ "$plan" != "$ran" ]; then
		echo "# $t: plan 1..$plan but $ran results"
		st=1
	fi
	if [ $st = 0 ]; then
		echo "ok $n selftests: procft: $t # ${start}s..${end}s"
	elif [ $st = 4 ]; then
		echo "ok $n selftests: procft: $t # SKIP"
	else
		echo "not ok $n selftests: procft: $t # exit=$st"
		rc=1
	fi
done
exit $rc

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# procft.ko loads and unloads cleanly, with protected processes present or
# not, and its in-kernel KUnit suites pass at load.
KO=/lib/modules/procft.ko
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi; }
check() { desc=$1; shift; if "$@" >/dev/null 2>&1; then ok 0 "$desc"; else ok 1 "$desc"; fi; }
loaded() { grep -q '^procft ' /proc/modules; }
unloaded() { ! loaded && [ ! -e /dev/procft ] && [ ! -e /proc/procft ]; }
kunit_ok() {
	r=/sys/kernel/debug/kunit/$1/results
	[ -r "$r" ] || return 1
	grep -q "^ok [0-9]* $1" "$r" && ! grep -q "not ok" "$r"
}

echo "TAP version 13"
echo "1..21"

loaded && rmmod procft
check "unloads when idle" unloaded
check "/proc/self/ft_level reads 0 without the module" sh -c '[ "$(cat /proc/self/ft_level)" = 0 ]'
check "writing /proc/self/ft_level without the module fails (ENODEV)" \
	sh -c '! echo 1 > /proc/self/ft_level && echo 1 2>&1 > /proc/self/ft_level | grep -q "No such device"'
check "loads" insmod $KO $PROCFT_MODARGS
check "/dev/procft and /proc/procft appear" sh -c '[ -c /dev/procft ] && [ -r /proc/procft ]'
chmod 0666 /dev/procft
for suite in procft_control procft_procfs procft_syscalls procft_ring procft_vote procft_hash \
	procft_poll procft_resync; do
	if kunit_ok $suite; then ok 0 "KUnit suite $suite passes"; else
		ok 1 "KUnit suite $suite passes"
		sed 's/^/# /' /sys/kernel/debug/kunit/$suite/results 2>/dev/null
	fi
done

# Unload with protected processes present: protection ends, they live on.
sleep 1000 & s1=$!
sleep 1000 & s2=$!
ftctl set $s1 2 && ftctl set $s2 4
# A process making system calls gets its duplicates.
sh -c 'while true; do usleep 10000; done' & s3=$!
ftctl set $s3 2
i=0
while [ $i -lt 3000 ] && ! grep -q "^pid=$s3 .*duplicates=2/2" /proc/procft; do usleep 10000; i=$((i + 1)); done
dups=$(sed -n "s/^pid=$s3 .*replicas=$s3,\([0-9,]*\) .*/\1/p" /proc/procft | tr , ' ')
check "three processes protected, one with two duplicates ($dups)" \
	sh -c "[ \$(wc -l < /proc/procft) = 3 ] && [ \$(echo $dups | wc -w) = 2 ]"
check "unloads with protected processes and duplicates present" rmmod procft
check "they survive, unprotected" sh -c "kill -0 $s1 && kill -0 $s2 && kill -0 $s3 && [ \$(cat /proc/$s1/ft_level) = 0 ]"
gone=0
for d in $dups; do
	i=0
	while [ -e /proc/$d ] && [ $i -lt 200 ]; do usleep 10000; i=$((i + 1)); done
	[ -e /proc/$d ] && gone=1
done
ok $gone "the duplicates are gone"
i=0
cycle_ok=0
while [ $i -lt 20 ]; do
	insmod $KO $PROCFT_MODARGS || cycle_ok=1
	chmod 0666 /dev/procft
	ftctl set $s1 $((i % 4 + 1)) || cycle_ok=1
	[ "$(cat /proc/$s2/ft_level)" = 0 ] || cycle_ok=1
	rmmod procft || cycle_ok=1
	i=$((i + 1))
done
ok $cycle_ok "20 load/protect/unload cycles; nothing survives an unload"
# Unloading under load: protected processes in the middle of their calls,
# of procft's waits and of duplicate creations go on unprotected, their
# output whole (a call procft held back is made, not failed).
lines='i=0; while [ $i -lt 1500 ]; do echo "line $i"; i=$((i + 1)); done'
sh -c "$lines" > /tmp/lines.want
i=0
busy_ok=0
while [ $i -lt 8 ]; do
	insmod $KO $PROCFT_MODARGS || busy_ok=1
	chmod 0666 /dev/procft
	ftctl run -l 2 -- sh -c "$lines" > /tmp/lines.1 & w1=$!
	ftctl run -l 1 -- sh -c "$lines" > /tmp/lines.2 & w2=$!
	# Both protected and exec'd (ftctl's descriptor of /dev/procft, which
	# would keep the module busy, is closed on exec).
	j=0
	while [ $j -lt 500 ] && { [ "$(grep -c "^pid=\($w1\|$w2\) " /proc/procft)" != 2 ] ||
		[ "$(readlink /proc/$w1/exe)" != /bin/busybox ] ||
		[ "$(readlink /proc/$w2/exe)" != /bin/busybox ]; }; do
		usleep 2000
		j=$((j + 1))
	done
	usleep $((i % 6 * 30000))
	rmmod procft || busy_ok=1
	wait $w1 || busy_ok=1
	wait $w2 || busy_ok=1
	for f in /tmp/lines.1 /tmp/lines.2; do
		cmp -s /tmp/lines.want $f || { busy_ok=1; echo "# cycle $i: $f differs"; }
	done
	i=$((i + 1))
done
ok $busy_ok "8 unloads under load (levels 1 and 2): every process finishes with its whole output"
kill $s1 $s2 $s3
wait 2>/dev/null
# Unloading while a duplicate's re-creation is held back, its worker queued:
# signal handlers outrun the copy of the process's memory.
insmod $KO $PROCFT_MODARGS && chmod 0666 /dev/procft
"$(dirname "$0")"/ft_signals storm & s1=$!
i=0
while [ $i -lt 3000 ] && ! dmesg | grep -q "pid $s1: its duplicates are replaced faster"; do
	usleep 10000
	i=$((i + 1))
done
check "unloads while a re-creation is held back" sh -c "[ $i -lt 3000 ] && rmmod procft"
kill $s1
wait 2>/dev/null
# Fault injection is off unless asked for at load time.
insmod $KO $PROCFT_MODARGS && chmod 0666 /dev/procft
sleep 1000 & s1=$!
ftctl set $s1 1
check "PROCFT_IOC_FAIL is refused (EPERM) without fault_injection=1" \
	sh -c "! ftctl fail $s1 0 && ftctl fail $s1 0 2>&1 | grep -q 'not permitted'"
kill $s1
wait 2>/dev/null
rmmod procft
# The remaining tests drive failover through it.
insmod $KO $PROCFT_MODARGS fault_injection=1 && chmod 0666 /dev/procft
[ $fails = 0 ]

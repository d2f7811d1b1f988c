#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# procft's tracepoints (events/procft/ in tracefs) fire for a lost
# duplicate, its respawn and a promotion (driven by fault injection).
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi; }
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T 2>/dev/null

echo "TAP version 13"
echo "1..4"
events=$(ls $T/events/procft 2>/dev/null | grep -c '^procft_')
[ "$events" = 5 ]; ok $? "5 procft tracepoints in tracefs ($events)"

echo > $T/trace
echo 1 > $T/events/procft/enable
sh -c 'while :; do usleep 10000; done' & p=$!
ftctl set $p 1
i=0
while ! grep -q "^pid=$p .*duplicates=1/1" /proc/procft && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done
d=$(sed -n "s/^pid=$p .*replicas=$p,\([0-9]*\) .*/\1/p" /proc/procft)
ftctl fail $p 1
# The shell's SIGCHLD handler, when it runs outside a system-call return,
# also gets its duplicate re-created: more respawns may follow the first.
i=0
while ! grep -q "^pid=$p .*duplicates=1/1 .*respawns=[1-9]" /proc/procft && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done
ftctl fail $p 0
i=0
while ! grep -q "^pid=$p .*failovers=1" /proc/procft && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done
echo 0 > $T/events/procft/enable
kill $p
wait $p 2>/dev/null
grep -q "procft_replica_lost: pid=$p replica=$d\$" $T/trace
ok $? "procft_replica_lost names the process and the killed duplicate $d"
grep -q "procft_respawn: pid=$p replica=[0-9]*\$" $T/trace
ok $? "procft_respawn"
grep -q "procft_promotion: pid=$p from=[0-9]* cause=injected pages=[0-9]* us=[0-9]*\$" $T/trace
ok $? "procft_promotion with its cause, pages and time"
[ $fails = 0 ] || sed 's/^/# /' $T/trace | grep procft
echo > $T/trace
[ $fails = 0 ]

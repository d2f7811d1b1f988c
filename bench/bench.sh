#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# procft benchmarks, in the test VM: each workload at levels 0, 1 and 2,
# printed as time ratios to the unprotected run; then memory, respawn time
# (a duplicate killed until its replacement is on its own frames, level 1),
# page restore after an action-optional machine check on the primary's page
# (level 2, the primary waiting in usleep(): the early warning), promotion
# after the primary consumed poison (MADV_HWPOISON, level 1: its whole state
# taken from the duplicate), what a restart from scratch redoes, and a
# restore from a CRIU checkpoint.  Timings under TCG emulation: compare
# ratios, not absolute times.
B=/bench/bench
us() { sed -n 's/.*: \([0-9]*\) us.*/\1/p' | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
field() { sed -n "s/.*$2=\\([0-9]*\\).*/\\1/p" /proc/procft | head -1; }

# One timed run, in microseconds.
run1() {
	l=$1; shift
	if [ "$1" = gzip ]; then
		a=$(cut -d' ' -f1 /proc/uptime)
		ftctl run -l $l -- gzip -c /mnt/disk/text.bin > /dev/null
		b=$(cut -d' ' -f1 /proc/uptime)
		awk -v a=$a -v b=$b 'BEGIN { printf "%d\n", (b - a) * 1000000 }'
	else
		ftctl run -l $l -- $B "$@" | us
	fi
}
# The median of three runs (levels interleaved, so drift hits all alike).
median3() { sort -n | sed -n 2p; }

echo "BENCH workload | level 0 | level 1 | level 2 | ratio L1 | ratio L2"
for w in "compute 16" "getppid 20000" "pipe 2000" "gzip"; do
	: > /tmp/b0; : > /tmp/b1; : > /tmp/b2
	for rep in 1 2 3; do
		for l in 0 1 2; do
			run1 $l $w >> /tmp/b$l
		done
	done
	m0=$(median3 < /tmp/b0); m1=$(median3 < /tmp/b1); m2=$(median3 < /tmp/b2)
	name=$w; [ "$w" = gzip ] && name="gzip 64 MiB of text (busybox)"
	echo "BENCH $name | $((m0 / 1000)) ms | $((m1 / 1000)) ms | $((m2 / 1000)) ms | $(ratio $m1 $m0) | $(ratio $m2 $m0)"
done

echo "BENCH"
# Without procft: restore from a checkpoint taken by CRIU (criu dump, which
# stops the process, then criu restore), when criu is in the VM and works.
ms_since() { awk -v a="$1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
criu_restore() {
	command -v criu > /dev/null || { echo "no criu"; return; }
	# Its own session, no terminal: what criu dumps without --shell-job.
	setsid $B hold $1 > /tmp/hold.out 2> /dev/null < /dev/null & p=$!
	while ! grep -q ready /tmp/hold.out 2>/dev/null; do usleep 10000; done
	rm -rf /tmp/ck && mkdir -p /tmp/ck
	t=$(cut -d' ' -f1 /proc/uptime)
	if ! criu dump -t $p -D /tmp/ck -o dump.log 2> /dev/null; then
		kill $p; wait $p 2>/dev/null
		echo "criu dump failed: $(grep -m1 Error /tmp/ck/dump.log)"; return
	fi
	dump=$(ms_since $t)
	wait $p 2>/dev/null
	t=$(cut -d' ' -f1 /proc/uptime)
	if ! criu restore -D /tmp/ck -d -o restore.log 2> /dev/null; then
		echo "criu restore failed: $(grep -m1 Error /tmp/ck/restore.log)"; return
	fi
	restore=$(ms_since $t)
	# The restored process has its old pid and its memory: alive?
	if kill -0 $p 2>/dev/null; then
		kill $p
		echo "$restore ms (checkpoint took $dump ms) + the work since it"
	else
		echo "criu restore: process did not come back"
	fi
	rm -rf /tmp/ck
}

echo "BENCH resident size | RSS level 0 | RSS sum level 1 | RSS sum level 2 | respawn (L1) | page restore, AO (L2) | promotion, AR (L1) | restart from scratch | CRIU restore"
for mib in 1 16 256; do
	rss=""
	for l in 0 1 2; do
		$B hold $mib > /tmp/hold.out & p=$!
		while ! grep -q ready /tmp/hold.out 2>/dev/null; do usleep 10000; done
		[ $l -gt 0 ] && ftctl set $p $l
		i=0
		while [ $l -gt 0 ] && ! grep -q "^pid=$p .*duplicates=$l/$l" /proc/procft && [ $i -lt 3000 ]; do
			usleep 10000; i=$((i + 1))
		done
		total=0
		for r in $(sed -n "s/^pid=$p .*replicas=\\([0-9,]*\\) .*/\\1/p" /proc/procft | tr , ' ') $([ $l = 0 ] && echo $p); do
			kb=$(awk '/^VmRSS/ { print $2 }' /proc/$r/status)
			total=$((total + kb))
		done
		rss="$rss | $((total / 1024)) MiB"
		if [ $l = 1 ]; then
			d=$(sed -n "s/^pid=$p .*replicas=$p,\\([0-9]*\\) .*/\\1/p" /proc/procft)
			t0=$(cut -d' ' -f1 /proc/uptime)
			kill -9 $d
			while ! grep -q "^pid=$p .*duplicates=1/1 .*respawns=1" /proc/procft; do usleep 2000; done
			t1=$(cut -d' ' -f1 /proc/uptime)
			respawn=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%d ms", (b - a) * 1000 }')
		fi
		if [ $l = 2 ]; then
			addr=$(sed -n 's/ready //p' /tmp/hold.out)
			failover=$($B mce $p $addr | sed -n 's/restored after \([0-9]*\) us/\1/p')
			failover="$((failover / 1000)) ms"
		fi
		kill $p; wait $p 2>/dev/null
	done
	promote=$(ftctl run -l 1 -- $B promote $mib | sed -n 's/promoted after \([0-9]*\) us/\1/p')
	restart=$(run1 0 restart $mib)
	criu=$(criu_restore $mib)
	echo "BENCH $mib MiB$rss | $respawn | $failover | $((promote / 1000)) ms | $((restart / 1000)) ms + the lost work | $criu"
done

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs last: nothing the tests protected outlives them (no duplicate
# escaped its group, no record is left behind).
echo "TAP version 13"
echo "1..2"
# Killed duplicates die asynchronously: give them 10 seconds.
i=0
while :; do
	left=$(ps -o comm | grep -cE '^(ft_|mce_|exe$)')
	[ "$left" = 0 ] || [ $i -ge 100 ] && break
	usleep 100000
	i=$((i + 1))
done
if [ "$left" = 0 ]; then echo "ok 1 no test process or duplicate is left"; else
	echo "not ok 1 no test process or duplicate is left ($left)"; ps -o pid,ppid,stat,comm | sed 's/^/# /'; fi
if [ -z "$(cat /proc/procft)" ]; then echo "ok 2 /proc/procft is empty"; else
	echo "not ok 2 /proc/procft is empty"; sed 's/^/# /' /proc/procft; fi
[ "$left" = 0 ] && [ -z "$(cat /proc/procft)" ]

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The `make run` demo, inside the test VM.
set -e
say() { printf '\n=== %s\n' "$*"; }

say "procft is loaded: /dev/procft, /proc/procft, /proc/<pid>/ft_level"
ls -l /dev/procft /proc/procft
ftctl info

say "start a workload and protect it at level 2 (echo 2 > /proc/<pid>/ft_level)"
sh -c 'i=0; while [ $i -lt 1000 ]; do i=$((i+1)); sleep 1; done' &
w=$!
echo 2 > /proc/$w/ft_level
echo "pid $w: /proc/$w/ft_level = $(cat /proc/$w/ft_level)"

say "raise it to 3 with ftctl, read it back through the ioctl"
ftctl set $w 3
ftctl get $w
ftctl status $w

say "start a second process protected from its first instruction"
ftctl run -l 1 -- sleep 1000 &
sleep 1
say "/proc/procft (one line per protected process)"
cat /proc/procft
say "ftctl status --json"
ftctl status --json

say "bad input is refused and changes nothing"
echo 9 > /proc/$w/ft_level || true
ftctl set $w banana || true
ftctl set 2 1 || true
ftctl get $w

say "the workload exits; its record goes with it"
kill $w
wait $w 2>/dev/null || true
cat /proc/procft
say "not yet: duplicates are not created (level is recorded only); see README"

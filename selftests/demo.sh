#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The `make run` demo, inside the test VM.
say() { printf '\n=== %s\n' "$*"; }

say "procft is loaded: /dev/procft, /proc/procft, /proc/<pid>/ft_level"
ftctl info
say "a level is set like any /proc/<pid> knob, or with ftctl; bad input is refused"
sleep 1000 & s=$!
echo 2 > /proc/$s/ft_level && echo "echo 2 > /proc/$s/ft_level; cat: $(cat /proc/$s/ft_level)"
echo 9 > /proc/$s/ft_level
ftctl set $s banana 2>&1 | head -1
kill $s
/selftests/ft_demo

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
{
	/selftests/ft_demo
	echo $? > /tmp/demo.rc
} | tee /tmp/demo.out
rc=$(cat /tmp/demo.rc)

# The summary, from what the demo printed and procft's event log.
part2=$(sed -n '/^=== 2\./,/^=== 3\./p' /tmp/demo.out)
part3=$(sed -n '/^=== 3\./,$p' /tmp/demo.out)
start=$(echo "$part2" | sed -n 's/^  | start: pid \([0-9]*\)$/\1/p')
end=$(echo "$part2" | sed -n 's/^  | end: pid \([0-9]*\)$/\1/p')
mces=$(echo "$part2" | grep -c '^  >> machine check')
soft=$(echo "$part2" | grep -c '^  >> frame .* poisoned by software')
ev=$(ftctl events | grep " pid=$start ")
lost=$(echo "$ev" | grep -c ' event=duplicate_lost ')
promoted=$(echo "$ev" | grep -c ' event=promotion ')
restored=$(echo "$ev" | grep -c ' event=page_restored ')
yesno() { if [ "$1" = 0 ]; then echo yes; else echo NO; fi; }
say "summary"
echo "  errors raised on the protected run:  $((mces + soft)) ($mces machine checks, $soft poisoned by software)"
echo "  replicas lost:                       $lost duplicate(s), each replaced; primaries replaced by promotion: $promoted"
echo "  primary's pages restored from a duplicate: $restored"
[ -n "$start" ] && [ "$start" = "$end" ]
echo "  pid kept:                            $(yesno $?) ($start at start, ${end:-none} at end)"
echo "$part2" | grep -q 'is byte-identical to the reference'
echo "  output identical to the reference:   $(yesno $?)"
if echo "$part3" | grep -q 'killed by signal 7 (SIGBUS)'; then
	echo "  the same machine check, unprotected: killed it (SIGBUS)"
else
	echo "  the same machine check, unprotected: did NOT kill it"
fi
exit $rc

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Programs nobody here wrote (busybox applets) produce byte-identical
# output and exit status at levels 0, 1 and 2, with duplicates really
# created and no divergence.
D=/mnt/disk/data.bin
W=/tmp/equiv
mkdir -p $W
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi; }

set -- \
	"sha256sum $D" \
	"gzip -c $D | gunzip -c | md5sum" \
	"head -c 300000 $D | od -An -tx1 | sort | uniq -c | sort -rn | head -5" \
	"awk 'BEGIN { for (i = 0; i < 2000; i++) s += i * i; print s }'" \
	"i=0; while [ \$i -lt 50 ]; do echo \$i; i=\$((i + 1)); done | sort -n -r | tr 0-9 a-j | wc -c" \
	"ls -la /mnt/disk /selftests | wc -l; stat -c '%s %n' $D" \
	"cat /nonexistent; echo status \$?" \
	"sh -c 'exit 3'"

echo "TAP version 13"
echo "1..$(($# + 2))"
# The kernel log is counted from a mark, not by difference: a full log
# buffer (128 KiB; the debug kernel fills it by this test) drops old lines
# as new ones come, and a difference of counts then loses the ones dropped.
mark="ft_equiv: begin $$"
echo "$mark" > /dev/kmsg
since_mark() { dmesg | sed -n "/$mark/,\$p" | grep "$1"; }
for cmd in "$@"; do
	for l in 0 1 2; do
		ftctl run -l $l -- sh -c "$cmd" > $W/out.$l 2>&1
		echo $? >> $W/out.$l
	done
	if cmp -s $W/out.0 $W/out.1 && cmp -s $W/out.0 $W/out.2; then
		ok 0 "identical at levels 0, 1, 2: $cmd"
	else
		ok 1 "identical at levels 0, 1, 2: $cmd"
		for l in 0 1 2; do sed "s/^/# level $l: /" $W/out.$l | head -5; done
	fi
done
created=$(since_mark 'on its own frames' | wc -l)
[ $created -ge $((3 * $#)) ]; ok $? "duplicates were created and separated ($created)"
diverged=$(since_mark 'diverged' | wc -l)
[ $diverged = 0 ]; ok $? "no duplicate diverged"
since_mark 'diverged' | sed 's/^/# /'
[ $fails = 0 ]

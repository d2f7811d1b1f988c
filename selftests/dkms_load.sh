#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The procft.ko that `dkms build` made (scripts/dkms-check.sh, run by
# `make check`) loads, protects a process and unloads cleanly; then the
# suite's own build is loaded back as module_load.sh leaves it.
KO=/lib/modules/procft-dkms.ko
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi; }
check() { desc=$1; shift; if "$@" >/dev/null 2>&1; then ok 0 "$desc"; else ok 1 "$desc"; fi; }

echo "TAP version 13"
if [ ! -f $KO ]; then
	echo "1..0 # SKIP no DKMS build for this kernel (scripts/dkms-check.sh)"
	exit 4
fi
echo "1..5"
grep -q '^procft ' /proc/modules && rmmod procft
check "the DKMS-built module loads" insmod $KO
chmod 0666 /dev/procft
ftctl info > /tmp/dkms.info 2>&1
check "ftctl info answers from it" grep -q '^interface version: *2$' /tmp/dkms.info
sleep 1000 & s=$!
ftctl set $s 1
i=0
while ! grep -q "^pid=$s .*duplicates=1/1" /proc/procft && [ $i -lt 1000 ]; do usleep 10000; i=$((i + 1)); done
check "it protects a process (a duplicate in step)" grep -q "^pid=$s .*duplicates=1/1" /proc/procft
kill $s
wait $s 2>/dev/null
check "it unloads cleanly" sh -c 'rmmod procft && ! grep -q "^procft " /proc/modules && [ ! -e /dev/procft ]'
check "the suite's module loads again" insmod /lib/modules/procft.ko fault_injection=1
chmod 0666 /dev/procft
[ $fails = 0 ]

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make soak`: the long run of the machine-check tests on real programs
# (selftests/ft_real.c): sqlite3, lighttpd and python3.11 at level 2 take
# at least PROCFT_SOAK (default 500) real machine checks at random times.
cd "$(dirname "$0")"
echo "TAP version 13"
echo "1..1"
./ft_real --soak "${1:-500}" > /tmp/ft_real.out 2>&1
st=$?
sed 's/^/# /' /tmp/ft_real.out
if [ $st = 0 ]; then
	echo "ok 1 selftests: procft: ft_real --soak ${1:-500}"
else
	echo "not ok 1 selftests: procft: ft_real --soak ${1:-500} # exit=$st"
fi
exit $st

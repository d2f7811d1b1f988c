#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check rust/syscalls.rs against the kernel's x86-64 system call table:
every call the kernel has must be in procft's table under the same number
and name, and procft's table must not invent calls."""
import os
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
kdir = sys.argv[1]
kernel = {}
with open(os.path.join(kdir, "arch/x86/entry/syscalls/syscall_64.tbl")) as f:
    for line in f:
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[1] != "x32":
            kernel[int(fields[0])] = fields[2]
ours = {}
with open(os.path.join(root, "rust/syscalls.rs")) as f:
    text = f.read()
for m in re.finditer(r'^\s+(\d+) => sys\("(\w+)", (\w+)\),$', text, re.M):
    ours[int(m.group(1))] = m.group(2)
bad = 0
max_nr = int(re.search(r"const MAX_NR: i64 = (\d+);", text).group(1))
if max_nr != max(kernel):
    print(f"MAX_NR is {max_nr}, the kernel's highest call is {max(kernel)}")
    bad = 1
for nr, name in sorted(kernel.items()):
    if ours.get(nr) != name:
        print(f"syscall {nr} ({name}): procft's table has {ours.get(nr)}")
        bad = 1
for nr in sorted(set(ours) - set(kernel)):
    print(f"syscall {nr} ({ours[nr]}) is in procft's table but not the kernel's")
    bad = 1
print(f"[procft] syscall table: {len(ours)} calls classified, kernel has {len(kernel)}"
      + ("" if not bad else " -- MISMATCH"))
sys.exit(bad)

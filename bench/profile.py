#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Sums up the function_graph traces bench/profile.sh took in the test VM.

For each trace (workload x level), only the lines between the primary's
"procft-profile begin N" and "procft-profile end N" marks count; the
primary is the task that wrote the marks, every other task traced is one
of its duplicates.  Per role it prints the traced time of one operation
(the graphs under do_syscall_64, which is not traceable itself), the call
tree, and the functions by total time per operation: calls per operation,
inclusive and self time (inclusive less the functions it called) per
operation, and the average of one invocation.

Usage: profile.py DIR [TOP]   (DIR holds <workload>.l<level>.txt)
"""

import os
import re
import sys
from collections import defaultdict

# " 1)  bench-95    |   0.321 us    |    name();"  (the duration column is
# blank for an opening line, and may carry an overhead mark: + ! # * @ $).
LINE = re.compile(r"^\s*(\d+)\)\s+(.+?)-(\d+)\s+\|\s*(?:[-+!#*@$]\s*)?([\d.]+) us\s*\|\s?(.*)$"
                  r"|^\s*(\d+)\)\s+(.+?)-(\d+)\s+\|\s+\|\s?(.*)$")
MARK = re.compile(r"procft-profile (begin|end) (\d+)")
# do_syscall_64() is noinstr: the graphs start at the functions it calls
# (bench/profile.sh lists them); their sum is the traced time of a call.
ROOT = "(system calls)"
# A system call, counted: procft's entry runs once for each (from the
# kernel's system-call hook, or from the sys_enter tracepoint probe).
CALL = ("procft_probe_sys_enter", "procft_sys_enter")


class Stats:
    def __init__(self):
        self.calls = defaultdict(int)
        self.incl = defaultdict(float)
        self.self_ = defaultdict(float)
        self.roots = 0
        self.root_time = 0.0
        self.edges = defaultdict(float)  # call path -> inclusive time
        self.edge_calls = defaultdict(int)


def parse(path):
    """Returns (N, primary pid, {pid: Stats})."""
    stacks = defaultdict(list)  # pid -> [[name, children time]]
    stats = defaultdict(Stats)
    primary, n, active = None, 0, False
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            if m.group(1):
                pid, dur, body = int(m.group(3)), float(m.group(4)), m.group(5).strip()
            else:
                pid, dur, body = int(m.group(8)), None, m.group(9).strip()
            mk = MARK.search(body)
            if mk:
                if mk.group(1) == "begin":
                    primary, n, active = pid, int(mk.group(2)), True
                    stacks.clear()
                else:
                    active = False
                continue
            if not active:
                continue
            st = stacks[pid]
            if body.endswith("{"):
                st.append([body[:-1].strip().rstrip("()"), 0.0])
            elif body.startswith("}"):
                if not st or dur is None:
                    continue  # the call began before the begin mark
                name, children = st.pop()
                account(stats[pid], st, name, dur, children)
            elif body.endswith(";") and dur is not None:
                account(stats[pid], st, body[:-1].strip().rstrip("()"), dur, 0.0)
    if primary is None:
        sys.exit(f"{path}: no procft-profile begin mark")
    return n, primary, stats


def account(s, stack, name, dur, children):
    s.calls[name] += 1
    s.incl[name] += dur
    s.self_[name] += dur - children
    path = (ROOT,) + tuple(f[0] for f in stack) + (name,)
    if stack:
        stack[-1][1] += dur
    else:
        s.root_time += dur
    s.edges[path] += dur
    s.edge_calls[path] += 1
    if name.startswith(CALL) and not stack:
        s.roots += 1


def merge(stats):
    out = Stats()
    for s in stats:
        for k in s.calls:
            out.calls[k] += s.calls[k]
            out.incl[k] += s.incl[k]
            out.self_[k] += s.self_[k]
        for k in s.edges:
            out.edges[k] += s.edges[k]
            out.edge_calls[k] += s.edge_calls[k]
        out.roots += s.roots
        out.root_time += s.root_time
    return out


def tree(s, ops, path, share):
    """The call tree under `path`: callees above `share` of the time."""
    kids = sorted(((t, p) for p, t in s.edges.items()
                   if len(p) == len(path) + 1 and p[:len(path)] == path), reverse=True)
    depth = len(path)
    for t, p in kids:
        if t < share * s.root_time:
            continue
        name = p[-1]
        print(f"    {'  ' * depth}{name[:60 - 2 * depth]:<{60 - 2 * depth}} "
              f"{s.edge_calls[p] / ops:>8.2f} {t / ops:>10.2f} "
              f"{100 * t / s.root_time:>5.1f}%")
        if depth < 8:
            tree(s, ops, p, share)


def report(title, s, ops, top):
    if not s.root_time:
        print(f"  {title}: no system call traced")
        return
    print(f"  {title}: {s.roots / ops:.2f} system calls per operation, "
          f"{s.root_time / ops:.2f} us per operation traced")
    print(f"    call tree (children above 2% of the time):")
    print(f"    {'function':<60} {'calls/op':>8} {'us/op':>10} {'share':>6}")
    print(f"    {ROOT:<60} {'':>8} {s.root_time / ops:>10.2f} {100.0:>5.1f}%")
    tree(s, ops, (ROOT,), 0.02)
    print(f"    top functions by inclusive time:")
    print(f"    {'function':<44} {'calls/op':>8} {'incl us/op':>10} {'self us/op':>10} "
          f"{'avg us':>8}")
    for name in sorted(s.incl, key=lambda k: -s.incl[k])[:top]:
        print(f"    {name[:44]:<44} {s.calls[name] / ops:>8.2f} {s.incl[name] / ops:>10.2f} "
              f"{s.self_[name] / ops:>10.2f} {s.incl[name] / s.calls[name]:>8.2f}")
    print(f"    top functions by self time (not in the functions they call):")
    for name in sorted(s.self_, key=lambda k: -s.self_[k])[:top // 2]:
        print(f"    {name[:44]:<44} {s.calls[name] / ops:>8.2f} {s.incl[name] / ops:>10.2f} "
              f"{s.self_[name] / ops:>10.2f} {s.incl[name] / s.calls[name]:>8.2f}")


def main():
    d = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    names = {"getppid": "getppid()", "pipe": "4 KiB pipe write+read"}
    files = sorted(f for f in os.listdir(d) if re.fullmatch(r"\w+\.l\d\.txt", f))
    if not files:
        sys.exit(f"{d}: no traces")
    summary = []
    for f in files:
        work, level = f.split(".")[0], int(f.split(".")[1][1:])
        n, primary, stats = parse(os.path.join(d, f))
        prim = stats.get(primary, Stats())
        dups = merge(s for pid, s in stats.items() if pid != primary)
        ndup = sum(1 for pid, s in stats.items() if pid != primary and s.root_time)
        print(f"== {names.get(work, work)}, level {level} ({'procft loaded, unprotected' if level == 0 else f'{ndup} duplicate(s)'}), "
              f"{n} operations")
        report(f"primary (pid {primary})", prim, n, top)
        if level:
            report("duplicates, together", dups, n, top)
        print()
        # procft's time: its tracepoint probes, or (with the hook, where
        # the kernel calls them directly) procft_sys_enter/exit.
        probe = sum(prim.incl[k] for k in prim.incl if k.startswith("procft_probe_sys_")) or \
            sum(prim.incl[k] for k in prim.incl if k.startswith("procft_sys_"))
        summary.append((names.get(work, work), level, prim.root_time / n, probe / n,
                        dups.root_time / n if level else 0.0))
    print("== summary: us per operation (function_graph times, inflated by the tracer)")
    print(f"  {'workload':<24} {'level':>5} {'primary':>10} {'in probes':>10} {'duplicates':>11}")
    for w, l, p, pr, du in summary:
        print(f"  {w:<24} {l:>5} {p:>10.2f} {pr:>10.2f} {du:>11.2f}")


if __name__ == "__main__":
    main()

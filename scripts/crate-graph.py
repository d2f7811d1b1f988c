#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that the module's `use crate::` graph has no cycle.

Reads rust/*.rs, each with its submodules' files (rust/x/*.rs are module
x's), ignoring comments (doc links name modules without using them),
collects which module names which (`use crate::x`, `crate::x::`),
and fails, naming them, if some modules name each other in a circle
(Documentation/procft.rst, "Code layout": the layers). With -v it prints
the graph.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rust")


def graph():
    mods = sorted(f[:-3] for f in os.listdir(ROOT) if f.endswith(".rs"))
    g = {}
    for m in mods:
        files = [os.path.join(ROOT, m + ".rs")]
        sub = os.path.join(ROOT, m)
        if os.path.isdir(sub):
            files += sorted(os.path.join(sub, f) for f in os.listdir(sub) if f.endswith(".rs"))
        text = ""
        for path in files:
            with open(path) as f:
                text += "\n".join(line.split("//")[0] for line in f) + "\n"
        deps = {n for n in re.findall(r"crate::(\w+)", text) if n in mods and n != m}
        for block in re.findall(r"use crate::\{(.*?)\};", text, re.S):
            depth, tok, toks = 0, "", []
            for ch in block:
                depth += (ch == "{") - (ch == "}")
                if depth == 0 and ch == ",":
                    toks.append(tok)
                    tok = ""
                else:
                    tok += ch
            toks.append(tok)
            for t in toks:
                name = t.strip().split("::")[0].split("{")[0].strip()
                if name in mods and name != m:
                    deps.add(name)
        g[m] = deps
    return g


def cycles(g):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main():
    g = graph()
    if "-v" in sys.argv[1:]:
        for m in sorted(g):
            print(f"{m:12} {' '.join(sorted(g[m])) or '(none)'}")
    found = cycles(g)
    for c in found:
        print("crate-graph: these modules name each other in a circle: " + ", ".join(c))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Draw make bench's ratios as an SVG bar chart.

Usage: bench/svg.py BENCH_TXT OUT_SVG

Reads the two ratio tables of `make bench` (build/bench.txt): the
unprotected workloads (procft loaded; another process protected) and the
protected ones (levels 1 and 2), and draws one row per workload with a
bar per configuration on a logarithmic axis (the ratios span 0.1x to
1000x), the baseline (1x) and each row's target marked.  Standard
library only.
"""

import math
import re
import sys
from xml.sax.saxutils import escape

RATIO = re.compile(r"^([0-9.]+)x(?: \((<=|>=) ([0-9.]+)x, (met|missed)\))?$")


def parse(path):
    """Rows of (table, workload, [(label, ratio, target)])."""
    rows = []
    header = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.rstrip("\n").split("|")]
            if len(cells) < 4:
                header = None
                continue
            if cells[0] in ("unprotected workload", "protected workload"):
                header = cells
                continue
            if header is None:
                continue
            bars = []
            for name, cell in zip(header[1:], cells[1:]):
                m = RATIO.match(cell)
                if not m or not name.startswith("ratio"):
                    continue
                target = (m.group(2), float(m.group(3))) if m.group(2) else None
                label = {"ratio": "loaded", "ratio, wall": "other protected",
                         "ratio L1": "level 1", "ratio L2": "level 2"}.get(name)
                if label:
                    bars.append((label, float(m.group(1)), target))
            if bars:
                rows.append((header[0], cells[0], bars))
    return rows


COLOURS = {"loaded": "#8da0cb", "other protected": "#66c2a5",
           "level 1": "#fc8d62", "level 2": "#e78ac3"}


def draw(rows, out):
    lo, hi = 0.1, 10000.0
    left, width, bar_h, gap = 300, 560, 12, 14
    x = lambda r: left + width * (math.log10(max(lo, min(hi, r))) - math.log10(lo)) / (
        math.log10(hi) - math.log10(lo))
    height = 60 + sum(len(b) * bar_h + gap for _, _, b in rows) + 40
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           '<text x="10" y="18" font-size="13">procft: time (throughput for lighttpd) '
           'relative to the same workload without the module; log scale</text>']
    for tick in (0.1, 1, 10, 100, 1000, 10000):
        svg.append(f'<line x1="{x(tick):.1f}" y1="30" x2="{x(tick):.1f}" y2="{height - 30}" '
                   f'stroke="{"#000" if tick == 1 else "#ddd"}"/>')
        svg.append(f'<text x="{x(tick):.1f}" y="{height - 15}" text-anchor="middle">{tick:g}x</text>')
    y = 40
    for table, workload, bars in rows:
        name = ("unprotected: " if table.startswith("unprotected") else "") + workload
        svg.append(f'<text x="{left - 6}" y="{y + bar_h * len(bars) / 2 + 4:.1f}" '
                   f'text-anchor="end">{escape(name)}</text>')
        for label, ratio, target in bars:
            svg.append(f'<rect x="{x(lo):.1f}" y="{y}" width="{x(ratio) - x(lo):.1f}" '
                       f'height="{bar_h - 2}" fill="{COLOURS[label]}"><title>{escape(label)}: '
                       f'{ratio:g}x</title></rect>')
            svg.append(f'<text x="{x(ratio) + 4:.1f}" y="{y + bar_h - 3}">{ratio:g}x</text>')
            if target:
                tx = x(target[1])
                svg.append(f'<line x1="{tx:.1f}" y1="{y - 1}" x2="{tx:.1f}" y2="{y + bar_h}" '
                           'stroke="#d00" stroke-width="2"><title>target '
                           f'{escape(target[0])} {target[1]:g}x</title></line>')
            y += bar_h
        y += gap
    lx = left
    for label, colour in COLOURS.items():
        svg.append(f'<rect x="{lx}" y="{height - 12}" width="10" height="10" fill="{colour}"/>')
        svg.append(f'<text x="{lx + 14}" y="{height - 3}">{escape(label)}</text>')
        lx += 120
    svg.append(f'<line x1="{lx}" y1="{height - 12}" x2="{lx}" y2="{height - 2}" '
               'stroke="#d00" stroke-width="2"/>')
    svg.append(f'<text x="{lx + 6}" y="{height - 3}">target</text>')
    svg.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(svg) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    rows = parse(sys.argv[1])
    if not rows:
        sys.exit(f"{sys.argv[1]}: no ratio table found")
    draw(rows, sys.argv[2])


if __name__ == "__main__":
    main()

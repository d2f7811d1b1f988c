#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Parses every Documentation/*.rst with docutils and fails on any warning
or error it reports (a malformed table, a broken list, a bad title)."""
import glob
import io
import os
import sys

import docutils.core

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    bad = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "Documentation", "*.rst"))):
        report = io.StringIO()
        with open(path) as f:
            docutils.core.publish_doctree(
                f.read(),
                source_path=os.path.relpath(path, ROOT),
                settings_overrides={"warning_stream": report, "report_level": 2},
            )
        if report.getvalue():
            sys.stdout.write(report.getvalue())
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Errors fired without waiting for recovery, mixed with level changes: the
# process may die only of SIGBUS and never prints a wrong line (ft_soak.c).
exec "$(dirname "$0")/ft_soak" --storm 100

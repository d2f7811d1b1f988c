#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Checks the man pages and completions in build/ (scripts/build-ftctl.sh):
# ftctl(8) and the completions name every command build/bin/ftctl has,
# each command has its ftctl-COMMAND(8) page, procft(4) names every ioctl
# of the UAPI header and every module parameter, and groff finds nothing
# to warn about in any page.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
man=$PROCFT_ROOT/build/man
comp=$PROCFT_ROOT/build/completions
fail=0
bad() { log "man pages: $*"; fail=1; }

# The commands, from the binary's own help.
cmds=$("$PROCFT_ROOT/build/bin/ftctl" --help |
	sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p' | grep -vx help)
[ "$(echo "$cmds" | wc -w)" -ge 8 ] || bad "ftctl --help lists only: $cmds"
page=$(MANWIDTH=200 nroff -man "$man/ftctl.8" 2>/dev/null | col -b)
for c in $cmds; do
	grep -q "ftctl-$c(8)" <<<"$page" || bad "ftctl(8) does not name '$c'"
	[ -f "$man/ftctl-$c.8" ] || bad "no ftctl-$c(8)"
	grep -q "ftctl-$c" "$man/ftctl-$c.8" 2>/dev/null || bad "ftctl-$c(8) does not name its command"
	grep -qw "$c" "$comp/ftctl.bash" || bad "bash completion lacks '$c'"
	grep -qw "$c" "$comp/_ftctl" || bad "zsh completion lacks '$c'"
	grep -qw "$c" "$comp/ftctl.fish" || bad "fish completion lacks '$c'"
done

# procft(4) against the sources it documents.
p4=$(MANWIDTH=200 nroff -man "$man/procft.4" 2>/dev/null | col -b)
for ioc in $(sed -n 's/^#define \(PROCFT_IOC_[A-Z_]*\)[[:space:]]*_IO.*/\1/p' \
	"$PROCFT_ROOT/include/uapi/linux/procft.h"); do
	grep -q "$ioc" <<<"$p4" || bad "procft(4) does not describe $ioc"
done
for param in $(sed -n '/^    params: {/,/^    },/s/^        \([a-z_]*\): .*/\1/p' \
	"$PROCFT_ROOT/rust/procft_main.rs"); do
	grep -q "^ *$param (" <<<"$p4" || bad "procft(4) does not describe parameter $param"
done

for f in "$man"/*.[48]; do
	w=$(groff -man -ww -z "$f" 2>&1) || bad "groff failed on $f"
	[ -z "$w" ] || bad "groff warns on $(basename "$f"): $w"
done
[ $fail = 0 ] || die "man page checks failed"
log "man pages: $(ls "$man" | wc -l) pages, $(echo $cmds | wc -w) commands, all named"

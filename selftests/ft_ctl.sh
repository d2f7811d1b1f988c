#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# ftctl as the ecosystem uses it: its command line (help, --version, errors
# naming the bad argument), `status --prometheus` checked value by value
# against /proc/procft, `events --json` against the text log, `protect
# --wait` on a pid, a pid file and a (stand-in) systemd unit that appear
# later, and the systemd drop-in's ExecStart= line run as systemd would.
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi; }
diag() { echo "# $*"; }
W=/tmp/ft_ctl
rm -rf $W && mkdir -p $W
# Waits (bounded) for a /proc/procft line of pid $1 matching $2.
wait_line() {
	i=0
	while ! grep -q "^pid=$1 .*$2" /proc/procft && [ $i -lt 1000 ]; do usleep 10000; i=$((i + 1)); done
	grep -q "^pid=$1 .*$2" /proc/procft
}
field() { sed -n "s/^pid=$1 .* $2=\([^ ]*\).*/\1/p" /proc/procft; }

echo "TAP version 13"
echo "1..18"

# The command line.
v=$(ftctl --version); st=$?
[ $st = 0 ] && echo "$v" | grep -qx 'ftctl [0-9]*\.[0-9]*\.[0-9]*'
ok $? "ftctl --version: '$v'"
cmds=$(ftctl --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' | grep -vx help)
bad=
for c in $cmds; do
	ftctl $c --help > $W/help 2>&1 && grep -q "^Usage: ftctl $c " $W/help || bad="$bad $c"
done
[ -z "$bad" ] && [ "$(echo $cmds | wc -w)" -ge 8 ]
ok $? "every command has --help, which runs nothing (commands: $(echo $cmds); bad:$bad)"
ftctl set 1 banana > $W/out 2> $W/err; st=$?
[ $st = 2 ] && grep -q "invalid value 'banana' for '<N>'" $W/err && [ ! -s $W/out ]
ok $? "a bad level: exit 2, the message names the value and the argument"
ftctl statuz 2> $W/err; st=$?
[ $st = 2 ] && grep -q "'statuz'" $W/err
ok $? "an unknown command: exit 2, named"

# A protected process with a lost and replaced duplicate.
# (PROCFT_IOC_FAIL needs fault_injection=1: module_load.sh leaves procft
# loaded so; when run alone, reload it so while nothing is protected.)
[ -s /proc/procft ] ||
	{ rmmod procft && insmod /lib/modules/procft.ko fault_injection=1 && chmod 0666 /dev/procft; }
sleep 1000 & p=$!
ftctl set $p 2
wait_line $p "duplicates=2/2"
d=$(sed -n "s/^pid=$p .*replicas=$p,\([0-9]*\)[, ].*/\1/p" /proc/procft)
ftctl fail $p 1
wait_line $p "duplicates=2/2 .*respawns=[1-9]"
ok $? "process $p protected at level 2, duplicate $d lost and replaced"

# Metrics, from one state of /proc/procft (read before and after).
i=0
while :; do
	cp /proc/procft $W/before
	ftctl status --prometheus > $W/prom; st=$?
	cmp -s /proc/procft $W/before && break
	i=$((i + 1)); [ $i -lt 20 ] || break
done
[ $st = 0 ]; ok $? "ftctl status --prometheus exits 0"
# Exposition format: every sample's family has HELP and TYPE before it,
# counters and only counters end in _total, values are numbers.
awk '
/^# HELP [a-z_]+ ./ { help[$3] = 1; next }
/^# TYPE [a-z_]+ (gauge|counter)$/ { type[$3] = $4; next }
/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9]+$/ {
	name = $1; sub(/\{.*/, "", name)
	if (!help[name] || !type[name]) { print "# no HELP/TYPE before " $0; bad = 1 }
	if ((type[name] == "counter") != (name ~ /_total$/)) { print "# counter naming: " $0; bad = 1 }
	next
}
{ print "# not exposition format: " $0; bad = 1 }
END { exit bad }' $W/prom
ok $? "the output is in the text exposition format, counters named *_total"
val() { sed -n "s/^$1{pid=\"$2\"[,}].* \([0-9]*\)$/\1/p" $W/prom; }
line=$(grep "^pid=$p " $W/before)
ready=$(echo "$line" | sed 's/.* duplicates=\([0-9]*\)\/.*/\1/')
bad=
for m in level:level failovers_total:failovers respawns_total:respawns \
	memory_errors_total:mce_events divergences_total:divergences duplicates_ready:ready; do
	metric=${m%%:*} f=${m#*:}
	if [ $f = ready ]; then want=$ready; else want=$(echo "$line" | sed "s/.* $f=\([0-9]*\).*/\1/"); fi
	got=$(val procft_$metric $p)
	[ -n "$want" ] && [ "$got" = "$want" ] || bad="$bad $metric=$got/$want"
done
[ -z "$bad" ] && [ "$(val procft_respawns_total $p)" -ge 1 ] &&
	grep -q "^procft_level{pid=\"$p\",comm=\"sleep\"} 2$" $W/prom
ok $? "per-process metrics of $p equal /proc/procft's fields (level 2, respawns $(val procft_respawns_total $p))$bad"
procs=$(grep -c . $W/before)
grep -qx "procft_protected_processes $procs" $W/prom &&
	grep -q '^procft_protections_started_total [1-9]' $W/prom &&
	grep -q '^procft_info{version="2",proc_pid_ft_level="[01]",ptrace_may_access="[01]"} 1$' $W/prom
ok $? "module totals: $procs protected process(es), records started and ended, procft_info"

# Events as JSON lines: one object per text line, the same events.
ftctl events > $W/ev
ftctl events --json > $W/evj
seqs() { sed -n 's/^{"seq":\([0-9]*\),.*/\1/p' $W/evj; }
[ "$(wc -l < $W/ev)" = "$(wc -l < $W/evj)" ] && [ -s $W/evj ] &&
	[ "$(sed -n 's/^seq=\([0-9]*\) .*/\1/p' $W/ev)" = "$(seqs)" ] &&
	grep -q "^{\"seq\":[0-9]*,\"time\":[0-9.]*,\"pid\":$p,\"event\":\"level\",\"old\":0,\"new\":2}$" $W/evj &&
	grep -q "^{\"seq\":[0-9]*,\"time\":[0-9.]*,\"pid\":$p,\"event\":\"duplicate_lost\",\"replica\":$d}$" $W/evj
ok $? "ftctl events --json: $(wc -l < $W/evj) objects, one per event, same sequence numbers"
if [ -x /usr/bin/python3.11 ]; then
	/usr/bin/python3.11 -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert isinstance(o, dict) and ("lost" in o or {"seq", "time", "pid", "event"} <= o.keys()), line
' $W/evj
	ok $? "each line parses as a JSON object (python3 json)"
else
	ok 0 "# SKIP no python3.11 in the VM"
fi
kill $p; wait $p 2>/dev/null

# protect --wait: a pid file written later, a unit whose main pid appears
# later (systemctl is a stand-in printing MainPID), a pid not yet used.
ftctl protect -l 1 --wait --timeout 60 --pidfile $W/pid & w=$!
usleep 300000
kill -0 $w 2>/dev/null; waiting=$?
sleep 1000 & s=$!
echo $s > $W/pid.new && mv $W/pid.new $W/pid
wait $w; st=$?
[ $waiting = 0 ] && [ $st = 0 ] && [ "$(cat /proc/$s/ft_level)" = 1 ]
ok $? "protect --wait --pidfile: waited, then set level 1 on $s"
kill $s; wait $s 2>/dev/null

mkdir -p $W/bin
cat > $W/bin/systemctl <<'EOS'
#!/bin/sh
[ "$*" = "show --property=MainPID --value -- demo.service" ] || { echo "bad args: $*" >&2; exit 1; }
cat /tmp/ft_ctl/mainpid 2>/dev/null || echo 0
EOS
chmod +x $W/bin/systemctl
echo 0 > $W/mainpid
PATH=$W/bin:$PATH ftctl protect -l 2 --wait --unit demo.service & w=$!
usleep 300000
kill -0 $w 2>/dev/null; waiting=$?
sleep 1000 & s=$!
# Renamed into place: the fake systemctl must never read a half-written file.
echo $s > $W/mainpid.new && mv $W/mainpid.new $W/mainpid
wait $w; st=$?
[ $waiting = 0 ] && [ $st = 0 ] && [ "$(cat /proc/$s/ft_level)" = 2 ]
ok $? "protect --wait --unit: MainPID 0, then $s: level 2 set on it"
kill $s; wait $s 2>/dev/null

# A pid nobody has yet, then the next fork made to get it.
last=$(cat /proc/sys/kernel/ns_last_pid)
want=$((last + 500))
ftctl protect -l 1 --wait $want & w=$!
usleep 300000
kill -0 $w 2>/dev/null; waiting=$?
echo $((want - 1)) > /proc/sys/kernel/ns_last_pid
sleep 1000 & s=$!
wait $w; st=$?
[ $waiting = 0 ] && [ $s = $want ] && [ $st = 0 ] && [ "$(cat /proc/$s/ft_level)" = 1 ]
ok $? "protect --wait PID: waited for pid $want, then set level 1 on it (got $s)"
kill $s; wait $s 2>/dev/null
ftctl protect -l 1 --wait --timeout 1 --pidfile $W/none 2> $W/err; st=$?
ftctl protect -l 1 --pidfile $W/none 2>> $W/err; st2=$?
[ $st = 1 ] && [ $st2 = 1 ] && grep -q "after waiting 1 s" $W/err
ok $? "protect: a pid file that never appears fails (exit 1), after --timeout with --wait"

# The systemd drop-in: its ExecStart= line, with the service's command
# replaced by one that reports its level, run as systemd would (the
# command line split into words, no shell).
cmd=$(sed -n 's/^ExecStart=\(.\)/\1/p' /selftests/protect-run.conf | tail -1)
cmd=$(echo "$cmd" | sed 's|^/usr/sbin/ftctl|ftctl|; s| -- .*| -- /bin/cat /proc/self/ft_level|')
out=$($cmd); st=$?
[ $st = 0 ] && [ "$out" = 2 ]
ok $? "the drop-in's ExecStart= ($cmd) runs the command at level 2"

# ftctl info without the module: what the kernel offers, exit 3. The test
# kernel has Rust and /proc/<pid>/ft_level, and no build tree or installed
# module in the VM: then a modules.dep and a Module.symvers as DKMS and
# kernel headers would leave them.
mods=/lib/modules/$(uname -r)
if [ -s /proc/procft ] || [ -e $mods ]; then
	ok 1 "procft has protected processes left, or $mods exists: not run"
	ok 1 "procft has protected processes left, or $mods exists: not run"
else
	rmmod procft
	ftctl info > $W/info 2>&1; st=$?
	mkdir -p $mods/build
	echo "updates/dkms/procft.ko.xz:" > $mods/modules.dep
	printf '0x12345678\tptrace_may_access\tvmlinux\tEXPORT_SYMBOL_GPL\t\n' > $mods/build/Module.symvers
	ftctl info > $W/info2 2>&1; st2=$?
	ftctl info --json > $W/info3 2>&1
	rm -rf $mods
	insmod /lib/modules/procft.ko fault_injection=1 && chmod 0666 /dev/procft
	[ $st = 3 ] && grep -qx 'procft module: *not loaded' $W/info &&
		grep -qx 'Rust support: *yes' $W/info &&
		grep -qx '/proc/<pid>/ft_level: yes' $W/info &&
		grep -q '^ptrace_may_access: *unknown' $W/info &&
		grep -q '^system-call hook: *yes' $W/info &&
		grep -q '^installed module: *none' $W/info
	ok $? "ftctl info without the module: exit $st, Rust support, /proc/<pid>/ft_level and the system-call hook seen"
	[ $st2 = 3 ] && grep -qx "installed module: *$mods/updates/dkms/procft.ko.xz" $W/info2 &&
		grep -q '^ptrace_may_access: *exported' $W/info2 &&
		grep -q "^{\"loaded\":false,.*\"installed_module\":\"$mods/updates/dkms/procft.ko.xz\",\"rust\":true,\"proc_pid_ft_level\":true,\"ptrace_may_access\":true,\"syscall_hook\":true,\"replace_mm\":true,\"tsc_trap\":true}$" $W/info3 &&
		grep -q '^rdtsc trapping: *yes' $W/info2
	ok $? "... and the installed module (modules.dep), ptrace_may_access (Module.symvers) and rdtsc trapping, also as JSON"
	[ $fails = 0 ] || sed 's/^/# /' $W/info $W/info2 $W/info3
fi

rm -rf $W
[ $fails = 0 ]

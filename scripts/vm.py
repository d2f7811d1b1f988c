#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot procft's test VM under QEMU and run the selftests or the demo.

The guest is the cached test kernel with an initramfs (busybox-static,
procft.ko, ftctl, the selftests) plus an ext4 filesystem on a virtio disk
for file-backed memory-failure paths.  Two extra channels connect host and
guest:

* the guest's second serial port (/dev/ttyS1) carries requests from a test
  to the host: ``mce <guest-physical address>`` makes the host raise a real
  machine check through QEMU's monitor and answer ``ok`` once it has;
* the QEMU monitor, on a unix socket, used by the host for those requests.

In ``test`` mode the exit code is 0 only if every TAP test passed and the
kernel log shows no BUG/WARNING/Oops/panic (nor any report of the debug
kernel's checkers: lockdep, KASAN, KFENCE, debug objects, list debugging).
The serial log is kept in build/vm/serial.log (``--out`` to change).
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
OUT = os.path.join(BUILD, "vm")

# Uncorrected, action-optional memory-scrub error (MCACOD 0xC0): status
# VAL|UC|EN|MISCV|ADDRV|S, MCG status MCIP|RIPV; see
# Documentation/procft-testing.rst.
MCE_STATUS = "0xbd000000000000c0"
MCE_MCG_STATUS = "0x5"
MCE_MISC = "0x86"
MCE_BANK = 9

# Lockdep, KASAN, KFENCE, debug objects and list debugging report through
# BUG: or WARNING: lines; their own markers are listed too, so that a
# report is caught whatever its first line.
BAD_KERNEL_LOG = re.compile(
    r"BUG:|WARNING:|Oops|Kernel panic|general protection fault|Call Trace:|"
    r"UBSAN:|KASAN:|KFENCE:|kernel BUG|RCU stall|rcu_.*detected stall|hung_task|"
    r"blocked for more than|possible (circular|recursive) locking|"
    r"inconsistent lock state|lock inversion|suspicious RCU usage|"
    r"Invalid wait context|ODEBUG:|list_(add|del) corruption"
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmp /tmp
ip link set lo up 2>/dev/null
mkdir -p /mnt/disk
mount -t ext4 /dev/vda /mnt/disk || echo "PROCFT-WARN: no ext4 disk"
echo "PROCFT-BOOTED $(uname -r)"
rc=0
# Parameters for every load of procft.ko (the tests reload it too).
PROCFT_MODARGS=$(echo "$ftmodargs" | tr , ' ')
export PROCFT_MODARGS
case "$ftmode" in
probe) ;;
bench|profile)
	# These measure the system without procft first and load it
	# themselves (bench/bench.sh, bench/profile.sh).
	/bench/$ftmode.sh || rc=1
	;;
*)
	if [ "$ftnomodule" != 1 ]; then
		insmod /lib/modules/procft.ko $PROCFT_MODARGS || rc=1
		# Like a udev rule would: permission is checked per request.
		chmod 0666 /dev/procft
	fi
	if [ "$ftmode" = demo ]; then
		/selftests/demo.sh || rc=1
	elif [ "$ftmode" = script ]; then
		/selftests/script.sh || rc=1
	else
		/selftests/run_tests.sh "$ftfilter" || rc=1
	fi
	;;
esac
# Whether lockdep is still checking (it stops after its first report, or
# when the kernel is tainted by a machine check).
[ -r /proc/lockdep_stats ] &&
	echo "PROCFT-LOCKDEP $(sed -n 's/^ *debug_locks: *//p' /proc/lockdep_stats)"
echo PROCFT-DMESG-BEGIN
dmesg
echo PROCFT-DMESG-END
echo "PROCFT-DONE rc=$rc"
sync
reboot -f
"""


def log(msg):
    print(f"[vm] {msg}", flush=True)


def add_host_binary(stage, path, dest):
    """Copies a dynamically linked host binary to `dest` in the initramfs,
    with every library `ldd` lists, at the same paths."""
    shutil.copy2(path, os.path.join(stage, dest))
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        lib = line.split("=>")[-1].split("(")[0].strip()
        if not lib.startswith("/"):
            continue
        target = os.path.join(stage, lib.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), target)


# Real programs for the machine-check tests (selftests/ft_real.c): Debian's
# sqlite3, lighttpd and python3.11, and for the threads test
# (selftests/ft_redis.c) redis-server with redis-cli and redis-benchmark,
# and memcached with memcslap (selftests/ft_memcached.c), installed by
# scripts/setup-host.sh.
REAL_PROGRAMS = {"/usr/bin/sqlite3": "bin/sqlite3", "/usr/sbin/lighttpd": "bin/lighttpd",
                 "/usr/bin/python3.11": "usr/bin/python3.11",
                 "/usr/bin/redis-server": "bin/redis-server", "/usr/bin/redis-cli": "bin/redis-cli",
                 "/usr/bin/redis-benchmark": "bin/redis-benchmark",
                 "/usr/bin/memcached": "bin/memcached", "/usr/bin/memcslap": "bin/memcslap"}


# The benchmarks' load generator for lighttpd (bench/bench.sh): ab, from
# Debian's apache2-utils, installed by scripts/setup-host.sh.
BENCH_PROGRAMS = {"/usr/bin/ab": "bin/ab"}


def add_python(stage, script):
    """Copies the standard-library modules `script` imports (and Python's
    start-up imports), with their compiled forms, to the same paths: what
    the host's python3.11 loads running it is what the guest's will."""
    dump = ("import runpy, sys\n"
            "sys.argv = [sys.argv[1], '1']\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "files = [getattr(m, '__file__', None) for m in list(sys.modules.values())]\n"
            "sys.stderr.write('\\n'.join(sorted(set(f for f in files if f))))\n")
    out = subprocess.run(["/usr/bin/python3.11", "-I", "-c", dump, script], check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    for path in out.split("\n"):
        if not path.startswith("/usr/lib/python3.11/"):
            continue
        found = [path]
        base = os.path.basename(path)
        if base.endswith(".py"):
            pyc = os.path.join(os.path.dirname(path), "__pycache__",
                               base[:-3] + ".cpython-311.pyc")
            if os.path.exists(pyc):
                found.append(pyc)
        for f in found:
            target = os.path.join(stage, f.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(f, target)


def build_initramfs(kdir, module, dest, script=None, bench=False):
    stage = tempfile.mkdtemp(prefix="initramfs.", dir=OUT)
    os.chmod(stage, 0o755)  # the guest's / (mkdtemp makes it 0700)
    try:
        for d in ("bin", "proc", "sys", "dev", "tmp", "lib/modules", "selftests", "mnt", "etc",
                  "bench"):
            os.makedirs(os.path.join(stage, d), exist_ok=True)
        shutil.copy2("/bin/busybox", os.path.join(stage, "bin/busybox"))
        shutil.copy2(os.path.join(BUILD, "bin/ftctl"), os.path.join(stage, "bin/ftctl"))
        shutil.copy2(module, os.path.join(stage, "lib/modules/procft.ko"))
        # The module as `dkms build` built it (scripts/dkms-check.sh), for
        # selftests/dkms_load.sh, when it was built for this kernel.
        try:
            with open(os.path.join(BUILD, "dkms/kdir")) as f:
                dkms_kdir = f.read().strip()
        except OSError:
            dkms_kdir = None
        if dkms_kdir and os.path.realpath(dkms_kdir) == os.path.realpath(kdir):
            shutil.copy2(os.path.join(BUILD, "dkms/procft.ko"),
                         os.path.join(stage, "lib/modules/procft-dkms.ko"))
        sel = os.path.join(BUILD, "selftests")
        for f in os.listdir(sel):
            shutil.copy2(os.path.join(sel, f), os.path.join(stage, "selftests", f))
        bench = os.path.join(BUILD, "bench")
        if os.path.isdir(bench):
            for f in os.listdir(bench):
                shutil.copy2(os.path.join(bench, f), os.path.join(stage, "bench", f))
        # CRIU, for the benchmark's restore-from-checkpoint comparison, if
        # the host has it (a dynamic binary: its libraries come along).
        criu = shutil.which("criu") or ("/usr/sbin/criu" if os.path.exists("/usr/sbin/criu") else None)
        if criu:
            add_host_binary(stage, criu, "bin/criu")
        programs = {**REAL_PROGRAMS, **BENCH_PROGRAMS} if bench else REAL_PROGRAMS
        for path, dest_path in programs.items():
            if os.path.exists(path):
                os.makedirs(os.path.dirname(os.path.join(stage, dest_path)), exist_ok=True)
                add_host_binary(stage, path, dest_path)
        if os.path.exists("/usr/bin/python3.11"):
            add_python(stage, os.path.join(sel, "ft_real_work.py"))
        if script:
            shutil.copy2(script, os.path.join(stage, "selftests/script.sh"))
            os.chmod(os.path.join(stage, "selftests/script.sh"), 0o755)
        with open(os.path.join(stage, "init"), "w") as f:
            f.write(INIT)
        os.chmod(os.path.join(stage, "init"), 0o755)
        with open(os.path.join(stage, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        with open(os.path.join(stage, "etc/group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
        with open(dest, "wb") as out:
            find = subprocess.Popen(["find", "."], cwd=stage, stdout=subprocess.PIPE)
            cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage,
                                    stdin=find.stdout, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=out)
            find.stdout.close()
            cpio.stdout.close()
            if gz.wait() or cpio.wait() or find.wait():
                sys.exit("initramfs: cpio failed")
    finally:
        shutil.rmtree(stage)


def build_disk(dest, bench=False):
    """An ext4 image with the test programs on it (file-backed pages); for
    the benchmarks a larger one (the SQL workload's database, the traces
    of bench/profile.sh, read back by the host)."""
    stage = tempfile.mkdtemp(prefix="disk.", dir=OUT)
    os.chmod(stage, 0o755)
    try:
        shutil.copytree(os.path.join(BUILD, "selftests"), os.path.join(stage, "selftests"))
        with open(os.path.join(stage, "data.bin"), "wb") as f:
            f.write(bytes(range(256)) * 4096 * 4)  # 4 MiB of a known pattern
        if os.path.exists(dest):
            os.unlink(dest)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "procft", "-d", stage, dest,
                        "512M" if bench else "128M"], check=True)
    finally:
        shutil.rmtree(stage)


def kvm_works(kdir, initrd):
    """KVM where it really works (nested KVM here may fail or spin): boot
    the kernel with the probe initramfs and look for the marker."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        qemu = subprocess.Popen(qemu_cmd(kdir, initrd, None, "kvm", "probe", "", None, None),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
    except OSError:
        return False
    timer = threading.Timer(20, qemu.kill)
    timer.start()
    booted = any(b"PROCFT-BOOTED" in line for line in qemu.stdout)
    qemu.kill()
    qemu.wait()
    timer.cancel()
    return booted


# The guest CPU: an Intel model (the machine-check tests need Intel's MCA
# banks and the kernel's Intel MCE code). Under TCG without the features
# TCG cannot provide: QEMU drops them anyway, warning about each on every
# vCPU; naming them off gives the guest the same CPUID without the
# warnings.
CPU_MODEL = "Skylake-Server-v4"
TCG_LACKS = ("pcid", "x2apic", "tsc-deadline", "invpcid", "avx512f", "avx512dq", "rdseed",
             "avx512cd", "avx512bw", "avx512vl", "spec-ctrl", "3dnowprefetch", "xsavec")


def cpu_model(accel):
    if accel != "tcg":
        return CPU_MODEL
    return ",".join([CPU_MODEL] + ["-" + f for f in TCG_LACKS])


# Modes whose script loads procft.ko itself, after measuring without it.
BENCH_MODES = ("bench", "profile")


def guest_memory(mode):
    """The VM's memory: 1 GiB for the tests; for the benchmarks 2 GiB, which
    holds 256 MiB in three replicas, or 5 GiB where the host has 10 GiB
    free, so that bench/bench.sh also measures recovery at 1 GiB (three
    replicas, and the copies its comparisons make)."""
    if mode not in BENCH_MODES:
        return "1G"
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        avail = 0
    return "5G" if avail >= 10 << 20 else "2G"


def qemu_cmd(kdir, initrd, disk, accel, mode, filt, mon, ctl, extra="", icount=None):
    # tsc=reliable: under TCG the guest's TSC follows the host's clock and
    # the clocksource watchdog compares it with emulated timers that lag
    # whenever the host is busy; on some hosts it then declares the TSC
    # unstable a few seconds after boot and switches clocksource in the
    # middle of a test. The guest keeps one clocksource whatever the host
    # does (ft_sync changes it on purpose, to test that case).
    # The kernel log is printed at the end of a run: 16 MiB holds a whole
    # suite's (the default buffer kept only the last tests' lines).
    append = f"console=ttyS0 loglevel=5 panic=-1 tsc=reliable log_buf_len=16M ftmode={mode}"
    if mode == "demo":
        # The demo's own lines only on the console: the kernel log stays in
        # the serial log, from the dmesg the guest prints at the end.
        append += " loglevel=1"
    if extra:
        append += " " + extra
    if mode in BENCH_MODES or os.environ.get("PROCFT_NO_VDSO"):
        # Debian's criu (3.17) cannot parse this kernel's vDSO and refuses
        # to start; without one, every run in the VM (protected or not)
        # makes its time calls as system calls, so ratios stay comparable.
        append += " vdso=0"
    if filt:
        append += f" ftfilter={filt}"
    # The fuzzer's duration and seed (selftests/ft_fuzz.c), for `make soak`.
    for var, param in (("PROCFT_FUZZ_SECS", "ftfuzz"), ("PROCFT_FUZZ_SEED", "ftfuzzseed")):
        if os.environ.get(var):
            append += f" {param}={int(os.environ[var], 0)}"
    # vCPUs: 2, or PROCFT_SMP (make profile's sections run takes 1, so that
    # under -icount the time-stamp counter counts one task's instructions,
    # not the other vCPU's too); the two NUMA nodes below need 2.
    smp = int(os.environ.get("PROCFT_SMP", "2"))
    # PROCFT_QEMU: another QEMU binary than the one on the PATH (the
    # benchmark's, see scripts/qemu-newer.sh).
    qemu = os.environ.get("PROCFT_QEMU") or "qemu-system-x86_64"
    cmd = [qemu, "-accel", accel, "-cpu", cpu_model(accel),
           "-smp", str(smp), "-m", guest_memory(mode)]
    if icount is not None:
        # Guest time from the instruction count (one vCPU at a time):
        # timings that the host's load does not move. sleep=off: while
        # every vCPU is halted the guest's clock jumps to the next timer
        # instead of following the host's, so an idle spell does not
        # last as long as the host takes either (the default, sleep=on).
        # QEMU still leaves a halted vCPU asleep now and then with an
        # interrupt pending; bench/bench.sh runs such runs again
        # (bench/results/vcpu-stalls.txt).
        cmd += ["-icount", f"shift={icount},sleep=off"]
    if mode not in BENCH_MODES and smp == 2:
        # Two NUMA nodes, one vCPU and half the memory each: duplicates
        # prefer the node the primary is not on. Not for the benchmarks:
        # under TCG, guest memory split into per-node backends made a
        # memory-heavy loop 5-15x slower and erratic, at every level.
        cmd += ["-object", "memory-backend-ram,id=m0,size=512M",
                "-object", "memory-backend-ram,id=m1,size=512M",
                "-numa", "node,nodeid=0,cpus=0,memdev=m0",
                "-numa", "node,nodeid=1,cpus=1,memdev=m1"]
    cmd += ["-display", "none", "-no-reboot",
           "-kernel", os.path.join(kdir, "arch/x86/boot/bzImage"), "-initrd", initrd,
           "-append", append, "-serial", "stdio"]
    if disk:
        cmd += ["-drive", f"file={disk},format=raw,if=virtio"]
    if ctl:
        cmd += ["-chardev", f"socket,id=ctl,path={ctl},server=on,wait=off",
                "-serial", "chardev:ctl"]
    if mon:
        cmd += ["-monitor", f"unix:{mon},server=on,wait=off"]
    return cmd


class Monitor:
    """QEMU's human monitor on a unix socket."""

    def __init__(self, path):
        self.sock = connect(path)
        self.read_prompt()

    def read_prompt(self):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def command(self, line):
        self.sock.sendall(line.encode() + b"\n")
        reply = self.read_prompt()
        # The monitor echoes the command; anything else is an error message.
        return "\n".join(l for l in reply.replace("\r", "").split("\n")
                         if l.strip() and not l.startswith("(qemu)") and line not in l)


def connect(path, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def serve_requests(ctl_path, mon_path, logf, echo=True):
    """Answers guest requests on the control serial port."""
    try:
        ctl = connect(ctl_path)
        mon = Monitor(mon_path)
    except (OSError, EOFError) as e:
        log(f"host channel unavailable: {e}")
        return
    buf = b""
    while True:
        try:
            chunk = ctl.recv(4096)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = line.decode(errors="replace").strip()
            m = re.fullmatch(r"mce (0x[0-9a-fA-F]+)", req)
            if not m:
                ctl.sendall(b"error unknown request\n")
                continue
            cmd = f"mce -b 0 {MCE_BANK} {MCE_STATUS} {MCE_MCG_STATUS} {m.group(1)} {MCE_MISC}"
            err = mon.command(cmd)
            msg = f"[host] {cmd}" + (f" -> {err}" if err else "")
            logf.write(msg + "\n")
            logf.flush()
            if echo:
                log(msg)
            ctl.sendall(b"error " + err.encode() + b"\n" if err else b"ok\n")


class GuestLog:
    """Tells the guest's own bookkeeping from the demo's lines: its boot
    marker, the dmesg it prints at the end, its exit status and what
    follows. The demo keeps those to the serial log."""

    def __init__(self):
        self.hiding = False

    def hides(self, line):
        if line.startswith("PROCFT-DMESG-BEGIN") or line.startswith("PROCFT-DONE"):
            self.hiding = True
        elif line.startswith("PROCFT-DMESG-END"):
            self.hiding = False
            return True
        return self.hiding or line.startswith("PROCFT-")


def run_vm(args, mode):
    os.makedirs(OUT, exist_ok=True)
    initrd = os.path.join(OUT, "initramfs.cpio.gz")
    disk = os.path.join(OUT, "disk.ext4")
    build_initramfs(args.kdir, args.module, initrd, args.script, bench=mode in BENCH_MODES)
    build_disk(disk, bench=mode in BENCH_MODES)

    accel = args.accel
    if accel == "auto":
        accel = "kvm" if kvm_works(args.kdir, initrd) else "tcg"
    log(f"booting {args.kdir} ({accel}), mode {mode}")

    sockdir = tempfile.mkdtemp(prefix="procft-vm.")
    mon, ctl = os.path.join(sockdir, "mon.sock"), os.path.join(sockdir, "ctl.sock")
    serial_log = os.path.join(OUT, "serial.log")
    start = time.time()
    with open(serial_log, "w") as logf:
        qemu = subprocess.Popen(qemu_cmd(args.kdir, initrd, disk, accel, mode, args.filter,
                                         mon, ctl, args.append, args.icount),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        threading.Thread(target=serve_requests, args=(ctl, mon, logf, mode != "demo"),
                         daemon=True).start()
        timer = threading.Timer(args.timeout, qemu.kill)
        timer.start()
        lines = []
        guest_log = GuestLog()
        for raw in qemu.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            logf.write(line + "\n")
            logf.flush()
            if not args.quiet and not (mode == "demo" and guest_log.hides(line)):
                print(line, flush=True)
        qemu.wait()
        timer.cancel()
    shutil.rmtree(sockdir, ignore_errors=True)
    elapsed = time.time() - start
    timed_out = elapsed >= args.timeout
    return lines, serial_log, elapsed, timed_out


def failed_test_summary(lines, result, tail=15):
    """Print a failed test's failed checks and the last lines of its output.

    Only the end of a CI log may be at hand: this puts what failed there,
    after the kernel log that the guest prints last.
    """
    name = result.split("selftests: procft: ", 1)[-1].split(" #")[0]
    try:
        first = lines.index(f"# selftests: procft: {name}")
        last = lines.index(result, first)
    except ValueError:
        return
    block = [l for l in lines[first + 1:last] if l.startswith("# ")]
    shown = [l for l in block if l.startswith("# not ok")]
    shown += [l for l in block[-tail:] if l not in shown]
    print(f"[vm] {name}: its failed checks and its last {tail} lines of output:")
    for l in shown:
        print(f"[vm]   {l[2:]}")


def verdict(lines, mode, elapsed, timed_out, serial_log, expect_lockdep=False):
    problems = []
    done = [l for l in lines if l.startswith("PROCFT-DONE")]
    if timed_out:
        problems.append("the VM timed out")
    if not done:
        problems.append("the guest did not finish (no PROCFT-DONE)")
    elif done[-1] != "PROCFT-DONE rc=0":
        problems.append(f"the guest reported failure ({done[-1]})")
    bad = [l for l in lines if BAD_KERNEL_LOG.search(l)]
    if expect_lockdep and "PROCFT-LOCKDEP 1" not in lines:
        problems.append("lockdep was not on to the end of the run (" +
                        next((l for l in lines if l.startswith("PROCFT-LOCKDEP")),
                             "not in this kernel") + ")")
    if bad:
        problems.append("kernel log shows: " + " | ".join(bad[:5]))
    if mode == "test":
        plan = next((l for l in lines if re.fullmatch(r"1\.\.\d+", l)), None)
        results = [l for l in lines if re.match(r"(not )?ok \d+ selftests: ", l)]
        failed = [l for l in results if l.startswith("not ok")]
        if plan is None:
            problems.append("no TAP plan")
        elif len(results) != int(plan[3:]):
            problems.append(f"TAP plan {plan} but {len(results)} results")
        for l in failed:
            problems.append(l)
        print(f"\n[vm] {len(results) - len(failed)}/{len(results)} test programs passed "
              f"in {elapsed:.0f}s; serial log: {serial_log}")
        for l in failed:
            failed_test_summary(lines, l)
    for p in problems:
        print(f"[vm] FAIL: {p}")
    if not problems:
        print("[vm] PASS")
    return 1 if problems else 0


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["test", "demo", "script", *BENCH_MODES],
                    help="script: run --script FILE in the guest instead of the tests; "
                    "bench, profile: bench/bench.sh or bench/profile.sh, which load procft.ko "
                    "themselves")
    ap.add_argument("--script", help="shell script to run in the guest (mode script)")
    ap.add_argument("--kdir", required=True, help="test kernel build directory")
    ap.add_argument("--module", default=os.path.join(ROOT, "procft.ko"),
                    help="procft.ko built for that kernel (default: the tree's)")
    ap.add_argument("--out", default=OUT, help="work directory (initramfs, disk, serial log)")
    ap.add_argument("--append", default="", help="more kernel command-line arguments")
    ap.add_argument("--modargs", default="",
                    help="parameters for every load of procft.ko in the guest, e.g. "
                         "'syscall_tracepoints=1' (the tests that reload it keep them)")
    ap.add_argument("--icount", type=int, metavar="SHIFT",
                    help="TCG only: guest time advances 2^SHIFT ns per instruction "
                         "(-icount, sleep=off), for measurements the host's load and "
                         "speed do not move (while every vCPU is halted the guest's "
                         "clock jumps to its next timer, so a guest timeout on host "
                         "work, such as disk I/O, may end early)")
    ap.add_argument("--no-module", action="store_true",
                    help="do not load procft.ko at boot (script, demo, bench: a baseline)")
    ap.add_argument("--expect-lockdep", action="store_true",
                    help="fail unless lockdep is still on at the end (debug kernel)")
    ap.add_argument("--accel", default=os.environ.get("PROCFT_ACCEL", "auto"),
                    choices=["auto", "tcg", "kvm"])
    ap.add_argument("--filter", default=os.environ.get("PROCFT_TESTS", ""),
                    help="run only tests whose name contains this")
    ap.add_argument("--timeout", type=int, default=2400, help="seconds")
    ap.add_argument("--quiet", action="store_true", help="do not echo the console")
    args = ap.parse_args()
    OUT = os.path.abspath(args.out)
    # A long fuzzer run (make fuzz) gets its duration on top.
    args.timeout += int(os.environ.get("PROCFT_FUZZ_SECS") or 0)
    if args.modargs:
        args.append += f" ftmodargs={','.join(args.modargs.split())}"
    if args.no_module:
        args.append += " ftnomodule=1"
    lines, serial_log, elapsed, timed_out = run_vm(args, args.mode)
    sys.exit(verdict(lines, args.mode, elapsed, timed_out, serial_log, args.expect_lockdep))


if __name__ == "__main__":
    main()

// SPDX-License-Identifier: GPL-2.0
/*
 * Memory errors procft must leave alone.
 *
 * - The kernel's mce-inject debugfs interface, software mode (the only
 *   mode on an Intel CPU model): the record goes down the decode chain with
 *   no severity, so the kernel's uncorrected-error handler does not call
 *   memory_failure().  procft follows the kernel's decision: the
 *   duplicate on that frame lives on, nothing is counted, the frame is not
 *   poisoned, and the log says why.
 * - A real machine check (QEMU monitor) on a frame no process maps (a
 *   page the test freed): the kernel retires the free frame, procft counts
 *   nothing and no replica is touched.
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/socket.h>

#define PAGES 16

static char *buf;

/* Writes @val to /sys/kernel/debug/mce-inject/@name. */
static int inject_set(const char *name, const char *val)
{
	char path[96];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/kernel/debug/mce-inject/%s", name);
	fd = open(path, O_WRONLY);
	ok = fd >= 0 && write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

int main(void)
{
	pid_t pid, reps[8] = { 0 }, after[8] = { 0 };
	char addr[32], *spare;
	uint64_t pfn;
	int ctl[2], ok;

	tap_plan(6);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("socketpair");
	pid = fork();
	if (pid == 0)
		hold_pattern(ctl[1], PAGES, 7);
	read(ctl[0], &buf, sizeof(buf));
	ok = ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	tap_ok(ok, "level 2, duplicates %d %d", reps[1], reps[2]);

	/* mce-inject, software mode, on a frame of duplicate 1. */
	pfn = pfn_of(reps[1], buf + 3 * 4096);
	snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)(pfn * 4096));
	ok = pfn && !inject_set("flags", "sw\n") && !inject_set("status", "0xbd000000000000c0") &&
	     !inject_set("misc", "0x86") && !inject_set("addr", addr) && !inject_set("cpu", "0") &&
	     !inject_set("bank", "1");
	tap_ok(ok, "mce-inject (sw): uncorrected memory error at %s, duplicate %d's frame", addr,
	       reps[1]);
	usleep(500000);
	ok = wait_duplicates(pid, 2, after) && after[1] == reps[1] && after[2] == reps[2] &&
	     procft_field(pid, "mce_events=") == 0 && procft_field(pid, "respawns=") == 0;
	tap_ok(ok, "the duplicate lives on and nothing is counted (mce_events=%ld)",
	       procft_field(pid, "mce_events="));
	tap_ok(!(kpage_flags(pfn) >> KPF_HWPOISON & 1) && pfn_of(reps[1], buf + 3 * 4096) == pfn &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx of replica %d not acted on by the kernel; procft leaves it too'",
		       pid, (unsigned long long)pfn, reps[1]) == 0,
	       "as the kernel: the frame is not poisoned, still mapped, and the log says so");

	/* A real machine check on a frame nobody maps. */
	spare = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(spare, 1, 4096);
	pfn = pfn_of(getpid(), spare);
	munmap(spare, 4096);
	tap_ok(pfn && host_inject_mce(pfn * 4096) == 0 && usleep(300000) == 0 &&
	       (kpage_flags(pfn) >> KPF_HWPOISON & 1),
	       "machine check on the freed frame %#llx: the kernel retires it", (unsigned long long)pfn);
	ok = wait_duplicates(pid, 2, after) && after[1] == reps[1] && after[2] == reps[2] &&
	     procft_field(pid, "mce_events=") == 0 && procft_field(pid, "failovers=") == 0 &&
	     run_cmd("dmesg | grep 'procft: pid %d:' | grep -q 'frame %#llx'", pid,
		     (unsigned long long)pfn) != 0;
	tap_ok(ok, "no replica touched, nothing counted or logged by procft");
	kill(pid, SIGKILL);
	reap(pid);
	return tap_finish();
}

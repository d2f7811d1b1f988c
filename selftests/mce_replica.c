// SPDX-License-Identifier: GPL-2.0
/*
 * A memory error on a duplicate's frame ends only that duplicate: a real
 * machine check raised through QEMU's monitor, and the kernel's hwpoison
 * injector (corrupt-pfn), each on a frame only one duplicate maps.  The
 * group is restored to its level on fresh frames, the primary goes on with
 * its memory intact, the frame stays poisoned, and the event is counted.
 */
#include "ft_test.h"

#include <sys/socket.h>

#define PAGES 32

static char *buf;

int main(void)
{
	pid_t pid, reps[8] = { 0 }, victim;
	uint64_t pfn, primary_pfn;
	int ctl[2], fd, ok;
	char cmd[64];

	tap_plan(10);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("socketpair");
	pid = fork();
	if (pid == 0)
		hold_pattern(ctl[1], PAGES, 13);
	read(ctl[0], &buf, sizeof(buf));
	ok = ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	tap_ok(ok, "level 2, duplicates %d %d", reps[1], reps[2]);

	/* A real machine check on a frame only duplicate 1 maps. */
	victim = reps[1];
	pfn = pfn_of(victim, buf + 5 * 4096);
	primary_pfn = pfn_of(pid, buf + 5 * 4096);
	tap_ok(pfn && pfn != primary_pfn && pfn != pfn_of(reps[2], buf + 5 * 4096),
	       "duplicate %d's page is on frame %#llx, its own", victim, (unsigned long long)pfn);
	tap_ok(host_inject_mce(pfn * 4096) == 0, "machine check raised at %#llx",
	       (unsigned long long)(pfn * 4096));
	ok = wait_gone(victim) && wait_duplicates(pid, 2, reps) && reps[1] != victim && reps[2] != victim;
	tap_ok(ok, "the duplicate died and the group is back at level 2 (%d %d)", reps[1], reps[2]);
	tap_ok(wait_field(pid, "mce_events=", 1, 2) == 1 && procft_field(pid, "respawns=") >= 1,
	       "mce_events=%ld respawns=%ld", procft_field(pid, "mce_events="), procft_field(pid, "respawns="));
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in duplicate %d; replacing it'",
		       pid, (unsigned long long)pfn, victim) == 0,
	       "the event is logged with group, frame and replica");
	tap_ok(!kill(pid, 0) && buffer_intact(pid, buf, PAGES, 13) && pfn_of(pid, buf + 5 * 4096) == primary_pfn &&
	       (kpage_flags(pfn) >> KPF_HWPOISON & 1),
	       "the primary lives with its memory intact; frame %#llx is poisoned",
	       (unsigned long long)pfn);
	tap_ok(pfn_of(reps[1], buf + 5 * 4096) != pfn && pfn_of(reps[2], buf + 5 * 4096) != pfn,
	       "the new duplicate is on fresh frames");

	/* The kernel's hwpoison injector, on the other duplicate. */
	victim = reps[2];
	pfn = pfn_of(victim, buf + 9 * 4096);
	fd = open("/sys/kernel/debug/hwpoison/corrupt-pfn", O_WRONLY);
	snprintf(cmd, sizeof(cmd), "%llu", (unsigned long long)pfn);
	ok = fd >= 0 && write(fd, cmd, strlen(cmd)) > 0;
	if (fd >= 0)
		close(fd);
	ok = ok && wait_gone(victim) && wait_duplicates(pid, 2, reps);
	tap_ok(ok, "corrupt-pfn %#llx: duplicate %d replaced (%d %d)", (unsigned long long)pfn,
	       victim, reps[1], reps[2]);
	tap_ok(!kill(pid, 0) && buffer_intact(pid, buf, PAGES, 13) && (kpage_flags(pfn) >> KPF_HWPOISON & 1) && procft_field(pid, "respawns=") >= 2,
	       "the primary is untouched; respawns=%ld", procft_field(pid, "respawns="));
	reap(pid);
	return tap_finish();
}

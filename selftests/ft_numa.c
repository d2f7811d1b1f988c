// SPDX-License-Identifier: GPL-2.0
/*
 * On a NUMA machine a duplicate's memory is in another node than the
 * primary's: a process running (and so allocating) on node 0 gets a
 * duplicate whose copy of its buffer is on node 1, as /proc/<pid>/numa_maps
 * counts the pages.  Skipped on a machine with one memory node.
 */
#include "ft_test.h"

#include <sched.h>
#include <sys/mman.h>

#define PAGES 1024

/* Pages of @pid's mapping at @addr on node @node (numa_maps "N<node>="), or -1. */
static long pages_on(pid_t pid, void *addr, int node)
{
	char path[64], line[1024], key[16], want[32], *p;
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/numa_maps", pid);
	snprintf(want, sizeof(want), "%lx ", (unsigned long)addr);
	snprintf(key, sizeof(key), " N%d=", node);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		p = strstr(line, key);
		n = p ? strtol(p + strlen(key), NULL, 10) : 0;
		break;
	}
	fclose(f);
	return n;
}

int main(void)
{
	int ctl[2], ok;
	pid_t pid, reps[8];
	char *buf = NULL;
	long p0, p1, d0, d1;

	if (access("/sys/devices/system/node/node1", F_OK)) {
		printf("1..0 # SKIP one memory node\n");
		return 4;
	}
	tap_plan(3);
	if (pipe(ctl))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		cpu_set_t cpus;

		/* Runs, and allocates, on node 0's CPU. */
		CPU_ZERO(&cpus);
		CPU_SET(0, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus))
			_exit(1);
		buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memset(buf, 0x5a, PAGES * 4096);
		write(ctl[1], &buf, sizeof(buf));
		for (;;)
			usleep(10000);
	}
	read(ctl[0], &buf, sizeof(buf));
	p0 = pages_on(pid, buf, 0);
	p1 = pages_on(pid, buf, 1);
	tap_ok(p0 == PAGES && p1 == 0, "the primary's %d pages are on node 0 (N0=%ld N1=%ld)", PAGES,
	       p0, p1);
	ok = ioctl_set(pid, 1) == 0 && wait_duplicates(pid, 1, reps);
	d0 = pages_on(reps[1], buf, 0);
	d1 = pages_on(reps[1], buf, 1);
	tap_ok(ok && d1 == PAGES && d0 == 0,
	       "its duplicate %d has its copy on node 1 (N0=%ld N1=%ld)", reps[1], d0, d1);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: duplicate %d on its own frames ([0-9]* pages copied, node 1)'",
		       pid, reps[1]) == 0,
	       "logged with its node");
	reap(pid);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Duplicates: a protected process gets exactly N of them, created at its
 * system-call boundaries, on physically separate frames (checked page by
 * page through /proc/<pid>/pagemap and /proc/kpageflags), invisible to
 * the parent's wait() and never zombies; they follow level changes, are
 * replaced when killed, die with the primary, follow exec, and never
 * produce output of their own.
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/socket.h>

#define BUF_PAGES 64
#define TICKS 40

static char *buf;

/* The protected workload: fills a buffer, then ticks, making system calls. */
static void workload(int out, int ctl)
{
	char line[32];
	int i;

	buf = mmap(NULL, BUF_PAGES * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < BUF_PAGES * 4096; i++)
		buf[i] = (char)(i * 7);
	write(ctl, &buf, sizeof(buf));
	/* Wait for the go, making system calls all along. */
	while (recv(ctl, line, 1, MSG_DONTWAIT) != 1)
		usleep(5000);
	for (i = 0; i < TICKS; i++) {
		int n = snprintf(line, sizeof(line), "tick %d\n", i);

		write(out, line, n);
		usleep(20000);
	}
	for (;;)
		usleep(5000);
}

/* Parses /proc/procft for @pid: fills @reps (primary first), returns count, -1 if absent. */
static int replicas_of(pid_t pid, pid_t *reps, int *ready, int *respawns)
{
	char line[256], *p;
	int n = 0, level;

	if (procft_line(pid, line, sizeof(line)) != 1)
		return -1;
	p = strstr(line, "replicas=");
	for (p += 9; n < 8; n++) {
		reps[n] = strtol(p, &p, 10);
		if (*p != ',') {
			n++;
			break;
		}
		p++;
	}
	if (ready)
		sscanf(strstr(line, "duplicates="), "duplicates=%d/%d", ready, &level);
	if (respawns)
		sscanf(strstr(line, "respawns="), "respawns=%d", respawns);
	return n;
}

/* Waits up to 10 s until @pid has @want duplicates, all ready. */
static int converge(pid_t pid, int want, pid_t *reps)
{
	int i, n = -1, ready = -1;

	for (i = 0; i < 1000; i++) {
		n = replicas_of(pid, reps, &ready, NULL);
		if (n == want + 1 && ready == want)
			return 1;
		usleep(10000);
	}
	tap_diag("pid %d: %d replicas, %d ready; want %d duplicates", pid, n, ready, want);
	return 0;
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], st[512];
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(st, sizeof(st), f))
		sscanf(strrchr(st, ')') + 2, "%*c %d", &ppid);
	fclose(f);
	return ppid;
}

/*
 * Every anonymous page present in the primary is on a frame no duplicate
 * maps at that address, and the duplicates' frames differ from each
 * other's.  Returns the number of pages compared, or -1 on a shared frame.
 */
static long frames_disjoint(pid_t *reps, int n)
{
	char path[64], line[256];
	unsigned long lo, hi, a;
	long pages = 0;
	char perms[8];
	FILE *maps;
	int i, j;

	snprintf(path, sizeof(path), "/proc/%d/maps", reps[0]);
	maps = fopen(path, "r");
	if (!maps)
		return -1;
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[3] != 'p')
			continue;
		for (a = lo; a < hi; a += 4096) {
			uint64_t pfn[8] = { 0 };

			for (i = 0; i < n; i++)
				pfn[i] = pfn_of(reps[i], (void *)a);
			if (!pfn[0] || !(kpage_flags(pfn[0]) & (1ULL << KPF_ANON)))
				continue;
			for (i = 0; i < n; i++)
				for (j = i + 1; j < n; j++)
					if (pfn[i] && pfn[i] == pfn[j]) {
						tap_diag("%#lx: replicas %d and %d share frame %#llx",
							 a, reps[i], reps[j], (unsigned long long)pfn[i]);
						fclose(maps);
						return -1;
					}
			pages++;
		}
	}
	fclose(maps);
	return pages;
}

int main(void)
{
	int out[2], ctl[2], i, n, ok, respawns = 0, st;
	pid_t reps[8], pid, victim;
	char text[4096] = "";
	char *bufp = NULL;
	size_t got = 0;
	long pages;

	tap_plan(12);
	if (pipe(out) || socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		close(out[0]);
		close(ctl[0]);
		workload(out[1], ctl[1]);
	}
	close(out[1]);
	close(ctl[1]);
	if (read(ctl[0], &bufp, sizeof(bufp)) != sizeof(bufp))
		die("workload");

	tap_ok(ioctl_set(pid, 2) == 0 && converge(pid, 2, reps),
	       "level 2: two duplicates are created at system-call boundaries");
	n = replicas_of(pid, reps, NULL, NULL);
	ok = reps[0] == pid;
	for (i = 1; i < n; i++) {
		if (ppid_of(reps[i]) != pid) {
			tap_diag("duplicate %d: parent %d", reps[i], ppid_of(reps[i]));
			ok = 0;
		}
	}
	if (waitpid(-1, &st, WNOHANG) != 0) {
		tap_diag("waitpid(-1, WNOHANG) reaped something");
		ok = 0;
	}
	{
		char path[64], kids[64] = "", want[16];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
		snprintf(want, sizeof(want), "%d ", pid);
		f = fopen(path, "r");
		if (!f || !fgets(kids, sizeof(kids), f) || strcmp(kids, want)) {
			tap_diag("children: '%s', want '%s'", kids, want);
			ok = 0;
		}
		if (f)
			fclose(f);
	}
	tap_ok(ok, "the parent's only child is the primary; wait() sees no duplicate");

	ok = 1;
	for (i = 0; i < BUF_PAGES; i++) {
		uint64_t p0 = pfn_of(reps[0], bufp + i * 4096);

		ok = ok && p0 && pfn_of(reps[1], bufp + i * 4096) &&
		     p0 != pfn_of(reps[1], bufp + i * 4096) &&
		     p0 != pfn_of(reps[2], bufp + i * 4096) &&
		     pfn_of(reps[1], bufp + i * 4096) != pfn_of(reps[2], bufp + i * 4096);
	}
	tap_ok(ok, "every page of a %d-page buffer is on three different frames", BUF_PAGES);
	pages = frames_disjoint(reps, n);
	tap_ok(n == 3 && pages > BUF_PAGES,
	       "all %ld anonymous pages of the primary: no frame shared with a duplicate", pages);

	/* Let it tick while protected; its output must not be multiplied. */
	write(ctl[0], "g", 1);
	victim = reps[2];
	tap_ok(ioctl_set(pid, 1) == 0 && wait_gone(victim) && converge(pid, 1, reps) && reps[1] != victim,
	       "level 2 -> 1: the newest duplicate goes");
	victim = reps[1];
	kill(victim, SIGKILL);
	ok = wait_gone(victim) && converge(pid, 1, reps) && reps[1] != victim;
	replicas_of(pid, reps, NULL, &respawns);
	tap_ok(ok && respawns == 1, "a killed duplicate is replaced (respawns=%d)", respawns);
	tap_ok(ioctl_set(pid, 3) == 0 && converge(pid, 3, reps), "level 1 -> 3: converges to three");

	while (got < sizeof(text) - 1) {
		ssize_t r = read(out[0], text + got, sizeof(text) - 1 - got);

		if (r <= 0)
			break;
		got += r;
		if (strstr(text, "tick 39\n"))
			break;
	}
	ok = 1;
	{
		char *p = text;

		for (i = 0; i < TICKS && ok; i++) {
			char want[32];

			snprintf(want, sizeof(want), "tick %d\n", i);
			ok = !strncmp(p, want, strlen(want));
			p += strlen(want);
		}
		ok = ok && *p == 0;
	}
	tap_ok(ok, "output while protected: each of %d lines once, in order", TICKS);

	n = replicas_of(pid, reps, NULL, NULL);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	for (i = 1; i < n; i++)
		ok = ok && wait_gone(reps[i]);
	tap_ok(ok && replicas_of(pid, reps, NULL, NULL) == -1,
	       "the primary's death ends the group: its status, duplicates gone, no zombie");
	tap_ok(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD, "nothing left to wait for");

	/* exec under protection: the new image gets duplicates. */
	pid = fork();
	if (pid == 0) {
		proc_write(getpid(), "1\n");
		execl("/bin/sh", "sh", "-c", "while true; do usleep 5000; done", NULL);
		_exit(1);
	}
	/*
	 * A duplicate made at the execve() itself belongs to the old image and
	 * dies with it: look until the one found is the new image's.
	 */
	for (i = 0, ok = 0; i < 10 && !ok; i++)
		ok = converge(pid, 1, reps) &&
		     run_cmd("tr '\\0' ' ' < /proc/%d/cmdline 2>/dev/null | grep -q 'while true'",
			     reps[1]) == 0;
	tap_ok(ok, "echo 1 > /proc/self/ft_level; exec sh: the new image is duplicated");
	reap(pid);
	tap_ok(wait_gone(reps[1]), "and its duplicate dies with it");
	return tap_finish();
}

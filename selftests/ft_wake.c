// SPDX-License-Identifier: GPL-2.0
/*
 * Each protected process has its own wait queue: the wake-ups of one
 * group do not reach the replicas of another.  A's duplicate waits for
 * the record of A's read() of a pipe nobody writes to; B's duplicate
 * waits for the record of each of B's nanosleep() calls and is woken by
 * its publish.  A's duplicate must sleep through all of them (counted in its
 * voluntary context switches: on one queue for every group it was woken,
 * and went back to sleep, at each).
 */
#include "ft_test.h"

#include <time.h>

#define NAPS 300

/* @pid's voluntary context switches, or -1. */
static long switches(pid_t pid)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Waits (10 s at most) until @pid's voluntary context switches stay put for 200 ms. */
static long settled_switches(pid_t pid)
{
	long last = switches(pid), now;
	int i;

	for (i = 0; i < 50; i++, last = now) {
		usleep(200000);
		now = switches(pid);
		if (now == last)
			return now;
	}
	return -1;
}

/*
 * A child that blocks in read() on a pipe (*@go is its other end) and,
 * if @nap, once it gets a byte, naps NAPS times, a millisecond each,
 * writes "done" on *@res and blocks again.
 */
static pid_t start(int nap, int *go, int *res)
{
	struct timespec ts = { .tv_nsec = 1000000 };
	int p[2], r[2], i;
	pid_t pid;
	char c;

	if (pipe(p) || pipe(r))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		close(r[0]);
		if (read(p[0], &c, 1) == 1 && nap) {
			for (i = 0; i < NAPS; i++)
				nanosleep(&ts, NULL);
			dprintf(r[1], "done");
			read(p[0], &c, 1);
		}
		_exit(0);
	}
	close(p[0]);
	close(r[1]);
	*go = p[1];
	*res = r[0];
	/* Let it reach its blocking call. */
	usleep(300000);
	return pid;
}

int main(void)
{
	pid_t a, b, reps_a[8], reps_b[8];
	long a0, a1, b0, b1;
	char buf[16] = "";
	size_t got = 0;
	int go_a, res_a, go, res, ok;

	tap_plan(3);

	a = start(0, &go_a, &res_a);
	b = start(1, &go, &res);
	ok = ioctl_set(a, 1) == 0 && wait_duplicates(a, 1, reps_a);
	ok = ok && ioctl_set(b, 1) == 0 && wait_duplicates(b, 1, reps_b);
	tap_diag("A: pid %d, B: pid %d", a, b);
	a0 = ok ? settled_switches(reps_a[1]) : -1;
	b0 = ok ? switches(reps_b[1]) : -1;
	tap_ok(ok && a0 >= 0 && b0 >= 0, "two processes protected at level 1, A's duplicate asleep");

	if (write(go, "g", 1) != 1)
		die("write");
	read_until(res, buf, sizeof(buf), &got, "done");
	b1 = switches(reps_b[1]);
	a1 = switches(reps_a[1]);
	tap_diag("B's duplicate: %ld voluntary switches; A's: %ld", b1 - b0, a1 - a0);
	tap_ok(strstr(buf, "done") && b1 - b0 >= NAPS / 3,
	       "B made %d naps; its duplicate slept and was woken at least %d times", NAPS,
	       NAPS / 3);
	tap_ok(a1 >= a0 && a1 - a0 < 10, "A's duplicate was not woken by B's group (%ld times)",
	       a1 - a0);

	reap(b);
	reap(a);
	close(go_a);
	close(res_a);
	close(go);
	close(res);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Soak: a workload at level 2 takes a few hundred memory errors on random
 * frames of random replicas, one after another, and must finish with the
 * output of an unprotected run of the same number of rounds.
 *
 * Each error is either a real machine check through the QEMU monitor
 * (action-optional) or the kernel's software injector (corrupt-pfn), on
 * the current frame of a random page of the workload's 1 MiB buffer in a
 * random replica. After each, the test waits until procft has dealt with
 * it (a duplicate replaced, or the primary repaired or taken over) and the
 * group is back at two duplicates in step, then injects the next.
 *
 * Storm (ft_soak --storm N): N errors fired without waiting for procft to
 * recover in between, mixed with level changes (1 to 3) while errors are
 * being handled: several replicas can be hit at once, a duplicate while it
 * is being created, the primary while no duplicate is in step.  Then the
 * process may die, but only as an unprotected one would (SIGBUS), and
 * never with a wrong result: every line it printed must equal the
 * unprotected run's.  If it lives, it must converge back to level 2.
 *
 * Usage: ft_soak [injections]   (default 200)
 *        ft_soak --storm [injections [--fixed-level]]   (default 100)
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#define PAGES 256
#define WORDS (PAGES * 4096 / 8)

/* Rounds of work until told to stop (@rounds < 0) or @rounds of them. */
static void workload(int ctl, int out, int level, int rounds)
{
	uint64_t *w, x = 0x2545f4914f6cdd1dULL, sum;
	char line[64], c;
	int i, n;

	if (level && ioctl_set(0, level))
		_exit(90);
	w = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		_exit(91);
	for (i = 0; i < WORDS; i++)
		w[i] = x = x * 6364136223846793005ULL + 1;
	write(ctl, &w, sizeof(w));
	dprintf(out, "pid %d\n", getpid());
	for (n = 0; rounds < 0 || n < rounds; n++) {
		if (rounds < 0 && recv(ctl, &c, 1, MSG_DONTWAIT) == 1)
			break;
		sum = 0;
		for (i = 0; i < WORDS; i++) {
			w[i] = w[i] * 0x9e3779b97f4a7c15ULL + n;
			sum += w[i] ^ (w[i] >> 29);
		}
		snprintf(line, sizeof(line), "round %d %016llx\n", n, (unsigned long long)sum);
		write(out, line, strlen(line));
		usleep(1000);
	}
	dprintf(out, "pid %d\n", getpid());
	_exit(5);
}

static long events(pid_t pid)
{
	return procft_field(pid, "failovers=") + procft_field(pid, "respawns=");
}

/* What @fd has now (it is non-blocking), appended to @buf. */
static void drain(int fd, char *buf, size_t len, size_t *got)
{
	ssize_t n;

	while (*got < len - 1 && (n = read(fd, buf + *got, len - 1 - *got)) > 0)
		*got += n;
	buf[*got] = 0;
}

/*
 * Starts the workload at level 2, running until told to stop; @w gets its
 * buffer's address, @pipefd[0] its output, which is made non-blocking so
 * the test reads it as it comes and the workload never blocks on a full
 * pipe.
 */
static pid_t start(int ctl[2], int pipefd[2], uint64_t **w)
{
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	srand(getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(pipefd))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		workload(ctl[1], pipefd[1], 2, -1);
	}
	close(pipefd[1]);
	read(ctl[0], w, sizeof(*w));
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	return pid;
}

/* The unprotected run's output for @rounds rounds, into @ref; its pid and status. */
static pid_t reference(int ctl[2], int rounds, char *ref, size_t len, int *st)
{
	uint64_t *w = NULL;
	int pipefd[2];
	size_t got = 0;
	pid_t pid;

	if (pipe(pipefd))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		workload(ctl[1], pipefd[1], 0, rounds);
	}
	close(pipefd[1]);
	read(ctl[0], &w, sizeof(w));
	read_to_eof(pipefd[0], ref, len, &got);
	close(pipefd[0]);
	waitpid(pid, st, 0);
	return pid;
}

static int storm(int want, int change_levels)
{
	static char out[1 << 20], ref[1 << 20];
	int ctl[2], pipefd[2], st = 0, rounds = 0, shots = 0, levels = 0, dead = 0, i;
	size_t got = 0;
	uint64_t *w = NULL;
	pid_t pid, reps[8];
	char line[256], *p, *a, *b;

	tap_plan(3);
	pid = start(ctl, pipefd, &w);
	wait_duplicates(pid, 2, reps);
	for (i = 0; i < want * 2 && shots < want && !dead; i++) {
		uint64_t pfn;
		int n = 0;

		drain(pipefd[0], out, sizeof(out), &got);
		dead = waitpid(pid, &st, WNOHANG) == pid;
		if (dead)
			break;
		usleep(rand() % 30000);
		if (change_levels && rand() % 8 == 0) {
			levels += ioctl_set(pid, 1 + rand() % 3) == 0;
			continue;
		}
		/* Whatever replicas there are right now, ready or not. */
		if (procft_line(pid, line, sizeof(line)) != 1)
			continue;
		p = strstr(line, "replicas=");
		if (!p)
			continue;
		for (p += 9; n < 8; n++) {
			reps[n] = strtol(p, &p, 10);
			if (*p++ != ',')
				break;
		}
		pfn = pfn_of(reps[rand() % (n + 1)], (char *)w + (rand() % PAGES) * 4096);
		if (pfn && !(rand() % 2 ? host_inject_mce(pfn * 4096) : corrupt_pfn(pfn)))
			shots++;
	}
	/* The last errors may still be taking effect. */
	usleep(300000);
	if (!dead)
		dead = waitpid(pid, &st, WNOHANG) == pid;
	if (!dead && (ioctl_set(pid, 2) || !wait_duplicates(pid, 2, reps)))
		dead = waitpid(pid, &st, WNOHANG) == pid;
	if (!dead) {
		tap_ok(procft_field(pid, "duplicates=") == 2,
		       "alive after %d errors and %d level changes; back at level 2 (failovers=%ld respawns=%ld)",
		       shots, levels, procft_field(pid, "failovers="), procft_field(pid, "respawns="));
		write(ctl[0], "s", 1);
		fcntl(pipefd[0], F_SETFL, 0);
		read_to_eof(pipefd[0], out, sizeof(out), &got);
		waitpid(pid, &st, 0);
	} else {
		read_to_eof(pipefd[0], out, sizeof(out), &got);
		tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
		       "died after %d errors and %d level changes, as an unprotected process would: SIGBUS (status %#x)",
		       shots, levels, st);
	}
	close(pipefd[0]);
	for (p = out; (p = strstr(p, "round ")); p++)
		rounds++;
	reference(ctl, rounds, ref, sizeof(ref), &i);
	/* Compare the round lines only (the pid lines differ). */
	a = strchr(out, '\n');
	b = strchr(ref, '\n');
	p = a ? strstr(a, "pid ") : NULL;
	if (p)
		*p = 0;
	p = b ? strstr(b, "pid ") : NULL;
	if (p)
		*p = 0;
	if (!tap_ok(a && b && !strcmp(a, b), "all %d rounds it printed equal the unprotected run's",
		    rounds) && a && b) {
		/* Where they part. */
		for (i = 0; a[i] && a[i] == b[i]; i++)
			;
		while (i > 0 && a[i - 1] != '\n')
			i--;
		tap_diag("first difference at byte %d:\n%.200s\n--- unprotected:\n%.200s", i, a + i, b + i);
	}
	tap_ok(dead || (WIFEXITED(st) && WEXITSTATUS(st) == 5), "%s",
	       dead ? "(it died: no exit status to check)" : "and it exited with its own status");
	return tap_finish();
}

int main(int argc, char **argv)
{
	static char out[1 << 20], ref[1 << 20];
	int want;

	if (argc > 1 && !strcmp(argv[1], "--storm"))
		return storm(argc > 2 ? atoi(argv[2]) : 100, !(argc > 3 && !strcmp(argv[3], "--fixed-level")));
	want = argc > 1 ? atoi(argv[1]) : 200;
	int ctl[2], pipefd[2], st, rst, done = 0, tries = 0, rounds = 0, stuck = 0;

	int on_primary = 0, on_dup = 0, by_mce = 0, by_sw = 0;
	long before;
	size_t got = 0;
	uint64_t *w = NULL;
	pid_t pid, refpid, reps[8];
	struct timespec t0, t1;
	char *p;

	tap_plan(4);
	pid = start(ctl, pipefd, &w);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < want && tries < want * 4 && !stuck) {
		uint64_t pfn;
		int r, i, mce, page;

		tries++;
		drain(pipefd[0], out, sizeof(out), &got);
		if (!wait_duplicates(pid, 2, reps)) {
			stuck = 1;
			break;
		}
		/*
		 * A new duplicate was just forked: the primary's first writes
		 * after a fork may still move its pages to new frames (a
		 * copy-on-write break). A few rounds later they stay put.
		 */
		usleep(20000);
		r = rand() % 3;
		page = rand() % PAGES;
		pfn = pfn_of(reps[r], (char *)w + page * 4096);
		if (!pfn)
			continue;
		before = events(pid);
		mce = rand() % 2;
		if (mce ? host_inject_mce(pfn * 4096) : corrupt_pfn(pfn)) {
			tap_diag("injection %d on frame %#llx failed", done, (unsigned long long)pfn);
			continue;
		}
		done++;
		on_primary += r == 0;
		on_dup += r != 0;
		by_mce += mce;
		by_sw += !mce;
		/* Dealt with: a duplicate replaced, or the primary mended. */
		for (i = 0; i < 1000 && events(pid) == before; i++) {
			drain(pipefd[0], out, sizeof(out), &got);
			usleep(10000);
		}
		if (events(pid) == before) {
			tap_diag("injection %d (%s on %s %d, page %d, frame %#llx, now %#llx, flags %#llx) not dealt with in 10 s",
				 done, mce ? "machine check" : "corrupt-pfn", r ? "duplicate" : "primary",
				 reps[r], page, (unsigned long long)pfn,
				 (unsigned long long)pfn_of(reps[r], (char *)w + page * 4096),
				 (unsigned long long)kpage_flags(pfn));
			stuck = 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tap_ok(done == want && !stuck,
	       "%d errors injected (%d on the primary, %d on duplicates; %d machine checks, %d corrupt-pfn) in %.1f s",
	       done, on_primary, on_dup, by_mce, by_sw,
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	tap_ok(wait_duplicates(pid, 2, reps) && procft_field(pid, "failovers=") == on_primary &&
	       procft_field(pid, "respawns=") == on_dup,
	       "back at level 2: failovers=%ld (one per primary hit) respawns=%ld (one per duplicate hit) mce_events=%ld divergences=%ld",
	       procft_field(pid, "failovers="), procft_field(pid, "respawns="),
	       procft_field(pid, "mce_events="), procft_field(pid, "divergences="));
	write(ctl[0], "s", 1);
	fcntl(pipefd[0], F_SETFL, 0);
	read_to_eof(pipefd[0], out, sizeof(out), &got);
	waitpid(pid, &st, 0);
	close(pipefd[0]);
	for (p = out; (p = strstr(p, "round ")); p++)
		rounds++;

	/* The same number of rounds, unprotected. */
	refpid = reference(ctl, rounds, ref, sizeof(ref), &rst);
	{
		char mine[32], theirs[32];
		const char *a = strchr(out, '\n'), *b = strchr(ref, '\n');
		const char *ea = a ? strstr(a, "pid ") : NULL, *eb = b ? strstr(b, "pid ") : NULL;

		snprintf(mine, sizeof(mine), "pid %d\n", pid);
		snprintf(theirs, sizeof(theirs), "pid %d\n", refpid);
		tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 5 && !strncmp(out, mine, strlen(mine)) &&
		       ea && !strcmp(ea, mine),
		       "the process ran to its end with its own status (%#x) and pid %d throughout",
		       st, pid);
		tap_ok(rounds > 0 && ea && eb && ea - a == eb - b && !memcmp(a, b, ea - a) &&
		       WIFEXITED(rst) && !strcmp(eb, theirs),
		       "its %d rounds of output equal an unprotected run's, byte for byte", rounds);
	}
	return tap_finish();
}

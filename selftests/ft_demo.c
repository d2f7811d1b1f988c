// SPDX-License-Identifier: GPL-2.0
/*
 * The `make run` demo: a workload that prints its progress survives real
 * machine checks on its primary's and a duplicate's frames at level 2, and
 * a frame of the primary poisoned by the kernel's software injector (no
 * machine check: procft hears of it from memory_failure()), with the same
 * output as an unprotected run and the same pid; the same machine check
 * kills the unprotected run.
 */
#include "ft_test.h"

#include <sys/mman.h>

#define PAGES 64
#define ROUNDS 10

static int workload(void)
{
	unsigned int sum;
	char *buf;
	int i, r;

	buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < PAGES * 4096; i++)
		buf[i] = (char)(i * 31 + 7);
	printf("buffer %p\n", buf);
	printf("start: pid %d\n", getpid());
	fflush(stdout);
	for (r = 1; r <= ROUNDS; r++) {
		usleep(300000);
		/* Every round changes every page, then sums them all. */
		for (sum = 2166136261u, i = 0; i < PAGES * 4096; i++) {
			buf[i] = (char)(buf[i] * 3 + r);
			sum = (sum ^ (unsigned char)buf[i]) * 16777619u;
		}
		printf("round %d: checksum %08x\n", r, sum);
		fflush(stdout);
	}
	printf("end: pid %d\n", getpid());
	return 0;
}

static void show_group(pid_t pid)
{
	char line[256];

	if (procft_line(pid, line, sizeof(line)) == 1)
		printf("    /proc/procft: %s\n", line);
	fflush(stdout);
}

static pid_t duplicate_of(pid_t pid)
{
	char line[256], *p;

	if (procft_line(pid, line, sizeof(line)) != 1)
		return 0;
	p = strchr(strstr(line, "replicas="), ',');
	return p ? atoi(p + 1) : 0;
}

/*
 * Runs the workload at @level; at the end of each round listed in @hit
 * (1: primary, 2: a duplicate), raises a machine check on a page of it;
 * (3) poisons a page of the primary with no machine check (corrupt-pfn).
 * Collects its output in @out, returns its wait status.
 */
static int run(const char *self, int level, const int *hit, char *out, size_t len)
{
	char lvl[8], line[256], *buf = NULL;
	int fds[2], st, round = 0;
	size_t got = 0;
	pid_t pid;
	FILE *f;

	snprintf(lvl, sizeof(lvl), "%d", level);
	if (pipe(fds))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		execl("/bin/ftctl", "ftctl", "run", "-l", lvl, "--", self, "--workload", NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "buffer %p", (void **)&buf) == 1)
			continue;
		printf("  | %s", line);
		fflush(stdout);
		if (strncmp(line, "round", 5))
			continue;
		got += snprintf(out + got, len - got, "%s", line);
		round++;
		if (round == 3 && level)
			show_group(pid);
		if (hit[round] == 3) {
			uint64_t pfn = pfn_of(pid, buf + round * 4096);

			printf("  >> frame %#llx of the primary poisoned by software (corrupt-pfn, no machine check);\n"
			       "     memory_failure() tells procft, which restores the page before it is used\n",
			       (unsigned long long)pfn);
			fflush(stdout);
			corrupt_pfn(pfn);
		} else if (hit[round]) {
			pid_t who = hit[round] == 1 ? pid : duplicate_of(pid);
			uint64_t pfn = pfn_of(who, buf + round * 4096);

			printf("  >> machine check on frame %#llx, %s %d\n", (unsigned long long)pfn,
			       who == pid ? "the primary," : "duplicate", who);
			fflush(stdout);
			host_inject_mce(pfn * 4096);
		}
		if (round == ROUNDS - 1 && level)
			show_group(pid);
	}
	fclose(f);
	waitpid(pid, &st, 0);
	return st;
}

int main(int argc, char **argv)
{
	static char ref[4096], prot[4096], unprot[4096];
	int none[ROUNDS + 1] = { 0 }, hits[ROUNDS + 1] = { 0 }, st;

	if (argc > 1 && !strcmp(argv[1], "--workload"))
		return workload();
	/* Line by line even into a pipe (demo.sh's tee), in order with run_cmd()'s. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("\n=== 1. reference: the workload, unprotected, no error\n");
	run(argv[0], 0, none, ref, sizeof(ref));

	printf("\n=== 2. protected at level 2: machine checks on the primary (round 4) and a duplicate (round 7),\n"
	       "       a frame of the primary poisoned by software (round 6)\n");
	hits[4] = 1;
	hits[6] = 3;
	hits[7] = 2;
	st = run(argv[0], 2, hits, prot, sizeof(prot));
	printf("    exit status %d; the rounds' output %s the reference's; pid at start and end above\n",
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1,
	       strcmp(ref, prot) ? "DIFFERS FROM" : "is byte-identical to");
	run_cmd("dmesg | grep 'procft: pid' | grep -v 'level\\|own frames\\|exited' | tail -8 | sed 's/^/    dmesg: /'");
	printf("    ftctl events (the protected run's):\n");
	run_cmd("ftctl events | grep -v 'event=level' | tail -8 | sed 's/^/    /'");

	printf("\n=== 3. unprotected: the same machine check on round 4\n");
	hits[6] = 0;
	hits[7] = 0;
	st = run(argv[0], 0, hits, unprot, sizeof(unprot));
	if (WIFSIGNALED(st))
		printf("    the workload was killed by signal %d (%s)\n", WTERMSIG(st),
		       WTERMSIG(st) == SIGBUS ? "SIGBUS" : "?");
	else
		printf("    the workload exited with %d\n", WEXITSTATUS(st));
	return strcmp(ref, prot) || !WIFSIGNALED(st) ? 1 : 0;
}

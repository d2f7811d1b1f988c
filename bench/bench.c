// SPDX-License-Identifier: GPL-2.0
/*
 * procft benchmark workloads.  Each prints the wall time it took and its
 * own CPU time (user + system, getrusage()), in microseconds, on its last
 * line; bench.sh runs them without procft, with it loaded, and at levels 1
 * and 2 in the same VM and prints ratios.
 *
 *   bench compute MIB   memory-heavy loop over MIB MiB
 *   bench getppid N     N getppid() calls
 *   bench rdtsc N       N rdtsc reads of the time-stamp counter
 *   bench clock N       N clock_gettime() system calls (what a protected
 *                       process's time reads become: its vDSO is hidden)
 *   bench pipe N        N 4 KiB write+read round trips through a pipe
 *   bench fork N        N fork() + _exit() + waitpid()
 *   bench busy N        forever: N getppid() calls, then 20 ms asleep
 *   bench run CMD...    run CMD (stdin and stdout inherited) and print its
 *                       wall time; fails if CMD does not exit with 0
 *   bench hold MIB      touch MIB MiB, print its address, then wait
 *   bench mce PID ADDR  raise a machine check on PID's page at ADDR and
 *                       print how long until procft restored it
 *   bench promote MIB HOW
 *                       (protected at level 1; HOW: takeover or copy, as
 *                       ftctl info says) once the duplicate has caught
 *                       up, consume poison in MIB MiB; print
 *                       how long until the successor runs, and until the
 *                       level is back (a duplicate in step: after a
 *                       takeover, a new one)
 *   bench stall MIB     touch MIB MiB, print its address, then loop (a
 *                       getppid(), a write to one of its pages and a
 *                       1 ms sleep per turn) until a file stall.stop
 *                       appears in the current directory; print the
 *                       longest and the shortest turn since the start or
 *                       since it last found (and removed) a file
 *                       stall.reset; with STALL_LOG set, each turn over
 *                       10 ms is also written to the trace
 *                       (trace_marker), to be found among the scheduler's
 *                       events
 *   bench memcpy MIB    time one memcpy() of MIB MiB (both buffers touched)
 *   bench cow MIB       time the kernel's own copy-on-write of MIB MiB in a
 *                       forked child: a write fault per page, then one
 *                       MADV_POPULATE_WRITE; and a memcpy() into new memory
 *   bench strings MIB   time copying MIB MiB with rep movsb, rep movsq and
 *                       8-byte moves (the kernel's copy routines)
 *   bench forkmem MIB   time one fork() of a process with MIB MiB touched
 *                       (the parent's side: page tables copied)
 *   bench watch MS CPU  on CPU, sleep MS ms (1-999) at a time (SCHED_FIFO) until
 *                       killed, printing how late a wake-up was each
 *                       time that is later than before: a vCPU that did
 *                       not run although it had work (see bench.sh)
 */
#include "../selftests/ft_test.h"

#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <x86intrin.h>


static uint64_t now_us(void)
{
	struct timespec ts;

	/* Through the system call, so every replica sees the primary's clock. */
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

/* The first duplicate in a /proc/procft line ("replicas=<primary>,<dup>"), or 0. */
static long first_dup(const char *line)
{
	const char *p = strstr(line, "replicas=");

	p = p ? strchr(p, ',') : NULL;
	return p ? strtol(p + 1, NULL, 10) : 0;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* The trace's marker file, opened once; -1 if it cannot be. */
static int trace_fd(void)
{
	static int fd = -2;

	if (fd == -2)
		fd = open("/sys/kernel/tracing/trace_marker", O_WRONLY);
	return fd;
}

/*
 * With BENCH_MARK set (bench/profile.sh), write "procft-profile begin N"
 * and "... end N" into the trace, around the measured loop.  The first
 * mark is preceded by a few calls, so that the duplicates exist (they are
 * made at the primary's first calls) and run in step.
 */
static void mark(long n, const char *what)
{
	static int started;
	int i;

	if (!getenv("BENCH_MARK"))
		return;
	if (!started) {
		started = 1;
		for (i = 0; i < 200; i++)
			syscall(SYS_getppid);
	}
	if (trace_fd() >= 0)
		dprintf(trace_fd(), "procft-profile %s %ld\n", what, n);
}

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 0;
	uint64_t t0, c0, sum = 0;
	char page[4096];
	int fds[2];
	long i, j;

	if (argc < 3)
		return 2;
	t0 = now_us();
	c0 = cpu_us();
	if (!strcmp(argv[1], "run")) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return 1;
		t0 = now_us() - t0;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "bench run %s: status %#x\n", argv[2], st);
			return 1;
		}
		fprintf(stderr, "%s: %llu us\n", argv[2], (unsigned long long)t0);
		return 0;
	} else if (!strcmp(argv[1], "compute")) {
		size_t len = n << 20;
		uint32_t *a = malloc(len);

		for (i = 0; i < (long)(len / 4); i++)
			a[i] = i * 2654435761u;
		for (j = 0; j < 4; j++)
			for (i = 0; i < (long)(len / 4); i++)
				sum += a[(a[i] ^ j) % (len / 4)];
	} else if (!strcmp(argv[1], "getppid")) {
		mark(n, "begin");
		for (i = 0; i < n; i++)
			sum += syscall(SYS_getppid);
		mark(n, "end");
	} else if (!strcmp(argv[1], "clock")) {
		struct timespec ts;

		mark(n, "begin");
		for (i = 0; i < n; i++) {
			syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
			sum += ts.tv_nsec;
		}
		mark(n, "end");
	} else if (!strcmp(argv[1], "rdtsc")) {
		mark(n, "begin");
		for (i = 0; i < n; i++)
			sum += __rdtsc();
		mark(n, "end");
	} else if (!strcmp(argv[1], "pipe")) {
		if (pipe(fds))
			return 1;
		memset(page, 1, sizeof(page));
		mark(n, "begin");
		for (i = 0; i < n; i++) {
			write(fds[1], page, sizeof(page));
			sum += read(fds[0], page, sizeof(page));
		}
		mark(n, "end");
	} else if (!strcmp(argv[1], "fork")) {
		for (i = 0; i < n; i++) {
			pid_t pid = fork();

			if (pid == 0)
				_exit(0);
			if (pid < 0 || waitpid(pid, NULL, 0) != pid)
				return 1;
			sum++;
		}
	} else if (!strcmp(argv[1], "busy")) {
		for (;;) {
			for (i = 0; i < n; i++)
				sum += syscall(SYS_getppid);
			usleep(20000);
		}
	} else if (!strcmp(argv[1], "hold")) {
		char *m = malloc(n << 20);

		memset(m, 7, n << 20);
		printf("ready %p\n", m);
		fflush(stdout);
		for (;;)
			usleep(10000);
	} else if (!strcmp(argv[1], "promote")) {
		/*
		 * Run protected: a poisoned page is consumed (MADV_HWPOISON,
		 * action required) and a duplicate's whole state is taken.
		 * Timed from before the error to the successor's first call.
		 */
		char *m = malloc(n << 20), line[256] = "", want[32];
		int fd, takeover = argc > 3 && !strcmp(argv[3], "takeover");
		uint64_t t1;
		long dup;

		memset(m, 7, n << 20);
		/*
		 * A duplicate in step and caught up: at most one record behind
		 * (the sleep just before the check is one, published as the
		 * primary returns from it).  A takeover
		 * waits for the duplicate to reach the primary's call, so a
		 * duplicate still replaying the memset would add its lag.
		 */
		fd = open("/proc/procft", O_RDONLY);
		snprintf(want, sizeof(want), "pid=%d ", getpid());
		for (i = 0; fd >= 0 && i < 100000; i++) {
			char buf[8192], *at, *lag;
			ssize_t got;

			/* One call per check: the sleep before it is the last record. */
			usleep(1000);
			got = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[got > 0 ? got : 0] = 0;
			at = strstr(buf, want);
			if (!at)
				continue;
			snprintf(line, sizeof(line), "%.*s", (int)strcspn(at, "\n"), at);
			lag = strstr(line, " lag=");
			if (strstr(line, "duplicates=1/1") && lag && atol(lag + 5) <= 1)
				break;
		}
		if (fd >= 0)
			close(fd);
		dup = first_dup(line);
		t0 = now_us();
		if (madvise((void *)(((uintptr_t)m + (n << 19)) & ~4095UL), 4096, MADV_HWPOISON))
			return 1;
		t1 = now_us();
		/*
		 * Back at level 1: a duplicate in step again (after a takeover,
		 * a new one; after a copy, still the same one).
		 */
		for (i = 0; i < 30000; i++) {
			if (procft_line(getpid(), line, sizeof(line)) == 1 &&
			    strstr(line, "duplicates=1/1") &&
			    (!takeover || first_dup(line) != dup))
				break;
			usleep(1000);
		}
		printf("promoted after %llu us, level back after %llu us\n",
		       (unsigned long long)(t1 - t0), (unsigned long long)(now_us() - t0));
		return 0;
	} else if (!strcmp(argv[1], "stall")) {
		/*
		 * A primary that goes on working while its duplicate is replaced:
		 * the longest turn of the loop, less the shortest, is its longest
		 * stall.  (The sleep lets an idle VM's clock run: under -icount a
		 * guest that never idles starves its timers.)
		 */
		size_t len = n << 20;
		char *m = malloc(len);
		uint64_t prev, t, worst = 0, worst_at = 0, best = UINT64_MAX;
		unsigned long k = 0;

		memset(m, 7, len);
		printf("ready %p\n", m);
		fflush(stdout);
		prev = now_us();
		while (access("stall.stop", F_OK)) {
			syscall(SYS_getppid);
			k = k * 6364136223846793005ul + 1442695040888963407ul;
			m[(k >> 16) % len] ^= 1;
			usleep(1000);
			t = now_us();
			if (!unlink("stall.reset")) {
				worst = 0;
				best = UINT64_MAX;
			} else {
				if (t - prev > worst) {
					worst = t - prev;
					worst_at = t;
				}
				if (getenv("STALL_LOG") && t - prev > 10000)
					dprintf(trace_fd() >= 0 ? trace_fd() : 2,
						"long turn %llu us\n", (unsigned long long)(t - prev));
				best = t - prev < best ? t - prev : best;
			}
			prev = t;
		}
		/* When it ended, on the clock the kernel log uses (near enough). */
		printf("longest stall %llu us (turns of %llu to %llu us; the longest ended at %llu.%06llu s)\n",
		       (unsigned long long)(worst - best), (unsigned long long)best,
		       (unsigned long long)worst, (unsigned long long)worst_at / 1000000,
		       (unsigned long long)worst_at % 1000000);
		return 0;
	} else if (!strcmp(argv[1], "watch")) {
		/*
		 * A real-time task that only sleeps, bound to one CPU, preempts
		 * whatever runs there when its timer fires: on an idle or a busy
		 * guest alike, it runs within a few milliseconds.  A wake-up
		 * late by tens of milliseconds means that the CPU did not run
		 * meanwhile: under -icount the emulator left the vCPU halted
		 * although an interrupt was pending for it, or moved the
		 * guest's clock on past the timer.
		 */
		struct timespec ts = { .tv_sec = n / 1000, .tv_nsec = n % 1000 * 1000000 };
		struct sched_param sp = { .sched_priority = 50 };
		uint64_t prev, t, late = 0;

		cpu_set_t on;

		if (n <= 0 || n >= 1000)
			return 2;
		CPU_ZERO(&on);
		CPU_SET(argc > 3 ? atoi(argv[3]) : 0, &on);
		if (sched_setaffinity(0, sizeof(on), &on) || sched_setscheduler(0, SCHED_FIFO, &sp))
			return 1;
		/* Each new maximum on a line of its own: the last line holds. */
		printf("late 0 us\n");
		fflush(stdout);
		prev = now_us();
		for (;;) {
			if (nanosleep(&ts, NULL))
				return 1;
			t = now_us();
			if (t - prev > n * 1000 && t - prev - n * 1000 > late) {
				late = t - prev - n * 1000;
				printf("late %llu us\n", (unsigned long long)late);
				fflush(stdout);
			}
			prev = t;
		}
	} else if (!strcmp(argv[1], "memcpy")) {
		size_t len = n << 20;
		char *a = malloc(len), *b = malloc(len);

		memset(a, 7, len);
		memset(b, 8, len);
		t0 = now_us();
		memcpy(b, a, len);
		printf("memcpy %llu us\n", (unsigned long long)(now_us() - t0));
		return b[len / 2] != 7;
	} else if (!strcmp(argv[1], "cow")) {
		/*
		 * What the kernel's own copy-on-write takes to give a forked
		 * child its copy of MIB MiB: the child writes a byte of each
		 * page (a fault each), then again with one
		 * MADV_POPULATE_WRITE; and a memcpy() into new memory.
		 */
		size_t len = n << 20, off;
		char *m = malloc(len), *b;
		int how, status = 0;

		memset(m, 7, len);
		for (how = 0; how < 2; how++) {
			pid_t child = fork();

			if (child == 0) {
				char *p = (char *)(((uintptr_t)m + 4095) & ~4095UL);

				t0 = now_us();
				if (how == 0)
					for (off = 0; off + 4096 <= len - (p - m); off += 4096)
						p[off] = 8;
				else if (madvise(p, (len - (p - m)) & ~4095UL, MADV_POPULATE_WRITE))
					_exit(1);
				printf("%s %llu us\n", how ? "populate" : "cow-write",
				       (unsigned long long)(now_us() - t0));
				fflush(stdout);
				_exit(0);
			}
			waitpid(child, &status, 0);
			if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
				return 1;
		}
		b = malloc(len);
		t0 = now_us();
		memcpy(b, m, len);
		printf("memcpy-new %llu us\n", (unsigned long long)(now_us() - t0));
		return b[len / 2] != 7;
	} else if (!strcmp(argv[1], "strings")) {
		/*
		 * The copy routines the kernel chooses between for a
		 * machine-check-safe copy (copy_mc_to_kernel()): rep movsb
		 * where the CPU has ERMS, 8-byte moves in copy_mc_fragile();
		 * and rep movsq, which copy_page() uses.
		 */
		size_t len = n << 20, c;
		char *a = malloc(len), *b = malloc(len);
		void *d, *s2;

		memset(a, 7, len);
		memset(b, 8, len);
		d = b, s2 = a, c = len;
		t0 = now_us();
		asm volatile("rep movsb" : "+D"(d), "+S"(s2), "+c"(c) : : "memory");
		printf("rep-movsb %llu us\n", (unsigned long long)(now_us() - t0));
		d = b, s2 = a, c = len / 8;
		t0 = now_us();
		asm volatile("rep movsq" : "+D"(d), "+S"(s2), "+c"(c) : : "memory");
		printf("rep-movsq %llu us\n", (unsigned long long)(now_us() - t0));
		d = b, s2 = a, c = len / 8;
		t0 = now_us();
		asm volatile("1: movq (%1), %%rax; movq %%rax, (%0); addq $8, %0; addq $8, %1; decq %2; jnz 1b"
			     : "+r"(d), "+r"(s2), "+r"(c) : : "rax", "memory", "cc");
		printf("8-byte-moves %llu us\n", (unsigned long long)(now_us() - t0));
		return b[len / 2] != 7;
	} else if (!strcmp(argv[1], "forkmem")) {
		/* What creating a duplicate stops the primary for, at least. */
		size_t len = n << 20;
		char *m = malloc(len);
		pid_t child;
		int status = 0;

		memset(m, 7, len);
		t0 = now_us();
		child = fork();
		if (child == 0)
			_exit(m[len / 2] != 7);
		printf("fork %llu us\n", (unsigned long long)(now_us() - t0));
		waitpid(child, &status, 0);
		return child < 0 || !WIFEXITED(status) || WEXITSTATUS(status);
	} else if (!strcmp(argv[1], "restart")) {
		/* What a restart from scratch redoes before it is where it was. */
		char *m = malloc(n << 20);

		memset(m, 7, n << 20);
		sum = m[n << 19];
	} else if (!strcmp(argv[1], "mce") && argc > 3) {
		char *addr = (char *)strtoul(argv[3], NULL, 0);
		uint64_t pfn = pfn_of(n, addr);
		char line[256];

		if (!pfn || host_inject_mce(pfn * 4096))
			return 1;
		for (i = 0; i < 100000; i++) {
			if (procft_line(n, line, sizeof(line)) == 1 && !strstr(line, "failovers=0"))
				break;
			usleep(500);
		}
		printf("restored after %llu us\n", (unsigned long long)(now_us() - t0));
		return 0;
	} else {
		return 2;
	}
	printf("%s %ld: %llu us, cpu %llu us (sum %llu)\n", argv[1], n,
	       (unsigned long long)(now_us() - t0), (unsigned long long)(cpu_us() - c0),
	       (unsigned long long)sum);
	return 0;
}

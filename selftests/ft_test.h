/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by procft's selftests: TAP output in kselftest style, the
 * three control interfaces, page-frame lookup and machine-check requests
 * to the VM host.
 */
#ifndef _FT_TEST_H
#define _FT_TEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/procft.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- TAP ----------------------------------------------------------------- */

static int tap_n, tap_failed, tap_planned;

static inline void tap_plan(int n)
{
	tap_planned = n;
	printf("TAP version 13\n1..%d\n", n);
	fflush(stdout);
}

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Records one result; returns @ok so callers can chain. */
static inline int tap_ok(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d ", ok ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		tap_failed++;
	return ok;
}

static inline void tap_skip(const char *fmt, ...)
{
	va_list ap;

	printf("ok %d # SKIP ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Exit status as kselftest: 0 pass, 1 fail. */
static inline int tap_finish(void)
{
	if (tap_n != tap_planned) {
		tap_diag("planned %d tests, ran %d", tap_planned, tap_n);
		return 1;
	}
	tap_diag("%d passed, %d failed", tap_n - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

static inline void die(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- control interfaces --------------------------------------------------- */

static int ft_dev = -1;

static inline int ft_open(void)
{
	if (ft_dev < 0)
		ft_dev = open("/dev/procft", O_RDWR | O_CLOEXEC);
	return ft_dev;
}

/* The three interfaces return 0 or -errno. */
static inline int ioctl_set(pid_t pid, unsigned int level)
{
	struct procft_level l = { .pid = pid, .level = level };

	return ioctl(ft_open(), PROCFT_IOC_SET_LEVEL, &l) ? -errno : 0;
}

static inline int ioctl_get(pid_t pid, unsigned int *level)
{
	struct procft_level l = { .pid = pid };

	if (ioctl(ft_open(), PROCFT_IOC_GET_LEVEL, &l))
		return -errno;
	*level = l.level;
	return 0;
}

static inline int ioctl_status(pid_t pid, struct procft_status *s)
{
	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	s->pid = pid;
	return ioctl(ft_open(), PROCFT_IOC_GET_STATUS, s) ? -errno : 0;
}

static inline int ioctl_info(struct procft_info *i)
{
	memset(i, 0, sizeof(*i));
	i->size = sizeof(*i);
	return ioctl(ft_open(), PROCFT_IOC_GET_INFO, i) ? -errno : 0;
}

/* Whether the loaded module reports feature @feat (PROCFT_FEAT_*). */
static inline int has_feature(unsigned int feat)
{
	struct procft_info i;

	return !ioctl_info(&i) && (i.features & feat);
}

/*
 * Whether a promotion takes over the duplicate's address space (then the
 * duplicate is gone, and replaced as part of the failover) rather than
 * copying it.
 */
static inline int takes_over(void)
{
	return has_feature(PROCFT_FEAT_MM_TAKEOVER);
}

/*
 * Whether a protected program's own rdtsc/rdtscp trap and the duplicates
 * replay the primary's values (kernel/patches/0005, with the system-call
 * hook in use and trap_tsc=1).
 */
static inline int traps_tsc(void)
{
	return has_feature(PROCFT_FEAT_TSC_TRAP);
}

/* Writes @text (exactly, no newline added) to /proc/<pid>/ft_level. */
static inline int proc_write(pid_t pid, const char *text)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ft_level", pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* Reads /proc/<pid>/ft_level: the level, or -errno. */
static inline int proc_read(pid_t pid)
{
	char path[64], buf[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ft_level", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	return atoi(buf);
}

/*
 * Finds @pid's line in /proc/procft and copies it to @line.
 * Returns 1 if found, 0 if not, -errno on error.
 */
static inline int procft_line(pid_t pid, char *line, size_t len)
{
	char buf[256], want[32];
	FILE *f = fopen("/proc/procft", "re");
	int found = 0;

	if (!f)
		return -errno;
	snprintf(want, sizeof(want), "pid=%d ", pid);
	while (fgets(buf, sizeof(buf), f)) {
		if (!strncmp(buf, want, strlen(want))) {
			buf[strcspn(buf, "\n")] = 0;
			snprintf(line, len, "%s", buf);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* Runs a command line through /bin/sh; returns its exit status (or 128+sig). */
static inline int run_cmd(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st, n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(cmd)) {
		tap_diag("%s: a command of %d bytes is too long", __func__, n);
		return -1;
	}
	st = system(cmd);
	if (st < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Appends what @fd gives until end of file to @buf, which holds @*got
 * bytes of @len, and keeps it NUL-terminated.
 */
static inline void read_to_eof(int fd, char *buf, size_t len, size_t *got)
{
	while (*got < len - 1) {
		ssize_t r = read(fd, buf + *got, len - 1 - *got);

		if (r <= 0)
			break;
		*got += r;
	}
	buf[*got] = 0;
}

/* Appends what @fd gives to @text (which holds @*got) until it holds @want or EOF. */
static inline void read_until(int fd, char *text, size_t len, size_t *got, const char *want)
{
	while (*got < len - 1 && !strstr(text, want)) {
		ssize_t n = read(fd, text + *got, len - 1 - *got);

		if (n <= 0)
			break;
		*got += n;
		text[*got] = 0;
	}
}

/*
 * Reloads procft with module parameters @params, and those every load in
 * this run gets ($PROCFT_MODARGS, scripts/vm.py --modargs), /dev/procft
 * open to all (as a udev rule would make it).  Nothing may be protected
 * meanwhile.
 */
static inline int reload_procft(const char *params)
{
	return run_cmd("rmmod procft && insmod /lib/modules/procft.ko %s $PROCFT_MODARGS && chmod 0666 /dev/procft",
		       params);
}

/* A child that just waits to be killed. */
static inline pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

/*
 * A child running @child(its end of a new socket pair), which it never
 * returns from; *@ctl is the parent's end.
 */
static inline pid_t spawn_with_ctl(void (*child)(int ctl), int *ctl)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		child(sv[1]);
		_exit(1);
	}
	close(sv[1]);
	*ctl = sv[0];
	return pid;
}

/*
 * Kills duplicate @rep with SIGKILL; nothing if @rep is not a pid (a wait
 * for the duplicates that failed leaves 0 there, and kill(0) would kill
 * the test's own process group).
 */
static inline int kill_duplicate(pid_t rep)
{
	if (rep <= 0) {
		errno = ESRCH;
		return -1;
	}
	return kill(rep, SIGKILL);
}

static inline void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The value of @key (e.g. "anon") in cgroup directory @cg's memory.stat, or -1. */
static inline long memory_stat(const char *cg, const char *key)
{
	char path[256], line[128];
	size_t len = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.stat", cg);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) && line[len] == ' ')
			v = atol(line + len + 1);
	if (f)
		fclose(f);
	return v;
}

/* ---- replica groups ------------------------------------------------------ */

/* A numeric field (@key is e.g. "failovers=") of @pid's /proc/procft line, or -1. */
static inline long procft_field(pid_t pid, const char *key)
{
	char line[256], *p;

	if (procft_line(pid, line, sizeof(line)) != 1)
		return -1;
	p = strstr(line, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/*
 * Waits (@secs s at most) until @pid's counter @key (its /proc/procft
 * line) is at least @want, and returns what it last read: for a counter
 * procft updates after the event the test waited for (the decode chain's
 * worker counts a machine check after the kernel's handler already killed
 * the duplicate it hit).
 */
static inline long wait_field(pid_t pid, const char *key, long want, int secs)
{
	long v = procft_field(pid, key);
	int i;

	for (i = 0; i < secs * 100 && v < want; i++) {
		usleep(10000);
		v = procft_field(pid, key);
	}
	return v;
}

/*
 * Waits (15 s at most) until @pid has @want duplicates, all on their own
 * frames and in step, and fills @reps with its replicas, primary first.
 */
static inline int wait_duplicates(pid_t pid, int want, pid_t *reps)
{
	char line[256], *p;
	int i, n;

	for (i = 0; i < 1500; i++, usleep(10000)) {
		if (procft_field(pid, "duplicates=") != want ||
		    procft_line(pid, line, sizeof(line)) != 1)
			continue;
		p = strstr(line, "replicas=") + 9;
		for (n = 0; n < 8; n++) {
			reps[n] = strtol(p, &p, 10);
			if (*p++ != ',')
				break;
		}
		if (n == want)
			return 1;
	}
	tap_diag("pid %d: no %d duplicates in step", pid, want);
	return 0;
}

/*
 * Waits (30 s at most) until every duplicate of @pid has taken every
 * record of the primary's calls (lag=0 in /proc/procft): its counters
 * then account for everything the primary did so far.
 */
static inline int wait_caught_up(pid_t pid)
{
	int i;

	for (i = 0; i < 3000; i++, usleep(10000))
		if (procft_field(pid, "lag=") == 0)
			return 1;
	tap_diag("pid %d: duplicates still %ld records behind", pid, procft_field(pid, "lag="));
	return 0;
}

/* Waits (10 s at most) until process @pid is gone (no zombie either). */
static inline int wait_gone(pid_t pid)
{
	char path[32];
	int i;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	for (i = 0; i < 1000 && !access(path, F_OK); i++)
		usleep(10000);
	return access(path, F_OK) != 0;
}

/*
 * A workload: maps @pages anonymous pages filled with the pattern
 * buffer_intact() checks, sends their address on @ctl, then waits to be
 * killed.
 */
static inline void hold_pattern(int ctl, int pages, int mul)
{
	char *buf = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int i;

	for (i = 0; i < pages * 4096; i++)
		buf[i] = (char)(i * mul);
	write(ctl, &buf, sizeof(buf));
	for (;;)
		usleep(5000);
}

/* Reads @len bytes of @pid's memory at @addr into @buf; whether it could. */
static inline int read_mem(pid_t pid, const void *addr, void *buf, size_t len)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ok = pread(fd, buf, len, (off_t)(uintptr_t)addr) == (ssize_t)len;
	close(fd);
	return ok;
}

/* Whether @pid's memory at @buf (@pages pages) still holds byte i == i * @mul. */
static inline int buffer_intact(pid_t pid, const char *buf, int pages, int mul)
{
	char path[32], page[4096];
	int fd, i, j, ok;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	ok = fd >= 0;
	for (i = 0; i < pages && ok; i++) {
		ok = pread(fd, page, 4096, (off_t)(uintptr_t)(buf + i * 4096)) == 4096;
		for (j = 0; j < 4096 && ok; j++)
			ok = page[j] == (char)((i * 4096 + j) * mul);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* ---- frames and machine checks --------------------------------------------- */

/* Physical frame of the page at @addr in @pid, or 0 (needs root). */
static inline uint64_t pfn_of(pid_t pid, const void *addr)
{
	char path[64];
	uint64_t ent = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), ((uintptr_t)addr / 4096) * 8) != sizeof(ent))
		ent = 0;
	close(fd);
	if (!(ent & (1ULL << 63)))
		return 0;
	return ent & ((1ULL << 55) - 1);
}

#define KPF_ANON	12
#define KPF_HWPOISON	19

/* The word of frame @pfn in /proc/@file (kpageflags, kpagecount; 0 if unreadable). */
static inline uint64_t kpage_word(const char *file, uint64_t pfn)
{
	char path[32];
	uint64_t word = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s", file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &word, 8, pfn * 8) != 8)
			word = 0;
		close(fd);
	}
	return word;
}

/* The /proc/kpageflags word of frame @pfn (0 if unreadable). */
static inline uint64_t kpage_flags(uint64_t pfn)
{
	return kpage_word("kpageflags", pfn);
}

/*
 * The kernel's software memory-failure injector (debugfs hwpoison
 * corrupt-pfn) on frame @pfn: memory_failure() without a machine check.
 * 0, or -1 if the injector is absent or refused.
 */
static inline int corrupt_pfn(uint64_t pfn)
{
	int fd = open("/sys/kernel/debug/hwpoison/corrupt-pfn", O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && dprintf(fd, "%llu\n", (unsigned long long)pfn) > 0;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/*
 * Asks the VM host to raise a real machine check (QEMU monitor `mce`:
 * uncorrected, action-optional memory-scrub error) at guest-physical
 * address @phys, over the second serial port.  Returns once the host has
 * delivered it; 0 on success, -1 if the host refused or is absent.
 */
static inline int host_inject_mce(uint64_t phys)
{
	struct termios t;
	char reply[64] = "";
	size_t got = 0;
	int fd;

	fd = open("/dev/ttyS1", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!tcgetattr(fd, &t)) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	dprintf(fd, "mce 0x%llx\n", (unsigned long long)phys);
	while (got < sizeof(reply) - 1) {
		ssize_t n = read(fd, reply + got, 1);

		if (n <= 0)
			break;
		if (reply[got] == '\n')
			break;
		got += n;
	}
	close(fd);
	reply[got] = 0;
	return strncmp(reply, "ok", 2) ? -1 : 0;
}

#define KPF_ZERO_PAGE	24

/* How many mappings frame @pfn has (/proc/kpagecount; 0 if unreadable). */
static inline uint64_t kpage_count(uint64_t pfn)
{
	return kpage_word("kpagecount", pfn);
}

/*
 * A random present anonymous page of @pid that only it maps: of its heap
 * alone (@heap_only), or of any private writable mapping. Returns its
 * frame (0 if none found) and its address in @addr.
 */
static inline uint64_t pick_frame(pid_t pid, int heap_only, uintptr_t *addr)
{
	uintptr_t lo[256], hi[256];
	char path[64], line[512];
	int n = 0, tries;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (n < 256 && fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || strcmp(perms, "rw-p"))
			continue;
		if (heap_only && !strstr(line, "[heap]"))
			continue;
		lo[n] = a;
		hi[n++] = b;
	}
	fclose(f);
	for (tries = 0; n && tries < 200; tries++) {
		int i = rand() % n;
		uintptr_t page = lo[i] + (uintptr_t)(rand() % ((hi[i] - lo[i]) / 4096)) * 4096;
		uint64_t pfn = pfn_of(pid, (void *)page), flags;

		if (!pfn)
			continue;
		flags = kpage_flags(pfn);
		if (!(flags & (1ULL << KPF_ANON)) || (flags & (1ULL << KPF_ZERO_PAGE)) ||
		    (flags & (1ULL << KPF_HWPOISON)) || kpage_count(pfn) != 1)
			continue;
		*addr = page;
		return pfn;
	}
	return 0;
}

/*
 * The frame under the user stack pointer of thread @tid of process @pid,
 * if it sleeps in a system call (its stack page is the first thing it
 * touches when it returns), and that page's address in @addr; 0 if there
 * is none to take now. (A call whose output is on that page may have
 * written it when the page is lost, before procft copies it: procft then
 * reads it from the frame, Documentation/procft.rst.)
 */
static inline uint64_t stack_frame(pid_t pid, pid_t tid, uintptr_t *addr)
{
	unsigned long nr, a[6], sp, pc;
	char path[64], line[256];
	uint64_t pfn, flags;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fgets(line, sizeof(line), f) ?
		sscanf(line, "%lu %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2],
		       &a[3], &a[4], &a[5], &sp, &pc) : 0;
	fclose(f);
	if (n != 9)
		return 0;
	*addr = sp & ~4095UL;
	pfn = pfn_of(pid, (void *)*addr);
	if (!pfn)
		return 0;
	flags = kpage_flags(pfn);
	if (!(flags & (1ULL << KPF_ANON)) || (flags & (1ULL << KPF_HWPOISON)) ||
	    kpage_count(pfn) != 1)
		return 0;
	return pfn;
}

/* Whether the kernel log has procft's line @what (a regex) for @pid. */
static inline int logged(pid_t pid, const char *what)
{
	return run_cmd("dmesg | grep -q 'procft: pid %d: %s'", pid, what) == 0;
}

/*
 * Checks that @pid is protected at @level with @dups duplicates, caught
 * up, and that nothing diverged (@when: where in the test).
 */
static inline void check_group(int level, pid_t pid, int dups, const char *when)
{
	struct procft_status s = { .size = sizeof(s), .pid = pid };
	int got;

	wait_caught_up(pid);
	got = ioctl_status(pid, &s) == 0;
	tap_ok(got && s.pid == pid && (int)s.level == level &&
	       (int)s.nr_replicas == dups + 1 && s.divergences == 0,
	       "level %d%s: pid %d protected at level %u with %u replicas, %llu divergences",
	       level, when, pid, s.level, s.nr_replicas, (unsigned long long)s.divergences);
}

/* Seconds on the monotonic clock. */
static inline double monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define FIRE_STOP "/tmp/ft_fire.stop"

/*
 * Under load on @pid (@round(@port, @n) run again and again by a child,
 * 20 times at most, until the machine checks are done): up to @shots
 * machine checks, at random times 20-220 ms apart, each on the frame
 * @pick gives for @pid (see stack_frame()), each waited for until the
 * takeover it causes is counted (5 s at most). Returns how many were
 * fired; @takeovers gets how many takeovers happened meanwhile (procft's
 * log lines for @pid go to the test's log if they are not @shots), @rounds
 * how many rounds the load made, every one answered rightly (-1 if one
 * was not: @round returned nonzero).
 */
static inline int fire_under_load(pid_t pid, int shots, uint64_t (*pick)(pid_t pid, uintptr_t *addr),
				  int (*round)(int port, int n), int port, int n, long *takeovers,
				  int *rounds)
{
	long before = procft_field(pid, "failovers="), now = before;
	int fired = 0, tries, status = -1;
	pid_t bg;

	*rounds = -1;
	*takeovers = 0;
	unlink(FIRE_STOP);
	bg = fork();
	if (bg < 0)
		return 0;
	if (bg == 0) {
		int i;

		for (i = 1; i <= 20; i++) {
			if (round(port, n))
				_exit(100);
			if (access(FIRE_STOP, F_OK) == 0)
				break;
		}
		_exit(i > 20 ? 20 : i);
	}
	for (tries = 0; fired < shots && tries < 400 && waitpid(bg, &status, WNOHANG) == 0; tries++) {
		uintptr_t addr = 0;
		uint64_t pfn;
		int t;

		usleep(20000 + rand() % 200000);
		pfn = pick(pid, &addr);
		if (!pfn || host_inject_mce(pfn * 4096))
			continue;
		fired++;
		for (t = 0; t < 100 && (now = procft_field(pid, "failovers=")) < before + fired; t++)
			usleep(50000);
		tap_diag("machine check %d on frame %#llx (stack page %#lx of %d): %ld takeover(s) so far",
			 fired, (unsigned long long)pfn, (unsigned long)addr, pid, now - before);
	}
	close(open(FIRE_STOP, O_WRONLY | O_CREAT, 0644));
	if (waitpid(bg, &status, 0) == bg || errno == ECHILD)
		*rounds = WIFEXITED(status) && WEXITSTATUS(status) <= 20 ? WEXITSTATUS(status) : -1;
	unlink(FIRE_STOP);
	*takeovers = now - before;
	if (*takeovers != shots)
		run_cmd("dmesg | grep 'procft: pid %d' | tail -20 | sed 's/^/# /'", pid);
	return fired;
}

#endif /* _FT_TEST_H */

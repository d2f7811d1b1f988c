// SPDX-License-Identifier: GPL-2.0
/*
 * Bounds: what one system call of a protected process may cost procft is
 * set by what the process has resident, not by the lengths it passes, and
 * the kernel memory a group holds for its duplicates has a ceiling.
 *
 * - write(fd, buf, 1 << 40) from a one-page buffer (short count, or
 *   EFAULT from an unmapped one) returns what it returns unprotected: the
 *   bytes the kernel could not read are looked for where its copy stopped,
 *   not over the 2^28 pages of the length.
 * - A 64 TiB MAP_NORESERVE reservation with four touched pages: the
 *   duplicate is made, a machine check on one of its frames is handled
 *   and a promotion of the primary takes place, all without walking or
 *   populating the reservation (VmRSS and VmPTE of every replica stay
 *   small, the promotion copies a few pages).
 * - With its duplicate stopped, a primary reading 1 MiB per call holds at
 *   most the ring's byte budget plus one call's output for it, then waits;
 *   that memory is charged to its memory cgroup (where there is one).
 *
 * Every step must finish: one that does not within its deadline fails
 * (without the bounds they take hours under emulation).
 */
#include "ft_test.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define GIB (1UL << 30)
#define MIB (1UL << 20)
#define HUGE_LEN (64 * 1024 * GIB)
#define BIG_WRITE (1UL << 40)
/* The kernel's MAX_RW_COUNT: the most one read or write transfers. */
#define MAX_RW (0x7fffffffUL & ~4095UL)
/* ring.rs MAX_BYTES and sync.rs MAX_OUTPUT. */
#define RING_BYTES (8 * MIB)
#define MAX_OUTPUT (4 * MIB)

static const unsigned long touched[] = { 0, GIB + 3 * 4096, HUGE_LEN / 2, HUGE_LEN - 4096 };

/* Waits up to @secs seconds for @len bytes on @fd; 0 if they came. */
static int recv_within(int fd, void *buf, size_t len, int secs)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, secs * 1000) != 1)
		return -1;
	return read(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

/*
 * Waits for a byte on @ctl in short sleeps (a primary blocked in a socket
 * read would get its duplicates only when the read returns).
 */
static void wait_go(int ctl)
{
	char c;

	while (recv(ctl, &c, 1, MSG_DONTWAIT) != 1)
		usleep(5000);
}

/* ---- writes far past the buffer ---------------------------------------- */

struct result {
	long ret;
	int err;
};

#define NR_WRITES 6

/*
 * A page from which BIG_WRITE bytes would run past the end of user space
 * (2^47 with 4-level page tables), so that write() refuses it at once.
 * Where mmap() puts a page depends on address space randomisation (its
 * base moves over 1 TiB), so it is placed: the first of 64 candidates in
 * the top 1/2 TiB below the end that nothing else occupies.
 */
static char *map_high(void)
{
	unsigned long end = 1UL << 47, i;
	char *p;

	for (i = 0; i < 64; i++) {
		p = mmap((void *)(end - BIG_WRITE / 2 + i * GIB), 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != MAP_FAILED)
			return (unsigned long)p + BIG_WRITE > end ? p : MAP_FAILED;
	}
	return MAP_FAILED;
}

/* One write of BIG_WRITE bytes from @addr. */
static struct result big_write(int fd, const char *addr)
{
	struct result r = { write(fd, addr, BIG_WRITE), 0 };

	if (r.ret < 0)
		r.err = errno;
	return r;
}

static void writer(int ctl)
{
	struct result r[NR_WRITES];
	char *buf, *high, *none;
	int file, null, p[2];

	/*
	 * One page, and nothing mapped after it; low enough that the whole
	 * length is below the end of user space (the kernel then reads what
	 * it can), and one so high that the length runs past the end of user
	 * space (refused at once).
	 */
	buf = mmap((void *)(1UL << 32), 2 * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	high = map_high();
	/* And a page followed by a present one made unreadable. */
	none = mmap((void *)(1UL << 33), 2 * 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	file = open("/tmp/ft_bounds.data", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	null = open("/dev/null", O_WRONLY);
	if (buf == MAP_FAILED || high == MAP_FAILED || none == MAP_FAILED || file < 0 ||
	    null < 0 || pipe(p))
		_exit(90);
	munmap(buf + 4096, 4096);
	memset(none, 'z', 2 * 4096);
	mprotect(none + 4096, 4096, PROT_NONE);
	memset(buf, 'x', 4096);
	memset(high, 'y', 4096);
	write(ctl, "r", 1);
	wait_go(ctl);
	r[0] = big_write(file, buf);		/* short: the page it has */
	r[1] = big_write(null, buf);		/* MAX_RW_COUNT, unread */
	r[2] = big_write(file, buf + 4096);	/* EFAULT: nothing there */
	r[3] = big_write(p[1], buf);		/* short, through a pipe */
	r[4] = big_write(file, high);		/* EFAULT: past user space */
	r[5] = big_write(file, none);		/* short: before PROT_NONE */
	write(ctl, r, sizeof(r));
	wait_go(ctl);
	_exit(7);
}

/*
 * Runs writer() at @level; fills @r, and @line with its /proc/procft line
 * after the writes. 0 if it finished within the deadline.
 */
static int run_writes(int level, struct result *r, char *line)
{
	pid_t pid, reps[8];
	int ctl, st, ok;
	char c;

	pid = spawn_with_ctl(writer, &ctl);
	ok = recv_within(ctl, &c, 1, 10) == 0;
	if (ok && level)
		ok = ioctl_set(pid, level) == 0 && wait_duplicates(pid, level, reps);
	write(ctl, "g", 1);
	ok = ok && recv_within(ctl, r, NR_WRITES * sizeof(*r), 120) == 0;
	if (procft_line(pid, line, 256) != 1)
		snprintf(line, 256, "(unprotected)");
	write(ctl, "q", 1);
	if (!ok)
		kill(pid, SIGKILL);
	ok = ok && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7;
	if (!ok)
		waitpid(pid, NULL, WNOHANG);
	close(ctl);
	return ok ? 0 : -1;
}

/* ---- a sparse reservation ------------------------------------------------ */

static char pattern(unsigned long off)
{
	return (char)(off * 31 + (off >> 12) * 7);
}

static void reserver(int ctl)
{
	char *p, c;
	unsigned int i;
	unsigned long j;

	p = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		_exit(90);
	for (i = 0; i < ARRAY_SIZE(touched); i++)
		for (j = touched[i]; j < touched[i] + 4096; j++)
			p[j] = pattern(j);
	write(ctl, &p, sizeof(p));
	for (;;) {
		if (recv(ctl, &c, 1, MSG_DONTWAIT) != 1) {
			usleep(5000);
			continue;
		}
		if (c == 'p') {
			/* Consumed poison: the primary fails over by promotion. */
			madvise(p + touched[1], 4096, MADV_HWPOISON);
			p[touched[1]] ^= 0;
		} else if (c == 'c') {
			c = 'y';
			for (i = 0; i < ARRAY_SIZE(touched); i++)
				for (j = touched[i]; j < touched[i] + 4096; j++)
					if (p[j] != pattern(j))
						c = 'n';
			write(ctl, &c, 1);
		} else if (c == 'q') {
			_exit(7);
		}
	}
}

/* A field of /proc/<pid>/status in kB (VmRSS:, VmPTE:), or -1. */
static long status_kb(pid_t pid, const char *key)
{
	char path[64], line[128];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			kb = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return kb;
}

/* Whether every replica of @pid has at most 8 MiB resident and 1 MiB of page tables. */
static int replicas_small(pid_t pid, int want)
{
	pid_t reps[8];
	int i, ok;

	if (!wait_duplicates(pid, want, reps))
		return 0;
	for (i = 0, ok = 1; i <= want && ok; i++) {
		long rss = status_kb(reps[i], "VmRSS:"), pte = status_kb(reps[i], "VmPTE:");

		tap_diag("replica %d: VmRSS %ld kB, VmPTE %ld kB", reps[i], rss, pte);
		ok = rss >= 0 && rss < 8192 && pte >= 0 && pte < 1024;
	}
	return ok;
}

static void sparse(void)
{
	int ctl, st, ok;
	pid_t pid, reps[8];
	uint64_t pfn;
	char *p, c;
	long v;

	pid = spawn_with_ctl(reserver, &ctl);
	ok = recv_within(ctl, &p, sizeof(p), 10) == 0;
	ok = ok && ioctl_set(pid, 1) == 0;
	tap_ok(ok && replicas_small(pid, 1),
	       "64 TiB reservation, 4 pages touched: a duplicate made, every replica small");

	/* A machine check on the duplicate's copy of a touched page. */
	ok = wait_duplicates(pid, 1, reps);
	pfn = ok ? pfn_of(reps[1], p + touched[2]) : 0;
	if (pfn && host_inject_mce(pfn * 4096) == 0) {
		v = wait_field(pid, "mce_events=", 1, 120);
		ok = replicas_small(pid, 1);
		tap_ok(ok && v == 1 && procft_field(pid, "respawns=") == 1,
		       "machine check on the duplicate's frame %#llx: found (mce_events=%ld), replaced (respawns=%ld), replicas small",
		       (unsigned long long)pfn, v, procft_field(pid, "respawns="));
	} else {
		tap_skip("no machine-check injection from the host");
	}

	/* The primary consumes poison: a promotion from the duplicate. */
	write(ctl, "p", 1);
	v = wait_field(pid, "failovers=", 1, 120);
	tap_ok(v == 1 && replicas_small(pid, 1),
	       "poison consumed by the primary: promoted (failovers=%ld), replicas small", v);
	tap_ok(run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep ' pid=%d event=promotion ' /tmp/ev | grep -Eq ' pages=[0-9]{1,2} '", pid) == 0,
	       "the promotion copied a few pages, not the reservation");
	write(ctl, "c", 1);
	ok = recv_within(ctl, &c, 1, 60) == 0 && c == 'y';
	tap_ok(ok, "every touched page intact after the promotion");
	write(ctl, "q", 1);
	if (!ok)
		kill(pid, SIGKILL);
	ok = waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7;
	tap_ok(ok, "the process exited with its own status (%#x)", st);
	close(ctl);
}

/* ---- the ring's byte budget ---------------------------------------------- */

#define READS 40

static void reader(int ctl)
{
	static char buf[MIB];
	unsigned long sum = 0;
	int zero, i, j;

	zero = open("/dev/zero", O_RDONLY);
	if (zero < 0)
		_exit(90);
	write(ctl, "r", 1);
	wait_go(ctl);
	for (i = 0; i < READS; i++) {
		if (read(zero, buf, MIB) != MIB)
			_exit(91);
		for (j = 0; j < (int)MIB; j += 4096)
			sum += buf[j] + 1;
	}
	write(ctl, &sum, sizeof(sum));
	wait_go(ctl);
	_exit(7);
}

#define CG "/sys/fs/cgroup/ft_bounds"

/* A cgroup with the memory controller for the reader, or 0 if there is none. */
static int make_cgroup(void)
{
	run_cmd("mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup");
	return run_cmd("echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir -p " CG
		       " && [ -f " CG "/memory.stat ]") == 0;
}

/* Bytes of unreclaimable slab charged to the reader's cgroup. */
static long cgroup_slab(void)
{
	return memory_stat(CG, "slab_unreclaimable");
}

static void budget(void)
{
	long peak, held, slab, sum = 0;
	int ctl, st, ok, cg;
	pid_t pid, reps[8];
	char c;

	pid = spawn_with_ctl(reader, &ctl);
	/* Its duplicates are created in the cgroup it is in. */
	cg = make_cgroup() && run_cmd("echo %d > " CG "/cgroup.procs", pid) == 0;
	ok = recv_within(ctl, &c, 1, 10) == 0 && ioctl_set(pid, 1) == 0 &&
	     wait_duplicates(pid, 1, reps);
	/* The duplicate stops at its next return to user space. */
	ok = ok && kill(reps[1], SIGSTOP) == 0;
	write(ctl, "g", 1);
	/* The ring fills up to its budget, then the primary waits. */
	wait_field(pid, "buffered_peak=", (long)RING_BYTES, 20);
	usleep(500000);
	peak = procft_field(pid, "buffered_peak=");
	held = procft_field(pid, "buffered=");
	slab = cg ? cgroup_slab() : -1;
	tap_ok(ok && peak >= (long)RING_BYTES && peak < (long)(RING_BYTES + MAX_OUTPUT),
	       "duplicate stopped: the primary holds %ld bytes for it (peak %ld), at most %lu, and waits",
	       held, peak, RING_BYTES + MAX_OUTPUT);
	if (cg)
		tap_ok(held > 0 && slab >= held,
		       "what it holds is charged to its memory cgroup (%ld bytes of slab for %ld held)",
		       slab, held);
	else
		tap_skip("no memory cgroup controller");
	kill(reps[1], SIGCONT);
	ok = recv_within(ctl, &sum, sizeof(sum), 120) == 0 && sum == READS * (MIB / 4096);
	if (!ok)
		kill(pid, SIGKILL);
	tap_ok(ok && procft_field(pid, "divergences=") == 0,
	       "resumed: the duplicate caught up, no divergence, the reads gave what they give");
	write(ctl, "q", 1);
	ok = waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7;
	tap_ok(ok, "the process exited with its own status (%#x)", st);
	close(ctl);
	if (cg)
		run_cmd("rmdir " CG);
}

int main(void)
{
	struct result r0[NR_WRITES], r1[NR_WRITES];
	char line[256];
	int ok, i;

	tap_plan(13);

	ok = run_writes(0, r0, line) == 0;
	tap_ok(ok && r0[0].ret == 4096 && r0[1].ret == (long)MAX_RW && r0[2].ret == -1 &&
	       r0[2].err == EFAULT && r0[3].ret == 4096 && r0[4].ret == -1 && r0[4].err == EFAULT &&
	       r0[5].ret == 4096,
	       "unprotected: write(fd, buf, 1 << 40) gives %ld (file), %ld (/dev/null), %ld (unmapped), %ld (pipe), %ld (high buffer), %ld (before PROT_NONE)",
	       r0[0].ret, r0[1].ret, r0[2].ret, r0[3].ret, r0[4].ret, r0[5].ret);
	ok = run_writes(1, r1, line) == 0;
	for (i = 0; ok && i < NR_WRITES; i++) {
		tap_diag("write %d: %ld (%s), unprotected %ld (%s)", i, r1[i].ret,
			 strerror(r1[i].err), r0[i].ret, strerror(r0[i].err));
		ok = r1[i].ret == r0[i].ret && r1[i].err == r0[i].err;
	}
	tap_ok(ok, "level 1: the same results, in bounded time");
	tap_diag("%s", line);
	tap_ok(strstr(line, " level=1 ") && strstr(line, " duplicates=1/1 ") &&
	       strstr(line, " failovers=0 respawns=0 mce_events=0 divergences=0 "),
	       "protected throughout: no failover, no divergence, the duplicate in step");

	sparse();
	budget();
	return tap_finish();
}

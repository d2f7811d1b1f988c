// SPDX-License-Identifier: GPL-2.0
/*
 * A respawn does not stop the primary: a new duplicate separates its
 * memory (its own copy of every page it shares with the primary after its
 * fork) a step at a time, between the records it takes, while the primary
 * goes on making calls.  Before, the new duplicate copied everything
 * first and took no record meanwhile, so the primary stopped once the ring
 * (then 64 records) was full, until the copy was done.
 *
 * Level 1, 64 MiB of ballast and a 4 MiB pattern.  The duplicate is
 * killed; the primary's next call creates its replacement, and the primary
 * then moves the pattern with mremap() below the ballast, where the new
 * duplicate's walk of the address space has already been, and reads
 * /proc/procft in a loop until its duplicate is ready.  Checked: it made
 * more than twice the ring's records meanwhile; the new duplicate is on
 * frames of its own for every page of the pattern (the moved pages were
 * not skipped) and of the ballast, and copied them all; the memory is
 * intact in both replicas.  Then the new duplicate is killed too, and the
 * primary consumes poison (MADV_HWPOISON) on a page it wrote, so on a
 * frame of its own, right after the next one is created: that one, still
 * separating, takes over, and a fourth restores the level.  Last, poison
 * on a page the primary still shares with a new duplicate (one nobody
 * wrote since that duplicate's fork): no copy is left; the duplicate is
 * killed by the error too (the kernel's early kill) or found unable to
 * take over, and the process dies of SIGBUS as it would unprotected.
 */
#include "ft_test.h"

#define PATTERN		1024		/* 4 MiB */
#define BALLAST		(64 * 256)	/* 64 MiB */
#define MUL		13
#define RING		128		/* records the ring holds (rust/ring.rs) */
#define LOW		((char *)0x10000000)	/* the first try for the low range */
#define LOW_TRIES	7			/* then 256 MiB higher each */
#define VICTIM		7		/* the ballast page poisoned */

struct layout {
	char *ballast;
	char *low;			/* the range the pattern moves to */
	long calls;			/* the primary's, while it waited */
};

/* What the workload reports at the start. */
static struct layout l;

/*
 * Maps the pattern, then the ballast (below it: mappings are placed top
 * down), and reserves a low range (LOW, or above); reports both
 * addresses.  On 'p' it answers; on 'm' it moves the pattern there, then
 * reads /proc/procft (open, read to the end, close) until its duplicate is
 * ready, and reports how many calls that took; on 'h' it writes a ballast
 * page and consumes poison there (MADV_HWPOISON), and reports the byte it
 * wrote; on 'x' it consumes poison on the ballast's last page.
 */
static void workload(int ctl)
{
	char *pattern, *low, buf[8192], want[48], c;
	long calls = 0, n;
	int i, fd;

	/* (A range once found taken at LOW: the next ones up.) */
	for (i = 0, low = MAP_FAILED; i < LOW_TRIES && low == MAP_FAILED; i++) {
		l.low = LOW + i * 0x10000000L;
		low = mmap(l.low, PATTERN * 4096, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	}
	pattern = mmap(NULL, PATTERN * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l.ballast = mmap(NULL, BALLAST * 4096L, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Which one failed, for the test's message. */
	if (low != l.low)
		_exit(90);
	if (pattern == MAP_FAILED || l.ballast == MAP_FAILED)
		_exit(92);
	for (i = 0; i < PATTERN * 4096; i++)
		pattern[i] = (char)(i * MUL);
	for (i = 0; i < BALLAST; i++)
		memset(l.ballast + i * 4096L, i, 4096);
	write(ctl, &l, sizeof(l));
	snprintf(want, sizeof(want), "pid=%d ", getpid());
	while (read(ctl, &c, 1) == 1) {
		if (c == 'm') {
			if (mremap(pattern, PATTERN * 4096, PATTERN * 4096,
				   MREMAP_MAYMOVE | MREMAP_FIXED, l.low) != l.low)
				_exit(91);
			for (calls = 1; calls < 400000;) {
				char *line, *end, *ready;

				fd = open("/proc/procft", O_RDONLY);
				calls++;
				if (fd < 0)
					_exit(92);
				for (n = 0; n < (long)sizeof(buf) - 1;) {
					long got = read(fd, buf + n, sizeof(buf) - 1 - n);

					calls++;
					if (got <= 0)
						break;
					n += got;
				}
				close(fd);
				calls++;
				buf[n] = 0;
				line = strstr(buf, want);
				end = line ? strchr(line, '\n') : NULL;
				ready = line ? strstr(line, " duplicates=1/1 ") : NULL;
				if (ready && (!end || ready < end))
					break;
			}
		}
		if (c == 'h') {
			/*
			 * Its next call creates the duplicate; then its own
			 * copy of a ballast page (the write breaks the
			 * copy-on-write), and poison consumed there: only the
			 * primary maps that frame.
			 */
			getppid();
			l.ballast[VICTIM * 4096L] = 0x77;
			if (madvise(l.ballast + VICTIM * 4096L, 4096, MADV_HWPOISON))
				_exit(93);
			/* Here in the successor, on its frame. */
			calls = l.ballast[VICTIM * 4096L];
		}
		if (c == 'x') {
			/*
			 * Poison on the ballast's last page, which nobody
			 * wrote since the duplicate was created: it is still
			 * shared, and its only copy is lost.
			 */
			getppid();
			madvise(l.ballast + (BALLAST - 1) * 4096L, 4096, MADV_HWPOISON);
			_exit(94);
		}
		l.calls = calls;
		write(ctl, &l, sizeof(l));
	}
	_exit(1);
}

/* Whether @n pages at @addr are on frames of their own in @a and @b. */
static int own_frames(pid_t a, pid_t b, const char *addr, long n, long stride)
{
	long i;

	for (i = 0; i < n; i += stride) {
		uint64_t fa = pfn_of(a, addr + i * 4096), fb = pfn_of(b, addr + i * 4096);

		if (!fa || !fb || fa == fb) {
			tap_diag("page %ld at %p: frame %#llx in %d, %#llx in %d", i,
				 addr + i * 4096, (unsigned long long)fa, a,
				 (unsigned long long)fb, b);
			return 0;
		}
	}
	return 1;
}

/* The pages the kernel log says duplicate @dup of @pid copied, or -1. */
static long copied(pid_t pid, pid_t dup)
{
	char cmd[160], out[32] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "dmesg | sed -n 's/.*procft: pid %d: duplicate %d on its own frames (\\([0-9]*\\) pages.*/\\1/p' | tail -1",
		 pid, dup);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(out, sizeof(out), f))
		out[0] = 0;
	pclose(f);
	return out[0] ? atol(out) : -1;
}

int main(void)
{
	pid_t pid, reps[8] = { 0 }, reps2[8] = { 0 };
	struct layout got;
	int ctl, status, ok, i;
	long pages;

	tap_plan(8);
	pid = spawn_with_ctl(workload, &ctl);
	if (read(ctl, &l, sizeof(l)) != sizeof(l)) {
		waitpid(pid, &status, 0);
		tap_diag("the workload did not start (status %#x: 90, no range free at %p and the %d above it; 92, no memory)",
			 status, (void *)LOW, LOW_TRIES - 1);
		die("workload");
	}
	/* Its duplicate is made at the call after the answer to 'p'. */
	ok = ioctl_set(pid, 1) == 0 && write(ctl, "p", 1) == 1 &&
	     read(ctl, &got, sizeof(got)) == sizeof(got);
	ok = ok && wait_duplicates(pid, 1, reps) && wait_caught_up(pid);
	tap_ok(ok, "protected at level 1, duplicate %d on its own frames", reps[1]);

	/* Lost: replaced at the primary's next call, the mremap(). */
	kill_duplicate(reps[1]);
	for (i = 0; i < 1000 && procft_field(pid, "duplicates=") != 0; i++)
		usleep(10000);
	write(ctl, "m", 1);
	ok = read(ctl, &got, sizeof(got)) == sizeof(got);
	ok = ok && wait_duplicates(pid, 1, reps2) && procft_field(pid, "respawns=") == 1;
	tap_ok(ok && reps2[1] != reps[1], "duplicate %d replaced by %d (respawns=%ld)", reps[1],
	       reps2[1], procft_field(pid, "respawns="));
	tap_ok(ok && got.calls > 2 * RING,
	       "the primary made %ld calls while its new duplicate separated its memory (the ring holds %d)",
	       got.calls, RING);
	wait_caught_up(pid);
	tap_ok(ok && own_frames(pid, reps2[1], l.low, PATTERN, 1) &&
	       own_frames(pid, reps2[1], l.ballast, BALLAST, 61),
	       "every page of the pattern moved below the walk (%d), and of the ballast, is on frames of its own",
	       PATTERN);
	pages = copied(pid, reps2[1]);
	tap_ok(ok && pages >= PATTERN + BALLAST && buffer_intact(pid, l.low, PATTERN, MUL) &&
	       buffer_intact(reps2[1], l.low, PATTERN, MUL),
	       "the new duplicate copied %ld pages (at least %d), and the pattern is intact in both replicas",
	       pages, PATTERN + BALLAST);

	/*
	 * Lost again; this time the primary fails while the replacement is
	 * still separating its memory, on a frame only the primary has.
	 */
	kill_duplicate(reps2[1]);
	for (i = 0; i < 1000 && procft_field(pid, "duplicates=") != 0; i++)
		usleep(10000);
	write(ctl, "h", 1);
	ok = read(ctl, &got, sizeof(got)) == sizeof(got) && got.calls == 0x77 &&
	     procft_field(pid, "failovers=") == 1 && !kill(pid, 0);
	tap_ok(ok && run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* took over while still separating its memory'",
			     pid) == 0,
	       "poison consumed by the primary while its new duplicate was still separating: that duplicate took over (failovers=%ld, byte %#lx)",
	       procft_field(pid, "failovers="), got.calls);
	ok = ok && wait_duplicates(pid, 1, reps) && wait_caught_up(pid);
	tap_ok(ok && own_frames(pid, reps[1], l.low, PATTERN, 1) &&
	       own_frames(pid, reps[1], l.ballast, BALLAST, 61) &&
	       buffer_intact(pid, l.low, PATTERN, MUL) && buffer_intact(reps[1], l.low, PATTERN, MUL),
	       "back at level 1 (duplicate %d), every page on frames of its own, the pattern intact",
	       reps[1]);

	/*
	 * Lost once more; now the poison is on a page the primary still
	 * shares with the replacement: no copy is left, and the process
	 * dies of it as it would unprotected.
	 */
	kill_duplicate(reps[1]);
	for (i = 0; i < 1000 && procft_field(pid, "duplicates=") != 0; i++)
		usleep(10000);
	write(ctl, "x", 1);
	waitpid(pid, &status, 0);
	tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: .*no duplicate .* take over.* it dies of SIGBUS'",
		       pid) == 0,
	       "poison on a frame the primary still shares with its new duplicate: no copy is left, it dies of SIGBUS (status %#x)",
	       status);
	return tap_finish();
}

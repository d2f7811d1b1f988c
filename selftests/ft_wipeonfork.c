// SPDX-License-Identifier: GPL-2.0
/*
 * Wipe-on-fork memory (madvise(MADV_WIPEONFORK); mmap(MAP_DROPPABLE),
 * where the C library keeps its vgetrandom() state) is empty in a child of
 * fork().  A duplicate is made by fork() but must hold what the primary
 * holds: procft copies those pages into each new duplicate, in the
 * primary's return from the fork.
 *
 * The workload maps 8 pages, asks MADV_WIPEONFORK for them and fills them
 * with a pattern, and writes one page in the middle of a 1 GiB
 * wipe-on-fork mapping (sparse: the copy skips what is not there).
 * Protected at level 2, both duplicates hold the pattern and that page
 * (read through /proc/<pid>/mem), and nothing where the primary has
 * nothing.  Then the workload consumes poison on a page of its own
 * (MADV_HWPOISON): a duplicate takes over, and the process still holds the
 * pattern and the page, now in the duplicate's memory.  Without the copy
 * the duplicates' wipe-on-fork pages read as zeroes.
 *
 * Last, a second workload protects itself (level 1) and goes on at once
 * with calls the duplicates make themselves (rt_sigprocmask(), which does
 * not wait for the primary), so its duplicate is created at one and
 * returns to its program right away; each round it sends a sum of its
 * wipe-on-fork pages.  The duplicate holds the primary's pages there
 * too: no divergence (without the copy there is one at each of its sums,
 * each duplicate replaced).  That it does not even start before the copy
 * is done is procft's to ensure (replica::birth() waits for it); this
 * test cannot catch the race, which the copy, a few pages long, wins here.
 */
#include "ft_test.h"

#define PAGES	8
#define MUL	29
#define SPARSE	(1L << 30)
#define FAR	(SPARSE / 2 + 12345)

struct layout {
	char *buf;			/* PAGES wipe-on-fork pages */
	char *sparse;			/* 1 GiB wipe-on-fork, one page written */
	char *own;			/* an ordinary page, poisoned on 'h' */
	long got;			/* what it read back after the poison */
};

static struct layout l;

/*
 * Maps and fills the memory, reports its layout; on 'p' it answers; on
 * 'h' it writes its ordinary page, consumes poison there, and reports
 * what it reads back (in the duplicate that took over).
 */
static void workload(int ctl)
{
	char c;
	int i;

	l.buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l.sparse = mmap(NULL, SPARSE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	l.own = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l.buf == MAP_FAILED || l.sparse == MAP_FAILED || l.own == MAP_FAILED ||
	    madvise(l.buf, PAGES * 4096, MADV_WIPEONFORK) ||
	    madvise(l.sparse, SPARSE, MADV_WIPEONFORK))
		_exit(90);
	for (i = 0; i < PAGES * 4096; i++)
		l.buf[i] = (char)(i * MUL);
	l.sparse[FAR] = 0x5a;
	l.own[0] = 1;
	write(ctl, &l, sizeof(l));
	while (read(ctl, &c, 1) == 1) {
		if (c == 'h') {
			l.own[0] = 0x77;
			if (madvise(l.own, 4096, MADV_HWPOISON))
				_exit(93);
			/* Here in the successor, on its frame. */
			l.got = l.own[0];
		}
		write(ctl, &l, sizeof(l));
	}
	_exit(1);
}

/*
 * Fills wipe-on-fork pages, protects itself at level 1, then, round after
 * round, makes a call the duplicates make too and sends the sum of those
 * pages on @ctl.
 */
static void workload2(int ctl)
{
	unsigned char *p = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sigset_t old;
	long sum;
	int i, n;

	if (p == MAP_FAILED || madvise(p, PAGES * 4096, MADV_WIPEONFORK))
		_exit(90);
	for (i = 0; i < PAGES * 4096; i++)
		p[i] = (unsigned char)(i * MUL);
	if (ioctl_set(0, 1))
		_exit(91);
	for (n = 0; n < 200; n++) {
		sigprocmask(SIG_BLOCK, NULL, &old);
		for (sum = 0, i = 0; i < PAGES * 4096; i++)
			sum += p[i];
		write(ctl, &sum, sizeof(sum));
	}
	for (;;)
		pause();
}

/* The byte at @addr in @pid's memory, or -1. */
static int byte_at(pid_t pid, const char *addr)
{
	unsigned char c;

	return read_mem(pid, addr, &c, 1) ? c : -1;
}

/* Whether @pid holds the pattern, the far page's byte, and zeroes around it. */
static int holds(pid_t pid)
{
	return buffer_intact(pid, l.buf, PAGES, MUL) && byte_at(pid, l.sparse + FAR) == 0x5a &&
	       byte_at(pid, l.sparse + FAR - 4096) == 0 && byte_at(pid, l.sparse) == 0;
}

int main(void)
{
	pid_t pid, reps[8] = { 0 };
	struct layout got;
	int ctl, ok;

	tap_plan(5);
	pid = spawn_with_ctl(workload, &ctl);
	if (read(ctl, &l, sizeof(l)) != sizeof(l))
		die("workload");
	ok = holds(pid);
	/* Its duplicates are made at the calls after the answer to 'p'. */
	ok = ok && ioctl_set(pid, 2) == 0 && write(ctl, "p", 1) == 1 &&
	     read(ctl, &got, sizeof(got)) == sizeof(got) && wait_duplicates(pid, 2, reps) &&
	     wait_caught_up(pid);
	tap_ok(ok, "protected at level 2: duplicates %d and %d", reps[1], reps[2]);
	tap_ok(ok && buffer_intact(reps[1], l.buf, PAGES, MUL) &&
	       buffer_intact(reps[2], l.buf, PAGES, MUL),
	       "both duplicates hold the primary's %d wipe-on-fork pages (fork() left them empty)",
	       PAGES);
	tap_ok(ok && holds(reps[1]) && holds(reps[2]),
	       "and the page it wrote in the middle of a sparse 1 GiB one (%#x in both), nothing elsewhere",
	       byte_at(reps[1], l.sparse + FAR));

	write(ctl, "h", 1);
	ok = read(ctl, &got, sizeof(got)) == sizeof(got) && got.got == 0x77 &&
	     procft_field(pid, "failovers=") == 1;
	tap_ok(ok && holds(pid),
	       "a duplicate took over from poison (failovers=%ld), and the process still holds its wipe-on-fork memory",
	       procft_field(pid, "failovers="));
	reap(pid);

	{
		long sum, want = 0, bad = 0;
		int i;

		for (i = 0; i < PAGES * 4096; i++)
			want += (unsigned char)(i * MUL);
		pid = spawn_with_ctl(workload2, &ctl);
		for (i = 0; i < 200 && read(ctl, &sum, sizeof(sum)) == sizeof(sum); i++)
			bad += sum != want;
		ok = i == 200 && !bad && wait_duplicates(pid, 1, reps) && wait_caught_up(pid);
		tap_ok(ok && procft_field(pid, "divergences=") == 0 && procft_field(pid, "respawns=") == 0,
		       "a duplicate created at a call it makes itself, returning to its program at once, holds the pages: %d sums right, divergences=%ld respawns=%ld",
		       i - (int)bad, procft_field(pid, "divergences="), procft_field(pid, "respawns="));
		reap(pid);
	}
	return tap_finish();
}

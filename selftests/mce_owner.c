// SPDX-License-Identifier: GPL-2.0
/*
 * Where a replica maps a failed frame, found from the frame's page offset
 * (as the kernel's reverse map does) and not by walking the replica's
 * pages: the address procft reports and restores must be the page's
 * address in that replica for pages whose offset is not their address's.
 *
 * A level-2 process with a large sparse mapping (1 GiB, a page touched
 * every 4 MiB) and:
 *
 * - an anonymous region filled at one address and moved with mremap()
 *   before protection (its pages keep the offset they were faulted at);
 * - a second one moved while protected (every replica moves it);
 * - a private mapping of a file at a non-zero offset, moved, whose first
 *   pages were written (anonymous copies, at the anonymous offset) and the
 *   others only read (page-cache pages, at the file offset);
 * - its stack.
 *
 * Errors: a real machine check on the primary's frame of the first moved
 * region (restored from a duplicate), one on a duplicate's frame of the
 * second (the duplicate replaced), the kernel's software injector
 * (corrupt-pfn: memory_failure() without a machine check, the
 * poisoned-entry lookup) on the primary's copied file page, a machine check
 * on a page-cache frame of the file (every replica maps it; the kernel
 * drops it and the file is read again) and one on the primary's stack.  Each time the log
 * must name the page's address in that replica, the page must be on a new
 * frame with its content, and no walk of a replica's pages was needed.
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/socket.h>

#define PAGES		16
#define FPAGES		8	/* file pages mapped, from page FOFF of the file */
#define FOFF		2
#define FCOPIED		4	/* the first FCOPIED of them written (copied) */
#define SPARSE		(1UL << 30)
#define FILE_PATH	"/mnt/disk/mce_owner.dat"

/* What the workload tells the test: the addresses of its regions. */
struct layout {
	char *moved;	/* PAGES pages, moved before protection, pattern 3 */
	char *moved2;	/* PAGES pages, moved when told to, pattern 5 */
	char *file;	/* FPAGES pages of FILE_PATH from page FOFF */
	char *stack;	/* PAGES pages of the stack, pattern 11 */
};

/* Byte i of file page p (the file's own content). */
static char file_byte(int p, int i)
{
	return (char)(p * 7 + i * 13);
}

/* Byte i of mapped file page p as the workload leaves it. */
static char mapped_byte(int p, int i)
{
	return p < FCOPIED ? (char)(i * 17 + p) : file_byte(FOFF + p, i);
}

static void fill(char *buf, int pages, int mul)
{
	int i;

	for (i = 0; i < pages * 4096; i++)
		buf[i] = (char)(i * mul);
}

/*
 * A region of @pages anonymous pages filled with pattern @mul where it was
 * created, then moved to a hole far from there (the hole stays reserved,
 * PROT_NONE, around it).
 */
static char *moved_region(int pages, int mul)
{
	char *hole = mmap(NULL, (pages + 64) * 4096, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *buf = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (hole == MAP_FAILED || buf == MAP_FAILED)
		_exit(2);
	fill(buf, pages, mul);
	buf = mremap(buf, pages * 4096, pages * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
		     hole + 32 * 4096);
	if (buf == MAP_FAILED)
		_exit(3);
	return buf;
}

static void workload(int ctl)
{
	char stack[PAGES * 4096], c, *sparse, *pending, *file;
	struct layout l;
	size_t off;
	int fd, p, i;

	sparse = mmap(NULL, SPARSE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sparse == MAP_FAILED)
		_exit(2);
	for (off = 0; off < SPARSE; off += 4 << 20)
		sparse[off] = 1;
	l.moved = moved_region(PAGES, 3);
	pending = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(pending, PAGES, 5);
	/* Where it will go: a hole of its own. */
	l.moved2 = mmap(NULL, (PAGES + 64) * 4096, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) + 40 * 4096;

	fd = open(FILE_PATH, O_RDONLY);
	file = mmap(NULL, FPAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
		    FOFF * 4096);
	if (fd < 0 || file == MAP_FAILED)
		_exit(4);
	close(fd);
	for (p = 0; p < FPAGES; p++)
		for (i = 0; i < 4096; i++) {
			if (p < FCOPIED)
				file[p * 4096 + i] = mapped_byte(p, i);
			else if (file[p * 4096 + i] != mapped_byte(p, i))
				_exit(5);
		}
	l.file = mmap(NULL, (FPAGES + 64) * 4096, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) + 24 * 4096;
	if (mremap(file, FPAGES * 4096, FPAGES * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
		   l.file) != l.file)
		_exit(6);

	fill(stack, PAGES, 11);
	l.stack = stack;
	write(ctl, &l, sizeof(l));
	/*
	 * Told to: move the second region (while protected).  Not blocked in
	 * a socket read, which gets its duplicates only when it returns.
	 */
	while (recv(ctl, &c, 1, MSG_DONTWAIT) != 1)
		usleep(5000);
	if (mremap(pending, PAGES * 4096, PAGES * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
		   l.moved2) != l.moved2)
		_exit(7);
	write(ctl, "m", 1);
	for (;;) {
		usleep(5000);
		/* Keeps the stack buffer alive. */
		__asm__ volatile("" : : "r"(stack) : "memory");
	}
}

/* Whether @pid's file mapping at @addr holds what the workload left there. */
static int file_intact(pid_t pid, const char *addr)
{
	char path[32], page[4096];
	int fd, p, i, ok;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	ok = fd >= 0;
	for (p = 0; p < FPAGES && ok; p++) {
		ok = pread(fd, page, 4096, (off_t)(uintptr_t)(addr + p * 4096)) == 4096;
		for (i = 0; i < 4096 && ok; i++)
			ok = page[i] == mapped_byte(p, i);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static int make_file(void)
{
	char page[4096];
	int fd, p, i, ok = 1;

	fd = open(FILE_PATH, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	for (p = 0; p < FOFF + FPAGES && ok; p++) {
		for (i = 0; i < 4096; i++)
			page[i] = file_byte(p, i);
		ok = write(fd, page, 4096) == 4096;
	}
	ok = !fsync(fd) && ok;
	close(fd);
	return ok ? 0 : -1;
}

/*
 * Whether the log has, for group @pid, a restore of the primary's page at
 * @addr, which was on frame @pfn.
 */
static int restored_logged(pid_t pid, uint64_t pfn, const char *addr)
{
	return run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in the primary (address %p); restoring it'",
		       pid, (unsigned long long)pfn, addr) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: page %p restored on a fresh frame from duplicate [0-9]*; frame %#llx retired'",
		       pid, addr, (unsigned long long)pfn) == 0;
}

/* The primary's page at @addr was on @bad and is on a fresh frame now. */
static int moved_off(pid_t pid, const char *addr, uint64_t bad)
{
	uint64_t now = pfn_of(pid, addr);

	return now && now != bad && (kpage_flags(bad) >> KPF_HWPOISON & 1);
}

int main(void)
{
	pid_t pid, reps[8] = { 0 }, victim;
	struct layout l;
	uint64_t bad;
	long failovers;
	char *addr, c;
	int ctl[2], ok;

	tap_plan(12);
	if (make_file())
		die("cannot write " FILE_PATH);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("socketpair");
	pid = fork();
	if (pid == 0)
		workload(ctl[1]);
	ok = read(ctl[0], &l, sizeof(l)) == sizeof(l);
	ok = ok && ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	tap_ok(ok, "level 2, duplicates %d %d; a 1 GiB sparse mapping, regions at %p (moved), %p (file), %p (stack)",
	       reps[1], reps[2], l.moved, l.file, l.stack);
	ok = ok && write(ctl[0], "g", 1) == 1 && read(ctl[0], &c, 1) == 1 && wait_caught_up(pid);
	tap_ok(ok && buffer_intact(pid, l.moved2, PAGES, 5) && buffer_intact(reps[1], l.moved2, PAGES, 5) &&
	       buffer_intact(reps[2], l.moved2, PAGES, 5),
	       "the second region moved to %p in every replica", l.moved2);

	/* The primary's page 5 of the region moved before protection. */
	addr = l.moved + 5 * 4096;
	bad = pfn_of(pid, addr);
	ok = bad && host_inject_mce(bad * 4096) == 0;
	failovers = wait_field(pid, "failovers=", 1, 10);
	tap_ok(ok && failovers == 1 && restored_logged(pid, bad, addr) &&
	       moved_off(pid, addr, bad) && buffer_intact(pid, l.moved, PAGES, 3),
	       "machine check on frame %#llx: the primary's moved page %p restored, memory intact",
	       (unsigned long long)bad, addr);

	/* A duplicate's page 3 of the region moved while protected. */
	ok = wait_duplicates(pid, 2, reps);
	victim = reps[1];
	addr = l.moved2 + 3 * 4096;
	bad = pfn_of(victim, addr);
	ok = ok && bad && bad != pfn_of(pid, addr) && host_inject_mce(bad * 4096) == 0 &&
	     wait_gone(victim) && wait_duplicates(pid, 2, reps);
	tap_ok(ok && run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in duplicate %d; replacing it (its page at %p)'",
			     pid, (unsigned long long)bad, victim, addr) == 0,
	       "machine check on frame %#llx: duplicate %d's page %p found, the duplicate replaced",
	       (unsigned long long)bad, victim, addr);
	tap_ok(buffer_intact(pid, l.moved2, PAGES, 5) && buffer_intact(reps[1], l.moved2, PAGES, 5) &&
	       buffer_intact(reps[2], l.moved2, PAGES, 5) && procft_field(pid, "respawns=") >= 1,
	       "every replica's second region intact (respawns=%ld)", procft_field(pid, "respawns="));

	/* corrupt-pfn on the primary's copied page 1 of the file mapping. */
	addr = l.file + 1 * 4096;
	bad = pfn_of(pid, addr);
	ok = bad && (kpage_flags(bad) >> KPF_ANON & 1) && corrupt_pfn(bad) == 0;
	failovers = wait_field(pid, "failovers=", 2, 10);
	tap_ok(ok && failovers == 2 && restored_logged(pid, bad, addr) && moved_off(pid, addr, bad),
	       "corrupt-pfn on frame %#llx: the primary's copied file page %p restored",
	       (unsigned long long)bad, addr);

	/*
	 * A machine check on page-cache page 6 of the file, which every
	 * replica maps (a duplicate gets the page-table entries of a mapping
	 * with anonymous pages when it is made): all three are found.
	 */
	ok = wait_duplicates(pid, 2, reps);
	addr = l.file + 6 * 4096;
	bad = pfn_of(pid, addr);
	ok = ok && bad && !(kpage_flags(bad) >> KPF_ANON & 1) && pfn_of(reps[1], addr) == bad &&
	     pfn_of(reps[2], addr) == bad && host_inject_mce(bad * 4096) == 0 &&
	     wait_field(pid, "mce_events=", 6, 10) == 6;
	tap_ok(ok && run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in the primary (address %p), already replaced'",
			     pid, (unsigned long long)bad, addr) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in duplicate %d; replacing it (its page at %p)'",
		       pid, (unsigned long long)bad, reps[1], addr) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: memory error at frame %#llx in duplicate %d; replacing it (its page at %p)'",
		       pid, (unsigned long long)bad, reps[2], addr) == 0,
	       "machine check on the page-cache frame %#llx: found at %p in all three replicas",
	       (unsigned long long)bad, addr);
	ok = wait_duplicates(pid, 2, reps);
	tap_ok(ok && file_intact(pid, l.file) && pfn_of(pid, addr) != bad &&
	       procft_field(pid, "failovers=") == 2,
	       "the file mapping reads as before (the page read again), no failover");

	/* The primary's stack. */
	ok = wait_duplicates(pid, 2, reps);
	addr = (char *)(((uintptr_t)l.stack + 9 * 4096) & ~4095UL);
	bad = pfn_of(pid, addr);
	ok = ok && bad && host_inject_mce(bad * 4096) == 0;
	failovers = wait_field(pid, "failovers=", 3, 10);
	tap_ok(ok && failovers == 3 && restored_logged(pid, bad, addr) &&
	       moved_off(pid, addr, bad) && buffer_intact(pid, l.stack, PAGES, 11),
	       "machine check on frame %#llx: the primary's stack page %p restored",
	       (unsigned long long)bad, addr);

	ok = wait_duplicates(pid, 2, reps);
	tap_ok(ok && buffer_intact(pid, l.moved, PAGES, 3) && buffer_intact(reps[1], l.moved, PAGES, 3) &&
	       buffer_intact(reps[2], l.moved, PAGES, 3) && file_intact(reps[1], l.file) &&
	       file_intact(reps[2], l.file) && buffer_intact(reps[1], l.stack, PAGES, 11),
	       "every replica's memory intact");
	tap_ok(wait_field(pid, "mce_events=", 7, 10) == 7,
	       "seven replicas hit, seven counted (mce_events=%ld)", procft_field(pid, "mce_events="));
	tap_ok(run_cmd("dmesg | grep -q 'does not say where it is mapped'") != 0,
	       "every frame placed from its page offset, no replica's pages walked");
	kill(pid, SIGKILL);
	reap(pid);
	unlink(FILE_PATH);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A promotion leaves the process what it was: after its primary fails and a
 * duplicate takes over, the process has the same pid, the same mappings
 * (/proc/<pid>/maps byte for byte), the same executable and command line,
 * the same memory cgroup and the same charge there, and its memory intact.
 *
 * With a kernel that has replace_mm() (PROCFT_FEAT_MM_TAKEOVER) the
 * primary continues on the duplicate's address space: its pages are then
 * on the very frames the duplicate had (nothing was copied), and a fresh
 * duplicate, on frames of its own, restores the level.  Without it, the
 * duplicate's pages are copied into fresh frames of the primary.
 */
#include "ft_test.h"

#define PAGES	1024		/* 4 MiB */
#define MOVED	8
#define MUL	7
#define CG	"/sys/fs/cgroup/ft_takeover"
/* One and a half times the pattern's bytes (see cgroup_anon()). */
#define ONE_AND_A_HALF	(PAGES * 4096L * 3 / 2)

/* The addresses the workload reports. */
struct layout {
	char *buf;
	char *moved;
};

static uint64_t sum_of(const char *p, size_t len)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < len; i++)
		s = s * 31 + (unsigned char)p[i];
	return s;
}

/*
 * Joins the test's memory cgroup, maps a 4 MiB pattern, a region it moves
 * with mremap() and its own executable (a private file mapping), reports
 * their addresses, then serves commands on @ctl: 'g' sends a checksum of
 * its memory, 'a' maps and touches 4 MiB more, 'q' exits with status 3.
 */
static void workload(int ctl)
{
	struct layout l;
	char *tmp, *exe, c;
	uint64_t sum;
	int fd, i;

	fd = open(CG "/cgroup.procs", O_WRONLY);
	if (fd >= 0) {
		dprintf(fd, "0\n");
		close(fd);
	}
	l.buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < PAGES * 4096; i++)
		l.buf[i] = (char)(i * MUL);
	tmp = mmap(NULL, MOVED * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(tmp, 0x5a, MOVED * 4096);
	l.moved = mmap(NULL, 2 * MOVED * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l.moved = mremap(tmp, MOVED * 4096, MOVED * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
			 l.moved + MOVED * 4096);
	fd = open("/proc/self/exe", O_RDONLY);
	exe = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	write(ctl, &l, sizeof(l));
	while (read(ctl, &c, 1) == 1) {
		if (c == 'q')
			_exit(3);
		if (c == 'a') {
			tmp = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			memset(tmp, 1, PAGES * 4096);
		}
		sum = sum_of(l.buf, PAGES * 4096) ^ sum_of(l.moved, MOVED * 4096) ^
		      sum_of(exe, 4096);
		write(ctl, &sum, sizeof(sum));
	}
	_exit(1);
}

/* @path's contents into @buf (NUL-terminated); bytes read, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;

	if (fd < 0)
		return -1;
	read_to_eof(fd, buf, len, &got);
	close(fd);
	return got;
}

/*
 * Bytes of anonymous memory charged to the test's cgroup.  Not
 * memory.current: that also counts page cache, which reclaim may take
 * from the cgroup at any moment on a small guest.  The figure is read from
 * per-CPU counters flushed in batches, so it may be off by up to about
 * 1 MiB on a 2-CPU guest; the checks below leave room for that.
 */
static long cgroup_anon(void)
{
	return memory_stat(CG, "anon");
}

/* What a promotion must leave as it was. */
struct image {
	char maps[16384];
	char exe[256];
	char cmdline[256];
	char cgroup[256];
	long charge;
};

static void snap(pid_t pid, struct image *im)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	slurp(path, im->maps, sizeof(im->maps));
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	memset(im->exe, 0, sizeof(im->exe));
	readlink(path, im->exe, sizeof(im->exe) - 1);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	slurp(path, im->cmdline, sizeof(im->cmdline));
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	slurp(path, im->cgroup, sizeof(im->cgroup));
	im->charge = cgroup_anon();
}

/* Whether @after's charge is @before's, give or take a fifth; rereads it. */
static int settled(const struct image *before, struct image *after)
{
	after->charge = cgroup_anon();
	return after->charge > before->charge * 4 / 5 && after->charge < before->charge * 5 / 4;
}

static uint64_t ask(int ctl, char c)
{
	uint64_t sum = 0;

	write(ctl, &c, 1);
	if (read(ctl, &sum, sizeof(sum)) != sizeof(sum))
		return 0;
	return sum;
}

int main(void)
{
	static struct image before, after;
	pid_t pid, reps[8], reps2[8];
	uint64_t sum0, sum1, dup_pfn, prim_pfn, now_pfn, new_dup_pfn;
	struct procft_fail f = { .replica = 0, .how = PROCFT_FAIL_LOSE };
	int ctl, status, i, ok, memcg, same = 0, takeover = takes_over();
	struct layout l;
	long grown;

	tap_plan(8);
	/* A memory cgroup of its own, if the kernel has the controller. */
	run_cmd("grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup");
	run_cmd("echo +memory > /sys/fs/cgroup/cgroup.subtree_control");
	rmdir(CG);
	memcg = mkdir(CG, 0755) == 0 && access(CG "/memory.stat", R_OK) == 0;

	pid = spawn_with_ctl(workload, &ctl);
	if (read(ctl, &l, sizeof(l)) != sizeof(l))
		die("workload");
	/* Its duplicate is made at its next call (it waits in a socket read). */
	ok = ioctl_set(pid, 1) == 0;
	sum0 = ask(ctl, 'g');
	ok = ok && sum0 && wait_duplicates(pid, 1, reps);
	tap_ok(ok,
	       "protected at level 1, duplicate %d in step", reps[1]);
	wait_caught_up(pid);
	snap(pid, &before);
	dup_pfn = pfn_of(reps[1], l.buf + 5 * 4096);
	prim_pfn = pfn_of(pid, l.buf + 5 * 4096);

	/* The primary fails: a duplicate takes over at its next call. */
	f.pid = pid;
	if (ioctl(ft_open(), PROCFT_IOC_FAIL, &f))
		tap_diag("PROCFT_IOC_FAIL: %s", strerror(errno));
	sum1 = ask(ctl, 'g');
	wait_field(pid, "failovers=", 1, 10);
	tap_ok(procft_field(pid, "failovers=") == 1 && sum1 && sum1 == sum0 && !kill(pid, 0),
	       "primary failed, a duplicate took over: same pid, memory intact (checksum %#llx)",
	       (unsigned long long)sum1);
	/* Its own statement: tap_ok()'s arguments are evaluated in no set order. */
	ok = wait_duplicates(pid, 1, reps2);
	tap_ok(ok && (reps2[1] != reps[1]) == takeover &&
	       procft_field(pid, "respawns=") == 0,
	       "level 1 %s (duplicate %d), no duplicate counted lost (respawns=%ld)",
	       takeover ? "again" : "throughout", reps2[1], procft_field(pid, "respawns="));
	wait_caught_up(pid);
	snap(pid, &after);
	now_pfn = pfn_of(pid, l.buf + 5 * 4096);
	new_dup_pfn = pfn_of(reps2[1], l.buf + 5 * 4096);
	if (takeover)
		tap_ok(now_pfn && now_pfn == dup_pfn && now_pfn != prim_pfn && reps2[1] != reps[1] &&
		       new_dup_pfn && new_dup_pfn != now_pfn &&
		       run_cmd("dmesg | grep -q 'procft: pid %d: injected failure of the primary; took over duplicate %d.s state at call #[0-9]* ([a-z]*): its address space taken over'",
			       pid, reps[1]) == 0,
		       "the primary runs on the duplicate's frames (%#llx, was %#llx), nothing copied; the new duplicate %d is on %#llx",
		       (unsigned long long)now_pfn, (unsigned long long)prim_pfn, reps2[1],
		       (unsigned long long)new_dup_pfn);
	else
		tap_ok(now_pfn && now_pfn != dup_pfn && now_pfn != prim_pfn &&
		       pfn_of(reps2[1], l.buf + 5 * 4096) == dup_pfn,
		       "the duplicate's pages were copied to fresh frames of the primary (%#llx)",
		       (unsigned long long)now_pfn);
	tap_ok(before.maps[0] && !strcmp(before.maps, after.maps),
	       "/proc/%d/maps is what it was (%zu bytes)", pid, strlen(after.maps));
	if (strcmp(before.maps, after.maps))
		tap_diag("before:\n%s\nafter:\n%s", before.maps, after.maps);
	tap_ok(before.exe[0] && !strcmp(before.exe, after.exe) &&
	       !strcmp(before.cmdline, after.cmdline) && before.cgroup[0] &&
	       !strcmp(before.cgroup, after.cgroup),
	       "exe (%s), command line and cgroup (%.*s) are what they were", after.exe,
	       (int)strcspn(after.cgroup, "\n"), after.cgroup);
	if (memcg) {
		/*
		 * Charged to the process's cgroup: its own pages and its
		 * duplicate's.  4 MiB more in the process must add well over
		 * one replica's 4 MiB (half of it again: the counters' slack is
		 * below that, a duplicate charged elsewhere is far below it).
		 */
		/* The old address space is freed asynchronously. */
		for (i = 0; i < 1000 && !(same = settled(&before, &after)); i++)
			usleep(10000);
		ask(ctl, 'a');
		wait_caught_up(pid);
		grown = cgroup_anon() - after.charge;
		tap_ok(before.charge > ONE_AND_A_HALF && same &&
		       grown > ONE_AND_A_HALF,
		       "anonymous memory charged to the cgroup: %ld before, %ld after; 4 MiB more in the process charge it %ld more (both replicas)",
		       before.charge, after.charge, grown);
	} else {
		tap_skip("no memory cgroup controller");
	}
	write(ctl, "q", 1);
	waitpid(pid, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 3, "exit status 3, as unprotected (status %#x)",
	       status);
	rmdir(CG);
	return tap_finish();
}

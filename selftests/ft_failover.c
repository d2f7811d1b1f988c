// SPDX-License-Identifier: GPL-2.0
/*
 * Promotion: a duplicate takes over from a failed primary.
 *
 * The workload fills 4 MiB with a pseudo-random sequence, then for 30
 * rounds rewrites all of it and prints a checksum, to a pipe and to a file
 * opened before protection.  Its output is compared byte for byte with an
 * unprotected reference run, and so is the file.
 *
 * - Injected primary failure (PROCFT_IOC_FAIL, replica 0) at levels 1 and
 *   2: at its next call the primary's memory is dropped and replaced by a
 *   duplicate's, with the duplicate's registers.
 * - MADV_HWPOISON in the primary (an action-required memory error: the
 *   kernel poisons the frame and queues SIGBUS): unprotected, the process
 *   dies of SIGBUS; protected, a duplicate's state is taken before the
 *   primary runs another instruction, once at level 1 and twice at level 2.
 *   The frame is retired and the page is on a new one.
 * - Injected failure of a duplicate: it is replaced.
 * - Silent corruption (a flipped byte, PROCFT_FAIL_CORRUPT) of the primary
 *   at level 2: the duplicates outvote it before its output leaves and one
 *   takes over; of a duplicate: it is outvoted and replaced; of the primary
 *   at level 1: detected, the duplicate replaced (nothing to outvote with).
 * Each time: same pid before and after, own exit status, output and file
 * identical to the reference, counters, duplicates back to the level.
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define PAGES 1024
#define ROUNDS 30
#define WORDS (PAGES * 4096 / 8)

struct run {
	int level;
	int poison[2];		/* rounds at which the primary poisons a page, or -1 */
	int fail_round;		/* parent injects a failure after this round is printed */
	int fail_replica;
	unsigned int how;	/* PROCFT_FAIL_LOSE or PROCFT_FAIL_CORRUPT */
	int all_hit;		/* after round 5, every replica's copy of a page is poisoned */
	uint64_t addr;		/* byte corrupted (set by run()) */
	char out[4096];		/* what the process printed */
	char log[4096];		/* what it wrote to its file */
	int status;
	pid_t pid;
	uint64_t bad[2];	/* frames poisoned */
	uint64_t now[2];	/* frames of those pages at the end */
	long failovers, respawns, mce_events, divergences, dups;
};

static void workload(int ctl, int fin, int out, const struct run *r, const char *path)
{
	uint64_t *w, x = 0x9e3779b97f4a7c15ULL, sum;
	char line[64];
	int i, n, log, k = 0;

	log = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (log < 0 || (r->level && ioctl_set(0, r->level)))
		_exit(90);
	w = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		_exit(91);
	for (i = 0; i < WORDS; i++)
		w[i] = x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	write(ctl, &w, sizeof(w));
	dprintf(out, "pid %d\n", getpid());
	/* Until the parent has seen the duplicates and the frames. */
	read(ctl, line, 1);
	for (n = 0; n < ROUNDS; n++) {
		if (k < 2 && r->poison[k] == n)
			madvise((char *)w + (7 + 100 * k++) * 4096, 4096, MADV_HWPOISON);
		sum = 0;
		for (i = 0; i < WORDS; i++) {
			w[i] = w[i] * 31 + n;
			sum ^= (w[i] << (i & 31)) | (w[i] >> (64 - (i & 31)));
		}
		snprintf(line, sizeof(line), "round %d %016llx\n", n, (unsigned long long)sum);
		write(out, line, strlen(line));
		write(log, line, strlen(line));
		if (r->all_hit && n == 5)
			read(ctl, line, 1);
		/*
		 * A byte flipped after the last round would change no output:
		 * wait until the parent has flipped it.
		 */
		if (r->how == PROCFT_FAIL_CORRUPT && n == r->fail_round)
			read(ctl, line, 1);
	}
	/*
	 * Blocked until the parent has looked at the frames: in a pipe read,
	 * where a duplicate replaced late is still made while it waits.
	 */
	read(fin, line, 1);
	dprintf(out, "pid %d\n", getpid());
	_exit(3);
}

static void run(struct run *r, const char *name)
{
	char path[64], want[32];
	int ctl[2], fin[2], out[2], fd, k;
	size_t got = 0;
	uint64_t *w = NULL;
	pid_t reps[8];

	snprintf(path, sizeof(path), "/tmp/ft_failover.%s", name);
	r->out[0] = r->log[0] = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out) || pipe(fin))
		die("socketpair");
	r->pid = fork();
	if (r->pid == 0) {
		close(out[0]);
		close(ctl[0]);
		close(fin[1]);
		workload(ctl[1], fin[0], out[1], r, path);
	}
	close(out[1]);
	close(ctl[1]);
	close(fin[0]);
	read(ctl[0], &w, sizeof(w));
	if (r->level)
		wait_duplicates(r->pid, r->level, reps);
	for (k = 0; k < 2; k++)
		if (r->poison[k] >= 0)
			r->bad[k] = pfn_of(r->pid, (char *)w + (7 + 100 * k) * 4096);
	write(ctl[0], "g", 1);
	r->addr = (uintptr_t)w + 300 * 4096 + 5;
	if (r->fail_round >= 0) {
		struct procft_fail f = { .pid = r->pid, .replica = r->fail_replica, .how = r->how, .addr = r->addr };

		snprintf(want, sizeof(want), "round %d ", r->fail_round);
		read_until(out[0], r->out, sizeof(r->out), &got, want);
		if (ioctl(ft_open(), PROCFT_IOC_FAIL, &f))
			tap_diag("PROCFT_IOC_FAIL: %s", strerror(errno));
		if (r->how == PROCFT_FAIL_CORRUPT)
			write(ctl[0], "g", 1);
	}
	if (r->all_hit) {
		read_until(out[0], r->out, sizeof(r->out), &got, "round 5 ");
		/* The duplicate's copy first (it dies at once), then the primary's. */
		r->bad[0] = pfn_of(reps[1], (char *)w + 7 * 4096);
		r->bad[1] = pfn_of(r->pid, (char *)w + 7 * 4096);
		if (!r->bad[0] || !r->bad[1] || corrupt_pfn(r->bad[0]) || corrupt_pfn(r->bad[1]))
			tap_diag("corrupt-pfn failed");
		write(ctl[0], "g", 1);
	}
	snprintf(want, sizeof(want), "round %d ", ROUNDS - 1);
	read_until(out[0], r->out, sizeof(r->out), &got, want);
	if (r->level && strstr(r->out, want)) {
		/* A slow duplicate may not have reached a divergence yet. */
		wait_caught_up(r->pid);
		r->dups = wait_duplicates(r->pid, r->level, reps) ? r->level : -1;
		r->failovers = procft_field(r->pid, "failovers=");
		r->respawns = procft_field(r->pid, "respawns=");
		r->mce_events = procft_field(r->pid, "mce_events=");
		r->divergences = procft_field(r->pid, "divergences=");
		for (k = 0; k < 2; k++)
			if (r->poison[k] >= 0)
				r->now[k] = pfn_of(r->pid, (char *)w + (7 + 100 * k) * 4096);
	}
	write(fin[1], "q", 1);
	read_until(out[0], r->out, sizeof(r->out), &got, "\n\xff");
	waitpid(r->pid, &r->status, 0);
	close(out[0]);
	close(ctl[0]);
	close(fin[1]);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		got = read(fd, r->log, sizeof(r->log) - 1);
		r->log[got > 0 ? got : 0] = 0;
		close(fd);
	}
	unlink(path);
}

/* The round lines of @out (what follows the first "pid" line, up to the second). */
static const char *rounds_of(const char *out, char *buf, size_t len)
{
	const char *a = strchr(out, '\n'), *b;

	buf[0] = 0;
	if (!a)
		return buf;
	b = strstr(a + 1, "pid ");
	snprintf(buf, len, "%.*s", (int)(b ? b - a - 1 : (long)strlen(a + 1)), a + 1);
	return buf;
}

/* Output and file identical to the reference's, pid printed twice, own exit status. */
static int same_as(const struct run *r, const struct run *ref)
{
	char a[4096], b[4096], pids[64];

	snprintf(pids, sizeof(pids), "pid %d\n", r->pid);
	if (strncmp(r->out, pids, strlen(pids)) || !strstr(r->out + 1, pids)) {
		tap_diag("pid lines differ from %d: %.40s", r->pid, r->out);
		return 0;
	}
	if (strcmp(rounds_of(r->out, a, sizeof(a)), rounds_of(ref->out, b, sizeof(b)))) {
		tap_diag("output differs:\n%s\n--- reference:\n%s", a, b);
		return 0;
	}
	if (strcmp(r->log, ref->log)) {
		tap_diag("file differs:\n%s", r->log);
		return 0;
	}
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 3;
}

#define NEW_RUN(lvl, p0, p1, fr, rep) \
	{ .level = lvl, .poison = { p0, p1 }, .fail_round = fr, .fail_replica = rep }
#define NEW_CORRUPT(lvl, fr, rep) \
	{ .level = lvl, .poison = { -1, -1 }, .fail_round = fr, .fail_replica = rep, \
	  .how = PROCFT_FAIL_CORRUPT }

/*
 * FPU state across promotions: a sum kept only in a vector register
 * (xmm14, never spilled to memory) across system calls, while the primary
 * fails five times.  Each promotion must bring the duplicate's registers,
 * FPU included, as they are at its system call.
 */
static void fpu_promotions(void)
{
	int ctl[2], st, i, ok = 1;
	pid_t pid, reps[8] = { 0 };
	uint64_t res[2] = { 0 }, k;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		uint64_t got, out[2];
		char c;

		close(ctl[0]);
		ioctl_set(0, 2);
		while (recv(ctl[1], &c, 1, MSG_DONTWAIT) != 1)
			usleep(5000);
		asm volatile("pxor %%xmm14, %%xmm14" ::: "xmm14");
		/* Until told to stop, however fast the machine. */
		for (k = 0; k % 256 || recv(ctl[1], &c, 1, MSG_DONTWAIT) != 1; k++) {
			asm volatile("movq %0, %%xmm15\n\tpaddq %%xmm15, %%xmm14"
				     :: "r"(k * 2654435761u) : "xmm14", "xmm15");
			syscall(SYS_getppid);
		}
		asm volatile("movq %%xmm14, %0" : "=r"(got) :: "xmm14");
		out[0] = k;
		out[1] = got;
		write(ctl[1], out, sizeof(out));
		_exit(0);
	}
	close(ctl[1]);
	ok = wait_duplicates(pid, 2, reps);
	write(ctl[0], "g", 1);
	for (i = 0; i < 5 && ok; i++) {
		struct procft_fail f = { .pid = pid, .replica = 0 };
		int tries = 0;

		usleep(100000);
		/* EAGAIN while no duplicate exists yet that can take over. */
		while (ioctl(ft_open(), PROCFT_IOC_FAIL, &f) && errno == EAGAIN && tries++ < 100)
			usleep(50000);
		ok = tries <= 100 && wait_duplicates(pid, 2, reps);
	}
	write(ctl[0], "q", 1);
	ok = read(ctl[0], res, sizeof(res)) == sizeof(res) && ok;
	waitpid(pid, &st, 0);
	for (k = 0; k < res[0]; k++)
		res[1] -= k * 2654435761u;
	tap_ok(ok && res[1] == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "level 2, five promotions while a sum lives in a vector register across %llu calls: the sum is right (off by %lld)",
	       (unsigned long long)res[0], (long long)res[1]);
	close(ctl[0]);
}

/*
 * A program may send itself SIGBUS with any siginfo, BUS_MCEERR_AR
 * included: nothing is lost, so no duplicate takes over and the signal
 * does what the program asked (here, end it).
 */
static void self_sent_sigbus(void)
{
	pid_t pid, reps[8] = { 0 };
	int ctl[2], st, ok;
	char c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		siginfo_t si = { .si_signo = SIGBUS, .si_code = BUS_MCEERR_AR };

		close(ctl[0]);
		ioctl_set(0, 1);
		while (recv(ctl[1], &c, 1, MSG_DONTWAIT) != 1)
			usleep(5000);
		si.si_addr = &c;
		syscall(SYS_rt_tgsigqueueinfo, getpid(), getpid(), SIGBUS, &si);
		_exit(0);
	}
	close(ctl[1]);
	ok = wait_duplicates(pid, 1, reps);
	write(ctl[0], "g", 1);
	waitpid(pid, &st, 0);
	tap_ok(ok && WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
	       "level 1, a SIGBUS BUS_MCEERR_AR the program sends itself: no takeover, it dies of it (%#x)",
	       st);
	close(ctl[0]);
}

int main(void)
{
	static struct run ref = NEW_RUN(0, -1, -1, -1, 0), bare = NEW_RUN(0, 12, -1, -1, 0),
		inj1 = NEW_RUN(1, -1, -1, 8, 0), inj2 = NEW_RUN(2, -1, -1, 8, 0),
		hw1 = NEW_RUN(1, 12, -1, -1, 0), hw2 = NEW_RUN(2, 9, 21, -1, 0),
		dup1 = NEW_RUN(2, -1, -1, 8, 2), vp2 = NEW_CORRUPT(2, 8, 0),
		vd2 = NEW_CORRUPT(2, 8, 1), vp1 = NEW_CORRUPT(1, 8, 0),
		all1 = { .level = 1, .poison = { -1, -1 }, .fail_round = -1, .all_hit = 1 };
	struct procft_fail f = { .pid = getpid(), .replica = 0 };
	char text[4096];
	int e1, e2;
	pid_t s;

	tap_plan(22);
	/* The unprotected poisoned run dies before it reads its last byte. */
	signal(SIGPIPE, SIG_IGN);
	if (ft_open() < 0)
		die("/dev/procft");

	run(&ref, "ref");
	tap_ok(WIFEXITED(ref.status) && WEXITSTATUS(ref.status) == 3 &&
	       strstr(ref.out, "round 29 ") && !strcmp(rounds_of(ref.out, text, sizeof(text)), ref.log),
	       "reference run (unprotected): 30 rounds, file and pipe agree");

	run(&bare, "bare");
	tap_ok(WIFSIGNALED(bare.status) && WTERMSIG(bare.status) == SIGBUS &&
	       strstr(bare.out, "round 11 ") && !strstr(bare.out, "round 12 "),
	       "unprotected, MADV_HWPOISON kills it with SIGBUS after round 11 (status %#x)",
	       bare.status);

	run(&inj1, "inj1");
	tap_ok(same_as(&inj1, &ref), "level 1, injected primary failure: same pid, output and file");
	/*
	 * Taken over, the duplicate is replaced as part of the failover;
	 * copied from, it goes on. No duplicate was lost either way.
	 */
	tap_ok(inj1.failovers == 1 && inj1.respawns == 0 && inj1.dups == 1,
	       "level 1: one failover, no duplicate lost, 1 duplicate (failovers=%ld respawns=%ld)",
	       inj1.failovers, inj1.respawns);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: injected failure of the primary; took over duplicate [0-9]*.s state at call'",
		       inj1.pid) == 0, "logged");

	run(&inj2, "inj2");
	tap_ok(same_as(&inj2, &ref) && inj2.failovers == 1 && inj2.dups == 2,
	       "level 2, injected primary failure: same pid, output and file; failovers=%ld",
	       inj2.failovers);

	run(&hw1, "hw1");
	tap_ok(same_as(&hw1, &ref), "level 1, MADV_HWPOISON in the primary: it survives, same pid, output and file");
	tap_ok(hw1.failovers == 1 && hw1.mce_events == 1 && hw1.dups == 1,
	       "level 1: failovers=%ld mce_events=%ld, duplicate in step", hw1.failovers,
	       hw1.mce_events);
	tap_ok(hw1.bad[0] && hw1.now[0] && hw1.now[0] != hw1.bad[0] &&
	       (kpage_flags(hw1.bad[0]) >> KPF_HWPOISON & 1),
	       "frame %#llx retired (hwpoison), the page now on %#llx",
	       (unsigned long long)hw1.bad[0], (unsigned long long)hw1.now[0]);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: primary consumed poisoned memory at 0x[0-9a-f]*; took over duplicate'",
		       hw1.pid) == 0, "logged");
	tap_ok(run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep -q ' pid=%d event=poison_consumed addr=0x' /tmp/ev", hw1.pid) == 0 &&
	       run_cmd("grep -q ' pid=%d event=promotion from=[0-9]* cause=poison call=[0-9]* pages=[0-9]* us=[0-9]*$' /tmp/ev",
		       hw1.pid) == 0,
	       "ftctl events lists the consumed poison and the promotion");

	run(&hw2, "hw2");
	/* The second page was poisoned on the frame the first failover gave it. */
	tap_ok(same_as(&hw2, &ref) && hw2.failovers == 2 && hw2.mce_events == 2 && hw2.dups == 2 &&
	       (kpage_flags(hw2.bad[0]) >> KPF_HWPOISON & 1) &&
	       !(kpage_flags(hw2.now[0]) >> KPF_HWPOISON & 1) &&
	       !(kpage_flags(hw2.now[1]) >> KPF_HWPOISON & 1) &&
	       run_cmd("[ $(dmesg | grep -c 'Sending SIGBUS to ft_failover:%d ') = 2 ]", hw2.pid) == 0,
	       "level 2, two poisoned pages in a row: survives both, pages on good frames (failovers=%ld mce_events=%ld dups=%ld status=%#x)",
	       hw2.failovers, hw2.mce_events, hw2.dups, hw2.status);

	run(&dup1, "dup1");
	tap_ok(same_as(&dup1, &ref) && dup1.failovers == 0 && dup1.respawns == 1 && dup1.dups == 2,
	       "level 2, injected failure of duplicate 2: replaced (respawns=%ld)", dup1.respawns);

	/* Every replica's copy lost: it ends as it would unprotected. */
	run(&all1, "all1");
	{
		char a[4096], b[4096];

		rounds_of(all1.out, a, sizeof(a));
		rounds_of(ref.out, b, sizeof(b));
		tap_ok(WIFSIGNALED(all1.status) && WTERMSIG(all1.status) == SIGBUS &&
		       !strncmp(a, b, strlen(a)) && strstr(a, "round 5 ") && !strstr(a, "round 6 ") &&
		       run_cmd("dmesg | grep -qE 'procft: pid %d: primary (consumed poisoned memory at 0x[0-9a-f]* and no duplicate can take over|failed and no duplicate left to take over)'",
			       all1.pid) == 0,
		       "level 1, a page lost in the primary and its duplicate: killed by SIGBUS after round 5, as unprotected (status %#x)",
		       all1.status);
	}

	/* Silent data corruption: the byte flips, nobody crashes. */
	run(&vp2, "vp2");
	tap_ok(same_as(&vp2, &ref) && vp2.failovers == 1 && vp2.divergences == 1 && vp2.dups == 2,
	       "level 2, corrupted primary: outvoted before its output left, a duplicate took over, output identical (failovers=%ld divergences=%ld)",
	       vp2.failovers, vp2.divergences);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: primary outvoted at call #[0-9]* (write): 2 of 3 replicas disagree'",
		       vp2.pid) == 0 &&
	       run_cmd("ftctl events | grep -q ' pid=%d event=outvoted call=[0-9]* against=2 voters=3$'", vp2.pid) == 0,
	       "logged, and in the event log");

	run(&vd2, "vd2");
	tap_ok(same_as(&vd2, &ref) && vd2.failovers == 0 && vd2.divergences == 1 &&
	       vd2.respawns == 1 && vd2.dups == 2,
	       "level 2, corrupted duplicate: outvoted and replaced, output identical (divergences=%ld respawns=%ld)",
	       vd2.divergences, vd2.respawns);

	run(&vp1, "vp1");
	tap_ok(WIFEXITED(vp1.status) && vp1.divergences == 1 && vp1.respawns == 1 &&
	       vp1.failovers == 0 && vp1.dups == 1,
	       "level 1, corrupted primary: detected (divergences=%ld), the duplicate replaced; no majority to mask it",
	       vp1.divergences);

	/* A follower sees events as they happen. */
	s = spawn_sleeper();
	tap_ok(run_cmd("ftctl events -f > /tmp/evf & f=$!; usleep 300000; ftctl set %d 1; usleep 300000; ftctl set %d 0; usleep 300000; kill $f",
		       s, s) == 0 &&
	       run_cmd("grep -q ' pid=%d event=level old=0 new=1$' /tmp/evf", s) == 0 &&
	       run_cmd("grep -q ' pid=%d event=level old=1 new=0$' /tmp/evf", s) == 0,
	       "ftctl events -f follows level changes live");
	reap(s);

	e1 = ioctl(ft_open(), PROCFT_IOC_FAIL, &f) ? errno : 0;
	f.pid = -1;
	e2 = ioctl(ft_open(), PROCFT_IOC_FAIL, &f) ? errno : 0;
	tap_ok(e1 == ESRCH && e2 == EINVAL, "an unprotected process is ESRCH (%d), a bad pid EINVAL (%d)",
	       e1, e2);
	fpu_promotions();
	self_sent_sigbus();
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Signals sent to a protected process reach every replica at the same
 * point of its system-call sequence: handlers run identically (no
 * divergence, the handlers' counters agree in every replica's memory, the
 * output is the primary's alone), with and without SA_RESTART.  A signal
 * that arrives while the primary computes (its handler runs on an
 * interrupt's return, where no record can carry it) makes procft re-create
 * the duplicates from the primary at its next call: afterwards every
 * replica's memory agrees again and the output is still the primary's.  A
 * timer's SIGALRM, sent from the timer interrupt, is handled the same way
 * (on the debug kernel, lockdep checks procft's locks against the siglock
 * that interrupt takes).  A fatal signal from outside ends the whole group
 * with the primary's status.  Sleeps and waits a signal cuts short write
 * the time they had left: every replica's memory holds the primary's.
 */
#include "ft_test.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

/* Touched by the handler: accessed atomically, read back through /proc/<pid>/mem. */
static int handled;

static void on_usr1(int sig)
{
	char line[32];

	int n = __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);

	write(1, line, snprintf(line, sizeof(line), "handled %d\n", n));
}

/*
 * Forks a child whose standard output is the pipe @out and which talks to
 * its parent on the socket pair @ctl (its end: ctl[1]). Returns its pid,
 * or 0 in the child.
 */
static pid_t child(int ctl[2], int out[2])
{
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(ctl[0]);
	}
	return pid;
}

/*
 * Lets the child @pid go ("q" on @ctl), reads its output from @out to the
 * end and reaps it: a test that the output is @want and it exited with
 * @status, named @what.
 */
static void finish(int ctl, int out, pid_t pid, const char *want, int status, const char *what)
{
	char text[512];
	size_t got = 0;
	int st;

	write(ctl, "q", 1);
	read_to_eof(out, text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	tap_ok(!strcmp(text, want) && WIFEXITED(st) && WEXITSTATUS(st) == status, "%s", what);
	if (strcmp(text, want))
		tap_diag("got '%s'", text);
}

/* Blocks in read() on @ctl; every signal interrupts or restarts it. */
static void workload(int ctl, int restart)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0 };
	const int *addr = &handled;
	int eintr = 0;
	char c;

	sigaction(SIGUSR1, &sa, NULL);
	write(ctl, &addr, sizeof(addr));
	for (;;) {
		ssize_t r = read(ctl, &c, 1);

		if (r < 0 && errno == EINTR) {
			eintr++;
			continue;
		}
		if (r == 1 && c == 'q')
			break;
	}
	printf("eintr %d\n", eintr);
	fflush(stdout);
	_exit(__atomic_load_n(&handled, __ATOMIC_SEQ_CST));
}

/*
 * Reads @len bytes of @pid's memory at @addr into @out: at once if @want is
 * NULL, else once they equal @want or after 10 s (a duplicate may still be
 * replaying the primary's last records when the primary reports it is
 * done).
 */
static void mem_until(pid_t pid, const void *addr, void *out, size_t len, const void *want)
{
	int i;

	for (i = 0; i < 1000; i++, usleep(10000))
		if (!read_mem(pid, addr, out, len) || !want || !memcmp(out, want, len))
			break;
}

/* The handler's counter in @pid's memory at @addr, once it is @want or after 10 s. */
static int counter_of(pid_t pid, const int *addr, int want)
{
	int v = -1;

	mem_until(pid, addr, &v, sizeof(v), &want);
	return v;
}

/* Reads /proc/@pid/@name into @buf (NUL-terminated): its length, or -1. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY);
	n = fd < 0 ? -1 : read(fd, buf, len - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

/* Waits (10 s at most) until @pid sleeps in call @nr: a signal then interrupts that call. */
static void wait_in_call(pid_t pid, int nr)
{
	char buf[64], want[16];
	int i, w = snprintf(want, sizeof(want), "%d ", nr);

	for (i = 0; i < 1000; i++, usleep(10000))
		if (read_proc(pid, "syscall", buf, sizeof(buf)) > w && !strncmp(buf, want, w))
			return;
	tap_diag("pid %d is not in call %d", pid, nr);
}

static int run(int restart)
{
	int ctl[2], out[2], i, st, ok, want_eintr;
	pid_t pid, reps[8] = { 0 };
	const int *addr;
	char text[1024], expect[1024], want[32];
	size_t got = 0, n = 0;

	pid = child(ctl, out);
	if (pid == 0) {
		/* Protected from its first instruction, duplicated at its first calls. */
		ioctl_set(0, 2);
		workload(ctl[1], restart);
	}
	close(out[1]);
	close(ctl[1]);
	read(ctl[0], &addr, sizeof(addr));
	ok = wait_duplicates(pid, 2, reps);
	text[0] = 0;
	/* Each signal once the process sleeps in read(), after the last one's handler ran. */
	for (i = 1; i <= 5; i++) {
		wait_in_call(pid, SYS_read);
		kill(pid, SIGUSR1);
		n += snprintf(expect + n, sizeof(expect) - n, "handled %d\n", i);
		snprintf(want, sizeof(want), "handled %d\n", i);
		read_until(out[0], text, sizeof(text), &got, want);
	}
	{
		int a = counter_of(reps[0], addr, 5), b = counter_of(reps[1], addr, 5),
		    c = counter_of(reps[2], addr, 5);

		tap_ok(ok && a == 5 && b == 5 && c == 5,
		       "%s: the handler ran 5 times in every replica (%d %d %d)",
		       restart ? "SA_RESTART" : "no SA_RESTART", a, b, c);
	}
	tap_ok(procft_field(pid, "divergences=") == 0 && procft_field(pid, "respawns=") == 0,
	       "no divergence, no respawn");
	write(ctl[0], "q", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	want_eintr = restart ? 0 : 5;
	n += snprintf(expect + n, sizeof(expect) - n, "eintr %d\n", want_eintr);
	waitpid(pid, &st, 0);
	tap_ok(!strcmp(text, expect) && WIFEXITED(st) && WEXITSTATUS(st) == 5,
	       "output once, read() %s, exit status 5", restart ? "restarted" : "returned EINTR 5 times");
	if (strcmp(text, expect))
		tap_diag("got '%s'", text);
	return 0;
}

/*
 * What the sleeps and waits of cut_short() wrote when a signal cut them
 * short: the time each had left (rem of nanosleep and clock_nanosleep, the
 * timeout select, pselect6 and ppoll write back).
 */
static struct {
	struct timespec ns, cns, ps, pp;
	struct timeval sel;
	struct timespec rs;
} left;

/* The calls cut_short() makes, each cut short by a SIGUSR1. */
static const int sleeps[] = { SYS_nanosleep, SYS_clock_nanosleep, SYS_select, SYS_pselect6,
			      SYS_ppoll };

/* Waits (10 s at most) until @pid is stopped. */
static void wait_stopped(pid_t pid)
{
	char buf[512], *p;
	int i;

	for (i = 0; i < 1000; i++, usleep(10000)) {
		read_proc(pid, "stat", buf, sizeof(buf));
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'T')
			return;
	}
	tap_diag("pid %d did not stop", pid);
}

/*
 * Sleeps and waits interrupted by a handled signal (no SA_RESTART): each
 * returns EINTR and writes the time it had left, in the primary by its
 * kernel, in the duplicates from the primary's record.
 */
static void cut_short(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	int ctl[2], out[2], i, st, ok, same = 1;
	pid_t pid, reps[8] = { 0 }, after[8] = { 0 };
	char text[512], expect[512], want[32], c;
	unsigned char mine[sizeof(left)], theirs[sizeof(left)];
	const void *addr;
	size_t got = 0, n = 0;

	pid = child(ctl, out);
	if (pid == 0) {
		const struct timespec ten = { .tv_sec = 10 };
		int eintr = 0;

		ioctl_set(0, 2);
		sigaction(SIGUSR1, &sa, NULL);
		left.ps = ten;
		left.pp = ten;
		left.sel.tv_sec = 10;
		addr = &left;
		write(ctl[1], &addr, sizeof(addr));
		read(ctl[1], &c, 1);
		eintr += syscall(SYS_nanosleep, &ten, &left.ns) < 0 && errno == EINTR;
		eintr += syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ten, &left.cns) < 0 &&
			 errno == EINTR;
		eintr += syscall(SYS_select, 0, NULL, NULL, NULL, &left.sel) < 0 && errno == EINTR;
		eintr += syscall(SYS_pselect6, 0, NULL, NULL, NULL, &left.ps, NULL) < 0 &&
			 errno == EINTR;
		eintr += syscall(SYS_ppoll, NULL, 0, &left.pp, NULL, 8) < 0 && errno == EINTR;
		/* Stopped and continued: it goes on as restart_syscall(), then is cut short. */
		eintr += syscall(SYS_nanosleep, &ten, &left.rs) < 0 && errno == EINTR;
		printf("eintr %d\n", eintr);
		fflush(stdout);
		write(ctl[1], "d", 1);
		read(ctl[1], &c, 1);
		_exit(0);
	}
	close(out[1]);
	close(ctl[1]);
	read(ctl[0], &addr, sizeof(addr));
	ok = wait_duplicates(pid, 2, reps);
	write(ctl[0], "g", 1);
	text[0] = 0;
	for (i = 0; i < 6; i++) {
		if (i == 5) {
			/* Stopped, continued: its sleep goes on as restart_syscall(). */
			wait_in_call(pid, SYS_nanosleep);
			kill(pid, SIGSTOP);
			wait_stopped(pid);
			kill(pid, SIGCONT);
			wait_in_call(pid, SYS_restart_syscall);
		} else {
			wait_in_call(pid, sleeps[i]);
			/*
			 * A moment into the sleep: the time left is below its
			 * 10 s (plus the timer slack it is computed from).
			 */
			usleep(50000);
		}
		kill(pid, SIGUSR1);
		n += snprintf(expect + n, sizeof(expect) - n, "handled %d\n", i + 1);
		snprintf(want, sizeof(want), "handled %d\n", i + 1);
		read_until(out[0], text, sizeof(text), &got, want);
	}
	n += snprintf(expect + n, sizeof(expect) - n, "eintr 6\n");
	read(ctl[0], &c, 1);
	ok = ok && wait_caught_up(pid);
	mem_until(reps[0], addr, mine, sizeof(left), NULL);
	{
		const struct timespec *t = (const void *)mine;
		const struct timeval *tv = (const void *)(t + 4);
		const struct timespec *rs = (const void *)(tv + 1);

		/* The primary's kernel wrote each: less than the 10 s asked. */
		ok = ok && t[0].tv_sec < 10 && t[1].tv_sec < 10 && t[2].tv_sec < 10 &&
		     t[3].tv_sec < 10 && tv->tv_sec < 10 && (t[0].tv_sec || t[0].tv_nsec) &&
		     (t[1].tv_sec || t[1].tv_nsec) && rs->tv_sec < 10 && (rs->tv_sec || rs->tv_nsec);
	}
	for (i = 1; i <= 2; i++) {
		mem_until(reps[i], addr, theirs, sizeof(left), mine);
		same = same && !memcmp(mine, theirs, sizeof(left));
	}
	ok = ok && wait_duplicates(pid, 2, after);
	tap_ok(ok && same && !memcmp(reps, after, sizeof(reps)) &&
	       procft_field(pid, "divergences=") == 0,
	       "interrupted sleeps and waits (one continued by restart_syscall()): the time each had left is the primary's in both duplicates (the same ones), no divergence");
	if (!same)
		tap_diag("a duplicate's memory differs from the primary's");
	write(ctl[0], "q", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	tap_ok(!strcmp(text, expect) && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "and each returned EINTR once, its handler's output once, exit status 0");
	if (strcmp(text, expect))
		tap_diag("got '%s'", text);
}

/* Signals that arrive while the primary computes. */
static void computing(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	int ctl[2], out[2], i, a = -1, b = -1, ok;
	pid_t pid, reps[8] = { 0 };
	char c, path[32];
	const int *addr;

	pid = child(ctl, out);
	if (pid == 0) {
		ioctl_set(0, 1);
		sigaction(SIGUSR1, &sa, NULL);
		addr = &handled;
		write(ctl[1], &addr, sizeof(addr));
		read(ctl[1], &c, 1);
		for (i = 0; i < 3; i++) {
			write(ctl[1], "r", 1);
			/* Computes (no system call) until the signal has been handled. */
			while (__atomic_load_n(&handled, __ATOMIC_SEQ_CST) <= i)
				;
		}
		write(ctl[1], "d", 1);
		read(ctl[1], &c, 1);
		_exit(__atomic_load_n(&handled, __ATOMIC_SEQ_CST));
	}
	close(out[1]);
	close(ctl[1]);
	read(ctl[0], &addr, sizeof(addr));
	ok = wait_duplicates(pid, 1, reps);
	write(ctl[0], "g", 1);
	for (i = 0; i < 3; i++) {
		read(ctl[0], &c, 1);
		usleep(150000);
		/* It computes until it has handled it: delivered on an interrupt's return. */
		kill(pid, SIGUSR1);
	}
	/* Done computing, at its next calls: the duplicate is re-created. */
	read(ctl[0], &c, 1);
	ok = ok && wait_duplicates(pid, 1, reps);
	snprintf(path, sizeof(path), "/proc/%d/mem", reps[0]);
	i = open(path, O_RDONLY);
	pread(i, &a, sizeof(a), (off_t)(uintptr_t)addr);
	close(i);
	snprintf(path, sizeof(path), "/proc/%d/mem", reps[1]);
	i = open(path, O_RDONLY);
	pread(i, &b, sizeof(b), (off_t)(uintptr_t)addr);
	close(i);
	tap_ok(ok && a == 3 && b == 3 && procft_field(pid, "respawns=") >= 1 &&
	       procft_field(pid, "divergences=") == 0,
	       "signals while it computes: handled 3 times, the duplicate re-created and in step again (%d %d, respawns=%ld)",
	       a, b, procft_field(pid, "respawns="));
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: a signal handler ran in the primary outside a system-call return; re-creating its 1 duplicate'",
		       pid) == 0, "logged");
	finish(ctl[0], out[0], pid, "handled 1\nhandled 2\nhandled 3\n", 3,
	       "output once, exit status 3");
}

/*
 * Three SIGALRMs from a one-shot interval timer the process arms itself,
 * each meant to land while it waits in read() (should one land between
 * calls, the duplicate is re-created: the outcomes checked are the same).
 */
static void timer_signals(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct itimerval it = { .it_value = { .tv_usec = 200000 } };
	int ctl[2], out[2], i, a = -1, b = -1, ok;
	pid_t pid, reps[8] = { 0 };
	char c;
	const int *addr;

	pid = child(ctl, out);
	if (pid == 0) {
		ioctl_set(0, 1);
		sigaction(SIGALRM, &sa, NULL);
		addr = &handled;
		write(ctl[1], &addr, sizeof(addr));
		read(ctl[1], &c, 1);
		for (i = 1; i <= 3; i++) {
			setitimer(ITIMER_REAL, &it, NULL);
			while (__atomic_load_n(&handled, __ATOMIC_SEQ_CST) < i)
				read(ctl[1], &c, 1);
		}
		write(ctl[1], "d", 1);
		read(ctl[1], &c, 1);
		_exit(__atomic_load_n(&handled, __ATOMIC_SEQ_CST));
	}
	close(out[1]);
	close(ctl[1]);
	read(ctl[0], &addr, sizeof(addr));
	ok = wait_duplicates(pid, 1, reps);
	write(ctl[0], "g", 1);
	read(ctl[0], &c, 1);
	ok = ok && wait_duplicates(pid, 1, reps);
	a = counter_of(reps[0], addr, 3);
	b = counter_of(reps[1], addr, 3);
	tap_ok(ok && a == 3 && b == 3 && procft_field(pid, "divergences=") == 0,
	       "SIGALRM from a timer: handled 3 times in every replica (%d %d), no divergence",
	       a, b);
	finish(ctl[0], out[0], pid, "handled 1\nhandled 2\nhandled 3\n", 3,
	       "output once, exit status 3");
}

static int ticks;

static void on_vtalrm(int sig)
{
	__atomic_add_fetch(&ticks, 1, __ATOMIC_SEQ_CST);
}

enum { ALARMS = 300, MIB = 64 };

/* Its MIB MiB, touched, once it protected itself at level 1. */
static char *protected_mem(void)
{
	struct sigaction sa = { .sa_handler = on_vtalrm };
	char *mem = malloc(MIB << 20);

	if (!mem)
		_exit(2);
	memset(mem, 1, MIB << 20);
	ioctl_set(0, 1);
	sigaction(SIGVTALRM, &sa, NULL);
	return mem;
}

/* Computes through ALARMS alarms of a 1 ms virtual timer: no call but the handlers' returns. */
static void storm(void)
{
	struct itimerval it = { .it_interval = { .tv_usec = 1000 }, .it_value = { .tv_usec = 1000 } };
	struct itimerval off = { 0 };

	setitimer(ITIMER_VIRTUAL, &it, NULL);
	while (__atomic_load_n(&ticks, __ATOMIC_SEQ_CST) < ALARMS)
		;
	setitimer(ITIMER_VIRTUAL, &off, NULL);
}

/*
 * A large process whose interval timer fires while it computes, faster
 * than a duplicate can copy its memory: each handler makes the duplicate
 * stale, and re-creating it at every one would be all the process does.
 * procft holds the re-creations back, and makes a duplicate again once
 * the handlers stop.
 */
static void outrun(void)
{
	int ctl[2], out[2], go[2], ok;
	long respawns;
	pid_t pid, reps[8] = { 0 };
	char c, *mem;

	if (pipe(go))
		die("pipe");
	pid = child(ctl, out);
	if (pid == 0) {
		mem = protected_mem();
		write(ctl[1], "p", 1);
		read(ctl[1], &c, 1);
		storm();
		write(ctl[1], "d", 1);
		/*
		 * Blocked in a call until the parent saw its duplicate: procft
		 * makes the held one when the hold is over, not at a call.
		 */
		read(go[0], &c, 1);
		read(ctl[1], &c, 1);
		printf("computed, %d alarms at least\n", ALARMS);
		fflush(stdout);
		_exit(mem[MIB << 19] == 1 ? 0 : 3);
	}
	close(out[1]);
	close(ctl[1]);
	read(ctl[0], &c, 1);
	ok = wait_duplicates(pid, 1, reps);
	write(ctl[0], "g", 1);
	read(ctl[0], &c, 1);
	ok = ok && wait_duplicates(pid, 1, reps);
	respawns = procft_field(pid, "respawns=");
	write(go[1], "g", 1);
	tap_ok(ok && respawns >= 1 && respawns < ALARMS / 4 &&
	       procft_field(pid, "divergences=") == 0,
	       "%d alarms in a %d MiB process computing: %ld re-creations (fewer than %d), a duplicate in step again after them while it is blocked",
	       ALARMS, MIB, respawns, ALARMS / 4);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: its duplicates are replaced faster than they copy its memory'",
		       pid) == 0, "the hold logged");
	finish(ctl[0], out[0], pid, "computed, 300 alarms at least\n", 0,
	       "output once, exit status 0");
}

int main(int argc, char **argv)
{
	pid_t pid, reps[8] = { 0 };
	int st, i, ok;

	if (argc > 1 && !strcmp(argv[1], "storm")) {
		/*
		 * For module_load.sh: a held re-creation, then a long sleep,
		 * without /dev/procft open (it would keep the module in use).
		 */
		protected_mem();
		close(ft_dev);
		storm();
		for (;;)
			pause();
	}
	tap_plan(18);
	run(0);
	run(1);
	cut_short();
	computing();
	timer_signals();
	outrun();

	pid = fork();
	if (pid == 0) {
		ioctl_set(0, 1);
		for (;;)
			usleep(5000);
	}
	ok = wait_duplicates(pid, 1, reps);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	tap_ok(ok && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
	       "SIGTERM without a handler ends the process with that status");
	for (i = 1; i <= 1; i++)
		ok = ok && wait_gone(reps[i]);
	tap_ok(ok, "and its duplicate");
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A real machine check on a frame of the *primary* (action-optional: the
 * patrol scrub found it before anyone read it), once while it runs and
 * once while it is blocked in a system call.  Before it returns to user
 * space, the primary waits for a duplicate at the same point of the
 * program and gets that duplicate's copy of the page on a fresh frame: the
 * process keeps its pid, its output has every line once and in order, its
 * memory is intact, and its exit status is its own.  The unprotected run
 * of the same injection dies (mce_roundtrip).
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define PAGES 32
#define TICKS 40

static char *buf;
static int wake[2];

static void workload(int ctl, int out)
{
	char line[32], c;
	int i;

	buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < PAGES * 4096; i++)
		buf[i] = (char)(i * 29);
	write(ctl, &buf, sizeof(buf));
	while (recv(ctl, &c, 1, MSG_DONTWAIT) != 1)
		usleep(5000);
	for (i = 0; i < TICKS; i++) {
		write(out, line, snprintf(line, sizeof(line), "tick %d\n", i));
		usleep(10000);
	}
	/* Blocked in a system call until told to go on ... */
	read(ctl, &c, 1);
	/* ... then in a pipe read, a call procft may interrupt unseen. */
	read(wake[0], &c, 1);
	/* Read the whole buffer back: a bad byte changes the exit status. */
	for (i = 0; i < PAGES * 4096; i++)
		if (buf[i] != (char)(i * 29))
			_exit(1);
	_exit(7);
}

/*
 * Early kill: the kernel signals a process mapping a frame as soon as the
 * frame fails (SIGBUS, BUS_MCEERR_AO) if vm.memory_failure_early_kill is
 * set or the process asked for it with prctl(PR_MCE_KILL_EARLY); without
 * a handler, SIGBUS ends it.  A protected primary is not told of a frame
 * procft restores: it goes on, and its own policy is what it reads back
 * and what it has again once protection ends.  @own: the program asks
 * for early kill itself (else the sysctl does).
 */
static void early_kill(int own)
{
	const char *who = own ? "PR_MCE_KILL_EARLY" : "vm.memory_failure_early_kill=1";
	char text[1024], expect[1024], c;
	int ctl[2], out[2], i, n = 0, st, ok;
	uint64_t bad;
	size_t got = 0;
	pid_t pid, reps[8] = { 0 };

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out))
		die("socketpair");
	if (!own && run_cmd("sysctl -qw vm.memory_failure_early_kill=1"))
		die("sysctl");
	pid = fork();
	if (pid == 0) {
		char line[32];

		close(out[0]);
		if (own)
			prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0);
		buf = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (i = 0; i < PAGES * 4096; i++)
			buf[i] = (char)(i * 31);
		write(ctl[1], &buf, sizeof(buf));
		/* Until told to go, make calls so that duplicates get created. */
		while (recv(ctl[1], &c, 1, MSG_DONTWAIT) != 1)
			usleep(5000);
		for (i = 0; i < 20; i++) {
			write(out[1], line, snprintf(line, sizeof(line), "tick %d\n", i));
			usleep(10000);
		}
		read(ctl[1], &c, 1);
		write(out[1], line, snprintf(line, sizeof(line), "policy %d\n",
					     prctl(PR_MCE_KILL_GET, 0, 0, 0, 0)));
		for (i = 0; i < PAGES * 4096; i++)
			if (buf[i] != (char)(i * 31))
				_exit(1);
		_exit(7);
	}
	close(out[1]);
	read(ctl[0], &buf, sizeof(buf));
	ok = ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	write(ctl[0], "g", 1);
	usleep(50000);
	bad = pfn_of(pid, buf + 5 * 4096);
	ok = ok && bad && host_inject_mce(bad * 4096) == 0;
	wait_field(pid, "failovers=", 1, 10);
	tap_ok(ok && !kill(pid, 0) && procft_field(pid, "failovers=") == 1 &&
	       buffer_intact(pid, buf, PAGES, 31),
	       "early kill (%s): a machine check on the primary's frame %#llx does not end it; the page is restored",
	       who, (unsigned long long)bad);
	/* Protection ends: the program's own policy is back. */
	if (own)
		ok = ok && ioctl_set(pid, 0) == 0;
	write(ctl[0], "q", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	if (!own)
		run_cmd("sysctl -qw vm.memory_failure_early_kill=0");
	for (i = 0; i < 20; i++)
		n += snprintf(expect + n, sizeof(expect) - n, "tick %d\n", i);
	snprintf(expect + n, sizeof(expect) - n, "policy %d\n",
		 own ? PR_MCE_KILL_EARLY : PR_MCE_KILL_DEFAULT);
	tap_ok(ok && !strcmp(text, expect) && WIFEXITED(st) && WEXITSTATUS(st) == 7,
	       "output once, the program's own policy read back%s, exit status 7 (%#x)",
	       own ? " after protection ended" : "", st);
	if (strcmp(text, expect))
		tap_diag("got '%s'", text);
	close(ctl[0]);
	close(out[0]);
}

/* Whether @pid sleeps in read() of its descriptor @fd (/proc/<pid>/syscall). */
static int blocked_in_read(pid_t pid, int fd)
{
	char path[64], text[256] = "";
	FILE *f;
	long nr = -1, arg0 = -1;

	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%ld 0x%lx", &nr, &arg0) != 2)
		nr = -1;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(text, sizeof(text), f))
			text[0] = 0;
		fclose(f);
	}
	/* The state follows the command name's closing parenthesis. */
	return nr == 0 && arg0 == fd && strstr(text, ") S ");
}

int main(void)
{
	int ctl[2], out[2], i, st, ok;
	uint64_t bad, now;
	char text[4096], *p;
	size_t got = 0;
	pid_t pid;

	tap_plan(15);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out) || pipe(wake))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(out[0]);
		workload(ctl[1], out[1]);
	}
	close(out[1]);
	read(ctl[0], &buf, sizeof(buf));
	ok = ioctl_set(pid, 2) == 0;
	for (i = 0; i < 1000 && ok && procft_field(pid, "duplicates=") != 2; i++)
		usleep(10000);
	tap_ok(ok && procft_field(pid, "duplicates=") == 2, "protected at level 2, duplicates in step");

	write(ctl[0], "g", 1);
	usleep(50000);
	bad = pfn_of(pid, buf + 7 * 4096);
	tap_ok(bad && host_inject_mce(bad * 4096) == 0,
	       "machine check raised on the primary's frame %#llx", (unsigned long long)bad);
	wait_field(pid, "failovers=", 1, 10);
	tap_ok(procft_field(pid, "failovers=") == 1 && procft_field(pid, "mce_events=") == 1 &&
	       procft_field(pid, "respawns=") == 0,
	       "the primary's page was restored from a duplicate (failovers=%ld mce_events=%ld)",
	       procft_field(pid, "failovers="), procft_field(pid, "mce_events="));
	now = pfn_of(pid, buf + 7 * 4096);
	tap_ok(!kill(pid, 0) && buffer_intact(pid, buf, PAGES, 29) && now && now != bad && (kpage_flags(bad) >> KPF_HWPOISON & 1),
	       "same pid, memory intact, page now on frame %#llx, %#llx retired",
	       (unsigned long long)now, (unsigned long long)bad);
	tap_ok(run_cmd("dmesg | grep -q 'procft: pid %d: page 0x[0-9a-f]* restored on a fresh frame from duplicate [0-9]*; frame %#llx retired'",
		       pid, (unsigned long long)bad) == 0, "logged");

	/* The ticks end; then it blocks in read() and a second frame fails. */
	text[0] = 0;
	read_until(out[0], text, sizeof(text), &got, "tick 39\n");
	usleep(100000);
	bad = pfn_of(pid, buf + 11 * 4096);
	tap_ok(bad && host_inject_mce(bad * 4096) == 0,
	       "second machine check, on frame %#llx, while it is blocked in read()",
	       (unsigned long long)bad);
	usleep(100000);
	write(ctl[0], "q", 1);
	/*
	 * A third one while it sleeps in read() of a pipe: it is interrupted
	 * (unseen: the read is made again) and has its page back at once,
	 * not when the read returns.
	 */
	for (i = 0; i < 500 && !blocked_in_read(pid, wake[0]); i++)
		usleep(10000);
	bad = pfn_of(pid, buf + 13 * 4096);
	ok = bad && host_inject_mce(bad * 4096) == 0;
	if (ok)
		wait_field(pid, "failovers=", 3, 10);
	/*
	 * The page is back before the read returned (the pipe stays empty
	 * until the 'w' below); the primary, which made the read again after
	 * the restore, may still be on its way back to sleep in it.
	 */
	for (i = 0; i < 200 && !blocked_in_read(pid, wake[0]); i++)
		usleep(10000);
	tap_ok(ok && procft_field(pid, "failovers=") == 3 && blocked_in_read(pid, wake[0]),
	       "third machine check, on frame %#llx, while it sleeps in read() of a pipe: restored while it still sleeps there",
	       (unsigned long long)bad);
	write(wake[1], "w", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	ok = 1;
	for (i = 0, p = text; i < TICKS && ok; i++) {
		char want[32];

		snprintf(want, sizeof(want), "tick %d\n", i);
		ok = !strncmp(p, want, strlen(want));
		p += strlen(want);
	}
	tap_ok(ok && !*p, "output: every line once, in order");
	ok = waitpid(pid, &st, 0) == pid;
	tap_ok(ok && WIFEXITED(st) && WEXITSTATUS(st) == 7,
	       "the process read its whole buffer back and exited with its own status (%#x)", st);
	tap_ok(procft_field(pid, "level=") == -1, "and its group is gone");
	tap_ok(run_cmd("[ $(dmesg | grep -c 'procft: pid %d: page 0x[0-9a-f]* restored on a fresh frame') = 3 ]",
		       pid) == 0, "all three pages were restored");
	early_kill(0);
	early_kill(1);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A duplicate that does not keep up never hangs the process.  The primary
 * waits for its duplicates in three places: for room in the ring of its
 * records (back-pressure), for one to restore a lost page from, and for
 * one to take over from.  A duplicate that is stopped (SIGSTOP), traced
 * (a ptrace stop) or otherwise does not run for lag_timeout_ms is declared
 * lost and replaced; the process finishes with its output whole, as
 * unprotected.  Each case runs under alarm(): a hang fails the test
 * instead of the suite.
 */
#include "ft_test.h"

#include <sys/ptrace.h>
#include <sys/socket.h>

#define LINES 3000

static void on_alarm(int sig)
{
	tap_ok(0, "the process did not finish within 120 s: it hangs on its duplicate");
	tap_finish();
	_exit(1);
}

/*
 * A level-1 process writes LINES lines, far more than the ring of its
 * records holds, while its duplicate is held by @how ("SIGSTOP" or
 * "ptrace").
 */
static void back_pressure(const char *how)
{
	int ctl[2], out[2], st, n, ok, traced = !strcmp(how, "ptrace");
	pid_t pid, reps[8] = { 0 };
	static char text[LINES * 16];
	size_t got = 0, at = 0;
	char c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		char line[32];
		int i;

		close(out[0]);
		close(ctl[0]);
		ioctl_set(0, 1);
		read(ctl[1], &c, 1);
		for (i = 0; i < LINES; i++)
			write(out[1], line, snprintf(line, sizeof(line), "line %d\n", i));
		_exit(9);
	}
	close(out[1]);
	close(ctl[1]);
	ok = wait_duplicates(pid, 1, reps);
	alarm(120);
	/*
	 * The duplicate waits in procft for the primary's next record; it
	 * stops once it has it, on its way back to user space.
	 */
	if (!traced)
		ok = ok && !kill(reps[1], SIGSTOP);
	else
		ok = ok && !ptrace(PTRACE_SEIZE, reps[1], 0, 0) &&
		     !ptrace(PTRACE_INTERRUPT, reps[1], 0, 0);
	write(ctl[0], "g", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	if (traced) {
		int dst = 0;

		/* Its tracer sees it stop, then reaps it once procft killed it. */
		while (waitpid(reps[1], &dst, __WALL) == reps[1] && WIFSTOPPED(dst))
			;
		ok = ok && WIFSIGNALED(dst) && WTERMSIG(dst) == SIGKILL;
	}
	alarm(0);
	for (n = 0; n < LINES && ok; n++) {
		char want[32];

		snprintf(want, sizeof(want), "line %d\n", n);
		ok = !strncmp(text + at, want, strlen(want));
		at += strlen(want);
	}
	tap_ok(ok && WIFEXITED(st) && WEXITSTATUS(st) == 9,
	       "level 1, its duplicate held by %s: the process writes its %d lines once, in order, and exits 9 (%#x)",
	       how, LINES, st);
	tap_ok(wait_gone(reps[1]) &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: 1 duplicate(s) kept the primary waiting (for room in the ring) for [0-9]* ms without running'",
		       pid) == 0,
	       "the held duplicate %d was declared lost and is gone, with a log line", reps[1]);
	close(out[0]);
	close(ctl[0]);
}

/*
 * The primary fails (injected) while its only duplicate is stopped: no
 * duplicate can take over, and the process dies of SIGBUS as an
 * unprotected one would, instead of waiting for the duplicate.
 */
static void takeover(void)
{
	struct procft_fail f = { .replica = 0 };
	pid_t pid, reps[8] = { 0 };
	int st, ok;

	pid = fork();
	if (pid == 0) {
		ioctl_set(0, 1);
		for (;;)
			usleep(2000);
	}
	ok = wait_duplicates(pid, 1, reps) && !kill(reps[1], SIGSTOP);
	/* Stopped while the primary goes on: it is behind. */
	usleep(100000);
	f.pid = pid;
	ok = ok && ioctl(ft_open(), PROCFT_IOC_FAIL, &f) == 0;
	/* The module is reloaded next: no descriptor may hold it. */
	close(ft_dev);
	ft_dev = -1;
	alarm(120);
	waitpid(pid, &st, 0);
	alarm(0);
	tap_ok(ok && WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
	       "level 1, the primary fails while its duplicate is stopped: it dies of SIGBUS, not waiting (%#x)",
	       st);
	tap_ok(wait_gone(reps[1]) &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: 1 duplicate(s) kept the primary waiting (to take over)'",
		       pid) == 0,
	       "the stopped duplicate was declared lost, with a log line");
}

int main(void)
{
	tap_plan(6);
	signal(SIGALRM, on_alarm);
	back_pressure("SIGSTOP");
	back_pressure("ptrace");
	if (reload_procft("fault_injection=1"))
		die("reload");
	takeover();
	return tap_finish();
}

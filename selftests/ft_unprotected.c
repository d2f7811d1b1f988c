// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing for the unprotected: with the kernel's system-call hook
 * (kernel/patches/0003), the system calls of a process procft does not
 * protect never reach procft, while another process is protected, when
 * that process is the child of a protected one, and once a process's
 * protection has ended.  procft counts every system call of an
 * unprotected process that reaches its probes (PROCFT_IOC_GET_INFO's
 * unprotected_calls): with the hook it must not move; with the
 * sys_enter/sys_exit tracepoints (a kernel without the hook, or
 * syscall_tracepoints=1) it counts every one of them, which shows the
 * counter counts.
 */
#include "ft_test.h"

#include <sys/syscall.h>

#define GETPPIDS 1000
#define PIPE_ROUNDS 50
#define FORKS 10
/* System calls calls() makes at least. */
#define CALLS (GETPPIDS + 2 * PIPE_ROUNDS + 3 * FORKS)

/* getppid, 4 KiB pipe write+read, fork+exit+wait: the measured loops. */
static int calls(void)
{
	static char buf[4096];
	int p[2], i, st, ok = 1;

	for (i = 0; i < GETPPIDS; i++)
		syscall(__NR_getppid);
	if (pipe(p))
		return 0;
	for (i = 0; i < PIPE_ROUNDS; i++)
		ok &= write(p[1], buf, sizeof(buf)) == sizeof(buf) &&
		      read(p[0], buf, sizeof(buf)) == sizeof(buf);
	close(p[0]);
	close(p[1]);
	for (i = 0; i < FORKS; i++) {
		pid_t c = fork();

		if (c == 0)
			_exit(3);
		ok &= c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 3;
	}
	return ok;
}

/*
 * The protected worker: at 'f' forks a child that runs calls(), at 'g'
 * runs them itself; answers each command with its outcome.
 */
static void worker(int cmd, int res)
{
	char c, ok;
	int st;

	while (read(cmd, &c, 1) == 1) {
		if (c == 'f') {
			pid_t k = fork();

			if (k == 0)
				_exit(calls() ? 0 : 1);
			ok = k > 0 && waitpid(k, &st, 0) == k && WIFEXITED(st) &&
			     WEXITSTATUS(st) == 0 ? 'y' : 'n';
		} else {
			ok = calls() ? 'y' : 'n';
		}
		if (write(res, &ok, 1) != 1)
			break;
	}
	_exit(0);
}

static int hook;

static long long seen(void)
{
	struct procft_info i;

	if (ioctl_info(&i) || i.size < PROCFT_INFO_SIZE_VER1)
		return -1;
	return i.unprotected_calls;
}

/* Whether @before..@after is what the path in use gives for @n calls. */
static int as_expected(long long before, long long after, int n)
{
	if (before < 0 || after < 0)
		return 0;
	return hook ? after == before : after - before >= n;
}

/* Sends @c to the worker; its answer. */
static char command(int cmd, int res, char c)
{
	char ok = 0;

	if (write(cmd, &c, 1) != 1 || read(res, &ok, 1) != 1)
		return 0;
	return ok;
}

int main(void)
{
	const char *modargs = getenv("PROCFT_MODARGS");
	int forced = modargs && strstr(modargs, "syscall_tracepoints=1");
	const char *how;
	struct procft_info info;
	int cmd[2], res[2], ok;
	pid_t reps[8];
	char line[256];
	long long a, b;
	pid_t w;

	tap_plan(6);
	ok = ioctl_info(&info) == 0 && info.size >= PROCFT_INFO_SIZE_VER1;
	hook = ok && (info.features & PROCFT_FEAT_SYSCALL_HOOK);
	how = hook ? "with the hook none reaches procft" :
		     "with the tracepoints every one reaches procft";
	/* The test kernel has the hook: only the parameter turns it off. */
	tap_ok(ok && hook == !forced, "system calls come from %s",
	       hook ? "the kernel's hook" : "the sys_enter/sys_exit tracepoints (forced)");

	if (pipe(cmd) || pipe(res))
		die("pipe");
	w = fork();
	if (w < 0)
		die("fork");
	if (w == 0) {
		close(cmd[1]);
		close(res[0]);
		worker(cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	tap_ok(ioctl_set(w, 1) == 0 && wait_duplicates(w, 1, reps),
	       "another process is protected, its duplicate ready");

	a = seen();
	ok = calls();
	b = seen();
	tap_ok(ok && as_expected(a, b, CALLS),
	       "an unprotected process's %d calls: %s (%lld counted)", CALLS, how, b - a);

	a = seen();
	ok = command(cmd[1], res[0], 'f') == 'y';
	b = seen();
	tap_ok(ok && as_expected(a, b, CALLS),
	       "the calls of the protected process's own child: %s (%lld counted)", how, b - a);

	/* The process is at its read(): it goes on unprotected. */
	ok = ioctl_set(w, 0) == 0 && procft_line(w, line, sizeof(line)) != 1;
	a = seen();
	ok &= command(cmd[1], res[0], 'g') == 'y';
	b = seen();
	tap_ok(ok && as_expected(a, b, CALLS),
	       "the calls of a process whose protection ended: %s (%lld counted)", how, b - a);

	close(cmd[1]);
	reap(w);
	tap_ok(seen() >= 0, "PROCFT_IOC_GET_INFO still answers");
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The three control interfaces (/proc/<pid>/ft_level, /dev/procft ioctls,
 * ftctl) reach the same state, refuse the same bad input with the same
 * errno, follow ptrace-attach permission rules, and keep the level across
 * exec but not fork.
 */
#include "ft_test.h"

#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sys/prctl.h>

#define FTCTL "/bin/ftctl"
#define NOBODY 65534

static char *self_exe;

/* Level of @pid as seen through every interface; -1 if they disagree. */
static int level_everywhere(pid_t pid)
{
	unsigned int ioc = 99;
	char line[256], want[64];
	int proc, ctl, found;

	proc = proc_read(pid);
	if (ioctl_get(pid, &ioc))
		return -1;
	ctl = run_cmd(FTCTL " get %d > /tmp/ftctl.out", pid) ? -1 : 0;
	if (!ctl) {
		FILE *f = fopen("/tmp/ftctl.out", "r");

		if (!f || fscanf(f, "%d", &ctl) != 1)
			ctl = -1;
		if (f)
			fclose(f);
	}
	found = procft_line(pid, line, sizeof(line));
	if (proc != (int)ioc || ctl != (int)ioc) {
		tap_diag("pid %d: proc=%d ioctl=%u ftctl=%d", pid, proc, ioc, ctl);
		return -1;
	}
	if (ioc == 0 && found) {
		tap_diag("unprotected pid %d listed: %s", pid, line);
		return -1;
	}
	if (ioc > 0) {
		snprintf(want, sizeof(want), "pid=%d level=%u replicas=%d", pid, ioc, pid);
		if (found != 1 || strncmp(line, want, strlen(want)) ||
		    !strstr(line, " failovers=0 respawns=0 mce_events=0")) {
			tap_diag("pid %d: /proc/procft line '%s', want '%s...'", pid,
				 found == 1 ? line : "(none)", want);
			return -1;
		}
	}
	return ioc;
}

/* Runs @fn in a child with uid/gid @id; returns its exit status. */
static int as_user(uid_t id, int (*fn)(pid_t), pid_t arg)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(id, id, id) || setresuid(id, id, id))
			_exit(100);
		/*
		 * Changing credentials made us non-dumpable, which ptrace
		 * rules (and procft's) treat as privileged; a process started
		 * by exec in a user's session is dumpable.
		 */
		prctl(PR_SET_DUMPABLE, 1);
		_exit(fn(arg));
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

/*
 * Unprivileged attempts on another user's process (at level 1): each
 * change must be EPERM.
 */
static int nobody_on_root(pid_t target)
{
	unsigned int l = 99;

	if (ioctl_set(target, 1) != -EPERM)
		return 1;
	if (proc_write(target, "1") != -EPERM)
		return 2;
	if (run_cmd(FTCTL " set %d 1 2>/dev/null", target) != 1)
		return 3;
	/* Reading is allowed to anyone, like other /proc/<pid> knobs. */
	if (ioctl_get(target, &l) || l != 1 || proc_read(target) != 1)
		return 4;
	return 0;
}

/* Unprivileged users may protect their own processes. */
static int nobody_on_self(pid_t unused)
{
	pid_t child = spawn_sleeper();
	int ret = 0;

	if (ioctl_set(child, 2) || proc_read(child) != 2)
		ret = 1;
	else if (proc_write(child, "1") || proc_read(child) != 1)
		ret = 2;
	else if (ioctl_set(0, 1) || proc_read(getpid()) != 1)
		ret = 3;
	else if (run_cmd(FTCTL " set %d 0", child) || proc_read(child) != 0)
		ret = 4;
	reap(child);
	return ret;
}

/* Forks, runs @argv's image with "--report-level", returns what it printed. */
static int child_level_after(int set_level, int do_exec, int do_fork)
{
	int fds[2], level = -1;
	pid_t pid;
	char buf[32] = "";

	if (pipe(fds))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		if (set_level >= 0 && proc_write(getpid(), set_level == 2 ? "2\n" : "1\n"))
			_exit(1);
		if (do_fork) {
			pid_t g = fork();

			if (g == 0) {
				unsigned int l = 99;

				ioctl_get(0, &l);
				printf("%u\n", l);
				fflush(stdout);
				_exit(0);
			}
			waitpid(g, NULL, 0);
			_exit(0);
		}
		if (do_exec)
			execl(self_exe, self_exe, "--report-level", NULL);
		_exit(1);
	}
	close(fds[1]);
	if (read(fds[0], buf, sizeof(buf) - 1) > 0)
		level = atoi(buf);
	close(fds[0]);
	waitpid(pid, NULL, 0);
	return level;
}

static void *idle_thread(void *arg)
{
	pause();
	return arg;
}

int main(int argc, char **argv)
{
	static const char *const bad[] = {
		"abc", "-1", "5", "2x", "\n", " 2", "2\n\n", "99999999999", "4294967297",
	};
	struct procft_status st;
	struct procft_info info;
	unsigned int l;
	pid_t a, b;
	int i, ok;

	self_exe = argv[0];
	if (argc > 1 && !strcmp(argv[1], "--report-level")) {
		if (ioctl_get(0, &l))
			return 1;
		printf("%u\n", l);
		return 0;
	}

	tap_plan(26);

	tap_ok(ft_open() >= 0, "/dev/procft opens");
	tap_ok(access("/proc/procft", R_OK) == 0, "/proc/procft exists");
	i = ioctl_info(&info);
	tap_ok(i == 0 && info.version == PROCFT_INFO_VERSION &&
	       info.max_level == PROCFT_MAX_LEVEL &&
	       (info.features & PROCFT_FEAT_PROC_PID_FT_LEVEL),
	       "PROCFT_IOC_GET_INFO: version %u, max level %u, /proc/<pid>/ft_level present",
	       info.version, info.max_level);

	a = spawn_sleeper();
	tap_ok(level_everywhere(a) == 0, "an unprotected process reads level 0 everywhere");

	tap_ok(proc_write(a, "2\n") == 0 && level_everywhere(a) == 2,
	       "set through /proc/<pid>/ft_level, seen by all interfaces");
	tap_ok(ioctl_set(a, 3) == 0 && level_everywhere(a) == 3,
	       "set through PROCFT_IOC_SET_LEVEL, seen by all interfaces");
	tap_ok(run_cmd(FTCTL " set %d 1", a) == 0 && level_everywhere(a) == 1,
	       "set through ftctl, seen by all interfaces");
	tap_ok(proc_write(a, "4") == 0 && level_everywhere(a) == 4,
	       "the maximum level %d is accepted", PROCFT_MAX_LEVEL);

	/* Duplicates may be appearing meanwhile: up to 4 beside the primary. */
	ok = ioctl_status(a, &st) == 0 && st.size == PROCFT_STATUS_SIZE_VER0 &&
	     st.pid == a && st.level == 4 && st.nr_replicas >= 1 && st.nr_replicas <= 5 &&
	     st.replicas[0] == a && st.failovers == 0 && st.mce_events == 0;
	tap_ok(ok, "PROCFT_IOC_GET_STATUS reports pid, level and replicas");

	/* Bad input never changes anything. */
	proc_write(a, "1");
	ok = 1;
	for (i = 0; i < (int)ARRAY_SIZE(bad); i++) {
		int r = proc_write(a, bad[i]);

		if (r != -EINVAL) {
			tap_diag("proc write '%s' gave %d", bad[i], r);
			ok = 0;
		}
	}
	tap_ok(ok && level_everywhere(a) == 1, "bad /proc/<pid>/ft_level writes: EINVAL, level unchanged");

	ok = ioctl_set(a, PROCFT_MAX_LEVEL + 1) == -EINVAL && ioctl_set(a, UINT_MAX) == -EINVAL &&
	     ioctl_set(-1, 1) == -EINVAL && ioctl_set(INT_MIN, 1) == -EINVAL;
	tap_ok(ok && level_everywhere(a) == 1, "bad ioctl levels and negative pids: EINVAL");

	ok = ioctl_set(4194304, 1) == -ESRCH && ioctl_get(4194304, &l) == -ESRCH &&
	     ioctl_status(4194304, &st) == -ESRCH && proc_read(4194304) == -ENOENT;
	tap_ok(ok, "a pid no process has: ESRCH (and no /proc entry)");

	ok = ioctl_set(2, 1) == -EINVAL && proc_write(2, "1") == -EINVAL &&
	     ioctl_get(2, &l) == 0 && l == 0;
	tap_ok(ok, "kernel threads (kthreadd): EINVAL, level stays 0");

	ok = run_cmd(FTCTL " set %d abc 2>/dev/null", a) == 2 &&
	     run_cmd(FTCTL " set %d -1 2>/dev/null", a) == 2 &&
	     run_cmd(FTCTL " set x%d 1 2>/dev/null", a) == 2 &&
	     run_cmd(FTCTL " set %d 2>/dev/null", a) == 2 &&
	     run_cmd(FTCTL " frobnicate 2>/dev/null") == 2 &&
	     run_cmd(FTCTL " set %d 5 2>/dev/null", a) == 1 &&
	     run_cmd(FTCTL " set 4194304 1 2>/dev/null") == 1 &&
	     run_cmd(FTCTL " get 2 >/dev/null") == 0 &&
	     run_cmd(FTCTL " set 2 1 2>/dev/null") == 1;
	tap_ok(ok && level_everywhere(a) == 1, "ftctl: usage errors exit 2, refusals exit 1");

	ok = run_cmd(FTCTL " set %d 5 2>&1 | grep -q 'Invalid argument'", a) == 0 &&
	     run_cmd(FTCTL " set 4194304 1 2>&1 | grep -q 'No such process'") == 0;
	tap_ok(ok, "ftctl explains refusals with the errno");

	i = as_user(NOBODY, nobody_on_root, a);
	tap_ok(i == 0 && level_everywhere(a) == 1,
	       "another user's process: EPERM through every interface (step %d)", i);
	i = as_user(NOBODY, nobody_on_self, 0);
	tap_ok(i == 0, "an unprivileged user may protect its own processes (step %d)", i);

	/* ioctl ABI details. */
	memset(&st, 0, sizeof(st));
	st.size = 8;
	st.pid = a;
	tap_ok(ioctl(ft_open(), PROCFT_IOC_GET_STATUS, &st) && errno == EINVAL,
	       "GET_STATUS with a size below the first layout: EINVAL");
	{
		char big[256];
		struct procft_status *s = (void *)big;

		memset(big, 0x5a, sizeof(big));
		s->size = sizeof(big);
		s->pid = a;
		ok = !ioctl(ft_open(), PROCFT_IOC_GET_STATUS, big) &&
		     s->size == PROCFT_STATUS_SIZE_VER0 && s->level == 1 &&
		     (unsigned char)big[PROCFT_STATUS_SIZE_VER0] == 0x5a;
		tap_ok(ok, "GET_STATUS from a newer caller: fills the known size, reports it");
	}
	tap_ok(ioctl(ft_open(), _IO(PROCFT_IOC_MAGIC, 0x7f), 0) && errno == ENOTTY,
	       "unknown ioctl: ENOTTY");

	tap_ok(ioctl_set(a, 0) == 0 && level_everywhere(a) == 0,
	       "level 0 ends protection (no /proc/procft line)");
	reap(a);

	/* Inheritance. */
	tap_ok(child_level_after(2, 1, 0) == 2, "the level survives exec (echo 2 > /proc/self/ft_level; exec)");
	tap_ok(child_level_after(1, 0, 1) == 0, "a fork child starts unprotected");
	tap_ok(run_cmd(FTCTL " run -l 2 -- %s --report-level | grep -qx 2", self_exe) == 0,
	       "ftctl run -l 2 -- CMD runs CMD at level 2");
	tap_ok(run_cmd(FTCTL " run -l 1 -- /nonexistent 2>/dev/null") == 127 &&
	       run_cmd(FTCTL " run -l 9 -- /bin/true 2>/dev/null") == 1,
	       "ftctl run: 127 for a missing command, 1 for a refused level");

	/* Multi-threaded processes are refused, and nothing changes. */
	{
		pthread_t t;

		b = fork();
		if (b == 0) {
			int r1, r2, r3;

			pthread_create(&t, NULL, idle_thread, NULL);
			r1 = ioctl_set(0, 1);
			r2 = proc_write(getpid(), "1");
			r3 = ioctl_set(0, 0);
			_exit(r1 == -EOPNOTSUPP && r2 == -EOPNOTSUPP && r3 == 0 &&
			      proc_read(getpid()) == 0 ? 0 : 1);
		}
		waitpid(b, &i, 0);
		tap_ok(WIFEXITED(i) && WEXITSTATUS(i) == 0,
		       "multi-threaded process: EOPNOTSUPP, level stays 0");
	}

	return tap_finish();
}

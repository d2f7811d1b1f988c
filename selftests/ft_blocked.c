// SPDX-License-Identifier: GPL-2.0
/*
 * A process blocked in a system call is at a system-call boundary: its
 * duplicates are created while it stays blocked (procft wakes it for an
 * empty task_work and the kernel makes the call again, unseen), and the
 * call then returns what it would have returned unprotected: no EINTR, no
 * lost or doubled data, the full sleep, the right child.  A call that
 * could show the interruption (epoll_wait() returns EINTR) is left alone;
 * its duplicates come at its next call.
 */
#include "ft_test.h"

#include <poll.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

/* Whether @fd has something to read now. */
static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static long mono_ms(void)
{
	struct timespec ts;

	/* A system call, so that duplicates replay the primary's time. */
	syscall(__NR_clock_gettime, CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Blocks in read() on the pipe @in; reports what it returned on @res. */
static void do_read(int in, int res)
{
	char buf[64];
	long n = read(in, buf, sizeof(buf));

	dprintf(res, "read=%ld errno=%d data=%.*s", n, n < 0 ? errno : 0, (int)(n > 0 ? n : 0),
		buf);
	_exit(0);
}

/* Sleeps 4 s in nanosleep(); reports its result and how long it slept. */
static void do_sleep(int res)
{
	struct timespec ts = { .tv_sec = 4 };
	long t0 = mono_ms(), r = nanosleep(&ts, NULL);

	dprintf(res, "nanosleep=%ld errno=%d full=%d", r, r ? errno : 0, mono_ms() - t0 >= 4000);
	_exit(0);
}

/* Forks a child that exits 7 when @go is written, and waits for it. */
static void do_wait(int go, int res)
{
	pid_t child = fork(), got;
	int st = 0;
	char c;

	if (child == 0) {
		read(go, &c, 1);
		_exit(7);
	}
	dprintf(res, "child=%d\n", child);
	got = waitpid(child, &st, 0);
	dprintf(res, "waited=%d status=%d errno=%d", got, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
		got < 0 ? errno : 0);
	_exit(0);
}

/* Blocks in epoll_wait() on the pipe @in, then reads. */
static void do_epoll(int in, int res)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int ep = epoll_create1(0), n;
	char buf[64];
	long r;

	epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev);
	n = epoll_wait(ep, &out, 1, -1);
	dprintf(res, "epoll_wait=%d errno=%d\n", n, n < 0 ? errno : 0);
	/* A later call: the duplicates are created here; then wait again. */
	r = read(in, buf, 1);
	r = read(in, buf, sizeof(buf));
	dprintf(res, "read=%ld data=%.*s", r, (int)(r > 0 ? r : 0), buf);
	_exit(0);
}

/* Starts @fn in a child with pipes; returns its pid, the write end of its input and its result pipe. */
static pid_t start(char what, int *in, int *res)
{
	int p[2], r[2];
	pid_t pid;

	if (pipe(p) || pipe(r))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		close(r[0]);
		if (what == 'r')
			do_read(p[0], r[1]);
		else if (what == 's')
			do_sleep(r[1]);
		else if (what == 'w')
			do_wait(p[0], r[1]);
		else
			do_epoll(p[0], r[1]);
	}
	close(p[0]);
	close(r[1]);
	*in = p[1];
	*res = r[0];
	/* Let it reach its blocking call. */
	usleep(300000);
	return pid;
}

static int finish(pid_t pid, int res, char *text, size_t len)
{
	size_t got = 0;
	int st;

	read_to_eof(res, text, len, &got);
	close(res);
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(void)
{
	char text[256], line[64];
	int in, res, ok, blocked;
	pid_t pid, reps[8], old, child;
	long respawns;

	tap_plan(8);

	/* read() on an empty pipe, level 2. */
	pid = start('r', &in, &res);
	ok = ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	blocked = !readable(res);
	tap_ok(ok && blocked, "blocked in read(): two duplicates created while it stays blocked");
	old = reps[1];
	kill(old, SIGKILL);
	ok = 0;
	for (int i = 0; i < 1500 && !ok; i++, usleep(10000)) {
		respawns = procft_field(pid, "respawns=");
		ok = respawns == 1 && wait_duplicates(pid, 2, reps) && reps[1] != old &&
		     reps[2] != old;
	}
	tap_ok(ok && !readable(res), "a duplicate killed meanwhile is replaced while it stays blocked");
	write(in, "hello", 5);
	close(in);
	ok = finish(pid, res, text, sizeof(text));
	tap_ok(ok && !strcmp(text, "read=5 errno=0 data=hello"),
	       "read() then returns the 5 bytes written, once, without EINTR (%s)", text);

	/* nanosleep(4 s), level 1. */
	pid = start('s', &in, &res);
	ok = ioctl_set(pid, 1) == 0 && wait_duplicates(pid, 1, reps);
	blocked = !readable(res);
	ok = ok && finish(pid, res, text, sizeof(text));
	tap_ok(ok && blocked && !strcmp(text, "nanosleep=0 errno=0 full=1"),
	       "blocked in nanosleep(): duplicate created while asleep; the sleep is whole (%s)",
	       text);
	close(in);

	/* waitpid() for its child, level 1. */
	pid = start('w', &in, &res);
	child = 0;
	if (read(res, line, sizeof(line)) > 0)
		sscanf(line, "child=%d", &child);
	ok = ioctl_set(pid, 1) == 0 && wait_duplicates(pid, 1, reps);
	blocked = !readable(res);
	write(in, "g", 1);
	close(in);
	ok = ok && finish(pid, res, text, sizeof(text));
	snprintf(line, sizeof(line), "waited=%d status=7 errno=0", child);
	tap_ok(ok && blocked && child > 0 && !strcmp(text, line),
	       "blocked in waitpid(): duplicate created while waiting; it reaps its own child (%s)",
	       text);

	/* epoll_wait() can return EINTR: not interrupted. */
	pid = start('e', &in, &res);
	ok = ioctl_set(pid, 1) == 0;
	usleep(500000);
	tap_ok(ok && procft_field(pid, "duplicates=") == 0,
	       "blocked in epoll_wait(): not interrupted, no duplicate yet");
	write(in, "a", 1);
	ok = wait_duplicates(pid, 1, reps);
	tap_ok(ok, "its duplicate comes at its next call");
	write(in, "bc", 2);
	close(in);
	ok = finish(pid, res, text, sizeof(text));
	tap_ok(ok && !strcmp(text, "epoll_wait=1 errno=0\nread=2 data=bc"),
	       "epoll_wait() returned 1, no EINTR; output once (%s)",
	       text);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A poisoned page that the *kernel* reads on the primary's behalf: the
 * buffer of a write(), or one of the buffers of a writev() or sendmsg().
 * No SIGBUS comes (the kernel's access is fixed up);
 * the call fails with EFAULT.  That is the primary's fault, not the
 * world's answer: procft must not hand it to the duplicates but let one of
 * them, waiting at the same call with good memory, take over and make it.
 *
 * The frame is poisoned with the kernel's software injector (corrupt-pfn)
 * while the process waits, then it writes its 16 KiB buffer to a pipe:
 * unprotected, write() fails with EFAULT; at level 1 the reader gets every
 * byte, write() returns 16384, the pid is the same and one failover is
 * counted.  The same for a writev() of four iovecs to a pipe and a
 * sendmsg() of four iovecs on a stream socket.
 *
 * Those cases need procft to learn of the error late, when the kernel
 * fails to read the page: they run with the module parameter
 * early_restore=0.  By default procft hears of every retired frame from
 * memory_failure() and restores the primary's page from a duplicate
 * before its next call: the write then simply succeeds, and no promotion
 * is needed.
 *
 * Then a page the kernel read, lost before the call returns (late_loss()),
 * with one thread and with two.
 *
 * Last, a sendmsg() whose iovec runs 1 << 40 bytes from a one-page buffer
 * (found by ft_fuzz): procft looks for a lost page only where the kernel
 * can have read, so the call returns as it does unprotected (the search
 * once went on over 2^28 absent pages, for hours, deaf to SIGKILL).
 */
#include "ft_test.h"

#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define LEN (4 * 4096)

/* Sends the buffer with write() ('w'), writev() ('v') or sendmsg() ('m'). */
static long send_buf(int out, char *buf, char how)
{
	struct iovec iov[4];
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 4 };
	int i;

	for (i = 0; i < 4; i++) {
		iov[i].iov_base = buf + i * 4096;
		iov[i].iov_len = 4096;
	}
	if (how == 'v')
		return writev(out, iov, 4);
	if (how == 'm')
		return sendmsg(out, &msg, 0);
	return write(out, buf, LEN);
}

static void workload(int ctl, int out, int level, char how)
{
	char *buf, c;
	long n;
	int i;

	/* Protected from here: its next calls create the duplicates. */
	if (level && ioctl_set(0, level))
		_exit(90);
	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < LEN; i++)
		buf[i] = (char)(i * 11);
	write(ctl, &buf, sizeof(buf));
	read(ctl, &c, 1);
	n = send_buf(out, buf, how);
	if (n < 0)
		n = -errno;
	write(ctl, &n, sizeof(n));
	_exit(n == LEN ? 0 : 1);
}

/*
 * Set while procft is loaded with early_restore=1: run() then lets the
 * workload write only once procft has noted the error (it learns of it
 * in a worker, after memory_failure() returns).
 */
static int early_restore = 1;

/* Runs the workload at @level; fills what it wrote, write()'s result and its status. */
static void run(int level, char how, char *got, size_t *len, long *n, int *status, pid_t *pidp)
{
	int ctl[2], out[2];
	pid_t pid, reps[8];
	char *buf = NULL;
	uint64_t pfn;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) ||
	    (how == 'm' ? socketpair(AF_UNIX, SOCK_STREAM, 0, out) : pipe(out)))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(out[0]);
		close(ctl[0]);
		workload(ctl[1], out[1], level, how);
	}
	close(out[1]);
	close(ctl[1]);
	if (read(ctl[0], &buf, sizeof(buf)) != sizeof(buf))
		buf = NULL;
	if (level && !wait_duplicates(pid, level, reps))
		tap_diag("no duplicates");
	pfn = pfn_of(pid, buf);
	if (!pfn || corrupt_pfn(pfn))
		tap_diag("corrupt-pfn on %#llx failed", (unsigned long long)pfn);
	/* Counted when the restore is arranged, under the same lock. */
	if (level && early_restore)
		wait_field(pid, "mce_events=", 1, 10);
	write(ctl[0], "g", 1);
	*len = 0;
	read_to_eof(out[0], got, LEN + 1, len);
	*n = 0;
	read(ctl[0], n, sizeof(*n));
	waitpid(pid, status, 0);
	close(out[0]);
	close(ctl[0]);
	*pidp = pid;
}

/* The iovec calls: EFAULT unprotected, every byte sent at level 1. */
static void iovec_call(char how, const char *name)
{
	static char got[LEN + 1];
	int status, ok, i;
	size_t len;
	pid_t pid;
	long n;

	run(0, how, got, &len, &n, &status, &pid);
	tap_ok(n == -EFAULT && len == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	       "unprotected: %s() of four iovecs, the first on a poisoned frame, fails with EFAULT (%ld)",
	       name, n);
	run(1, how, got, &len, &n, &status, &pid);
	ok = len == LEN;
	for (i = 0; ok && i < LEN; i++)
		ok = got[i] == (char)(i * 11);
	tap_ok(ok && n == LEN && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: primary consumed poisoned memory at 0x[0-9a-f]*; took over duplicate [0-9]*.s state at call #[0-9]* (%s)'",
		       pid, name) == 0,
	       "level 1: %s() sent all %zu bytes, intact, returned %ld; a duplicate took over at it",
	       name, len, n);
}

#define BIG (32 * 4096)

struct late {
	char *buf;	/* BIG bytes sent */
	char *desc;	/* the page holding the msghdr and iovec, for 'm' */
};

static void *blocked_reader(void *arg)
{
	char c;

	read(*(int *)arg, &c, 1);
	return NULL;
}

/*
 * The workload of late_loss(): protected at level 1 (with a second thread
 * asleep in read() if @threaded), it sends BIG bytes at once with write()
 * ('w') or with a sendmsg() whose msghdr and iovec are on a page of their
 * own ('m'), then reads its buffer again and reports the call's result.
 */
static void late_workload(int ctl, int out, int threaded, char how)
{
	struct late l;
	struct msghdr *mh;
	struct iovec *iov;
	pthread_t t;
	int i, quiet[2];
	long n, sum = 0;
	char c;

	if (pipe(quiet) || (threaded && pthread_create(&t, NULL, blocked_reader, &quiet[0])))
		_exit(91);
	if (ioctl_set(0, 1))
		_exit(90);
	l.buf = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l.desc = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < BIG; i++)
		l.buf[i] = (char)(i * 7 + i / 4096);
	mh = (struct msghdr *)l.desc;
	iov = (struct iovec *)(l.desc + 256);
	iov->iov_base = l.buf;
	iov->iov_len = BIG;
	memset(mh, 0, sizeof(*mh));
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	write(ctl, &l, sizeof(l));
	read(ctl, &c, 1);
	n = how == 'm' ? sendmsg(out, mh, 0) : write(out, l.buf, BIG);
	if (n < 0)
		n = -errno;
	/* Touches every page, the lost one too. */
	for (i = 0; i < BIG; i += 4096)
		sum += l.buf[i];
	sum += mh->msg_iovlen;
	write(ctl, &n, sizeof(n));
	_exit(n == BIG && sum ? 0 : 1);
}

/*
 * A page the kernel has read for a call, lost before the call returns: a
 * write() of BIG bytes to a pipe blocks once the pipe holds 64 KiB, its
 * first page (already in the pipe) is poisoned, then the pipe is drained.
 * Or the same with a sendmsg() on a stream socket, whose msghdr page is
 * poisoned once the kernel has read it and sent some bytes; that is what
 * memcached's threads met. Every byte was sent, so the duplicate, whose
 * bytes are the same, must not be found to differ from the primary: at
 * the primary's return procft cannot read what the kernel read, and says
 * so. The lost page is restored from the duplicate (one thread) or the
 * duplicate takes over when it is touched (two threads).
 */
static void late_loss(int threaded, char how)
{
	const char *name = how == 'm' ? "sendmsg" : "write";
	int ctl[2], out[2], status, ok, i, avail = 0, sndbuf = 16384;
	static char got[BIG + 1];
	size_t len = 0;
	struct late l;
	uint64_t pfn;
	pid_t pid, reps[8];
	long n = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) ||
	    (how == 'm' ? socketpair(AF_UNIX, SOCK_STREAM, 0, out) : pipe(out)))
		die("socketpair");
	if (how == 'm' && setsockopt(out[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)))
		die("SO_SNDBUF");
	pid = fork();
	if (pid == 0) {
		close(out[0]);
		close(ctl[0]);
		late_workload(ctl[1], out[1], threaded, how);
	}
	close(out[1]);
	close(ctl[1]);
	if (read(ctl[0], &l, sizeof(l)) != sizeof(l))
		memset(&l, 0, sizeof(l));
	if (!wait_duplicates(pid, 1, reps))
		tap_diag("no duplicate");
	write(ctl[0], "g", 1);
	/* Blocked in the call, with the page to lose already read. */
	for (i = 0; i < 3000; i++, usleep(10000))
		if (!ioctl(out[0], FIONREAD, &avail) && avail >= (how == 'm' ? 4096 : 65536))
			break;
	usleep(200000);
	pfn = pfn_of(pid, how == 'm' ? l.desc : l.buf);
	if (!pfn || corrupt_pfn(pfn))
		tap_diag("corrupt-pfn on %#llx failed", (unsigned long long)pfn);
	wait_field(pid, "mce_events=", 1, 10);
	read_to_eof(out[0], got, BIG + 1, &len);
	read(ctl[0], &n, sizeof(n));
	waitpid(pid, &status, 0);
	close(out[0]);
	close(ctl[0]);
	ok = len == BIG;
	for (i = 0; ok && i < BIG; i++)
		ok = got[i] == (char)(i * 7 + i / 4096);
	tap_ok(ok && n == BIG && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: the primary.s memory at 0x[0-9a-f]*, which the kernel read for %s(.*could not be read again'",
		       pid, name) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) != 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: %s'", pid,
		       threaded ? "primary consumed poisoned memory at 0x[0-9a-f]*; took over" :
				  "memory error at frame 0x[0-9a-f]* in the primary .*restoring it") == 0,
	       "%s: a %s() whose %s page is lost once the kernel read it sends all %zu bytes (%ld), no divergence; %s",
	       threaded ? "two threads" : "one thread", name, how == 'm' ? "msghdr's" : "first",
	       len, n, threaded ? "a duplicate took over" : "the page was restored");
	if (!ok || n != BIG)
		run_cmd("dmesg | grep 'procft: pid %d' >&2", pid);
}

/*
 * sendmsg() of a one-page buffer with an iovec of 1 << 40 bytes, at
 * @level, in a child; its result (or errno, negated) in @n. 0 if it
 * returned within 60 s.
 */
static int long_iovec(int level, long *n)
{
	struct pollfd pfd;
	int sv[2], p[2], ok;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(p))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		char *buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct iovec iov = { .iov_base = buf, .iov_len = 1UL << 40 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		pid_t reps[8];
		long r;

		/* Nothing mapped after the buffer. */
		munmap(buf + 4096, 4096);
		memset(buf, 7, 4096);
		if (level && (ioctl_set(0, level) || !wait_duplicates(getpid(), level, reps)))
			_exit(90);
		r = sendmsg(sv[1], &mh, MSG_DONTWAIT);
		r = r < 0 ? -errno : r;
		write(p[1], &r, sizeof(r));
		_exit(0);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	ok = poll(&pfd, 1, 60000) == 1 && read(p[0], n, sizeof(*n)) == sizeof(*n);
	reap(pid);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
	return ok ? 0 : -1;
}

int main(void)
{
	long plain = 0, prot = 0;
	static char got[LEN + 1];
	int status, ok, i;
	size_t len;
	pid_t pid;
	long n;

	tap_plan(13);

	/* Default: the page is restored as soon as the kernel retires its frame. */
	run(1, 'w', got, &len, &n, &status, &pid);
	ok = len == LEN;
	for (i = 0; ok && i < LEN; i++)
		ok = got[i] == (char)(i * 11);
	tap_ok(ok && n == LEN && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "early restore: the reader got all %zu bytes, intact, write() returned %ld", len, n);
	tap_ok(run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep -q ' pid=%d event=memory_error replica=%d role=primary frame=0x' /tmp/ev",
		       pid, pid) == 0 &&
	       run_cmd("grep -q ' pid=%d event=page_restored from=[0-9]* addr=0x' /tmp/ev", pid) == 0 &&
	       run_cmd("grep -q ' pid=%d event=promotion' /tmp/ev", pid) != 0,
	       "the corrupt-pfn error was seen through memory_failure(), the page restored from a duplicate, no promotion");

	/* Learning of the error only when the kernel fails to read the page. */
	if (reload_procft("fault_injection=1 early_restore=0"))
		die("reloading procft with early_restore=0");
	early_restore = 0;
	run(0, 'w', got, &len, &n, &status, &pid);
	tap_ok(n == -EFAULT && len == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	       "unprotected: write() of a buffer on a poisoned frame fails with EFAULT (%ld), nothing sent",
	       n);

	run(1, 'w', got, &len, &n, &status, &pid);
	ok = len == LEN;
	for (i = 0; ok && i < LEN; i++)
		ok = got[i] == (char)(i * 11);
	tap_ok(ok && n == LEN, "level 1: the reader got all %zu bytes, intact, and write() returned %ld",
	       len, n);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: the kernel could not read the primary.s poisoned page at 0x[0-9a-f]*; a duplicate takes over'",
		       pid) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: primary consumed poisoned memory at 0x[0-9a-f]*; took over duplicate [0-9]*.s state at call #[0-9]* (write)'",
		       pid) == 0,
	       "its own exit status; logged, and a duplicate took over at the write");
	tap_ok(run_cmd("ftctl events | grep -q ' pid=%d event=promotion from=[0-9]* cause=poison'", pid) == 0,
	       "the promotion is in the event log");
	iovec_call('v', "writev");
	iovec_call('m', "sendmsg");
	if (reload_procft("fault_injection=1"))
		die("reloading procft");
	late_loss(0, 'w');
	if (reload_procft("fault_injection=1 threads=1"))
		die("reloading procft with threads=1");
	late_loss(1, 'm');
	if (reload_procft("fault_injection=1"))
		die("reloading procft");

	tap_ok(long_iovec(0, &plain) == 0 && long_iovec(1, &prot) == 0 && prot == plain,
	       "a sendmsg() of 1 << 40 bytes from a one-page buffer returns at level 1 as unprotected (%ld, %ld)",
	       prot, plain);
	return tap_finish();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A thread created while its process's protection begins.
 *
 * The process is single-threaded when procft counts its threads; its
 * clone3() of a new thread is held at the system-call entry (a seccomp
 * USER_NOTIF filter, answered by this test) while the level is set, then
 * let go. procft never saw the clone at its entry (the process was not
 * protected then), so it must notice the thread when it appears and not
 * go on with a single-threaded group that has two threads: either the
 * level change fails (EAGAIN) or protection ends with a log line. No
 * duplicate may diverge, and the output is the same as unprotected.
 *
 * The hold works with the kernel's system-call hook, whose entry work is
 * read before seccomp runs: with the tracepoints procft sees the held call
 * at its entry (and refuses it, with threads=0, the default here, as a
 * thread it cannot replicate).
 *
 * Then, with threads=1, the same race in a process already multi-threaded
 * (two threads), its thread listed between procft's count of the threads
 * and the group's registration: procft reloaded with fault_injection=1
 * and test_join_delay_ms=600 waits that long between the two, and the
 * held clone3() is let go 200 ms into the wait, while another process
 * sets the level. The new thread runs at once, counting in memory without
 * a system call while the first thread makes calls, so a duplicate is
 * made while it counts. procft must find it at the registration and stop
 * it to come under the run token like the others; a thread left running
 * outside the token would be copied into the duplicate in a state that
 * does not match its memory, and the duplicate would diverge. Checked:
 * the log says one thread joined that way; once the threads are done the
 * process gets a duplicate before it prints, none diverged, and the count
 * is exact.
 *
 * Last, a process whose seccomp filter makes clone3() fail with ENOSYS,
 * as container runtimes' default profiles do (the C library makes its
 * threads with clone() then), is protected while its two threads wait:
 * its duplicate, which makes its threads with calls the filter sees,
 * must fall back to clone() as the C library does. Checked: the log says
 * it did, the duplicate is made, none diverged, and the threads' count is
 * exact.  Then one whose filter traps clone3() (SECCOMP_RET_TRAP, after its
 * threads exist): a duplicate's creation returns a thread id but makes no
 * thread; the log says so (the duplicate is replaced, not left to make the
 * same thread again), and the process's output and status are its own.
 */
#include "ft_test.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *worker(void *arg)
{
	int i;

	for (i = 0; i < 200; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
		sched_yield();
	}
	return arg;
}

/* A filter that hands every clone3() to a listener; its fd, or -1. */
static int notify_clone3(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
		       &prog);
}

static void send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, c = 'f';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	sendmsg(sock, &mh, 0);
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd = -1;

	if (recvmsg(sock, &mh, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * In the workload: hands every later clone3() of the process to the test
 * (sending it the filter's listener over @ctl), then waits for its word
 * to go on.
 */
static void hand_clones_over(int ctl)
{
	int listener = notify_clone3();
	char c;

	if (listener < 0)
		_exit(91);
	send_fd(ctl, listener);
	close(listener);
	read(ctl, &c, 1);
}

/* The workload: two threads counting under a lock, its total printed. */
static void workload(int ctl)
{
	pthread_t t;

	hand_clones_over(ctl);
	if (pthread_create(&t, NULL, worker, NULL))
		_exit(92);
	worker(NULL);
	pthread_join(t, NULL);
	printf("counter %ld\n", counter);
	fflush(stdout);
	_exit(0);
}

/*
 * Starts @workload (its end of a socket pair; its output to a pipe): the
 * socket's other end in @sv[0], the pipe's reading end in @o[0].
 */
static void spawn_piped(void (*workload)(int ctl), pid_t *pidp, int sv[2], int o[2])
{
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(o))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		close(o[0]);
		dup2(o[1], 1);
		workload(sv[1]);
	}
	close(sv[1]);
	close(o[1]);
	*pidp = pid;
}

/*
 * As spawn_piped(); returns the seccomp listener the workload sent, once
 * it was told to go on.
 */
static int start(void (*workload)(int ctl), pid_t *pidp, int sv[2], int o[2])
{
	int listener;

	spawn_piped(workload, pidp, sv, o);
	listener = recv_fd(sv[0]);
	if (listener < 0)
		die("no seccomp listener");
	write(sv[0], "g", 1);
	return listener;
}

/* Lets the call @req stands for go on. */
static void let_go(int listener, const struct seccomp_notif *req)
{
	struct seccomp_notif_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.id = req->id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/*
 * Answers every clone3() of the workload with "go on" until it exits;
 * the first one only once @before has run (the level being set while it
 * is held). Returns the workload's output in @out.
 */
static int run(int level, char *out, size_t len, int *set_rc, pid_t *pidp)
{
	struct seccomp_notif req;
	int sv[2], o[2], listener, first = 1, status = -1;
	size_t got = 0;
	pid_t pid;

	listener = start(workload, &pid, sv, o);
	*pidp = pid;
	for (;;) {
		struct pollfd p = { .fd = listener, .events = POLLIN };

		if (poll(&p, 1, 30000) != 1 || !(p.revents & POLLIN))
			break;
		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req))
			break;
		if (first && level)
			*set_rc = ioctl_set(pid, level);
		first = 0;
		let_go(listener, &req);
	}
	close(listener);
	read_to_eof(o[0], out, len, &got);
	out[got < len ? got : len - 1] = 0;
	waitpid(pid, &status, 0);
	close(o[0]);
	close(sv[0]);
	return status;
}

/*
 * Counted by the thread created as protection begins, in memory only (a
 * load and a store each time: relaxed atomics, which the compiler does
 * not merge), so that a thread state not matching the memory shows.
 */
static long progress;
#define SPIN 1000000000L

static void *spinner(void *arg)
{
	long i;

	for (i = 0; i < SPIN; i++)
		__atomic_store_n(&progress, __atomic_load_n(&progress, __ATOMIC_RELAXED) + 1,
				 __ATOMIC_RELAXED);
	return arg;
}

/* The second thread: it creates the spinner (its clone3() is held). */
static void *creator(void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, spinner, NULL))
		_exit(93);
	pthread_join(t, NULL);
	return arg;
}

/*
 * Two threads, the second creating a third; the first makes calls
 * (sleeps of 20 ms) while the third counts, then, once the test has seen
 * the duplicate, prints the count.
 */
static void workload_threaded(int ctl)
{
	pthread_t t;
	char c;
	int i;

	hand_clones_over(ctl);
	if (pthread_create(&t, NULL, creator, NULL))
		_exit(92);
	for (i = 0; i < 500 && __atomic_load_n(&progress, __ATOMIC_RELAXED) < SPIN; i++)
		usleep(20000);
	pthread_join(t, NULL);
	/* The test waits for the duplicate first. */
	write(ctl, "j", 1);
	read(ctl, &c, 1);
	printf("progress %ld\n", progress);
	fflush(stdout);
	_exit(0);
}

/*
 * As run(), for workload_threaded(): the first clone3() goes on at once;
 * the second (the third thread's) is held while a child process sets
 * level @level, and let go 200 ms later, while procft waits between its
 * count and the registration. *@set_rc gets that child's exit status:
 * 0 if the level was set, else the errno. Once its threads are done,
 * *@made says whether it got a duplicate before it prints.
 */
static int run_threaded(int level, char *out, size_t len, int *set_rc, int *made, pid_t *pidp)
{
	struct seccomp_notif req;
	int sv[2], o[2], listener, n = 0, status = -1, waiting = 0, sent = 0, i;
	pid_t pid, setter = -1;
	char c;
	size_t got = 0;

	listener = start(workload_threaded, &pid, sv, o);
	*pidp = pid;
	/*
	 * Every clone3() goes on, the duplicate's too (it inherits the
	 * filter when procft re-creates the threads), until the workload
	 * exits, in 600 rounds of 100 ms at most.
	 */
	for (i = 0; i < 600; i++) {
		struct pollfd p[2] = { { .fd = listener, .events = POLLIN },
				       { .fd = sv[0], .events = POLLIN } };

		if (poll(p, 2, 100) < 0 || (p[0].revents & (POLLHUP | POLLERR)))
			break;
		if (p[1].revents & POLLIN) {
			/* Its threads are done: it prints once it has a duplicate. */
			if (read(sv[0], &c, 1) != 1)
				break;
			waiting = 1;
		}
		if (waiting && !sent && procft_field(pid, "duplicates=") == 1) {
			*made = 1;
			sent = 1;
			write(sv[0], "p", 1);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req))
			continue;
		if (++n == 2) {
			setter = fork();
			if (setter == 0)
				_exit(-ioctl_set(pid, level));
			usleep(200000);
		}
		let_go(listener, &req);
	}
	close(listener);
	if (!sent)
		write(sv[0], "p", 1);
	read_to_eof(o[0], out, len, &got);
	out[got < len ? got : len - 1] = 0;
	waitpid(pid, &status, 0);
	if (setter > 0 && waitpid(setter, set_rc, 0) == setter)
		*set_rc = WIFEXITED(*set_rc) ? WEXITSTATUS(*set_rc) : -1;
	close(o[0]);
	close(sv[0]);
	return status;
}

/* Counted under a lock by the threads of counting_filtered(). */
static long counted;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static int go;

static void *counter_thread(void *arg)
{
	int i;

	pthread_mutex_lock(&lock);
	while (!go)
		pthread_cond_wait(&go_cond, &lock);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < 300; i++) {
		pthread_mutex_lock(&lock);
		counted++;
		pthread_mutex_unlock(&lock);
		usleep(1000);
	}
	return arg;
}

/*
 * Two threads that wait, once the test has seen the process's duplicate
 * count under a lock, and it prints the count; its seccomp filter answers
 * clone3() with @action, installed before the threads are made or, with
 * @after, on every thread once they exist (a duplicate mirrors whichever
 * ran last).
 */
static void counting_filtered(int ctl, unsigned int action, int after)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, action),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	pthread_t t[2];
	char c;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		_exit(91);
	if (!after && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		_exit(91);
	if (pthread_create(&t[0], NULL, counter_thread, NULL) ||
	    pthread_create(&t[1], NULL, counter_thread, NULL))
		_exit(92);
	if (after && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog))
		_exit(91);
	write(ctl, "r", 1);
	read(ctl, &c, 1);
	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_broadcast(&go_cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	printf("counted %ld\n", counted);
	fflush(stdout);
	_exit(0);
}

/*
 * A process whose seccomp filter makes clone3() fail with ENOSYS, as
 * container runtimes' default profiles do (the C library then makes its
 * threads with clone()).
 */
static void workload_enosys(int ctl)
{
	counting_filtered(ctl, SECCOMP_RET_ERRNO | ENOSYS, 0);
}

/*
 * A process whose seccomp filter, installed once its two threads exist,
 * traps clone3() (SECCOMP_RET_TRAP: the call is not made, its result is
 * its own number, and a SIGSYS is sent): a duplicate's creation of their
 * mirrors returns a thread id but makes no thread.
 */
static void workload_trap(int ctl)
{
	counting_filtered(ctl, SECCOMP_RET_TRAP, 1);
}

/*
 * Lets the workload @pid of spawn_piped() go on (@sv0, @o0: the test's
 * ends) and waits for its end: its output in @out, its status returned.
 */
static int let_finish(int sv0, int o0, char *out, size_t len, pid_t pid)
{
	int status = -1;
	size_t got = 0;

	write(sv0, "p", 1);
	read_to_eof(o0, out, len, &got);
	out[got < len ? got : len - 1] = 0;
	waitpid(pid, &status, 0);
	close(o0);
	close(sv0);
	return status;
}

/*
 * Runs workload_trap(): once its threads wait, sets level 1, waits (30 s
 * at most) until procft logged that a duplicate's thread creation made no
 * thread (*@seen), and lets it go on. Its output in @out, its pid in
 * *@pidp.
 */
static int run_trap(char *out, size_t len, int *seen, pid_t *pidp)
{
	int sv[2], o[2], i;
	char c;

	spawn_piped(workload_trap, pidp, sv, o);
	*seen = 0;
	if (read(sv[0], &c, 1) == 1 && ioctl_set(*pidp, 1) == 0)
		for (i = 0; i < 300 && !*seen; i++, usleep(100000))
			*seen = run_cmd("dmesg | grep -q 'procft: pid %d: a new duplicate.s thread creation returned 435 but made no thread'",
					*pidp) == 0;
	return let_finish(sv[0], o[0], out, len, *pidp);
}

/*
 * Runs workload_enosys(): once its threads wait, sets level 1, and lets
 * it go on once it has a duplicate (*@made) or that wait failed. Its
 * output in @out, its pid in *@pidp.
 */
static int run_enosys(char *out, size_t len, int *made, pid_t *pidp)
{
	int sv[2], o[2];
	pid_t reps[8];
	char c;

	spawn_piped(workload_enosys, pidp, sv, o);
	*made = read(sv[0], &c, 1) == 1 && ioctl_set(*pidp, 1) == 0 &&
		wait_duplicates(*pidp, 1, reps);
	return let_finish(sv[0], o[0], out, len, *pidp);
}

int main(void)
{
	char ref[256], out[256];
	int status, rc = 0, made = 0;
	pid_t pid;

	tap_plan(7);
	status = run(0, ref, sizeof(ref), &rc, &pid);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(ref, "counter 400\n"),
	       "unprotected, with its clone3() held and let go: '%.20s'", ref);
	status = run(1, out, sizeof(out), &rc, &pid);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(out, ref) &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) != 0 &&
	       (rc == -EAGAIN ||
		run_cmd("dmesg | grep -q 'procft: pid %d: .*protection ended'", pid) == 0),
	       "level 1 set while its clone3() of a thread is held (%s): protection ends once the thread appears, no divergence, same output",
	       rc == -EAGAIN ? "refused" : rc ? "failed" : "accepted");
	if (run_cmd("dmesg | grep -q 'procft: pid %d: .*protection ended'", pid) != 0)
		run_cmd("dmesg | grep 'procft: pid %d' | head -20 >&2", pid);

	close(ft_dev);
	ft_dev = -1;
	if (!tap_ok(reload_procft("threads=1 fault_injection=1 test_join_delay_ms=600") == 0 &&
		    ft_open() >= 0,
		    "procft reloaded with threads=1 fault_injection=1 test_join_delay_ms=600"))
		return tap_finish();
	rc = -1;
	status = run_threaded(1, out, sizeof(out), &rc, &made, &pid);
	snprintf(ref, sizeof(ref), "progress %ld\n", SPIN);
	tap_ok(rc == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: 1 thread(s) created as its protection began join'",
		       pid) == 0,
	       "level 1 set while a thread is listed between the count and the registration: it was found and joined (set: %d)",
	       rc);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(out, ref) && made &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) != 0,
	       "then a duplicate (%s); none diverged, the count is exact: '%.24s' (status %#x)",
	       made ? "made" : "none", out, status);
	if (run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) == 0 ||
	    strcmp(out, ref))
		run_cmd("dmesg | grep 'procft: pid %d' | head -20 >&2", pid);

	made = 0;
	status = run_enosys(out, sizeof(out), &made, &pid);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(out, "counted 600\n") &&
	       made &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* makes its threads with clone(): clone3() is refused (ENOSYS)'",
		       pid) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) != 0,
	       "clone3() refused by its seccomp filter (ENOSYS), its two threads waiting: protected, its duplicate makes their mirrors with clone(); none diverged: '%.16s' (status %#x)",
	       out, status);
	if (!made)
		run_cmd("dmesg | grep 'procft: pid %d' | head -20 >&2", pid);

	status = run_trap(out, sizeof(out), &made, &pid);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(out, "counted 600\n") &&
	       made && run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged'", pid) != 0,
	       "clone3() trapped by its seccomp filter (SECCOMP_RET_TRAP), its two threads waiting: a duplicate's creation of their mirrors that made no thread is seen as such (%s) and the duplicate replaced; the process unharmed: '%.16s' (status %#x)",
	       made ? "logged" : "not logged", out, status);
	if (!made)
		run_cmd("dmesg | grep 'procft: pid %d' | head -20 >&2", pid);
	close(ft_dev);
	ft_dev = -1;
	reload_procft("");
	return tap_finish();
}
